"""Metrics of the OAM-TCD tasks.

* Tree cover (semantic): IoU, F1, precision, recall (and accuracy) of the *tree* class, from accumulated confusion
  counts (:class:`BinaryCoverMetrics`) — the paper's semantic metrics.
* Crowns (instance): COCO mask mAP@[.5:.95] and mAP@.5 through torchmetrics' ``MeanAveragePrecision(iou_type="segm")``
  (pycocotools backend) — :class:`CrownMAP`.
* :func:`summarize_folds`: mean ± std over cross-validation folds.
"""

from __future__ import annotations

import math
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


def summarize_folds(per_fold: list[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and sample standard deviation (ddof=1; 0 for one fold) of every numeric metric over folds."""
    keys = sorted({k for m in per_fold for k, v in m.items() if isinstance(v, (int, float))})
    out: dict[str, dict[str, float]] = {}
    for k in keys:
        vals = np.array([float(m[k]) for m in per_fold if k in m and not math.isnan(float(m[k]))])
        if vals.size == 0:
            continue
        out[k] = {
            "mean": float(vals.mean()),
            "std": float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
            "n": int(vals.size),
        }
    return out


def format_mean_std(summary: Mapping[str, Mapping[str, float]], digits: int = 3) -> dict[str, str]:
    """``{"iou": "0.871 ± 0.012", ...}`` for display."""
    return {k: f"{v['mean']:.{digits}f} ± {v['std']:.{digits}f}" for k, v in summary.items()}
