"""Score a biomass checkpoint on scenes: RMSE, MAE, bias and R² at labelled pixels, overall and per AGB bin.

The scenes are predicted through the same tiled engine as ``biomass predict`` (so the score is the score of the
maps users get), then compared with the sparse labels. Where a scene also holds the true AGB (synthetic scenes'
``agb.tif``) the report adds the label noise floor (RMSE of labels against truth at the same pixels) and the
model's error against the truth.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .datasets import resolve_scene
from .metrics import full_report, regression_metrics

__all__ = ["evaluate_biomass", "evaluate_arrays"]


def _read(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as ds:
        a = ds.read(1, out_dtype="float32")
        if ds.nodata is not None and np.isfinite(ds.nodata):
            a[a == ds.nodata] = np.nan
    return a


def _truth_path(scene: Any, stack: Path) -> Path | None:
    p = getattr(scene, "agb", None)
    p = Path(p) if p is not None else stack.parent / "agb.tif"
    return p if p.exists() else None


def evaluate_arrays(pred: np.ndarray, labels: np.ndarray, truth: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of ``pred`` against ``labels`` at labelled pixels (+ noise floor / truth errors if ``truth``)."""
    m = np.isfinite(labels) & np.isfinite(pred)
    rep = full_report(pred[m], labels[m])
    if truth is not None:
        mt = m & np.isfinite(truth)
        rep["noise_floor_rmse"] = regression_metrics(labels[mt], truth[mt])["rmse"]
        rep["vs_truth_at_labels"] = regression_metrics(pred[mt], truth[mt])
        allv = np.isfinite(truth) & np.isfinite(pred)
        rep["vs_truth_all_pixels"] = regression_metrics(pred[allv], truth[allv])
    return rep


def evaluate_biomass(
    checkpoint: str | Path,
    scenes: list[Any],
    *,
    region: tuple[float, float] | None = None,
    tile_size: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    backend: str = "eager",
    progress: bool = False,
    keep_maps: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` on ``scenes`` (Scene objects, scene folders or (stack, labels) pairs).

    Returns ``{"n", "rmse", "mae", "bias", "r2", "per_bin": {"0-50": {...}, ..., "500+": {...}},
    "noise_floor_rmse", "vs_truth_at_labels", "vs_truth_all_pixels", "per_scene": [...]}`` where available.
    ``region`` restricts scoring to a fractional row range (a held-out part of each scene). ``keep_maps``: folder
    to keep the predicted maps in (default: a temporary folder).
    """
    from .predict import predict_biomass

    preds, labs, truths = [], [], []
    per_scene = []
    with tempfile.TemporaryDirectory(prefix="tc-eval-") as tmp:
        out_dir = Path(keep_maps) if keep_maps is not None else Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, scene in enumerate(scenes):
            stack, labels_path, name = resolve_scene(scene)
            dst = out_dir / f"pred_{i:02d}_{name}.tif"
            predict_biomass(
                checkpoint,
                stack,
                dst,
                tile_size=tile_size,
                overlap=overlap,
                batch_size=batch_size,
                backend=backend,
                resume=False,
                progress=progress,
                track=False,
            )
            pred, lab = _read(dst), _read(labels_path)
            tp = _truth_path(scene, stack)
            truth = _read(tp) if tp is not None else None
            if region is not None:
                h = lab.shape[0]
                r0, r1 = int(round(region[0] * h)), int(round(region[1] * h))
                sl = slice(r0, r1)
                pred, lab = pred[sl], lab[sl]
                truth = truth[sl] if truth is not None else None
            rep = evaluate_arrays(pred, lab, truth)
            rep.pop("per_bin")
            per_scene.append({"scene": name, **rep})
            m = np.isfinite(lab) & np.isfinite(pred)
            preds.append(pred[m])
            labs.append(lab[m])
            truths.append(truth[m] if truth is not None else np.full(int(m.sum()), np.nan, np.float32))
    p, y, t = np.concatenate(preds), np.concatenate(labs), np.concatenate(truths)
    rep = full_report(p, y)
    if np.isfinite(t).any():
        mt = np.isfinite(t)
        rep["noise_floor_rmse"] = regression_metrics(y[mt], t[mt])["rmse"]
        rep["vs_truth_at_labels"] = regression_metrics(p[mt], t[mt])
    rep["per_scene"] = per_scene
    return rep
