"""Shared fixtures of the tree-cover / crown tests: a look-alike OAM-TCD export and an oracle crown detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def tcd_root(tmp_path_factory):
    """Synthetic OAM-TCD export: 20 tiles of 128 px (4 holdout test, 16 train in 5 folds)."""
    from terracarbon.trees.synth import make_synthetic_tcd

    root = tmp_path_factory.mktemp("oam_tcd")
    return make_synthetic_tcd(root, n_images=20, size=128, seed=0, n_trees=(5, 9), n_groups=(0, 1))


class GreenCrownDetector(torch.nn.Module):
    """A training-free stand-in for Mask R-CNN on synthetic tiles: every connected green blob is one crown.

    Takes a list of 0–1 RGB tensors and returns torchvision-style detections (boxes, labels, scores, masks N×1×H×W).
    """

    def forward(self, images):
        from scipy import ndimage

        out = []
        for img in images:
            x = img.numpy()
            green = (x[1] > x[0] + 0.08) & (x[1] > x[2] + 0.08)
            lab, n = ndimage.label(green)
            masks, boxes = [], []
            for k in range(1, n + 1):
                m = lab == k
                if m.sum() < 6:
                    continue
                rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
                masks.append(m)
                boxes.append([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
            n = len(masks)
            h, w = x.shape[1:]
            out.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
                    "labels": torch.ones(n, dtype=torch.int64),
                    "scores": torch.full((n,), 0.9),
                    "masks": torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))
                    if n
                    else torch.zeros((0, 1, h, w)),
                }
            )
        return out


@pytest.fixture
def oracle_detector():
    return GreenCrownDetector()
