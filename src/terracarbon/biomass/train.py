"""Train a biomass (AGB) regression model on scenes with sparse GEDI-like labels.

>>> from terracarbon.data.synthetic.scenes import make_scene
>>> from terracarbon.biomass.train import train_biomass
>>> res = train_biomass([make_scene("s0", seed=0)], test_scenes=[make_scene("s1", seed=1)], epochs=10, out_dir="run")
>>> res.metrics["rmse"], res.checkpoint

The model (default a small smp U-Net, ``encoder_weights=None``) maps the normalised stack to standardised AGB;
the loss counts labelled pixels only (:class:`terracarbon.tasks.regression.SparseRegressionTask`). Lightning
trains it with early stopping on the validation RMSE and keeps the best epoch (``ModelCheckpoint``). The best
model is exported as one portable terracarbon checkpoint (``model.pt``, :func:`models.registry.save_checkpoint`)
whose meta holds the band names, the band mean/std of the training stack, the target scaling and the metrics,
next to a model card (``README.md``) carrying the run's measured energy and CO2e (``emissions.json``).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import ConfigError, InputError

from ._track import model_card, tracked
from .datasets import (
    GridPatchDataset,
    RandomPatchDataset,
    SceneArrays,
    SceneSource,
    band_stats,
    label_stats,
    open_scene,
    subsample_footprints,
)

log = logging.getLogger(__name__)

__all__ = ["TrainResult", "train_biomass", "DEFAULT_MODEL_SPEC"]

DEFAULT_MODEL_SPEC: dict[str, Any] = {
    "arch": "unet",
    "encoder_name": "resnet18",
    "encoder_depth": 4,
    "decoder_channels": [128, 64, 32, 16],
}
"""U-Net (smp) with a ResNet-18 encoder cut at depth 4; ``in_channels``/``classes`` are filled in."""


@dataclass
class TrainResult:
    """What :func:`train_biomass` returns (also written as ``result.json`` in ``out_dir``)."""

    checkpoint: Path
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    wall_time_s: float
    trainable_params: int
    total_params: int
    footprint: dict[str, Any] | None
    val_metrics: dict[str, Any] = field(default_factory=dict)
    best_epoch: int | None = None
    out_dir: Path | None = None
    model_card: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _subsample_labels(scenes: list[SceneArrays] | list[SceneSource], fraction: float, seed: int) -> None:
    """Keep a random ``fraction`` of the label footprints (connected labelled blobs) of each scene, in place."""
    from scipy import ndimage

    rng = np.random.default_rng([seed, 991])
    for sc in scenes:
        if isinstance(sc, SceneSource):  # streamed scene: components on its sparse labelled pixels
            subsample_footprints(sc, fraction, rng)
            continue
        comp, n = ndimage.label(np.isfinite(sc.labels))
        if n == 0:
            continue
        keep = np.zeros(n + 1, bool)
        keep[1:] = rng.random(n) < fraction
        if not keep.any():
            keep[1 + int(rng.integers(n))] = True
        sc.labels = np.where(keep[comp], sc.labels, np.nan).astype(np.float32)


def _history_callback():
    import lightning as L

    class History(L.Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, float]] = []

        def on_train_epoch_end(self, trainer, pl_module) -> None:  # runs after the epoch's validation
            row = {"epoch": int(trainer.current_epoch)}
            for k, v in trainer.callback_metrics.items():
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    pass
            self.rows.append(row)

    return History()


def train_biomass(
    train_scenes: list[Any],
    *,
    val_scenes: list[Any] | None = None,
    test_scenes: list[Any] | None = None,
    model_spec: dict[str, Any] | None = None,
    epochs: int = 30,
    lr: float = 2e-3,
    batch_size: int = 16,
    patch_size: int = 64,
    samples_per_epoch: int = 512,
    seed: int = 0,
    out_dir: str | Path = "runs/biomass",
    max_minutes: float | None = None,
    devices: int | str | list[int] = 1,
    strategy: str = "auto",
    accelerator: str = "auto",
    label_fraction_subsample: float | None = None,
    bands: list[str] | None = None,
    val_fraction: float = 0.2,
    patience: int = 6,
    loss: str = "mse",
    weight_decay: float = 1e-4,
    label_bias: float = 0.8,
    num_workers: int = 0,
    eval_tile_size: int = 256,
    band_norm: tuple[Sequence[float], Sequence[float]] | None = None,
    progress: bool = True,
    track: bool = True,
    init: str | Path | None = None,
    freeze_encoder: bool | None = None,
) -> TrainResult:
    """Train a sparse-label AGB regression model and export the best epoch.

    Args:
        train_scenes: scenes to train on (``Scene`` objects, scene folders or ``(stack, labels)`` path pairs).
        val_scenes: validation scenes; when None the bottom ``val_fraction`` of every training scene is held out
            (rows), and training crops come from the rest.
        test_scenes: held-out scenes scored after training with :func:`~terracarbon.biomass.evaluate.evaluate_biomass`
            (the full tiled prediction path). When None, ``metrics`` are those of the validation data.
        model_spec: registry spec (``{"arch": "unet", ...}``); ``in_channels`` and ``classes=1`` are filled in.
            Freezing an encoder is the spec's business (e.g. ``{"arch": "gfm", "freeze_encoder": True}``).
        epochs, lr, batch_size, patch_size, samples_per_epoch: optimisation (AdamW, one-cycle schedule);
            an epoch is ``samples_per_epoch`` random crops of ``patch_size`` px.
        seed: seeds Python/NumPy/torch (``lightning.seed_everything``) and the crop sampler.
        out_dir: run folder: ``model.pt``, ``README.md`` (model card), ``metrics.json``, ``result.json``,
            ``emissions.json``/``emissions.csv``, ``checkpoints/`` (Lightning's best weights).
        max_minutes: wall-clock cap on training (Lightning ``max_time``).
        devices, strategy, accelerator: passed to the Lightning ``Trainer`` (e.g. ``devices=2, strategy="ddp"``).
        label_fraction_subsample: keep only this fraction of the label footprints (label-efficiency studies).
        bands: band names to use (default: all bands of the stack, in order).
        val_fraction: share of rows held out for validation when ``val_scenes`` is None.
        patience: early-stopping patience in epochs (on ``val_rmse``).
        loss: ``"mse"`` | ``"huber"`` | ``"l1"``.
        label_bias: probability that a crop is placed around a labelled pixel.
        eval_tile_size: tile size of validation tiles and of the test prediction.
        band_norm: per-band ``(mean, std)`` to normalise inputs with instead of the training stack's statistics,
            e.g. those a pretrained encoder was trained with (a foundation model expects its own normalisation).
        progress: show progress bars. track: measure energy/CO2e with :mod:`terracarbon.footprint`.
        init: a terracarbon model file to fine-tune (e.g. an imported TerraTorch/granite model, or a GFM): its spec
            and weights are the start (``model_spec`` is ignored), its bands and normalisation the defaults, and
            its output starts as the file's predictions (:func:`terracarbon.models.terratorch_import.finetune_start`).
        freeze_encoder: with ``init``, freeze (True) or train (False) the encoder; None keeps the file's setting.

    Returns:
        :class:`TrainResult` (checkpoint path, metrics incl. ``per_bin``, per-epoch history, wall time, parameter
        counts, footprint).
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from torch.utils.data import DataLoader

    from terracarbon.models.registry import build_model, count_parameters, save_checkpoint
    from terracarbon.tasks.regression import SparseRegressionTask
    from terracarbon.utils import atomic_write_json

    if not train_scenes:
        raise ConfigError("train_biomass needs at least one training scene")
    if epochs < 1 or batch_size < 1 or samples_per_epoch < 1:
        raise ConfigError("epochs, batch_size and samples_per_epoch must be >= 1")
    if patch_size < 32 or patch_size % 32:
        raise ConfigError(f"patch_size must be a multiple of 32 (U-Net), got {patch_size}")
    if label_fraction_subsample is not None and not 0 < label_fraction_subsample <= 1:
        raise ConfigError(f"label_fraction_subsample must be in (0, 1], got {label_fraction_subsample}")
    if val_scenes is None and not 0 < val_fraction < 0.9:
        raise ConfigError(f"val_fraction must be in (0, 0.9), got {val_fraction}")

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(seed, workers=True, verbose=False)
    init_meta = None
    if init is not None:  # fine-tune a saved model: its spec, bands and band normalisation by default
        from terracarbon.models.terratorch_import import finetune_start

        model_spec, init_meta = finetune_start(init, freeze_encoder=freeze_encoder)
        bands = bands or init_meta.get("bands")
        if band_norm is None and init_meta.get("mean") and init_meta.get("std"):
            band_norm = (init_meta["mean"], init_meta["std"])

    # streamed from disk: only label coordinates stay in memory, crops are windowed reads (bounded memory)
    train = [open_scene(s, bands) for s in train_scenes]
    bands = bands or train[0].bands
    for sc in train[1:]:
        if sc.bands != bands:
            raise InputError(sc.stack_path, f"has bands {sc.bands} but the first training scene has {bands}")
    if label_fraction_subsample is not None and label_fraction_subsample < 1:
        _subsample_labels(train, label_fraction_subsample, seed)
    if val_scenes:
        val = [open_scene(s, bands) for s in val_scenes]
        train_region, val_region = None, None
    else:
        val = train
        train_region, val_region = (0.0, 1.0 - val_fraction), (1.0 - val_fraction, 1.0)

    if band_norm is not None:
        mean, std = [float(v) for v in band_norm[0]], [float(v) for v in band_norm[1]]
        if len(mean) != len(bands) or len(std) != len(bands):
            raise ConfigError(f"band_norm has {len(mean)}/{len(std)} values for {len(bands)} bands ({bands})")
        if min(std) <= 0:
            raise ConfigError("band_norm standard deviations must be > 0")
    else:
        mean, std = band_stats(train, train_region)
    t_mean, t_std, n_labels = label_stats(train, train_region)
    log.info("training on %d labelled pixels; target mean %.1f std %.1f Mg/ha", n_labels, t_mean, t_std)

    train_ds = RandomPatchDataset(
        train, patch_size, samples_per_epoch, mean, std, region=train_region, label_bias=label_bias, seed=seed
    )
    val_ds = GridPatchDataset(val, eval_tile_size, mean, std, region=val_region)
    if len(val_ds) == 0:
        raise InputError(val[0].labels_path, "has no labelled pixels in the validation region")
    train_dl = DataLoader(
        train_ds,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
    val_dl = DataLoader(val_ds, batch_size=max(1, min(4, batch_size)), num_workers=0)

    spec = dict(model_spec or DEFAULT_MODEL_SPEC)
    spec.setdefault("arch", "unet")
    spec.setdefault("in_channels", len(bands))
    spec.setdefault("classes", 1)
    if spec["in_channels"] != len(bands):
        raise ConfigError(f"model_spec in_channels={spec['in_channels']} but {len(bands)} bands are used")
    if init_meta is not None:  # start from the saved model's predictions, in the task's standardised units
        from terracarbon.models.terratorch_import import output_affine

        spec = output_affine(spec, init_meta, t_mean, t_std)
    model = build_model(spec)
    trainable, total = count_parameters(model)
    task = SparseRegressionTask(
        model, lr=lr, weight_decay=weight_decay, loss=loss, target_mean=t_mean, target_std=t_std
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
    stop_cb = EarlyStopping(monitor="val_rmse", mode="min", patience=patience)
    hist_cb = _history_callback()
    trainer = L.Trainer(
        max_epochs=epochs,
        max_time={"minutes": max_minutes} if max_minutes else None,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        callbacks=[ckpt_cb, stop_cb, hist_cb],
        logger=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=False,
        default_root_dir=out,
    )
    with tracked(out, "train", enabled=track) as fp:
        trainer.fit(task, train_dataloaders=train_dl, val_dataloaders=val_dl)
    train_time = time.perf_counter() - t0

    best_path = ckpt_cb.best_model_path
    if best_path:
        state = torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"]
        task.load_state_dict(state)
    best_model = copy.deepcopy(task.model).cpu().eval()
    best_score = ckpt_cb.best_model_score
    best_row: dict[str, float] = {}
    if best_score is not None:
        best_row = min(
            (r for r in hist_cb.rows if "val_rmse" in r),
            key=lambda r: abs(r["val_rmse"] - float(best_score)),
            default={},
        )
    best_epoch = best_row.get("epoch")
    val_metrics = {k[4:]: v for k, v in best_row.items() if k.startswith("val_")}

    meta: dict[str, Any] = {
        "task": "regression",
        "target_name": "agb_mg_per_ha",
        "units": "Mg/ha",
        "bands": list(bands),
        "in_bands": None,
        "mean": mean,
        "std": std,
        "target_scale": t_std,
        "target_offset": t_mean,
        "clip_min": 0.0,
        "patch_size": patch_size,
        "n_train_labels": n_labels,
        "train_scenes": [str(s.stack_path.parent) for s in train],
        "seed": seed,
        "epochs_run": int(trainer.current_epoch),
        "best_epoch": best_epoch,
        "val_metrics": val_metrics,
        "footprint": fp.result,
    }
    if train[0].units:  # the stack's TERRACARBON_UNITS tag (e.g. reflectance vs reflectance_x10000)
        meta["input_units"] = train[0].units
    ckpt = save_checkpoint(out / "model.pt", best_model, spec, meta)

    if test_scenes:
        from .evaluate import evaluate_biomass

        metrics = evaluate_biomass(ckpt, test_scenes, tile_size=eval_tile_size, progress=progress)
    else:
        from .evaluate import evaluate_biomass

        metrics = evaluate_biomass(
            ckpt, val_scenes or train_scenes, region=val_region, tile_size=eval_tile_size, progress=progress
        )
    meta["metrics"] = {k: v for k, v in metrics.items() if k != "per_scene"}
    ckpt = save_checkpoint(out / "model.pt", best_model, spec, meta)
    atomic_write_json(out / "metrics.json", metrics)

    card = model_card(
        out,
        model_id=f"terracarbon-biomass-{spec['arch']}",
        footprint=fp.result,
        metrics={k: metrics[k] for k in ("rmse", "mae", "bias", "r2") if k in metrics},
        datasets=[str(s.stack_path.parent.name) for s in train],
        extra=(
            "Aboveground biomass density (Mg/ha) regression from a "
            f"{len(bands)}-band stack ({', '.join(bands)}), trained on sparse GEDI-like labels with "
            "terracarbon.biomass.train_biomass."
        ),
    )
    result = TrainResult(
        checkpoint=ckpt,
        metrics=metrics,
        history=hist_cb.rows,
        wall_time_s=time.perf_counter() - t0,
        trainable_params=trainable,
        total_params=total,
        footprint=fp.result,
        val_metrics=val_metrics,
        best_epoch=best_epoch,
        out_dir=out,
        model_card=card,
    )
    log.info("training took %.1f s (fit %.1f s)", result.wall_time_s, train_time)
    atomic_write_json(out / "result.json", result.to_dict())
    return result
