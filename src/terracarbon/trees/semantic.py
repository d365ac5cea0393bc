"""Tree cover (tree / no-tree semantic segmentation) on OAM-TCD: training and evaluation.

The model is any registry segmentation model with 2 output classes (default: smp U-Net, ResNet-18 encoder, from
scratch), trained with :class:`terracarbon.tasks.segmentation.SegmentationTask` on random ``patch_size`` crops of the
tiles (the paper trains U-Net/SegFormer on 1024 px crops of the 2048 px tiles), with flips and 90° rotations. Pixels
under ``tree`` or ``canopy`` annotations are tree cover. Metrics — IoU, F1, precision, recall (and accuracy) of the
tree class — come from :class:`terracarbon.tasks.metrics.BinaryCoverMetrics` over whole tiles.

Checkpoints are ``terracarbon-model/1`` files with ``meta["task"] == "segmentation"`` and 8-bit RGB normalisation,
so :func:`terracarbon.raster.checkpoint.predictor_from_checkpoint` / the tiled engine predict them on any orthomosaic.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from terracarbon.data.oam_tcd import OAMTCDDataset
from terracarbon.errors import ConfigError, InputError
from terracarbon.trees._common import (
    RGB_BANDS,
    RGB_MEAN_8BIT,
    RGB_STD_8BIT,
    TREE_CLASS_NAMES,
    TREE_COLORMAP,
    TreesTrainResult,
    tracked,
    trainer_kwargs,
    write_card,
)
from terracarbon.utils import atomic_write_json

DEFAULT_SEMANTIC_SPEC = {"arch": "unet", "in_channels": 3, "classes": 2, "encoder_name": "resnet18"}
CACHE_MAX_PIXELS = 512 * 512
_MEAN01 = torch.tensor(RGB_MEAN_8BIT).div(255).view(3, 1, 1)
_STD01 = torch.tensor(RGB_STD_8BIT).div(255).view(3, 1, 1)


def normalise(image01: torch.Tensor) -> torch.Tensor:
    """Normalise a 0–1 RGB tensor (…×3×H×W) like the engine normalises 8-bit pixels with the checkpoint's mean/std."""
    return (image01 - _MEAN01.to(image01)) / _STD01.to(image01)


class SemanticPatches(torch.utils.data.Dataset):
    """Normalised (random-crop, augmented) views of an :class:`OAMTCDDataset` in semantic mode.

    ``patch_size=None`` keeps whole tiles. With ``train=True`` crops are random and flipped / rotated, and
    ``samples_per_tile`` crops are drawn from each tile per epoch. Crops are read window by window; decoded tiles are
    cached in memory only when small (≤ 512 × 512 px, e.g. synthetic data), never for the 2048 px release tiles.
    """

    def __init__(
        self,
        ds: OAMTCDDataset,
        patch_size: int | None = None,
        train: bool = True,
        samples_per_tile: int = 1,
        cache: bool = True,
    ) -> None:
        if ds.mode != "semantic":
            raise ConfigError("SemanticPatches needs a dataset in semantic mode")
        self.ds = ds
        self.patch_size = patch_size
        self.train = train
        self.samples_per_tile = max(1, int(samples_per_tile))
        self._cache: dict[int, tuple] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.ds) * self.samples_per_tile

    def _sample(self, i: int, window) -> tuple[torch.Tensor, torch.Tensor]:
        im = self.ds.images[i]
        small = int(im["height"]) * int(im["width"]) <= CACHE_MAX_PIXELS
        if self._cache is not None and small:
            if i not in self._cache:
                s = self.ds[i]
                self._cache[i] = (s["image"], s["mask"])
            img, mask = self._cache[i]
            if window is not None:
                r, c, h, w = window
                img, mask = img[:, r : r + h, c : c + w], mask[r : r + h, c : c + w]
            return img, mask
        img = torch.from_numpy(self.ds.read_image(i, window))
        return img, torch.from_numpy(self.ds.semantic_mask(i, window).astype(np.int64))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        i = index % len(self.ds)
        im = self.ds.images[i]
        h, w = int(im["height"]), int(im["width"])
        p = self.patch_size
        window = None
        if p is not None:
            if h < p or w < p:
                raise InputError(self.ds.image_path(i), f"tile {w}×{h} is smaller than patch {p}")
            if self.train:
                r = int(torch.randint(0, h - p + 1, (1,)))
                c = int(torch.randint(0, w - p + 1, (1,)))
            else:
                r, c = (h - p) // 2, (w - p) // 2
            window = (r, c, p, p)
        img, mask = self._sample(i, window)
        if self.train:
            if bool(torch.randint(0, 2, (1,))):
                img, mask = img.flip(-1), mask.flip(-1)
            k = int(torch.randint(0, 4, (1,)))
            if k and img.shape[-1] == img.shape[-2]:
                img, mask = torch.rot90(img, k, (-2, -1)), torch.rot90(mask, k, (-2, -1))
        return {"image": normalise(img).contiguous(), "mask": mask.contiguous()}


def _pad32(x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % 32, (-w) % 32
    if ph or pw:
        x = torch.nn.functional.pad(
            x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "constant"
        )
    return x, h, w


@torch.no_grad()
def predict_tile(model: torch.nn.Module, image01: torch.Tensor) -> torch.Tensor:
    """Tree mask (H×W long) of one 0–1 RGB tile with a 2-class segmentation model."""
    model.eval()
    x, h, w = _pad32(normalise(image01)[None])
    return model(x)[0, :, :h, :w].argmax(0)


def evaluate_semantic(
    checkpoint: str | Path | torch.nn.Module,
    root: str | Path,
    *,
    split: str = "test",
    fold: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Tree-class IoU, F1, precision, recall and accuracy of a tree-cover model on a split of an OAM-TCD export."""
    from terracarbon.models.registry import load_checkpoint
    from terracarbon.tasks.metrics import BinaryCoverMetrics
    from terracarbon.utils import progress as progress_bar

    model = checkpoint if isinstance(checkpoint, torch.nn.Module) else load_checkpoint(checkpoint)[0]
    ds = OAMTCDDataset(root, split, fold=fold, mode="semantic")
    if len(ds) == 0:
        raise InputError(ds.annotation_file, "split holds no images")
    acc = BinaryCoverMetrics()
    with progress_bar(disable=not progress) as bar:
        task = bar.add_task(f"evaluate {split}", total=len(ds))
        for i in range(len(ds)):
            s = ds[i]
            acc.update(predict_tile(model, s["image"]), s["mask"])
            bar.advance(task)
    out = acc.compute()
    out["n_images"] = len(ds)
    return out


class _History:
    def __init__(self) -> None:
        import lightning as L

        class CB(L.Callback):
            def __init__(cb) -> None:
                cb.rows: list[dict[str, float]] = []

            def on_train_epoch_end(cb, trainer, pl_module) -> None:
                row = {"epoch": int(trainer.current_epoch)}
                for k, v in trainer.callback_metrics.items():
                    if k.startswith(("train_", "val_")):
                        row[k] = float(v)
                cb.rows.append(row)

        self.cb = CB()


def fit_tracked(
    task, loader, *, out_dir, track: bool, **trainer_opts
) -> tuple[torch.nn.Module, float, list, dict | None]:
    """Fit ``task`` with the trees trainer settings, energy/CO2e tracked; returns (model, wall s, history, footprint)."""
    import lightning as L

    hist = _History()
    trainer = L.Trainer(**trainer_kwargs(**trainer_opts), callbacks=[hist.cb])
    t0 = time.perf_counter()
    with tracked(out_dir, "train", enabled=track) as tr:
        trainer.fit(task, loader)
    wall = time.perf_counter() - t0
    return task.model.cpu().eval(), wall, hist.cb.rows, tr.result


def train_semantic(
    root: str | Path,
    out_dir: str | Path,
    *,
    fold: int | None = None,
    model_spec: dict[str, Any] | None = None,
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 8,
    patch_size: int | None = 1024,
    samples_per_tile: int = 1,
    dice_weight: float = 0.5,
    seed: int = 0,
    devices: Any = 1,
    strategy: str = "auto",
    accelerator: str = "auto",
    max_minutes: float | None = None,
    progress: bool = True,
    track: bool = True,
) -> TreesTrainResult:
    """Train a tree-cover model on an OAM-TCD export and evaluate it.

    Args:
        root: OAM-TCD export (see :mod:`terracarbon.data.oam_tcd`).
        out_dir: run folder: ``tree_cover.pt`` (checkpoint), ``metrics.json``, model card, emissions files.
        fold: train on ``kfold_<fold>/train.json`` and evaluate on its ``val.json``; None: holdout
            ``train.json`` -> ``test.json``.
        model_spec: registry spec (default: U-Net ResNet-18, 3 in, 2 classes, no pretrained weights).
        epochs, lr, batch_size: optimisation (AdamW, cosine schedule).
        patch_size: random crop size (None or larger than the tiles: whole tiles).
        samples_per_tile: random crops per tile per epoch.
        dice_weight: weight of the Dice term added to cross-entropy.
        seed, devices, strategy, accelerator: reproducibility and Lightning ``Trainer`` placement (e.g. ``"ddp"``).
        max_minutes: wall-clock cap on training.
    """
    import lightning as L

    from terracarbon.models.registry import build_model, count_parameters, save_checkpoint
    from terracarbon.tasks.segmentation import SegmentationTask

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = dict(model_spec or DEFAULT_SEMANTIC_SPEC)
    spec.setdefault("in_channels", 3)
    spec.setdefault("classes", 2)
    if spec["classes"] != 2 or spec["in_channels"] != 3:
        raise ConfigError("tree cover models take 3 input bands (RGB) and predict 2 classes")
    train_ds = OAMTCDDataset(root, "train", fold=fold, mode="semantic")
    if len(train_ds) == 0:
        raise InputError(train_ds.annotation_file, "training split holds no images")
    h0, w0 = int(train_ds.images[0]["height"]), int(train_ds.images[0]["width"])
    if patch_size is not None and patch_size >= min(h0, w0):
        patch_size = None
    L.seed_everything(seed, workers=True, verbose=False)
    torch.manual_seed(seed)
    model = build_model(spec)
    task = SegmentationTask(
        model,
        num_classes=2,
        lr=lr,
        dice_weight=dice_weight,
        class_names=TREE_CLASS_NAMES,
        max_epochs_hint=epochs,
    )
    loader = torch.utils.data.DataLoader(
        SemanticPatches(train_ds, patch_size, train=True, samples_per_tile=samples_per_tile),
        batch_size=batch_size,
        shuffle=True,
        num_workers=0,
        generator=torch.Generator().manual_seed(seed),
        drop_last=len(train_ds) * samples_per_tile > batch_size,
    )
    model, wall, history, footprint = fit_tracked(
        task,
        loader,
        out_dir=out_dir,
        track=track,
        epochs=epochs,
        devices=devices,
        strategy=strategy,
        accelerator=accelerator,
        max_minutes=max_minutes,
        progress=progress,
    )

    eval_split = "val" if fold is not None else "test"
    try:
        metrics = evaluate_semantic(model, root, split=eval_split, fold=fold, progress=progress)
        metrics["split"] = eval_split
    except InputError:
        metrics = {}
    trainable, total = count_parameters(model)
    ckpt = save_checkpoint(
        out_dir / "tree_cover.pt",
        model,
        spec,
        {
            "task": "segmentation",
            "bands": RGB_BANDS,
            "in_bands": [1, 2, 3],
            "mean": RGB_MEAN_8BIT,
            "std": RGB_STD_8BIT,
            "class_names": TREE_CLASS_NAMES,
            "colormap": {k: list(v) for k, v in TREE_COLORMAP.items()},
            "dataset": "OAM-TCD",
            "fold": fold,
            "metrics": metrics,
            "epochs": epochs,
            "seed": seed,
        },
    )
    result = TreesTrainResult(
        checkpoint=ckpt,
        mode="semantic",
        metrics=metrics,
        history=history,
        wall_time_s=wall,
        trainable_params=trainable,
        total_params=total,
        footprint=footprint,
        out_dir=out_dir,
    )
    atomic_write_json(out_dir / "metrics.json", result.to_dict())
    write_card(
        out_dir,
        model_id="terracarbon-tree-cover-" + spec.get("arch", "model"),
        footprint=footprint,
        metrics={k: v for k, v in metrics.items() if isinstance(v, float) and np.isfinite(v)},
        extra=f"Tree / no-tree segmentation trained on OAM-TCD ({'fold ' + str(fold) if fold is not None else 'holdout'}).",
        tags=("semantic-segmentation",),
    )
    return result
