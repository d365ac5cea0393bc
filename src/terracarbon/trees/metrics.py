"""Cross-validation summaries of the OAM-TCD tasks: :func:`summarize_folds` (mean ± std over folds) and
:func:`format_mean_std`. The per-batch metrics (tree-cover IoU/F1, crown mAP) are
:class:`terracarbon.tasks.metrics.BinaryCoverMetrics` and :class:`terracarbon.tasks.metrics.CrownMAP`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


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
