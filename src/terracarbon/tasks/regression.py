"""Sparse-label pixel regression (aboveground biomass) as a Lightning module.

The model maps a normalised image batch ``B×C×H×W`` to ``B×1×H×W``. Labels are sparse: in ``mode="dense"``
the batch carries a ``label`` raster ``B×1×H×W`` (or ``B×H×W``) in target units (Mg/ha) where NaN means
"no label", and the loss counts only the labelled pixels. In ``mode="center"`` (AGBD patches) the batch
carries one label per patch (``agbd`` or ``label`` of shape ``B``) that belongs to the patch centre pixel,
and the loss compares it with the prediction at the centre.

Targets are standardised inside the task (``(y - target_mean) / target_std``) so the network works on unit
scale; metrics are reported in target units (RMSE, MAE, bias = mean(pred - label), R²).
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection, R2Score

__all__ = ["SparseRegressionTask", "masked_loss"]


def masked_loss(
    pred: torch.Tensor, target: torch.Tensor, kind: str = "mse", delta: float = 1.0
) -> torch.Tensor:
    """Loss over finite ``target`` entries only (NaN = unlabelled). Returns 0 (with grad) when none are labelled."""
    mask = torch.isfinite(target)
    if not bool(mask.any()):
        return pred.sum() * 0.0
    p, t = pred[mask], target[mask]
    if kind == "mse":
        return F.mse_loss(p, t)
    if kind == "huber":
        return F.huber_loss(p, t, delta=delta)
    if kind == "l1":
        return F.l1_loss(p, t)
    raise ValueError(f"unknown loss {kind!r} (use 'mse', 'huber' or 'l1')")


def _metrics() -> MetricCollection:
    return MetricCollection(
        {
            "rmse": MeanSquaredError(squared=False),
            "mae": MeanAbsoluteError(),
            "r2": R2Score(),
        }
    )


class SparseRegressionTask(L.LightningModule):
    """Lightning module for pixel regression from sparse labels.

    Args:
        model: any ``nn.Module`` mapping ``B×C×H×W`` to ``B×1×H×W`` (e.g. ``models.registry.build_model``).
        lr: AdamW learning rate. weight_decay: AdamW weight decay.
        mode: ``"dense"`` (label raster with NaN holes) or ``"center"`` (one label per patch, at its centre).
        loss: ``"mse"`` | ``"huber"`` | ``"l1"`` on standardised targets.
        target_mean, target_std: standardisation of the target (Mg/ha); the model output is in standard units.
        scheduler: ``"cosine"`` (over the trainer's estimated steps) or ``None``.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        *,
        weight_decay: float = 1e-4,
        mode: str = "dense",
        loss: str = "mse",
        huber_delta: float = 1.0,
        target_mean: float = 0.0,
        target_std: float = 1.0,
        scheduler: str | None = "cosine",
    ) -> None:
        super().__init__()
        if mode not in ("dense", "center"):
            raise ValueError(f"mode must be 'dense' or 'center', got {mode!r}")
        if not target_std > 0:
            raise ValueError(f"target_std must be > 0, got {target_std}")
        self.model = model
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.mode = mode
        self.loss_kind = loss
        self.huber_delta = float(huber_delta)
        self.target_mean = float(target_mean)
        self.target_std = float(target_std)
        self.scheduler_kind = scheduler
        self.save_hyperparameters(ignore=["model"])
        self.val_metrics = _metrics()
        self.val_bias = MeanMetric()
        self.test_metrics = _metrics()
        self.test_bias = MeanMetric()

    # -- helpers -------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model output in standardised target units (``B×1×H×W``)."""
        return self.model(x)

    def to_target_units(self, y: torch.Tensor) -> torch.Tensor:
        """Standard units -> Mg/ha."""
        return y * self.target_std + self.target_mean

    def _pred_and_label(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (prediction in standard units, label in Mg/ha) aligned and flattened to the labelled places."""
        x = batch["image"]
        out = self(x)
        if out.ndim == 4:
            out = out[:, 0]
        if self.mode == "center":
            y = batch["agbd"] if "agbd" in batch else batch["label"]
            y = y.reshape(-1).to(out.dtype)
            h, w = out.shape[-2:]
            pred = out[:, h // 2, w // 2]
            return pred, y
        y = batch["label"]
        if y.ndim == 4:
            y = y[:, 0]
        return out, y.to(out.dtype)

    def _step_loss(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        target = (label - self.target_mean) / self.target_std
        return masked_loss(pred, target, self.loss_kind, self.huber_delta)

    def _update(
        self, metrics: MetricCollection, bias: MeanMetric, pred: torch.Tensor, label: torch.Tensor
    ) -> int:
        mask = torch.isfinite(label)
        n = int(mask.sum())
        if n:
            p = self.to_target_units(pred[mask]).float()
            t = label[mask].float()
            metrics.update(p, t)
            bias.update(p - t)
        return n

    # -- Lightning hooks -----------------------------------------------------------------------------------
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        pred, label = self._pred_and_label(batch)
        loss = self._step_loss(pred, label)
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=pred.shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        pred, label = self._pred_and_label(batch)
        loss = self._step_loss(pred, label)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=pred.shape[0])
        self._update(self.val_metrics, self.val_bias, pred, label)

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val", self.val_metrics, self.val_bias)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        pred, label = self._pred_and_label(batch)
        self._update(self.test_metrics, self.test_bias, pred, label)

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_metrics, self.test_bias)

    def _log_epoch(self, prefix: str, metrics: MetricCollection, bias: MeanMetric) -> None:
        if getattr(metrics["rmse"], "total", 1) == 0:  # nothing labelled seen (e.g. sanity check)
            metrics.reset()
            bias.reset()
            return
        values = metrics.compute()
        for name, value in values.items():
            self.log(f"{prefix}_{name}", value, prog_bar=name == "rmse")
        self.log(f"{prefix}_bias", bias.compute())
        metrics.reset()
        bias.reset()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            (p for p in self.parameters() if p.requires_grad), lr=self.lr, weight_decay=self.weight_decay
        )
        if self.scheduler_kind != "cosine":
            return opt
        try:
            total = int(self.trainer.estimated_stepping_batches)
        except Exception:  # pragma: no cover - no trainer / unknown length
            return opt
        if total <= 0 or total > 10_000_000:
            return opt
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=total, pct_start=0.15)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
