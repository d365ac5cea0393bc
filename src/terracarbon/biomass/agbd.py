"""AGBD as the benchmark: train and evaluate with the dataset's own protocol, then map a stack with the model.

>>> from terracarbon.biomass.agbd import train_agbd, evaluate_agbd, agbd_table
>>> res = train_agbd("Data/", features="S2", model="unet", patch_size=25, out_dir="runs/agbd_unet_S2")
>>> evaluate_agbd(res.checkpoint, "Data/", split="test")["rmse"]
>>> agbd_table(["runs/agbd_unet_S2", "runs/agbd_gbdt_S2"], "table.md")

Protocol, as in AGBD (Sialelli et al., "AGBD: A Global-scale Biomass Dataset", arXiv:2406.04928; code
github.com/ghjuliasialelli/AGBD, ``Models/``):

* **Splits** by Sentinel-2 tile from ``biomes_splits_to_name.pkl`` (:class:`terracarbon.data.agbd.AGBDDataset`);
  AGBD-Lite's split files are read as they are.
* **Inputs**: the feature selections of the paper's ablations, from ``Models/scripts/gen_scripts.py`` (all with
  latitude/longitude encodings): ``all`` (S2 + lat/lon + ALOS + CH + LC + DEM), ``CH`` (lat/lon + CH, CH std),
  ``RGBN`` (B02 B03 B04 B08), ``S2``, ``S2+ALOS``, ``S2+DEM``, ``S2+LC``, ``S2+LC+DEM+ALOS``; land cover as
  ``sin_cos`` (default) or ``onehot``; optional S2 / GEDI date encodings (``GEDIDataset`` ``s2_dates``,
  ``gedi_dates``). Normalisation from the statistics pickle, ``pct`` (the paper's) or ``mean_std``/``min_max``.
* **Loss** on the centre pixel only (MSE, :class:`terracarbon.tasks.regression.SparseRegressionTask` ``mode="center"``),
  on 25×25 or 15×15 patches (centre crop). Optimiser AdamW with a one-cycle schedule (AGBD: Adam, step decay);
  batch 128 and lr 1e-3 as the training scripts.
* **Models** (``model=``): ``unet`` (≈10 M parameters, AGBD's U-Net, :mod:`terracarbon.models.agbd_nets`),
  ``fcn`` (AGBD's ``SimpleFCN``, channel dims 32 32 64 128 128 128), ``gbdt`` (LightGBM with ``Models/rf.py``'s
  parameters: 165 leaves, learning rate 0.1, up to 1000 rounds with early stopping after 50 on the validation RMSE,
  λ=5, bagging 0.5 every round; trained on the centre pixel's features — the scripts generate the ``rf`` runs with
  patch size 1), ``gfm`` (:mod:`terracarbon.models.gfm`, Swin-T from scratch unless weights are given).
* **Scores** on the test split: RMSE, MAE, bias (mean of prediction − label), R², RMSE per 50 Mg/ha bin up to
  500 (then 500+), per biome (Copernicus land cover at the footprint), ``n``.

Every run folder holds ``model.pt`` (terracarbon checkpoint: spec ``{"arch": "agbd", "net": ..., ...}``, i.e. the
input adapter + network; the gbdt booster's text model is inside the spec), ``metrics.json`` (test scores),
``result.json``, ``emissions.json`` (energy/CO2e via :func:`terracarbon.footprint.track.tracked`) and a model card.
The checkpoint's ``meta["bands"]`` are the raw stack bands by AGBD name and ``meta["input_units"]`` the S2 units
(``reflectance``, the ``TERRACARBON_UNITS`` contract of ``terracarbon data stack``; all units in
``meta["agbd"]["input_units"]``), so
:func:`predict_agbd` maps any stack that carries those band names (``terracarbon data stack``).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.data.agbd import ALOS_ORDER, LC_ONEHOT_BANDS, REF_BIOMES, S2_ORDER, AGBDDataset
from terracarbon.errors import ConfigError, InputError

from ._track import model_card, tracked
from .metrics import per_bin_metrics, regression_metrics

log = logging.getLogger(__name__)

__all__ = [
    "FEATURE_SETS",
    "MODELS",
    "AGBDTrainResult",
    "resolve_features",
    "train_agbd",
    "evaluate_agbd",
    "agbd_table",
    "predict_agbd",
    "stack_units",
]

LATLON = ["LAT_COS", "LAT_SIN", "LON_COS", "LON_SIN"]
_LC3 = ["LC_COS", "LC_SIN", "LC_PROB"]
FEATURE_SETS: dict[str, list[str]] = {
    "all": [*S2_ORDER, *LATLON, *ALOS_ORDER, "CH", "CH_STD", *_LC3, "DEM"],
    "S2": [*S2_ORDER, *LATLON],
    "RGBN": ["B02", "B03", "B04", "B08", *LATLON],
    "S2+ALOS": [*S2_ORDER, *LATLON, *ALOS_ORDER],
    "S2+DEM": [*S2_ORDER, *LATLON, "DEM"],
    "S2+LC": [*S2_ORDER, *LATLON, *_LC3],
    "S2+LC+DEM+ALOS": [*S2_ORDER, *LATLON, *ALOS_ORDER, *_LC3, "DEM"],
    "CH": [*LATLON, "CH", "CH_STD"],
}
"""The paper's input configurations (AGBD ``Models/scripts/gen_scripts.py``), in the loader's channel order."""

MODELS = ("unet", "fcn", "gbdt", "gfm")

GBDT_PARAMS: dict[str, Any] = {
    "num_leaves": 165,
    "max_depth": -1,
    "learning_rate": 0.1,
    "num_iterations": 1000,
    "min_split_gain": 0.0,
    "min_child_weight": 1e-3,
    "min_child_samples": 20,
    "reg_alpha": 0.0,
    "reg_lambda": 5.0,
    "bagging_fraction": 0.5,
    "bagging_freq": 1,
    "objective": "regression",
    "boosting_type": "gbdt",
    "force_col_wise": True,
    "verbose": -1,
    "metric": "rmse",
}
"""LightGBM parameters of AGBD ``Models/rf.py`` (``RandomForest.__init__``); early stopping after 50 rounds."""


def resolve_features(
    features: str | Sequence[str] = "all",
    *,
    lc_encoding: str = "sin_cos",
    s2_dates: bool = False,
    gedi_dates: bool = False,
) -> list[str]:
    """Loader feature names for a configuration name (:data:`FEATURE_SETS`, ``+`` optional: ``S2ALOS`` works) or a
    list / comma-separated string of band names; ``lc_encoding="onehot"`` swaps LC cos/sin for 14 one-hot bands."""
    if isinstance(features, str):
        key = features.strip()
        norm = {k.replace("+", "").upper(): k for k in FEATURE_SETS}
        if key.replace("+", "").upper() in norm:
            feats = list(FEATURE_SETS[norm[key.replace("+", "").upper()]])
        else:
            feats = [f.strip().upper() for f in key.split(",") if f.strip()]
    else:
        feats = [str(f).upper() for f in features]
    from terracarbon.data.agbd import ACCEPTED_BANDS

    bad = [f for f in feats if f not in ACCEPTED_BANDS]
    if bad or not feats:
        raise ConfigError(
            f"unknown features {bad or features!r}: use one of {', '.join(FEATURE_SETS)} or band names "
            f"from {', '.join(ACCEPTED_BANDS)}"
        )
    if lc_encoding not in ("sin_cos", "onehot"):
        raise ConfigError(f"lc_encoding must be 'sin_cos' or 'onehot', got {lc_encoding!r}")
    if lc_encoding == "onehot" and "LC_COS" in feats:
        i = feats.index("LC_COS")
        feats = [f for f in feats if f not in ("LC_COS", "LC_SIN")]
        feats[i:i] = list(LC_ONEHOT_BANDS)
    if s2_dates:
        last_s2 = max((i for i, f in enumerate(feats) if f in S2_ORDER), default=-1)
        feats[last_s2 + 1 : last_s2 + 1] = ["S2_DAY", "S2_DOY_COS", "S2_DOY_SIN"]
    if gedi_dates:
        last = max((i for i, f in enumerate(feats) if f in LATLON), default=-1)
        feats[last + 1 : last + 1] = ["GEDI_DAY", "GEDI_DOY_COS", "GEDI_DOY_SIN"]
    return feats


def _feature_name(features: str | Sequence[str]) -> str:
    if isinstance(features, str):
        key = features.replace("+", "").upper()
        for k in FEATURE_SETS:
            if k.replace("+", "").upper() == key:
                return k
        return features
    return ",".join(features)


@dataclass
class AGBDTrainResult:
    """What :func:`train_agbd` returns (also ``result.json`` in the run folder)."""

    checkpoint: Path
    model: str
    features: str
    patch_size: int
    metrics: dict[str, Any]
    val_metrics: dict[str, Any]
    n_train: int
    n_val: int
    wall_time_s: float
    trainable_params: int
    footprint: dict[str, Any] | None
    history: list[dict[str, float]] = field(default_factory=list)
    out_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (paths as strings)."""
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def _net_spec(model: str, n_in: int, patch_size: int, kwargs: dict[str, Any]) -> dict[str, Any]:
    if model == "unet":
        return {"arch": "agbd_unet", "in_channels": n_in, "classes": 1, "patch_size": patch_size, **kwargs}
    if model == "fcn":
        return {"arch": "agbd_fcn", "in_channels": n_in, "classes": 1, **kwargs}
    if model == "gfm":
        # trained end to end unless model_kwargs give encoder_weights (and freeze_encoder=True) of a pretrained GFM
        spec = {"arch": "gfm", "in_channels": n_in, "classes": 1, "size": "tiny", "img_size": 32, "freeze_encoder": False}
        spec.update(kwargs)
        return spec
    raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {model!r}")


def _loader(ds, batch_size: int, num_workers: int, shuffle: bool = False, seed: int = 0):
    import torch
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=g,
    )


def _centre_features(ds: AGBDDataset, batch_size: int, num_workers: int, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for batch in _progress(_loader(ds, batch_size, num_workers), progress, "reading centre pixels"):
        img = batch["image"]
        c = img.shape[-1] // 2
        xs.append(img[:, :, c, c].numpy())
        ys.append(batch["agbd"].numpy())
    return np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64)


def _progress(it, enabled: bool, what: str):
    if not enabled:
        return it
    from rich.progress import track

    return track(it, description=what)


def _history_callback():
    from .train import _history_callback as hist

    return hist()


def train_agbd(
    root: str | Path,
    *,
    features: str | Sequence[str] = "all",
    patch_size: int = 25,
    model: str = "unet",
    out_dir: str | Path = "runs/agbd",
    max_patches: int | None = None,
    fraction: float | None = None,
    val_max_patches: int | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    norm_strat: str = "pct",
    lc_encoding: str = "sin_cos",
    s2_dates: bool = False,
    gedi_dates: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    gbdt_params: dict[str, Any] | None = None,
    input_units: dict[str, str] | None = None,
    seed: int = 0,
    num_workers: int = 0,
    max_minutes: float | None = None,
    patience: int | None = None,
    accelerator: str = "auto",
    devices: int | str = 1,
    evaluate_split: str | None = "test",
    track: bool = True,
    progress: bool = True,
) -> AGBDTrainResult:
    """Train one AGBD baseline (``model`` × ``features`` × ``patch_size``) and score it on the test split.

    Args:
        root: AGBD folder (``data_subset-*.h5`` + split and statistics pickles) or AGBD-Lite folder.
        features: a :data:`FEATURE_SETS` name or band names (see :func:`resolve_features`).
        patch_size: 25 or 15 (centre crop of the stored 25×25); the ``gbdt`` model always uses the centre pixel.
        model: ``unet`` | ``fcn`` | ``gbdt`` | ``gfm``.
        out_dir: run folder (``model.pt``, ``metrics.json``, ``result.json``, ``emissions.json``, model card).
        max_patches, fraction: seeded subsample of the training split (``val_max_patches`` for validation; default
            the same cap as training).
        epochs, batch_size, lr: optimisation of the networks (AGBD: 10 epochs U-Net, 25 FCN, batch 128, lr 1e-3).
        norm_strat: ``pct`` (paper) | ``mean_std`` | ``min_max``. lc_encoding: ``sin_cos`` | ``onehot``.
        s2_dates, gedi_dates: add the date encodings. model_kwargs: extra network spec keys (e.g. ``{"width": 0.25}``
            for a slimmer U-Net, ``{"embed_dim": 24, "depths": [1, 1, 1, 1]}`` for a small GFM).
        gbdt_params: LightGBM parameter overrides (defaults :data:`GBDT_PARAMS`).
        input_units: units of the raw stack bands the checkpoint expects when mapping (default S2 reflectance,
            ALOS DN, LC probability in percent; see :class:`terracarbon.models.agbd_nets.AGBDInput`).
        seed: seeds Lightning/NumPy/torch, the subsample and LightGBM. num_workers: DataLoader workers.
        max_minutes, patience: wall-clock cap and early-stopping patience (epochs, on ``val_rmse``).
        evaluate_split: split scored after training (``None`` to skip).
        track: record energy/CO2e. progress: progress bars.
    """
    import lightning as L
    import torch

    from terracarbon.models.agbd_nets import AGBDInput, AGBDModel, feature_norm, raw_bands_for
    from terracarbon.models.registry import build_model, count_parameters, save_checkpoint
    from terracarbon.utils import atomic_write_json

    if model not in MODELS:
        raise ConfigError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    if patch_size not in (15, 25):
        raise ConfigError(f"patch_size must be 25 or 15 (AGBD's), got {patch_size}")
    if epochs < 1 or batch_size < 1:
        raise ConfigError("epochs and batch_size must be >= 1")
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(seed, workers=True, verbose=False)
    feats = resolve_features(features, lc_encoding=lc_encoding, s2_dates=s2_dates, gedi_dates=gedi_dates)
    fname = _feature_name(features)
    ps = 1 if model == "gbdt" else patch_size
    common = {"bands": feats, "patch_size": ps, "norm_strat": norm_strat}
    train_ds = AGBDDataset(root, "train", max_patches=max_patches, fraction=fraction, seed=seed, **common)
    vcap = val_max_patches if val_max_patches is not None else max_patches
    val_ds = AGBDDataset(root, "val", max_patches=vcap, fraction=fraction, seed=seed + 1, **common)
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise InputError(root, f"no patches in the train ({len(train_ds)}) or val ({len(val_ds)}) split")
    log.info("AGBD %s/%s: %d train / %d val patches", model, fname, len(train_ds), len(val_ds))
    stats = _plain(train_ds.stats)
    norm = {f: list(v) for f in feats if (v := feature_norm(f, stats, norm_strat)) is not None}
    raw = raw_bands_for(feats)
    units = {"S2": "reflectance", "ALOS": "dn", "LC_PROB": "percent", **(input_units or {})}
    history: list[dict[str, float]] = []
    val_metrics: dict[str, Any] = {}

    with tracked(out, "train", enabled=track) as fp:
        if model == "gbdt":
            import lightgbm as lgb

            x_tr, y_tr = _centre_features(train_ds, max(batch_size, 256), num_workers, progress)
            x_va, y_va = _centre_features(val_ds, max(batch_size, 256), num_workers, progress)
            params = {**GBDT_PARAMS, "seed": seed, "num_threads": 1, **(gbdt_params or {})}
            rounds = int(params.pop("num_iterations"))
            evals: dict[str, Any] = {}
            booster = lgb.train(
                params,
                lgb.Dataset(x_tr, y_tr),
                num_boost_round=rounds,
                valid_sets=[lgb.Dataset(x_va, y_va)],
                valid_names=["val"],
                callbacks=[lgb.early_stopping(50, verbose=False), lgb.record_evaluation(evals)],
            )
            history = [{"round": i + 1, "val_rmse": float(v)} for i, v in enumerate(evals["val"]["rmse"])]
            net_spec = {
                "arch": "agbd_gbdt",
                "in_channels": len(feats),
                "booster": booster.model_to_string(num_iteration=booster.best_iteration or None),
            }
            net = build_model(net_spec)
            t_mean, t_std = 0.0, 1.0
            val_metrics = regression_metrics(net._booster.predict(x_va), y_va)
            trainable = int(booster.num_trees())
            epochs_run = int(booster.best_iteration or booster.current_iteration())
        else:
            from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

            from terracarbon.tasks.regression import SparseRegressionTask

            y = train_ds.labels()
            t_mean, t_std = float(np.mean(y)), float(np.std(y)) or 1.0
            net_spec = _net_spec(model, len(feats), patch_size, dict(model_kwargs or {}))
            net = build_model(net_spec)
            trainable, _ = count_parameters(net)
            task = SparseRegressionTask(
                net, lr=lr, mode="center", loss="mse", target_mean=t_mean, target_std=t_std
            )
            ckpt_cb = ModelCheckpoint(
                dirpath=out / "checkpoints",
                filename="best",
                monitor="val_rmse",
                mode="min",
                save_top_k=1,
                save_weights_only=True,
                enable_version_counter=False,
            )
            callbacks: list[Any] = [ckpt_cb, _history_callback()]
            if patience:
                callbacks.append(EarlyStopping(monitor="val_rmse", mode="min", patience=patience))
            trainer = L.Trainer(
                max_epochs=epochs,
                max_time={"minutes": max_minutes} if max_minutes else None,
                accelerator=accelerator,
                devices=devices,
                callbacks=callbacks,
                logger=False,
                enable_progress_bar=progress,
                enable_model_summary=False,
                num_sanity_val_steps=0,
                default_root_dir=out,
            )
            trainer.fit(
                task,
                train_dataloaders=_loader(train_ds, batch_size, num_workers, shuffle=True, seed=seed),
                val_dataloaders=_loader(val_ds, max(batch_size, 256), num_workers),
            )
            if ckpt_cb.best_model_path:
                state = torch.load(ckpt_cb.best_model_path, map_location="cpu", weights_only=False)
                task.load_state_dict(state["state_dict"])
            net = copy.deepcopy(task.model).cpu().eval()
            history = callbacks[1].rows
            best = ckpt_cb.best_model_score
            if best is not None and history:
                row = min(
                    (r for r in history if "val_rmse" in r),
                    key=lambda r: abs(r["val_rmse"] - float(best)),
                    default={},
                )
                val_metrics = {k[4:]: v for k, v in row.items() if k.startswith("val_")}
            epochs_run = int(trainer.current_epoch)

    full = AGBDModel(net, AGBDInput(feats, raw, norm, units))
    spec = {"arch": "agbd", "net": net_spec, "features": feats, "raw_bands": raw, "norm": norm, "input_units": units}
    meta: dict[str, Any] = {
        "task": "regression",
        "target_name": "agb_mg_per_ha",
        "units": "Mg/ha",
        "bands": raw,
        "in_bands": None,
        "mean": None,
        "std": None,
        "input_units": units["S2"],  # the stack's TERRACARBON_UNITS contract (terracarbon.data.stack)
        "target_scale": t_std,
        "target_offset": t_mean,
        "clip_min": 0.0,
        "patch_size": ps,
        "seed": seed,
        "epochs_run": epochs_run,
        "val_metrics": _plain(val_metrics),
        "footprint": fp.result,
        "agbd": {
            "model": model,
            "feature_set": fname,
            "features": feats,
            "patch_size": patch_size,
            "norm_strat": norm_strat,
            "lc_encoding": lc_encoding,
            "input_units": units,
            "statistics": stats,
            "statistics_file": train_ds.stats_path.name,
            "lite": train_ds.lite,
            "n_train": len(train_ds),
            "n_val": len(val_ds),
            "train_tiles": train_ds.tiles,
        },
    }
    ckpt = save_checkpoint(out / "model.pt", full, spec, meta)
    metrics: dict[str, Any] = {}
    if evaluate_split:
        metrics = evaluate_agbd(ckpt, root, split=evaluate_split, num_workers=num_workers, progress=progress)
        meta["metrics"] = {k: metrics[k] for k in ("rmse", "mae", "bias", "r2", "n")}
        ckpt = save_checkpoint(out / "model.pt", full, spec, meta)
        atomic_write_json(out / "metrics.json", metrics)
    model_card(
        out,
        model_id=f"terracarbon-agbd-{model}-{fname.replace('+', '')}",
        footprint=fp.result,
        metrics={k: metrics[k] for k in ("rmse", "mae", "bias", "r2") if k in metrics},
        datasets=["AGBD-Lite" if train_ds.lite else "AGBD"],
        extra=(
            f"AGBD {model} on {fname} ({len(feats)} features: {', '.join(feats)}), {ps}×{ps} input, "
            f"centre-pixel MSE loss, {norm_strat} normalisation; {len(train_ds)} training patches "
            "(terracarbon.biomass.agbd.train_agbd)."
        ),
    )
    res = AGBDTrainResult(
        checkpoint=ckpt,
        model=model,
        features=fname,
        patch_size=patch_size,
        metrics=metrics,
        val_metrics=_plain(val_metrics),
        n_train=len(train_ds),
        n_val=len(val_ds),
        wall_time_s=time.perf_counter() - t0,
        trainable_params=int(trainable),
        footprint=fp.result,
        history=history,
        out_dir=out,
    )
    atomic_write_json(out / "result.json", res.to_dict())
    train_ds.close()
    val_ds.close()
    return res


def _biome_name(code: int) -> str:
    if code == 255:
        return "nodata"
    return REF_BIOMES.get(int(code), f"other ({int(code)})")


def evaluate_agbd(
    checkpoint: str | Path,
    root: str | Path,
    *,
    split: str = "test",
    batch_size: int = 256,
    num_workers: int = 0,
    max_patches: int | None = None,
    fraction: float | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Score an AGBD-trained checkpoint on a split as AGBD reports it.

    The split is read with the checkpoint's features, patch size, normalisation strategy and statistics; the
    prediction is the network's centre pixel, in Mg/ha (clipped at 0 as the maps are). Returns exactly
    ``{"rmse", "mae", "bias", "r2", "per_bin", "per_biome", "n"}``: ``per_bin`` = per 50 Mg/ha label bin
    (``"0-50"`` … ``"450-500"``, ``"500+"``) ``{"n", "rmse", "mae", "bias", ...}``; ``per_biome`` = the same per
    land cover class at the footprint (:data:`terracarbon.data.agbd.REF_BIOMES` names).
    """
    import torch

    from terracarbon.models.registry import load_checkpoint

    model, spec, meta = load_checkpoint(checkpoint)
    ag = meta.get("agbd")
    if spec.get("arch") != "agbd" or not ag:
        raise InputError(checkpoint, "is not an AGBD-trained checkpoint (train it with biomass train --agbd)")
    ds = AGBDDataset(
        root,
        split,
        bands=ag["features"],
        patch_size=int(meta["patch_size"]),
        norm_strat=ag["norm_strat"],
        stats=ag["statistics"],
        return_lc=True,
        max_patches=max_patches,
        fraction=fraction,
        seed=seed,
    )
    if len(ds) == 0:
        raise InputError(root, f"the {split} split has no patches")
    scale, offset = float(meta.get("target_scale", 1.0)), float(meta.get("target_offset", 0.0))
    clip = meta.get("clip_min")
    preds, labels, lcs = [], [], []
    net = model.net.eval()
    with torch.inference_mode():
        for batch in _progress(_loader(ds, batch_size, num_workers), progress, f"scoring {split}"):
            out = net(batch["image"])
            c = out.shape[-1] // 2
            p = out[:, 0, c, c].double().numpy() * scale + offset
            if clip is not None:
                p = np.maximum(p, float(clip))
            preds.append(p)
            labels.append(batch["agbd"].double().numpy())
            lcs.append(np.asarray(batch["lc"]))
    ds.close()
    p, y, lc = np.concatenate(preds), np.concatenate(labels), np.concatenate(lcs)
    overall = regression_metrics(p, y)
    per_biome = {}
    for code in sorted(set(lc.tolist())):
        sel = lc == code
        m = regression_metrics(p[sel], y[sel])
        per_biome[_biome_name(code)] = m
    return _plain(
        {
            "rmse": overall["rmse"],
            "mae": overall["mae"],
            "bias": overall["bias"],
            "r2": overall["r2"],
            "per_bin": per_bin_metrics(p, y),
            "per_biome": per_biome,
            "n": overall["n"],
        }
    )


# ---------------------------------------------------------------------------------------------------------- table


def _read_run(run: Path) -> dict[str, Any]:
    path = run / "result.json" if run.is_dir() else run
    if not path.exists():
        raise InputError(path, "no result.json (not an AGBD run folder from biomass train --agbd)")
    try:
        res = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(path, f"unreadable result.json ({exc})") from exc
    if "features" not in res or "model" not in res:
        raise InputError(path, "result.json is not from an AGBD run (no model/features)")
    return res


def agbd_table(
    runs: Sequence[str | Path], out: str | Path | None = None, *, csv_out: str | Path | None = None
) -> list[dict[str, Any]]:
    """One row per (model, features, patch size) over AGBD run folders, as the paper's table.

    Runs sharing a configuration (e.g. seeds) are averaged, with the RMSE's standard deviation across them (AGBD
    reports mean ± std over 5 models). Columns: model, features, patch, runs, n (test patches), RMSE, ±, MAE,
    bias, R², RMSE per 50 Mg/ha bin, energy (kWh) and CO2e (g) summed over the runs. Writes Markdown to ``out``
    and CSV to ``csv_out`` (default: ``out`` with ``.csv``) when given; returns the rows.
    """
    from terracarbon.utils import atomic_write_text

    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in runs:
        res = _read_run(Path(r))
        groups.setdefault((res["model"], res["features"], int(res.get("patch_size", 25))), []).append(res)
    rows = []
    bins: list[str] = []
    for (model, feats, ps), rs in groups.items():
        ms = [x.get("metrics") or {} for x in rs]
        rmses = [m["rmse"] for m in ms if m.get("rmse") is not None]

        def mean(key: str, ms=ms) -> float:
            v = [m[key] for m in ms if m.get(key) is not None and np.isfinite(m[key])]
            return float(np.mean(v)) if v else float("nan")

        row: dict[str, Any] = {
            "model": model,
            "features": feats,
            "patch": 1 if model == "gbdt" else ps,
            "runs": len(rs),
            "n": int(ms[0].get("n", 0)) if ms else 0,
            "rmse": mean("rmse"),
            "rmse_std": float(np.std(rmses)) if len(rmses) > 1 else 0.0,
            "mae": mean("mae"),
            "bias": mean("bias"),
            "r2": mean("r2"),
        }
        for m in ms[:1]:
            for b in m.get("per_bin") or {}:
                if b not in bins:
                    bins.append(b)
        for b in bins:
            v = [m["per_bin"][b]["rmse"] for m in ms if b in (m.get("per_bin") or {})]
            v = [x for x in v if x is not None and np.isfinite(x)]
            row[f"rmse_{b}"] = float(np.mean(v)) if v else float("nan")
        fps = [x.get("footprint") or {} for x in rs]
        e = [f.get("energy_kwh") for f in fps if f.get("energy_kwh") is not None]
        g = [f.get("emissions_g") for f in fps if f.get("emissions_g") is not None]
        row["energy_kwh"] = float(sum(e)) if e else float("nan")
        row["co2e_g"] = float(sum(g)) if g else float("nan")
        rows.append(row)
    rows.sort(key=lambda r: (r["model"], r["features"], r["patch"]))
    if out is not None:
        out = Path(out)
        atomic_write_text(out, _markdown(rows, bins))
        cpath = Path(csv_out) if csv_out is not None else out.with_suffix(".csv")
        buf = io.StringIO()
        keys = list(rows[0]) if rows else []
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)
        atomic_write_text(cpath, buf.getvalue())
    return rows


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:,.{digits}f}"
    return str(v)


def _markdown(rows: list[dict[str, Any]], bins: list[str]) -> str:
    head = ["model", "features", "patch", "runs", "n", "RMSE", "±", "MAE", "bias", "R²", "kWh", "g CO2e"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        vals = [r["model"], r["features"], r["patch"], r["runs"], r["n"], r["rmse"], r["rmse_std"], r["mae"],
                r["bias"], r["r2"]]
        cells = [_fmt(v, 3 if i == 9 else 2) for i, v in enumerate(vals)]
        cells += [_fmt(r["energy_kwh"], 5), _fmt(r["co2e_g"], 3)]
        lines.append("| " + " | ".join(cells) + " |")
    if bins:
        lines += ["", "RMSE (Mg/ha) per 50 Mg/ha AGBD bin:", ""]
        lines.append("| model | features | " + " | ".join(bins) + " |")
        lines.append("|" + "---|" * (2 + len(bins)))
        for r in rows:
            lines.append(
                f"| {r['model']} | {r['features']} | " + " | ".join(_fmt(r[f"rmse_{b}"], 1) for b in bins) + " |"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------------- mapping

_UNIT_ALIASES = {
    "reflectance": "reflectance",
    "sr": "reflectance",
    "reflectance_x10000": "reflectance_x10000",
    "dn": "reflectance_x10000",
    "x10000": "reflectance_x10000",
}


def stack_units(ds) -> dict[str, str]:
    """Units of a stack's S2 bands (and ALOS) from its tags: dataset tag ``TERRACARBON_UNITS`` (a unit string for
    the S2 bands, or JSON ``{band: unit}``), else per-band tag ``units``/``TERRACARBON_UNITS``; default
    ``reflectance`` (what ``terracarbon data stack`` writes: float32 reflectance)."""
    tags = ds.tags()
    names = list(ds.descriptions)
    units: dict[str, str] = {}
    raw = tags.get("TERRACARBON_UNITS")
    per_band: dict[str, str] = {}
    if raw:
        try:
            val = json.loads(raw)
        except ValueError:
            val = raw
        if isinstance(val, dict):
            per_band = {str(k): str(v) for k, v in val.items()}
        else:
            units["S2"] = _UNIT_ALIASES.get(str(val).lower(), str(val).lower())
    for i, name in enumerate(names, start=1):
        bt = ds.tags(i)
        u = bt.get("TERRACARBON_UNITS") or bt.get("units")
        if name and u:
            per_band.setdefault(name, u)
    s2 = [per_band[b] for b in S2_ORDER if b in per_band]
    if s2:
        units["S2"] = _UNIT_ALIASES.get(s2[0].lower(), s2[0].lower())
    alos = [per_band[b] for b in ALOS_ORDER if b in per_band]
    if alos:
        units["ALOS"] = "db" if "db" in alos[0].lower() else "dn"
    if "S2" in units and units["S2"] not in ("reflectance", "reflectance_x10000"):
        raise InputError(getattr(ds, "name", None), f"S2 units {units['S2']!r} not understood")
    return units


def _latlon_stack(src: Path, names: list[str], bands: list[int], tmp: Path) -> Path:
    """A GeoTIFF with the stack bands ``bands`` then LAT/LON (degrees) per pixel centre, written strip by strip."""
    import rasterio
    from pyproj import Transformer
    from rasterio.windows import Window

    with rasterio.open(src) as ds:
        prof = {
            "driver": "GTiff",
            "height": ds.height,
            "width": ds.width,
            "count": len(bands) + 2,
            "dtype": "float32",
            "crs": ds.crs,
            "transform": ds.transform,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "DEFLATE",
            "BIGTIFF": "IF_SAFER",
        }
        tr = Transformer.from_crs(ds.crs, "EPSG:4326", always_xy=True)
        nodatas = [ds.nodatavals[b - 1] for b in bands]
        with rasterio.open(tmp, "w", **prof) as dst:
            for i, n in enumerate([*names, "LAT", "LON"], start=1):
                dst.set_band_description(i, n)
            step = 256
            for r0 in range(0, ds.height, step):
                h = min(step, ds.height - r0)
                win = Window(0, r0, ds.width, h)
                data = ds.read(bands, window=win, out_dtype="float32")
                for k, nd in enumerate(nodatas):  # keep the stack's nodata recognisable (NaN)
                    if nd is not None and np.isfinite(nd):
                        data[k][data[k] == np.float32(nd)] = np.nan
                rows, cols = np.mgrid[r0 : r0 + h, 0 : ds.width]
                xs, ys = rasterio.transform.xy(ds.transform, rows.ravel(), cols.ravel())
                lon, lat = tr.transform(np.asarray(xs), np.asarray(ys))
                dst.write(data, list(range(1, len(bands) + 1)), window=win)
                dst.write(np.asarray(lat, np.float32).reshape(h, ds.width), len(bands) + 1, window=win)
                dst.write(np.asarray(lon, np.float32).reshape(h, ds.width), len(bands) + 2, window=win)
    return tmp


def predict_agbd(
    checkpoint: str | Path,
    src: str | Path,
    dst: str | Path,
    *,
    tile_size: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    progress: bool = True,
    track: bool = True,
    units: dict[str, str] | None = None,
) -> Path:
    """Map AGBD (Mg/ha) over a stack with an AGBD-trained checkpoint, bands selected by name.

    The stack's band descriptions must include the checkpoint's ``meta["bands"]`` (AGBD names: ``B01``…``B12``,
    ``HH``, ``HV``, ``CH``, ``CH_STD``, ``LC``, ``LC_PROB``, ``DEM``); other bands and order do not matter. S2 units
    come from the stack's ``TERRACARBON_UNITS`` tags (:func:`stack_units`; ``units`` overrides), so a stack of
    reflectance or of reflectance×10000 both work. Latitude/longitude features are computed from the grid
    (pixel centres → EPSG:4326, as AGBD ``inference_helper.encode_tile``) into a temporary copy of the needed bands
    when the stack has no ``LAT``/``LON`` bands. Output through the shared tiled engine
    (:func:`terracarbon.raster.predict.predict_raster`), energy/CO2e recorded in ``<dst stem>.run/``.
    """
    import tempfile

    import rasterio

    from terracarbon.models.registry import load_checkpoint
    from terracarbon.raster.checkpoint import predictor_from_loaded
    from terracarbon.raster.predict import predict_raster

    src, dst, checkpoint = Path(src), Path(dst), Path(checkpoint)
    model, spec, meta = load_checkpoint(checkpoint)
    if spec.get("arch") != "agbd":
        raise InputError(checkpoint, "is not an AGBD-trained checkpoint (train it with biomass train --agbd)")
    need = list(meta["bands"])
    if any(b.endswith("_DATE") for b in need):
        raise InputError(checkpoint, "uses date features; mapping needs S2_DATE/GEDI_DATE bands in the stack")
    with rasterio.open(src) as ds:
        names = [d or "" for d in ds.descriptions]
        found_units = stack_units(ds)
    found_units.update(units or {})
    model.adapter.input_units.update(found_units)
    geo = [b for b in need if b not in ("LAT", "LON")]
    if "LC_PROB" in need and "LC_PROB" not in names:
        raise InputError(src, "has no LC_PROB band (land cover probability, %) that the model needs")
    missing = [b for b in geo if b not in names]
    if missing:
        raise InputError(
            src, f"lacks band(s) {missing} the model needs (has {[n for n in names if n] or 'no band names'})"
        )
    with tempfile.TemporaryDirectory(prefix="tc-agbd-", dir=dst.parent if dst.parent.exists() else None) as tmp:
        if "LAT" in need and not {"LAT", "LON"} <= set(names):
            path = _latlon_stack(src, geo, [names.index(b) + 1 for b in geo], Path(tmp) / "inputs.tif")
            order = [*geo, "LAT", "LON"]
            in_bands = [order.index(b) + 1 for b in need]
        else:
            path = src
            in_bands = [names.index(b) + 1 for b in need]
        predictor = predictor_from_loaded(model, meta, source=checkpoint, in_bands=in_bands)
        predictor.tags = {**dict(predictor.tags), "model": checkpoint.name, "units": "Mg/ha", "agbd_inputs": ",".join(need)}
        rd = dst.parent / f"{dst.stem}.run"
        with tracked(rd, "predict", enabled=track):
            return predict_raster(
                predictor,
                path,
                dst,
                tile_size=tile_size,
                overlap=overlap,
                batch_size=batch_size,
                resume=False,
                progress_bar=progress,
            )
