"""Shared fixtures of the tree-cover / crown tests: a look-alike OAM-TCD export and an oracle crown detector."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def tcd_root(tmp_path_factory):
    """Synthetic OAM-TCD export: 20 tiles of 128 px (4 holdout test, 16 train in 5 folds)."""
    from terracarbon.data.synthetic.trees import make_synthetic_tcd

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
            green = (x[1] > x[0] + 0.02) & (x[1] > x[2] + 0.02)
            lab, n = ndimage.label(green)
            masks, boxes = [], []
            for k in range(1, n + 1):
                m = lab == k
                if m.sum() < 10:
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


SEMANTIC_SPEC = {
    "arch": "unet",
    "in_channels": 3,
    "classes": 2,
    "encoder_name": "resnet18",
    "encoder_depth": 3,
    "decoder_channels": [64, 32, 16],
}
INSTANCE_SPEC = {
    "arch": "maskrcnn",
    "backbone": "resnet18",
    "fpn_channels": 32,
    "min_size": 128,
    "max_size": 128,
    "rpn_batch_size_per_image": 64,
    "box_batch_size_per_image": 64,
}


@pytest.fixture(scope="session")
def semantic_run(tcd_root, tmp_path_factory):
    """U-Net (ResNet-18, depth 3) trained 5 epochs on the synthetic export (20 steps of 4 tiles)."""
    from terracarbon.trees.semantic import train_semantic

    return train_semantic(
        tcd_root,
        tmp_path_factory.mktemp("semantic_run"),
        model_spec=SEMANTIC_SPEC,
        epochs=5,
        batch_size=4,
        lr=3e-3,
        patch_size=None,
        seed=0,
        accelerator="cpu",
        progress=False,
    )


@pytest.fixture(scope="session")
def instance_run(tcd_root, tmp_path_factory):
    """Mask R-CNN (ResNet-18 FPN, 32 channels) trained 5 epochs on the synthetic export (40 steps of 2 tiles)."""
    from terracarbon.trees.instance import train_instance

    return train_instance(
        tcd_root,
        tmp_path_factory.mktemp("instance_run"),
        model_spec=INSTANCE_SPEC,
        epochs=5,
        batch_size=2,
        lr=4e-3,
        patch_size=None,
        seed=0,
        accelerator="cpu",
        progress=False,
    )
