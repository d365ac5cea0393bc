"""Regression metrics at labelled pixels: RMSE, MAE, bias, R², and the same per AGB bin."""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score

AGB_BIN_EDGES: tuple[float, ...] = tuple(float(x) for x in range(0, 550, 50))
"""Bin edges (Mg/ha) of the per-bin report: 0–50, 50–100, …, 450–500, then 500+."""


def bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}+" if math.isinf(hi) else f"{lo:g}-{hi:g}"


def regression_metrics(pred: np.ndarray, label: np.ndarray) -> dict[str, float | int]:
    """RMSE, MAE, bias (mean of pred - label) and R² over the pairs where both are finite (units of the input)."""
    pred = np.asarray(pred, np.float64).ravel()
    label = np.asarray(label, np.float64).ravel()
    m = np.isfinite(pred) & np.isfinite(label)
    n = int(m.sum())
    if n == 0:
        return {"n": 0, "rmse": float("nan"), "mae": float("nan"), "bias": float("nan"), "r2": float("nan")}
    p, t = torch.from_numpy(pred[m]), torch.from_numpy(label[m])
    out = {
        "n": n,
        "rmse": float(mean_squared_error(p, t, squared=False)),
        "mae": float(mean_absolute_error(p, t)),
        "bias": float((p - t).mean()),
        "r2": float(r2_score(p, t)) if n > 1 and float(t.var()) > 0 else float("nan"),
    }
    out["label_mean"] = float(t.mean())
    out["pred_mean"] = float(p.mean())
    return out


def per_bin_metrics(
    pred: np.ndarray, label: np.ndarray, edges: tuple[float, ...] = AGB_BIN_EDGES
) -> dict[str, dict[str, float | int]]:
    """:func:`regression_metrics` (without R²) per label bin ``[edges[i], edges[i+1])`` plus ``edges[-1]+``."""
    pred = np.asarray(pred, np.float64).ravel()
    label = np.asarray(label, np.float64).ravel()
    bounds = list(edges) + [math.inf]
    out: dict[str, dict[str, float | int]] = {}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        sel = (label >= lo) & (label < hi)
        m = regression_metrics(pred[sel], label[sel])
        m.pop("r2", None)
        out[bin_label(lo, hi)] = m
    return out


def full_report(pred: np.ndarray, label: np.ndarray) -> dict:
    """Overall metrics plus ``per_bin``."""
    rep = regression_metrics(pred, label)
    rep["per_bin"] = per_bin_metrics(pred, label)
    return rep
