"""Semantic segmentation as a Lightning module (land cover, tree cover).

Batches are dicts with ``image`` (B×C×H×W float) and ``mask`` (B×H×W long class ids). The loss is cross-entropy with
optional class weights (and optionally Dice); metrics are torchmetrics' per-class IoU, mean IoU, F1/precision/recall
per class and the confusion matrix, logged for validation and collected for test (``test_results``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassJaccardIndex,
    MulticlassPrecision,
    MulticlassRecall,
)


def segmentation_metrics(num_classes: int, ignore_index: int | None = None) -> MetricCollection:
    """Per-class IoU/F1/precision/recall (``average=None``) and the confusion matrix."""
    kw = {"num_classes": num_classes, "ignore_index": ignore_index}
    return MetricCollection(
        {
            "iou": MulticlassJaccardIndex(average="none", **kw),
            "f1": MulticlassF1Score(average="none", **kw),
            "precision": MulticlassPrecision(average="none", **kw),
            "recall": MulticlassRecall(average="none", **kw),
            "confmat": MulticlassConfusionMatrix(**kw),
        }
    )


def summarise_metrics(
    values: dict[str, torch.Tensor], class_names: list[str] | None = None
) -> dict[str, Any]:
    """Turn computed metric tensors into plain numbers: per-class dicts, ``miou`` and the confusion matrix."""
    n = len(values["iou"])
    names = class_names or [str(i) for i in range(n)]
    out: dict[str, Any] = {}
    for key in ("iou", "f1", "precision", "recall"):
        out[key] = {names[i]: float(values[key][i]) for i in range(n)}
    out["miou"] = float(values["iou"].mean())
    out["confusion_matrix"] = values["confmat"].long().tolist()
    return out


class SegmentationTask(L.LightningModule):
    """Train any registry model mapping B×C×H×W -> B×K×H×W logits to K classes."""

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        class_weights: list[float] | torch.Tensor | None = None,
        ignore_index: int | None = None,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        dice_weight: float = 0.0,
        class_names: list[str] | None = None,
        max_epochs_hint: int | None = None,
    ):
        super().__init__()
        self.model = model
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.lr = lr
        self.weight_decay = weight_decay
        self.dice_weight = dice_weight
        self.class_names = class_names
        self.max_epochs_hint = max_epochs_hint
        cw = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        self.register_buffer("class_weights", cw, persistent=False)
        self.val_metrics = segmentation_metrics(num_classes, ignore_index)
        self.test_metrics = segmentation_metrics(num_classes, ignore_index)
        self.test_results: dict[str, Any] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ii = -100 if self.ignore_index is None else self.ignore_index
        loss = F.cross_entropy(logits, mask, weight=self.class_weights, ignore_index=ii)
        if self.dice_weight > 0:
            probs = logits.softmax(1)
            keep = (mask != ii).unsqueeze(1)
            onehot = F.one_hot(mask.clamp(0, self.num_classes - 1), self.num_classes).permute(0, 3, 1, 2)
            inter = (probs * onehot * keep).sum((0, 2, 3))
            denom = ((probs + onehot) * keep).sum((0, 2, 3))
            loss = loss + self.dice_weight * (1 - ((2 * inter + 1) / (denom + 1)).mean())
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        logits = self(batch["image"])
        loss = self._loss(logits, batch["mask"])
        self.log("train_loss", loss, prog_bar=True, on_epoch=True, on_step=False, batch_size=len(logits))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch["image"])
        self.log("val_loss", self._loss(logits, batch["mask"]), prog_bar=True, batch_size=len(logits))
        self.val_metrics.update(logits.argmax(1), batch["mask"])

    def on_validation_epoch_end(self) -> None:
        vals = self.val_metrics.compute()
        self.log("val_miou", vals["iou"].mean(), prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.test_metrics.update(self(batch["image"]).argmax(1), batch["mask"])

    def on_test_epoch_end(self) -> None:
        self.test_results = summarise_metrics(self.test_metrics.compute(), self.class_names)
        self.log("test_miou", self.test_results["miou"])
        self.test_metrics.reset()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            (p for p in self.parameters() if p.requires_grad), lr=self.lr, weight_decay=self.weight_decay
        )
        if self.max_epochs_hint:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.max_epochs_hint)
            return {"optimizer": opt, "lr_scheduler": sched}
        return opt
