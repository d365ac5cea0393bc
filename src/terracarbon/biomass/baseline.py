"""Random-forest baseline (as in the AGBD benchmarks): per-pixel features at labelled pixels -> AGB.

Features per pixel are the stack's band values plus, for each band, the mean over a ``context``×``context``
neighbourhood (GEDI footprints are ~25 m, wider than a 10 m pixel). The forest (scikit-learn
``RandomForestRegressor``) is fitted on the labelled pixels of the training scenes and scored, with the same
metrics as the deep model, at the labelled pixels of the test scenes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import ConfigError

from ._track import tracked
from .datasets import SceneArrays, load_scene
from .evaluate import _read, _truth_path
from .metrics import full_report, regression_metrics

__all__ = ["BaselineResult", "pixel_features", "train_rf_baseline"]


@dataclass
class BaselineResult:
    """Metrics of the random-forest baseline on the test pixels, and where the fitted model was saved."""

    metrics: dict[str, Any]
    model_path: Path | None
    n_train: int
    wall_time_s: float
    feature_names: list[str]
    footprint: dict[str, Any] | None = None


def pixel_features(sc: SceneArrays, rows: np.ndarray, cols: np.ndarray, context: int = 3) -> np.ndarray:
    """Feature matrix (n × 2C): band values and ``context``-px neighbourhood means at (rows, cols)."""
    from scipy.ndimage import uniform_filter

    own = sc.image[:, rows, cols].T
    if context <= 1:
        return own.astype(np.float32)
    ctx = np.stack([uniform_filter(b, size=context, mode="nearest")[rows, cols] for b in sc.image], axis=1)
    return np.concatenate([own, ctx], axis=1).astype(np.float32)


def _xy(scenes: list[SceneArrays], context: int, region: tuple[float, float] | None = None):
    xs, ys, ts = [], [], []
    for sc in scenes:
        rr, cc = sc.labelled_pixels(region)
        xs.append(pixel_features(sc, rr, cc, context))
        ys.append(sc.labels[rr, cc])
        tp = _truth_path(None, sc.stack_path)
        ts.append(_read(tp)[rr, cc] if tp is not None else np.full(len(rr), np.nan, np.float32))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(ts)


def train_rf_baseline(
    train_scenes: list[Any],
    test_scenes: list[Any] | None = None,
    *,
    out_dir: str | Path | None = None,
    n_estimators: int = 200,
    min_samples_leaf: int = 3,
    max_features: float | str = 0.5,
    context: int = 3,
    bands: list[str] | None = None,
    test_region: tuple[float, float] | None = None,
    seed: int = 0,
    n_jobs: int = -1,
    track: bool = True,
) -> BaselineResult:
    """Fit a random forest on labelled pixels of ``train_scenes`` and score it on ``test_scenes``.

    When ``test_scenes`` is None the bottom 20 % of rows of the training scenes is held out for testing (and
    excluded from fitting). ``out_dir`` (optional) receives ``rf.joblib``, ``metrics.json`` and emissions records.
    """
    from sklearn.ensemble import RandomForestRegressor

    from terracarbon.utils import atomic_path, atomic_write_json

    if n_estimators < 1:
        raise ConfigError("n_estimators must be >= 1")
    t0 = time.perf_counter()
    train = [load_scene(s, bands) for s in train_scenes]
    train_region = None
    if test_scenes:
        test = [load_scene(s, bands or train[0].bands) for s in test_scenes]
    else:
        test, train_region, test_region = train, (0.0, 0.8), (0.8, 1.0)
    x, y, _ = _xy(train, context, train_region)
    rf = RandomForestRegressor(
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        n_jobs=n_jobs,
        random_state=seed,
    )
    track_dir = Path(out_dir) if out_dir is not None else None
    with tracked(track_dir or ".", "train-rf", enabled=track and track_dir is not None) as fp:
        rf.fit(x, y)
    xt, yt, tt = _xy(test, context, test_region)
    pred = rf.predict(xt)
    metrics = full_report(pred, yt)
    if np.isfinite(tt).any():
        m = np.isfinite(tt)
        metrics["noise_floor_rmse"] = regression_metrics(yt[m], tt[m])["rmse"]
        metrics["vs_truth_at_labels"] = regression_metrics(pred[m], tt[m])
    names = list(train[0].bands)
    feat_names = names + ([f"{b}_mean{context}" for b in names] if context > 1 else [])
    metrics["feature_importance"] = dict(
        sorted(zip(feat_names, map(float, rf.feature_importances_)), key=lambda kv: -kv[1])[:10]
    )
    model_path = None
    if out_dir is not None:
        import joblib

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        model_path = out / "rf.joblib"
        with atomic_path(model_path) as tmp:
            joblib.dump({"model": rf, "bands": names, "context": context}, tmp)
        atomic_write_json(out / "metrics.json", metrics)
    return BaselineResult(metrics, model_path, int(len(y)), time.perf_counter() - t0, feat_names, fp.result)
