"""Lightning module for instance segmentation (tree crowns) with a torchvision Mask R-CNN.

Batches are ``(images, targets)`` lists as produced by :func:`terracarbon.data.oam_tcd.instance_collate` (images float
3×H×W in 0–1; targets with ``boxes``, ``labels``, ``masks``). Training minimises the sum of Mask R-CNN's losses
(RPN objectness + box regression, ROI classification + box regression, mask BCE). Validation and test compute COCO mask
mAP@[.5:.95] (``val_map``/``test_map``) and mAP@.5 (``val_map_50``/``test_map_50``) with
:class:`terracarbon.tasks.metrics.CrownMAP`.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn


def random_flip_rotate(
    images: list[torch.Tensor], targets: list[dict], generator: torch.Generator | None = None
):
    """Random horizontal/vertical flips and 90° rotations of square images with their masks and boxes."""
    out_i, out_t = [], []
    for img, tgt in zip(images, targets):
        masks = tgt["masks"]
        k = int(torch.randint(0, 4, (1,), generator=generator))
        flip = bool(torch.randint(0, 2, (1,), generator=generator))
        if flip:
            img, masks = img.flip(-1), masks.flip(-1)
        if k and img.shape[-1] == img.shape[-2]:
            img, masks = torch.rot90(img, k, (-2, -1)), torch.rot90(masks, k, (-2, -1))
        t = dict(tgt)
        t["masks"] = masks.contiguous()
        if masks.shape[0]:
            rows = masks.any(-1)
            cols = masks.any(-2)
            idx = torch.arange(masks.shape[-1], dtype=torch.float32)
            idy = torch.arange(masks.shape[-2], dtype=torch.float32)
            big = 1e9
            x0 = torch.where(cols, idx, big).min(-1).values
            x1 = torch.where(cols, idx, -big).max(-1).values + 1
            y0 = torch.where(rows, idy, big).min(-1).values
            y1 = torch.where(rows, idy, -big).max(-1).values + 1
            t["boxes"] = torch.stack([x0, y0, x1, y1], -1)
        out_i.append(img.contiguous())
        out_t.append(t)
    return out_i, out_t


class InstanceSegmentationTask(L.LightningModule):
    """Train / evaluate a torchvision Mask R-CNN on tree crowns.

    Args:
        model: a torchvision ``MaskRCNN`` (e.g. ``build_model({"arch": "maskrcnn", ...})``).
        lr: AdamW learning rate (one-cycle schedule when ``total_steps`` is given).
        weight_decay: AdamW weight decay.
        total_steps: optimiser steps of the whole run, for the one-cycle schedule (None: constant lr).
        augment: random flips / 90° rotations of the training batches.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        total_steps: int | None = None,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.total_steps = total_steps
        self.augment = augment
        self.save_hyperparameters(ignore=["model"])
        from terracarbon.tasks.metrics import CrownMAP

        self.val_map = CrownMAP()
        self.test_map = CrownMAP()

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        return self.model(images)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, targets = batch
        if self.augment:
            images, targets = random_flip_rotate(images, targets)
        targets = [{k: v for k, v in t.items() if isinstance(v, torch.Tensor)} for t in targets]
        losses = self.model(images, targets)
        loss = sum(losses.values())
        bs = len(images)
        self.log("train_loss", loss, prog_bar=True, batch_size=bs)
        for k, v in losses.items():
            self.log(f"train_{k}", v, batch_size=bs)
        return loss

    def _eval_step(self, batch: Any, metric) -> None:
        from terracarbon.models.crowns import native_resolution

        images, targets = batch
        h = max(int(i.shape[-2]) for i in images)
        w = max(int(i.shape[-1]) for i in images)
        with native_resolution(self.model, h, w):
            preds = self.model(images)
        metric.update(preds, targets)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, self.val_map)

    def on_validation_epoch_end(self) -> None:
        if self.val_map.n_images:
            r = self.val_map.compute()
            self.log("val_map", r["map"])
            self.log("val_map_50", r["map_50"], prog_bar=True)
        self.val_map.reset()

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, self.test_map)

    def on_test_epoch_end(self) -> None:
        if self.test_map.n_images:
            r = self.test_map.compute()
            self.log("test_map", r["map"])
            self.log("test_map_50", r["map_50"])
            self.log("test_map_75", r["map_75"])
        self.test_map.reset()

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if not self.total_steps:
            return opt
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.lr, total_steps=int(self.total_steps), pct_start=0.15
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
