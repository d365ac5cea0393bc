"""Tree crowns (instance segmentation) on OAM-TCD with torchvision Mask R-CNN: training and evaluation.

Instances are the ``tree`` annotations (``canopy`` groups are not individual crowns; the paper's instance model
predicts both classes, ours predicts trees — the operational use-case of counting open-canopy trees). Training uses
:class:`terracarbon.tasks.instance.InstanceSegmentationTask` on random ``patch_size`` crops (crowns cut by the crop are
kept when at least ``min_visible`` of their pixels remain), with flips and 90° rotations. Evaluation reports COCO mask
mAP@[.5:.95] (``map``) and mAP@.5 (``map_50``) over whole tiles (pycocotools via torchmetrics).

Checkpoints are ``terracarbon-model/1`` files with ``meta["task"] == "instance"``; :mod:`terracarbon.trees.predict`
runs them over large orthomosaics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from terracarbon.data.oam_tcd import OAMTCDDataset, instance_collate
from terracarbon.errors import ConfigError, InputError
from terracarbon.trees._common import RGB_BANDS, TreesTrainResult, write_card
from terracarbon.utils import atomic_write_json

DEFAULT_INSTANCE_SPEC: dict[str, Any] = {
    "arch": "maskrcnn",
    "backbone": "resnet18",
    "fpn_channels": 128,
    "min_size": 512,
    "max_size": 1024,
}


class InstancePatches(torch.utils.data.Dataset):
    """Random crops of an instance-mode :class:`OAMTCDDataset` (whole tiles when ``patch_size`` is None).

    Crops are read window by window (image and masks); decoded tiles are cached only when small (≤ 512 × 512 px).
    """

    def __init__(
        self,
        ds: OAMTCDDataset,
        patch_size: int | None = None,
        train: bool = True,
        samples_per_tile: int = 1,
        min_visible: float = 0.3,
        cache: bool = True,
    ) -> None:
        if ds.mode != "instance":
            raise ConfigError("InstancePatches needs a dataset in instance mode")
        self.ds = ds
        self.patch_size = patch_size
        self.train = train
        self.samples_per_tile = max(1, int(samples_per_tile))
        self.min_visible = min_visible
        self._cache: dict[int, tuple] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.ds) * self.samples_per_tile

    def __getitem__(self, index: int):
        from terracarbon.trees.semantic import CACHE_MAX_PIXELS

        i = index % len(self.ds)
        im = self.ds.images[i]
        h, w = int(im["height"]), int(im["width"])
        p = self.patch_size
        window = None
        if p is not None:
            if h < p or w < p:
                raise InputError(self.ds.image_path(i), f"tile {w}×{h} is smaller than patch {p}")
            r = int(torch.randint(0, h - p + 1, (1,))) if self.train else (h - p) // 2
            c = int(torch.randint(0, w - p + 1, (1,))) if self.train else (w - p) // 2
            window = (r, c, p, p)
        if self._cache is None or h * w > CACHE_MAX_PIXELS:
            img = torch.from_numpy(self.ds.read_image(i, window))
            return img, self.ds.instance_target(i, window, min_visible=self.min_visible)
        if i not in self._cache:
            self._cache[i] = self.ds[i]
        img, tgt = self._cache[i]
        if window is None:
            return img, tgt
        r, c, p, _ = window
        masks = tgt["masks"][:, r : r + p, c : c + p]
        full = tgt["masks"].flatten(1).sum(1).clamp(min=1)
        vis = masks.flatten(1).sum(1)
        keep = (vis > 0) & (vis >= self.min_visible * full)
        masks = masks[keep].contiguous()
        boxes = []
        for m in masks:
            rows = torch.nonzero(m.any(1)).flatten()
            cols = torch.nonzero(m.any(0)).flatten()
            boxes.append([float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)])
        n = len(boxes)
        t = {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
            "labels": torch.ones(n, dtype=torch.int64),
            "masks": masks,
            "area": masks.flatten(1).sum(1).float(),
            "iscrowd": torch.zeros(n, dtype=torch.int64),
            "image_id": tgt["image_id"],
        }
        return img[:, r : r + p, c : c + p].contiguous(), t


def evaluate_instance(
    checkpoint: str | Path | torch.nn.Module,
    root: str | Path,
    *,
    split: str = "test",
    fold: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """COCO mask mAP@[.5:.95] (``map``), mAP@.5 (``map_50``), mAP@.75 and AR@100 of a crown model on a split."""
    from terracarbon.models.crowns import native_resolution
    from terracarbon.models.registry import load_checkpoint
    from terracarbon.tasks.metrics import CrownMAP
    from terracarbon.utils import progress as progress_bar

    model = checkpoint if isinstance(checkpoint, torch.nn.Module) else load_checkpoint(checkpoint)[0]
    model.eval()
    ds = OAMTCDDataset(root, split, fold=fold, mode="instance")
    if len(ds) == 0:
        raise InputError(ds.annotation_file, "split holds no images")
    metric = CrownMAP()
    with progress_bar(disable=not progress) as bar, torch.no_grad():
        task = bar.add_task(f"evaluate {split}", total=len(ds))
        for i in range(len(ds)):
            img, tgt = ds[i]
            with native_resolution(model, *img.shape[-2:]):
                metric.update(model([img]), [tgt])
            bar.advance(task)
    return metric.compute()


def train_instance(
    root: str | Path,
    out_dir: str | Path,
    *,
    fold: int | None = None,
    model_spec: dict[str, Any] | None = None,
    epochs: int = 24,
    lr: float = 2e-3,
    batch_size: int = 4,
    patch_size: int | None = 512,
    samples_per_tile: int = 1,
    seed: int = 0,
    devices: Any = 1,
    strategy: str = "auto",
    accelerator: str = "auto",
    max_minutes: float | None = None,
    progress: bool = True,
    track: bool = True,
) -> TreesTrainResult:
    """Train a Mask R-CNN crown model on an OAM-TCD export and evaluate it.

    Args:
        root: OAM-TCD export (see :mod:`terracarbon.data.oam_tcd`).
        out_dir: run folder: ``crowns.pt`` (checkpoint), ``metrics.json``, model card, emissions files.
        fold: train on ``kfold_<fold>/train.json`` and evaluate on its ``val.json``; None: holdout train -> test.
        model_spec: registry spec (default ``maskrcnn`` with a ResNet-18 FPN, no download; add
            ``"backbone_weights": "resnet18.pth"`` to start from a local ImageNet backbone).
        epochs, lr, batch_size: AdamW with a one-cycle schedule.
        patch_size: random crop size (None or ≥ tile size: whole tiles). The spec's ``min_size``/``max_size`` are
            set to it, so crops are never resampled (prediction and evaluation run at native resolution too).
        samples_per_tile: crops per tile per epoch.
        seed, devices, strategy, accelerator, max_minutes: as :func:`terracarbon.trees.semantic.train_semantic`.
    """
    import lightning as L

    from terracarbon.models.crowns import spec_for_checkpoint
    from terracarbon.models.registry import build_model, count_parameters, save_checkpoint
    from terracarbon.tasks.instance import InstanceSegmentationTask

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = dict(model_spec or DEFAULT_INSTANCE_SPEC)
    if spec.get("arch") != "maskrcnn":
        raise ConfigError(f"crown models use arch 'maskrcnn', not {spec.get('arch')!r}")
    train_ds = OAMTCDDataset(root, "train", fold=fold, mode="instance")
    if len(train_ds) == 0:
        raise InputError(train_ds.annotation_file, "training split holds no images")
    h0, w0 = int(train_ds.images[0]["height"]), int(train_ds.images[0]["width"])
    if patch_size is not None and patch_size >= min(h0, w0):
        patch_size = None
    # crowns are learnt at the imagery's own ground resolution: no internal resize of the training crops
    spec["min_size"] = patch_size or min(h0, w0)
    spec["max_size"] = patch_size or max(h0, w0)
    L.seed_everything(seed, workers=True, verbose=False)
    torch.manual_seed(seed)
    model = build_model(spec)
    data = InstancePatches(train_ds, patch_size, train=True, samples_per_tile=samples_per_tile)
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        num_workers=0,
        collate_fn=instance_collate,
        generator=torch.Generator().manual_seed(seed),
    )
    steps = epochs * len(loader)
    n_dev = devices if isinstance(devices, int) and devices > 0 else 1
    task = InstanceSegmentationTask(model, lr=lr, total_steps=max(1, -(-steps // n_dev)))
    from terracarbon.trees.semantic import fit_tracked

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
        metrics = evaluate_instance(model, root, split=eval_split, fold=fold, progress=progress)
        metrics["split"] = eval_split
    except InputError:
        metrics = {}
    trainable, total = count_parameters(model)
    ckpt = save_checkpoint(
        out_dir / "crowns.pt",
        model,
        spec_for_checkpoint(spec),
        {
            "task": "instance",
            "bands": RGB_BANDS,
            "in_bands": [1, 2, 3],
            "scale": 1.0 / 255.0,
            "class_names": ["background", "tree"],
            "dataset": "OAM-TCD",
            "fold": fold,
            "metrics": metrics,
            "epochs": epochs,
            "seed": seed,
            "patch_size": patch_size,
        },
    )
    result = TreesTrainResult(
        checkpoint=ckpt,
        mode="instance",
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
        model_id="terracarbon-tree-crowns-maskrcnn-" + str(spec.get("backbone", "resnet18")),
        footprint=footprint,
        metrics={k: v for k, v in metrics.items() if isinstance(v, float) and np.isfinite(v)},
        extra="Mask R-CNN tree crowns trained on OAM-TCD "
        f"({'fold ' + str(fold) if fold is not None else 'holdout'}).",
        tags=("instance-segmentation", "mask-rcnn"),
    )
    return result
