"""Metrics the Lightning tasks accumulate while they validate (used by :mod:`terracarbon.tasks` and the domains).

* Binary cover (semantic): IoU, F1, precision, recall (and accuracy) of the positive (*tree*) class, from accumulated
  confusion counts (:class:`BinaryCoverMetrics`) — the OAM-TCD paper's semantic metrics.
* Instances: COCO mask mAP@[.5:.95] and mAP@.5 through torchmetrics' ``MeanAveragePrecision(iou_type="segm")``
  (pycocotools backend) — :class:`CrownMAP`.

They live here, below the domains, so that ``tasks/`` never imports a domain package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np


class BinaryCoverMetrics:
    """Accumulates tree / no-tree confusion counts over batches and reports tree-class metrics.

    ``update(pred, target, valid=None)`` takes arrays or tensors of class ids (1 = tree) of the same shape.
    """

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = self.tn = 0

    def update(self, pred, target, valid=None) -> None:
        p = _np(pred).astype(bool)
        t = _np(target).astype(bool)
        if valid is not None:
            v = _np(valid).astype(bool)
            p, t = p[v], t[v]
        self.tp += int(np.count_nonzero(p & t))
        self.fp += int(np.count_nonzero(p & ~t))
        self.fn += int(np.count_nonzero(~p & t))
        self.tn += int(np.count_nonzero(~p & ~t))

    def compute(self) -> dict[str, float]:
        """``iou``, ``f1``, ``precision``, ``recall``, ``accuracy`` of the tree class (NaN where undefined)."""
        tp, fp, fn, tn = self.tp, self.fp, self.fn, self.tn
        nan = float("nan")
        precision = tp / (tp + fp) if tp + fp else nan
        recall = tp / (tp + fn) if tp + fn else nan
        return {
            "iou": tp / (tp + fp + fn) if tp + fp + fn else nan,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan,
            "precision": precision,
            "recall": recall,
            "accuracy": (tp + tn) / (tp + fp + fn + tn) if tp + fp + fn + tn else nan,
            "pixels": tp + fp + fn + tn,
        }


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class CrownMAP:
    """COCO mask mAP of crown predictions (torchmetrics, pycocotools backend).

    ``update(preds, targets)``: torchvision-style lists; predictions with ``masks`` N×1×H×W (probabilities) or N×H×W
    (bool), ``scores``, ``labels``; targets with ``masks`` N×H×W and ``labels``. ``compute()`` returns ``map``
    (mAP@[.5:.95]), ``map_50``, ``map_75``, ``mar_100`` and the number of images.
    """

    def __init__(self, mask_threshold: float = 0.5) -> None:
        from torchmetrics.detection import MeanAveragePrecision

        self.mask_threshold = mask_threshold
        self.metric = MeanAveragePrecision(iou_type="segm", max_detection_thresholds=[1, 10, 100])
        self.n_images = 0

    def update(self, preds: Iterable[Mapping], targets: Iterable[Mapping]) -> None:
        import torch

        p_list, t_list = [], []
        for p, t in zip(preds, targets):
            masks = p["masks"]
            if masks.ndim == 4:
                masks = masks[:, 0]
            if masks.dtype != torch.bool:
                masks = masks > self.mask_threshold
            p_list.append({"masks": masks.cpu(), "scores": p["scores"].cpu(), "labels": p["labels"].cpu()})
            t_list.append({"masks": t["masks"].bool().cpu(), "labels": t["labels"].cpu()})
            self.n_images += 1
        self.metric.update(p_list, t_list)

    def compute(self) -> dict[str, float]:
        r = self.metric.compute()
        out = {k: float(r[k]) for k in ("map", "map_50", "map_75", "mar_100")}
        out["n_images"] = self.n_images
        return out

    def reset(self) -> None:
        self.metric.reset()
        self.n_images = 0
