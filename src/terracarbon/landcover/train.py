"""Train land-cover segmentation models on LandCover.ai tiles (DeepLabv3+ or U-Net via smp, Lightning).

:func:`train_landcover` reads the official tiles of a LandCover.ai root (or a synthetic look-alike written by
:func:`terracarbon.data.synthetic.landcover.make_synthetic_release`), computes per-band normalisation and inverse-frequency
class weights on the train split, trains a :class:`~terracarbon.tasks.segmentation.SegmentationTask`, keeps the
weights with the best validation mIoU, evaluates per-class IoU, mIoU and the confusion matrix on the test split and
exports one portable checkpoint (:func:`terracarbon.models.registry.save_checkpoint`) with a model card carrying the
tracked training emissions.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from terracarbon.data.landcover_ai import CLASS_NAMES, COLORMAP, NUM_CLASSES, LandCoverAIDataset
from terracarbon.errors import ConfigError
from terracarbon.landcover._common import MODEL_PRESETS, log, resolve_spec, tracked

__all__ = [
    "LandCoverTrainResult",
    "TileTransform",
    "inverse_frequency_weights",
    "train_landcover",
    "MODEL_PRESETS",
]

CHECKPOINT_NAME = "landcover.pt"
BAND_NAMES = ["red", "green", "blue"]


@dataclass
class LandCoverTrainResult:
    """What :func:`train_landcover` produced."""

    checkpoint: Path
    metrics: dict[str, Any]  # test split: iou/f1/precision/recall per class, miou, confusion_matrix
    val_metrics: dict[str, Any] | None
    history: list[dict[str, float]]
    class_weights: list[float]
    class_pixel_counts: list[int]
    mean: list[float]
    std: list[float]
    spec: dict[str, Any]
    wall_time_s: float
    trainable_params: int
    total_params: int
    footprint: dict[str, Any] | None = None
    model_card: Path | None = None
    out_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        for k in ("checkpoint", "model_card", "out_dir"):
            d[k] = None if d[k] is None else str(d[k])
        return d


def inverse_frequency_weights(
    counts: np.ndarray | list[int], *, power: float = 1.0, max_ratio: float | None = None
) -> list[float]:
    """Class weights ``w_c = (N / (K * n_c)) ** power`` from pixel counts, normalised to a pixel-weighted mean of 1.

    ``power=1`` is plain inverse frequency, ``0.5`` its square root (milder). Classes absent from the counts get
    weight 0 (they cannot be learnt from this split). ``max_ratio`` caps ``max(w) / min(w)`` over present classes.
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or (c < 0).any() or c.sum() <= 0:
        raise ConfigError("class pixel counts must be a non-empty 1-D array of non-negative numbers")
    present = c > 0
    k = int(present.sum())
    w = np.zeros_like(c)
    w[present] = (c.sum() / (k * c[present])) ** power
    if max_ratio is not None and k > 1:
        lo = w[present].min()
        w[present] = np.minimum(w[present], lo * max_ratio)
    w[present] /= (w[present] * c[present]).sum() / c[present].sum()
    return [float(x) for x in w]


class TileTransform:
    """Per-sample transform: optional random crop, random rot90/flip (``augment``), then ``(x - mean) / std``.

    Picklable (DataLoader workers) and driven by torch's RNG (seeded by Lightning).
    """

    def __init__(
        self, mean: list[float], std: list[float], *, augment: bool = False, crop_size: int | None = None
    ):
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self.augment = augment
        self.crop_size = crop_size

    def __call__(self, sample: dict[str, Any]) -> dict[str, torch.Tensor]:
        img, mask = sample["image"], sample["mask"]
        if self.crop_size and (img.shape[-1] > self.crop_size or img.shape[-2] > self.crop_size):
            cs = self.crop_size
            r = int(torch.randint(0, img.shape[-2] - cs + 1, (1,)))
            c = int(torch.randint(0, img.shape[-1] - cs + 1, (1,)))
            img, mask = img[:, r : r + cs, c : c + cs], mask[r : r + cs, c : c + cs]
        if self.augment:
            k = int(torch.randint(0, 4, (1,)))
            if k:
                img, mask = torch.rot90(img, k, (1, 2)), torch.rot90(mask, k, (0, 1))
            if bool(torch.randint(0, 2, (1,))):
                img, mask = img.flip(2), mask.flip(1)
        img = (img - self.mean) / self.std
        return {"image": img.contiguous(), "mask": mask.contiguous()}


def _task_class():
    from terracarbon.tasks.segmentation import SegmentationTask

    class LandCoverTask(SegmentationTask):
        """SegmentationTask with a one-cycle (warm-up + cosine) learning-rate schedule stepped per batch."""

        def __init__(self, *args: Any, schedule: str = "onecycle", **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.schedule = schedule

        def configure_optimizers(self):
            if self.schedule != "onecycle":
                return super().configure_optimizers()
            opt = torch.optim.AdamW(
                (p for p in self.parameters() if p.requires_grad), lr=self.lr, weight_decay=self.weight_decay
            )
            total = max(int(self.trainer.estimated_stepping_batches), 1)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total, pct_start=0.2)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return LandCoverTask


def _callbacks():
    import lightning as L

    class History(L.Callback):
        def __init__(self) -> None:
            self.rows: list[dict[str, float]] = []

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            row = {"epoch": int(trainer.current_epoch)}
            for k, v in trainer.callback_metrics.items():
                if k.startswith(("train_", "val_")):
                    row[k] = float(v)
            self.rows.append(row)

    class KeepBest(L.Callback):
        """Keep (in memory) the weights of the epoch with the best validation mIoU."""

        def __init__(self) -> None:
            self.best: float = -1.0
            self.state: dict[str, torch.Tensor] | None = None

        def on_validation_epoch_end(self, trainer, pl_module) -> None:
            if trainer.sanity_checking:
                return
            v = trainer.callback_metrics.get("val_miou")
            if v is not None and float(v) > self.best:
                self.best = float(v)
                self.state = copy.deepcopy(pl_module.model.state_dict())

    return History(), KeepBest()


def _loader(ds, batch_size: int, shuffle: bool, num_workers: int, seed: int, drop_last: bool = False):
    from torch.utils.data import DataLoader

    g = torch.Generator()
    g.manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        generator=g,
        drop_last=drop_last and len(ds) > batch_size,
    )


def train_landcover(
    root: str | os.PathLike,
    *,
    out_dir: str | os.PathLike,
    model: str | dict[str, Any] = "deeplabv3plus",
    epochs: int = 30,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 8,
    crop_size: int | None = None,
    augment: bool = True,
    class_weighting: str = "inverse",
    max_weight_ratio: float | None = 10.0,
    dice_weight: float = 0.0,
    schedule: str = "onecycle",
    seed: int = 0,
    devices: int | str | list[int] = 1,
    strategy: str = "auto",
    accelerator: str = "auto",
    precision: str | int | None = None,
    num_workers: int = 0,
    max_minutes: float | None = None,
    cache: bool | None = None,
    progress: bool = True,
    track: bool = True,
    country_iso_code: str = "USA",
    dataset_id: str | None = None,
) -> LandCoverTrainResult:
    """Train a land-cover model on the official tiles under ``root``; export checkpoint + model card into ``out_dir``.

    Args:
        root: LandCover.ai root (``train.txt``/``val.txt``/``test.txt`` and ``output/``).
        out_dir: run folder; receives ``landcover.pt``, ``README.md`` (model card), ``metrics.json``,
            ``history.json`` and the emissions records.
        model: a preset of :data:`MODEL_PRESETS` (``deeplabv3plus``, ``unet``, ``unet-tiny``...) or a registry
            spec dict (``{"arch": "unet", "encoder_name": ...}``; ``in_channels``/``classes`` filled in).
        class_weighting: ``"inverse"`` (inverse pixel frequency on the train split), ``"sqrt"`` (its square root)
            or ``"none"``; ``max_weight_ratio`` caps the largest/smallest weight ratio.
        schedule: ``"onecycle"`` (warm-up then cosine, per batch) or ``"cosine"`` (per epoch).
        devices, strategy, accelerator, precision: passed to the Lightning ``Trainer`` (e.g. ``strategy="ddp"``).
        max_minutes: wall-clock cap on training (Lightning ``max_time``).
        cache: keep decoded tiles in memory (default: when a split has at most 2000 tiles).
        track: wrap training in :func:`terracarbon.footprint.track_emissions`.
    """
    import lightning as L

    from terracarbon.models.registry import build_model, count_parameters, save_checkpoint
    from terracarbon.utils import atomic_write_json

    t0 = time.time()
    root = Path(root)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if class_weighting not in ("inverse", "sqrt", "none"):
        raise ConfigError(f"class_weighting must be 'inverse', 'sqrt' or 'none', got {class_weighting!r}")
    if epochs < 1 or batch_size < 1:
        raise ConfigError("epochs and batch_size must be at least 1")
    L.seed_everything(seed, workers=True, verbose=False)

    def open_split(split: str, transform=None) -> LandCoverAIDataset | None:
        list_path = root / f"{split}.txt"
        if split != "train" and (not list_path.exists() or not list_path.read_text().strip()):
            return None
        ds = LandCoverAIDataset(root, split, transforms=transform)
        if cache if cache is not None else len(ds) <= 2000:
            ds._cache = {}
        return ds

    train_ds = open_split("train")
    if train_ds is None or len(train_ds) == 0:
        raise ConfigError(f"{root / 'train.txt'} lists no tiles")
    counts = train_ds.class_pixel_counts(progress=progress)
    mean, std = train_ds.band_stats()
    if class_weighting == "none":
        weights = [1.0] * NUM_CLASSES
    else:
        weights = inverse_frequency_weights(
            counts, power=1.0 if class_weighting == "inverse" else 0.5, max_ratio=max_weight_ratio
        )
    train_ds.transforms = TileTransform(mean, std, augment=augment, crop_size=crop_size)
    eval_tf = TileTransform(mean, std)
    val_ds = open_split("val", eval_tf)
    test_ds = open_split("test", eval_tf)
    spec = resolve_spec(model, in_channels=3, classes=NUM_CLASSES)
    net = build_model(spec)
    trainable, total = count_parameters(net)
    Task = _task_class()
    task = Task(
        net,
        num_classes=NUM_CLASSES,
        class_weights=weights,
        lr=lr,
        weight_decay=weight_decay,
        dice_weight=dice_weight,
        class_names=list(CLASS_NAMES),
        max_epochs_hint=epochs,
        schedule=schedule,
    )
    history, keep_best = _callbacks()
    trainer_kw: dict[str, Any] = dict(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        callbacks=[history, keep_best],
    )
    if precision is not None:
        trainer_kw["precision"] = precision
    if max_minutes:
        trainer_kw["max_time"] = {"minutes": float(max_minutes)}
    trainer = L.Trainer(**trainer_kw)
    train_loader = _loader(train_ds, batch_size, True, num_workers, seed, drop_last=True)
    val_loader = _loader(val_ds, batch_size, False, num_workers, seed) if val_ds is not None else None

    with tracked(out_dir, "landcover-train", enabled=track, country_iso_code=country_iso_code) as fp:
        trainer.fit(task, train_dataloaders=train_loader, val_dataloaders=val_loader)
    if keep_best.state is not None:
        net.load_state_dict(keep_best.state)
    net.eval()

    eval_trainer = L.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
    )
    val_metrics = None
    if val_ds is not None:
        eval_trainer.test(task, dataloaders=val_loader, verbose=False)
        val_metrics = task.test_results
    metrics: dict[str, Any] = {}
    if test_ds is not None:
        eval_trainer.test(
            task, dataloaders=_loader(test_ds, batch_size, False, num_workers, seed), verbose=False
        )
        metrics = dict(task.test_results or {})
    metrics["split"] = "test" if test_ds is not None else None
    metrics["n_tiles"] = {"train": len(train_ds), "val": len(val_ds or []), "test": len(test_ds or [])}

    footprint = fp.result
    dataset_name = dataset_id or (
        "LandCover.ai v1" if not (root / "SYNTHETIC").exists() else "synthetic LandCover.ai look-alike"
    )
    meta = {
        "task": "segmentation",
        "domain": "landcover",
        "layer": "landcover",
        "class_names": list(CLASS_NAMES),
        "colormap": {int(k): list(v) for k, v in COLORMAP.items()},
        "bands": BAND_NAMES,
        "in_bands": [1, 2, 3],
        "mean": mean,
        "std": std,
        "tile_size": int(train_ds.load(0)[0].shape[-1]),
        "class_weights": weights,
        "class_weighting": class_weighting,
        "metrics": {k: v for k, v in metrics.items() if k != "confusion_matrix"},
        "confusion_matrix": metrics.get("confusion_matrix"),
        "dataset": dataset_name,
        "dataset_root": str(root),
        "footprint": footprint,
        "train": {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed, "schedule": schedule},
    }
    ckpt = save_checkpoint(out_dir / CHECKPOINT_NAME, net, spec, meta)
    card = _write_card(out_dir, spec, metrics, footprint, dataset_name, weights)
    result = LandCoverTrainResult(
        checkpoint=ckpt,
        metrics=metrics,
        val_metrics=val_metrics,
        history=history.rows,
        class_weights=weights,
        class_pixel_counts=[int(c) for c in counts],
        mean=mean,
        std=std,
        spec=spec,
        wall_time_s=time.time() - t0,
        trainable_params=trainable,
        total_params=total,
        footprint=footprint,
        model_card=card,
        out_dir=out_dir,
        extra={"best_val_miou": keep_best.best if keep_best.state is not None else None},
    )
    atomic_write_json(out_dir / "metrics.json", {"test": metrics, "val": val_metrics, **result.extra})
    atomic_write_json(out_dir / "history.json", history.rows)
    return result


def _write_card(
    out_dir: Path,
    spec: dict[str, Any],
    metrics: dict[str, Any],
    footprint: dict[str, Any] | None,
    dataset_name: str,
    weights: list[float],
) -> Path | None:
    try:
        from terracarbon.footprint import write_model_card

        fp = footprint or {}
        card_metrics: dict[str, Any] = {}
        if "miou" in metrics:
            card_metrics["mIoU"] = metrics["miou"]
            card_metrics.update({f"IoU {k}": v for k, v in metrics["iou"].items()})
        encoder = spec.get("encoder_name", "")
        extra = (
            f"Land-cover segmentation ({', '.join(CLASS_NAMES)}) of RGB aerial orthophotos, trained with terracarbon "
            f"on {dataset_name}: {spec['arch']} with a {encoder} encoder trained from scratch, inverse-frequency "
            f"class weights {[round(w, 3) for w in weights]}. The LandCover.ai paper reports 85.56 % test mIoU "
            "for DeepLabv3+ (Xception-71, ImageNet-pretrained).\n\n"
            "Predict a whole orthophoto: `terracarbon landcover predict --checkpoint landcover.pt IN.tif OUT.tif`."
        )
        return write_model_card(
            out_dir,
            model_id=f"terracarbon-landcover-{spec['arch']}-{encoder}".rstrip("-"),
            emissions_g=fp.get("emissions_g"),
            training_type="pre-training",
            location=fp.get("country_iso_code"),
            hardware=fp.get("hardware"),
            datasets=[dataset_name],
            metrics=card_metrics,
            pipeline_tag="image-segmentation",
            tags=("land-cover", "landcover.ai", "aerial-imagery", "remote-sensing", "semantic-segmentation"),
            extra_text=extra,
            footprint=fp or None,
        )
    except Exception as exc:  # pragma: no cover - the card never breaks an export
        log.warning("model card not written: %s", exc)
        return None
