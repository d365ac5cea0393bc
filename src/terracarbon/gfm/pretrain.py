"""Own self-supervised pretraining of a Swin encoder: SimMIM masked-image modelling on unlabelled raster tiles.

SimMIM (Xie et al., 2022) suits Swin: random square blocks of the input are replaced by a learnable mask token after
the patch embedding, the encoder runs on the full (masked) grid, and a one-layer linear decoder (1×1 conv + pixel
shuffle back to full resolution) reconstructs the normalised pixel values; SimMIM's loss is L1 on the masked pixels
only.

For a *frozen* encoder that recipe is the wrong one: its tokens are never asked to keep their own (visible) content
and always see ~60 % mask tokens during pretraining but none when frozen features are used. On the synthetic testbed
a frozen SimMIM encoder was worse than a random one under the paper's single-conv head (101.4 vs 94.7 Mg/ha RMSE,
6 seeds). ``visible_weight`` adds the visible pixels to the loss (weight 1 = full reconstruction, the masked blocks
still forcing use of context) and a lower ``mask_ratio`` narrows the masked/unmasked gap; with the defaults
(``mask_ratio=0.3, visible_weight=1``) the frozen pretrained encoder beat the random one in every seed
(``experiments/gfm/README.md``).

Tiles are read window by window from GeoTIFFs (any number of files, any size; scene folders holding ``stack.tif``
work too), normalised per band with statistics sampled from the rasters; nodata/NaN pixels are filled with the band
mean and excluded from the loss. The result is an **encoder checkpoint** (``terracarbon-gfm-encoder/1``: timm keys,
encoder geometry, band names, mean/std, loss history) that :func:`terracarbon.models.weights.load_encoder_weights`
and ``{"arch": "gfm", "encoder_weights": path}`` load.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from terracarbon.errors import ConfigError, InputError
from terracarbon.models.gfm import SwinEncoder
from terracarbon.utils import atomic_path

__all__ = [
    "ENCODER_FORMAT",
    "PretrainResult",
    "RasterTileDataset",
    "SimMIM",
    "resolve_rasters",
    "raster_band_stats",
    "pretrain_simmim",
    "read_encoder_checkpoint",
    "gfm_spec_from_encoder",
    "encoder_band_norm",
]

ENCODER_FORMAT = "terracarbon-gfm-encoder/1"


def resolve_rasters(inputs: Sequence[str | Path] | str | Path) -> list[Path]:
    """Expand inputs to GeoTIFF paths: files as given, scene folders -> ``stack.tif``, other folders -> ``*.tif``."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    out: list[Path] = []
    for item in inputs:
        item = Path(getattr(item, "stack", item)) if not isinstance(item, (str, Path)) else Path(item)
        if item.is_dir():
            if (item / "stack.tif").exists():
                out.append(item / "stack.tif")
            else:
                found = sorted(list(item.glob("*.tif")) + list(item.glob("*.tiff")))
                if not found:
                    raise InputError(item, "folder holds no GeoTIFF (.tif) and no scene stack.tif")
                out.extend(found)
        elif item.exists():
            out.append(item)
        else:
            raise InputError(item, "raster file does not exist")
    if not out:
        raise ConfigError("no rasters given for pretraining")
    return out


def _open(path: Path):
    from terracarbon.raster.io import open_raster

    return open_raster(path, require_crs=False)


def _read_tile(ds, row: int, col: int, size: int, bands: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``C×size×size`` float32 tile and its validity mask (False at nodata/NaN)."""
    from rasterio.windows import Window

    arr = ds.read(bands, window=Window(col, row, size, size), boundless=True, fill_value=np.nan).astype(
        np.float32
    )
    valid = np.isfinite(arr)
    if ds.nodata is not None and not (isinstance(ds.nodata, float) and math.isnan(ds.nodata)):
        valid &= arr != ds.nodata
    return arr, valid


def raster_band_stats(
    paths: Sequence[Path],
    bands: list[int] | None,
    tile: int = 64,
    samples_per_raster: int = 24,
    seed: int = 0,
) -> tuple[list[float], list[float], list[str]]:
    """Per-band mean/std over random tiles of the rasters (nodata ignored); also returns band names."""
    rng = np.random.default_rng(seed)
    sums = sq = cnt = None
    names: list[str] = []
    for p in paths:
        with _open(p) as ds:
            idx = bands or list(range(1, ds.count + 1))
            if not names:
                names = [ds.descriptions[i - 1] or f"band{i}" for i in idx]
            if max(idx) > ds.count:
                raise InputError(p, f"has {ds.count} band(s) but band {max(idx)} was requested")
            for _ in range(samples_per_raster):
                r = int(rng.integers(0, max(1, ds.height - tile + 1)))
                c = int(rng.integers(0, max(1, ds.width - tile + 1)))
                arr, valid = _read_tile(ds, r, c, tile, idx)
                a = np.where(valid, arr, 0.0).astype(np.float64)
                n = valid.sum(axis=(1, 2))
                s, s2 = a.sum(axis=(1, 2)), (a * a).sum(axis=(1, 2))
                sums, sq, cnt = (s, s2, n) if sums is None else (sums + s, sq + s2, cnt + n)
    if cnt is None or (cnt == 0).any():
        raise InputError(paths[0], "no valid (non-nodata) pixels found for some band(s)")
    mean = sums / cnt
    std = np.sqrt(np.maximum(sq / cnt - mean**2, 0.0))
    std = np.where(std > 1e-6, std, 1.0)
    return mean.tolist(), std.tolist(), names


class RasterTileDataset(Dataset):
    """Random (or, with ``fixed=True``, reproducible) square tiles from GeoTIFFs, normalised, with validity masks."""

    def __init__(
        self,
        paths: Sequence[Path],
        tile_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        bands: list[int] | None = None,
        length: int = 256,
        seed: int = 0,
        fixed: bool = False,
        max_invalid: float = 0.5,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.tile = int(tile_size)
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]
        self.bands = bands
        self.length = int(length)
        self.seed = int(seed)
        self.fixed = fixed
        self.max_invalid = max_invalid
        self._ds: dict[int, Any] = {}
        self._calls = 0
        shapes = []
        for p in self.paths:
            with _open(p) as ds:
                if ds.height < self.tile or ds.width < self.tile:
                    raise InputError(
                        p, f"is {ds.height}×{ds.width} px, smaller than the {self.tile} px tile size"
                    )
                shapes.append((ds.height, ds.width))
        self.shapes = shapes

    def __len__(self) -> int:
        return self.length

    def _dataset(self, i: int):
        if i not in self._ds:
            self._ds[i] = _open(self.paths[i])
        return self._ds[i]

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        if self.fixed:
            rng = np.random.default_rng([self.seed, idx])
        else:
            self._calls += 1
            rng = np.random.default_rng([self.seed, idx, self._calls, torch.initial_seed() % (2**31)])
        for _ in range(10):
            i = int(rng.integers(0, len(self.paths)))
            h, w = self.shapes[i]
            r = int(rng.integers(0, h - self.tile + 1))
            c = int(rng.integers(0, w - self.tile + 1))
            ds = self._dataset(i)
            arr, valid = _read_tile(ds, r, c, self.tile, self.bands or list(range(1, ds.count + 1)))
            if 1.0 - valid.mean() <= self.max_invalid:
                break
        x = np.where(valid, (arr - self.mean) / self.std, 0.0).astype(np.float32)
        return {"image": torch.from_numpy(x), "valid": torch.from_numpy(valid.all(axis=0))}

    def __getstate__(self):  # datasets are re-opened in worker processes
        d = dict(self.__dict__)
        d["_ds"] = {}
        return d


def random_block_mask(
    batch: int, grid: tuple[int, int], scale: int, ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """SimMIM mask at patch-grid resolution ``B×Hp×Wp`` (1 = masked), made of ``scale×scale`` patch blocks."""
    gh, gw = math.ceil(grid[0] / scale), math.ceil(grid[1] / scale)
    n = gh * gw
    k = max(1, int(round(n * ratio)))
    scores = torch.rand(batch, n, generator=generator)
    idx = scores.argsort(dim=1)[:, :k]
    m = torch.zeros(batch, n)
    m.scatter_(1, idx, 1.0)
    m = m.view(batch, gh, gw).repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return m[:, : grid[0], : grid[1]]


class SimMIM(L.LightningModule):
    """SimMIM around a :class:`SwinEncoder`: mask token after the patch embedding, linear pixel decoder, L1 (masked pixels; visible ones weighted by ``visible_weight``)."""

    def __init__(
        self,
        encoder: SwinEncoder,
        *,
        mask_patch_size: int = 16,
        mask_ratio: float = 0.6,
        visible_weight: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        warmup_epochs: int = 1,
    ) -> None:
        super().__init__()
        if mask_patch_size % encoder.patch_size:
            raise ConfigError(
                f"mask_patch_size ({mask_patch_size}) must be a multiple of the patch size ({encoder.patch_size})"
            )
        if not 0.0 < mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if not visible_weight >= 0.0:
            raise ConfigError(f"visible_weight must be >= 0, got {visible_weight}")
        self.encoder = encoder
        dim = encoder.channels[0]
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        s = encoder.stride
        self.decoder = nn.Sequential(
            nn.Conv2d(encoder.channels[-1], s * s * encoder.in_chans, 1), nn.PixelShuffle(s)
        )
        self.mask_scale = mask_patch_size // encoder.patch_size
        self.mask_ratio = mask_ratio
        self.visible_weight = float(visible_weight)
        self.lr, self.weight_decay, self.warmup_epochs = lr, weight_decay, warmup_epochs

    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` (``B×C×H×W``, H, W multiples of the encoder stride) given a patch-grid mask."""
        m = self.encoder.model
        y = m.patch_embed(x)
        w = mask.unsqueeze(-1).to(y.dtype)
        y = y * (1.0 - w) + self.mask_token.to(y.dtype) * w
        for stage in m.layers:
            y = stage(y)
        y = m.norm(y).permute(0, 3, 1, 2)
        return self.decoder(y)

    def loss(self, x: torch.Tensor, valid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """L1 between the input and its reconstruction over valid pixels: masked pixels weigh 1, visible pixels
        ``visible_weight`` (0 = SimMIM's masked-only loss)."""
        rec = self.reconstruct(x, mask)
        p = self.encoder.patch_size
        m = mask.repeat_interleave(p, 1).repeat_interleave(p, 2)
        w = m + self.visible_weight * (1.0 - m) if self.visible_weight else m
        pix = w.unsqueeze(1) * valid.unsqueeze(1).to(x.dtype)
        l1 = F.l1_loss(rec, x, reduction="none")
        return (l1 * pix).sum() / (pix.sum() * x.shape[1] + 1e-5)

    def _mask_for(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        grid = (x.shape[-2] // self.encoder.patch_size, x.shape[-1] // self.encoder.patch_size)
        return random_block_mask(x.shape[0], grid, self.mask_scale, self.mask_ratio, generator).to(x.device)

    def training_step(self, batch, batch_idx):
        x, valid = batch["image"], batch["valid"]
        loss = self.loss(x, valid, self._mask_for(x))
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=x.shape[0])
        return loss

    def configure_optimizers(self):
        decay, no_decay = [], []
        for n, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or "relative_position" in n or "mask_token" in n else decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warm = min(total // 2, max(1, total * self.warmup_epochs // max(1, self.trainer.max_epochs or 1)))

        def sched(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, sched), "interval": "step"},
        }


@torch.no_grad()
def _eval_loss(module: SimMIM, loader: DataLoader, seed: int) -> float:
    was = module.training
    module.eval()
    g = torch.Generator().manual_seed(seed)
    tot, n = 0.0, 0
    for batch in loader:
        x, valid = batch["image"], batch["valid"]
        tot += float(module.loss(x, valid, module._mask_for(x, g))) * x.shape[0]
        n += x.shape[0]
    module.train(was)
    return tot / max(n, 1)


class _History(L.Callback):
    def __init__(self, module: SimMIM, loader: DataLoader, seed: int, epochs: int, show: bool) -> None:
        self.module, self.loader, self.seed = module, loader, seed
        self.rows: list[dict[str, float]] = []
        self.show, self.epochs = show, epochs
        self._bar = None

    def on_train_start(self, trainer, pl_module):
        if self.show:
            from terracarbon.utils import progress

            self._progress = progress()
            self._progress.start()
            self._bar = self._progress.add_task("SimMIM pretraining", total=self.epochs)

    def on_train_epoch_end(self, trainer, pl_module):
        tl = trainer.callback_metrics.get("train_loss")
        row = {
            "epoch": trainer.current_epoch + 1,
            "train_loss": float(tl) if tl is not None else float("nan"),
            "val_loss": _eval_loss(self.module, self.loader, self.seed),
        }
        self.rows.append(row)
        if self._bar is not None:
            self._progress.update(self._bar, advance=1, description=f"SimMIM val L1 {row['val_loss']:.4f}")

    def on_train_end(self, trainer, pl_module):
        if self._bar is not None:
            self._progress.stop()


@dataclass
class PretrainResult:
    """Outcome of :func:`pretrain_simmim`."""

    checkpoint: Path
    history: list[dict[str, float]]
    initial_val_loss: float
    final_val_loss: float
    wall_time_s: float
    encoder: dict[str, Any]
    bands: list[str]
    mean: list[float]
    std: list[float]
    trainable_params: int
    total_params: int
    footprint: dict[str, Any] | None = field(default=None)


def pretrain_simmim(
    rasters: Sequence[str | Path] | str | Path,
    out: str | Path,
    *,
    bands: list[int] | None = None,
    size: str = "tiny",
    variant: str = "swin",
    img_size: int = 64,
    patch_size: int = 4,
    window_size: int | None = None,
    embed_dim: int | None = None,
    depths: Sequence[int] | None = None,
    num_heads: Sequence[int] | None = None,
    mask_patch_size: int = 16,
    mask_ratio: float = 0.3,
    visible_weight: float = 1.0,
    epochs: int = 10,
    tiles_per_epoch: int = 256,
    val_tiles: int = 32,
    batch_size: int = 16,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    devices: int | str = 1,
    strategy: str = "auto",
    accelerator: str = "auto",
    max_minutes: float | None = None,
    num_workers: int = 0,
    progress: bool = True,
    track: bool = True,
    country_iso_code: str = "USA",
) -> PretrainResult:
    """SimMIM-pretrain a Swin encoder on unlabelled tiles of ``rasters`` and write an encoder checkpoint to ``out``.

    Args:
        rasters: GeoTIFF files, folders of GeoTIFFs or scene folders (``stack.tif``).
        out: encoder checkpoint path (``.pt``); a model card (``README.md``) and ``emissions.json`` go next to it.
        bands: 1-based band indexes to use (default: all bands of the first raster).
        size, variant, img_size, patch_size, window_size, embed_dim, depths, num_heads: encoder geometry
            (see :class:`terracarbon.models.gfm.GFMRegressor`); ``img_size`` is the tile size.
        mask_patch_size, mask_ratio: SimMIM masking (square blocks of ``mask_patch_size`` px, fraction masked).
        visible_weight: loss weight of the visible (unmasked) pixels; 0 is SimMIM proper (masked pixels only),
            > 0 also asks every token to keep its own content, which a *frozen* encoder's linear head needs.
            The defaults (``mask_ratio=0.3, visible_weight=1``) are the recipe that measurably helped a frozen
            encoder on the synthetic testbed (``experiments/gfm/README.md``); SimMIM as published
            (``mask_ratio=0.6, visible_weight=0``) gave frozen features *worse* than a random encoder's there.
        epochs, tiles_per_epoch, batch_size, lr, weight_decay: optimisation (AdamW, warm-up + cosine).
        val_tiles: fixed held-out tiles + fixed masks on which the reconstruction loss is tracked each epoch.
        seed, devices, strategy, accelerator, max_minutes: Lightning trainer settings.
        progress: show a progress bar. track: measure energy/CO2e (:mod:`terracarbon.footprint`).
    Returns:
        :class:`PretrainResult` (checkpoint path, per-epoch history, initial and final held-out loss...).
    """
    paths = resolve_rasters(rasters)
    if img_size % (patch_size * 8):
        raise ConfigError(f"img_size ({img_size}) must be a multiple of patch_size*8 = {patch_size * 8}")
    out = Path(out)
    L.seed_everything(seed, workers=True, verbose=False)
    t0 = time.time()
    mean, std, names = raster_band_stats(paths, bands, tile=img_size, seed=seed)
    n_bands = len(mean)
    encoder = SwinEncoder(
        n_bands,
        size=size,
        variant=variant,
        img_size=img_size,
        patch_size=patch_size,
        window_size=window_size,
        embed_dim=embed_dim,
        depths=depths,
        num_heads=num_heads,
    )
    module = SimMIM(
        encoder,
        mask_patch_size=mask_patch_size,
        mask_ratio=mask_ratio,
        visible_weight=visible_weight,
        lr=lr,
        weight_decay=weight_decay,
    )
    train_ds = RasterTileDataset(paths, img_size, mean, std, bands, length=tiles_per_epoch, seed=seed)
    val_ds = RasterTileDataset(
        paths, img_size, mean, std, bands, length=val_tiles, seed=seed + 10_000, fixed=True
    )
    train_dl = DataLoader(
        train_ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
    val_dl = DataLoader(val_ds, batch_size=batch_size, shuffle=False)
    initial = _eval_loss(module, val_dl, seed)
    hist = _History(module, val_dl, seed, epochs, progress)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator=accelerator,
        devices=devices,
        strategy=strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[hist],
        max_time={"minutes": max_minutes} if max_minutes else None,
        deterministic=False,
    )
    footprint = None
    tracker = None
    if track:
        try:
            from terracarbon.footprint import track_emissions

            tracker = track_emissions(out.parent, "gfm-pretrain", country_iso_code=country_iso_code)
        except Exception:  # footprint tracking must never break a run
            tracker = None
    if tracker is not None:
        try:
            tracker.start()
        except Exception:
            tracker = None
    try:
        trainer.fit(module, train_dl)
    finally:
        if tracker is not None:
            try:
                footprint = tracker.stop()
            except Exception:
                footprint = None
    wall = time.time() - t0
    final = hist.rows[-1]["val_loss"] if hist.rows else initial
    enc_cfg = {
        "variant": variant,
        "size": size,
        "timm_name": encoder.timm_name,
        "in_chans": n_bands,
        "img_size": img_size,
        "patch_size": patch_size,
        "window_size": window_size,
        "embed_dim": embed_dim,
        "depths": list(depths) if depths is not None else None,
        "num_heads": list(num_heads) if num_heads is not None else None,
    }
    from terracarbon.models.gfm import count_parameters

    tr, tot = count_parameters(module)
    payload = {
        "format": ENCODER_FORMAT,
        "encoder": enc_cfg,
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in encoder.model.state_dict().items()},
        "bands": names,
        "band_indexes": bands,
        "mean": mean,
        "std": std,
        "history": hist.rows,
        "simmim": {
            "mask_patch_size": mask_patch_size,
            "mask_ratio": mask_ratio,
            "visible_weight": visible_weight,
            "epochs": epochs,
            "tiles_per_epoch": tiles_per_epoch,
            "batch_size": batch_size,
            "lr": lr,
            "initial_val_loss": initial,
            "final_val_loss": final,
            "rasters": [str(p) for p in paths],
            "seed": seed,
        },
    }
    with atomic_path(out, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    try:
        from terracarbon.footprint import write_model_card

        write_model_card(
            out.parent,
            model_id=out.stem,
            emissions_g=(footprint or {}).get("emissions_g"),
            training_type="pre-training",
            location=(footprint or {}).get("country_iso_code", country_iso_code),
            hardware=(footprint or {}).get("hardware"),
            datasets=[f"{p.parent.name}/{p.name}" for p in paths],
            metrics={"simmim_val_l1_initial": initial, "simmim_val_l1_final": final},
            tags=("swin", "simmim", "terracarbon", "remote-sensing"),
            extra_text=f"SimMIM-pretrained {encoder.timm_name} encoder ({n_bands} bands: {', '.join(names)}).",
            footprint=footprint,
        )
    except Exception:
        pass
    return PretrainResult(
        checkpoint=out,
        history=hist.rows,
        initial_val_loss=initial,
        final_val_loss=final,
        wall_time_s=wall,
        encoder=enc_cfg,
        bands=names,
        mean=mean,
        std=std,
        trainable_params=tr,
        total_params=tot,
        footprint=footprint,
    )


def read_encoder_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ``terracarbon-gfm-encoder/1`` file (raises :class:`InputError` for anything else)."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "encoder checkpoint does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(path, f"not a readable torch file ({exc})") from exc
    if not isinstance(obj, dict) or obj.get("format") != ENCODER_FORMAT:
        raise InputError(path, f"not a terracarbon GFM encoder checkpoint (format {ENCODER_FORMAT!r})")
    return obj


def gfm_spec_from_encoder(path: str | Path, **overrides: Any) -> dict[str, Any]:
    """A ``{"arch": "gfm", ...}`` model spec whose encoder geometry matches the encoder checkpoint at ``path``."""
    cfg = read_encoder_checkpoint(path)["encoder"]
    spec: dict[str, Any] = {
        "arch": "gfm",
        "in_channels": cfg["in_chans"],
        "size": cfg["size"],
        "variant": cfg["variant"],
        "img_size": cfg["img_size"],
        "patch_size": cfg["patch_size"],
        "encoder_weights": str(path),
    }
    for k in ("window_size", "embed_dim", "depths", "num_heads"):
        if cfg.get(k) is not None:
            spec[k] = cfg[k]
    spec.update(overrides)
    return spec


def encoder_band_norm(
    path: str | Path, bands: Sequence[str] | None = None
) -> tuple[list[float], list[float]] | None:
    """The per-band ``(mean, std)`` an own encoder checkpoint was pretrained with, for fine-tuning on the same
    normalisation; None when ``bands`` (the fine-tuning stack's band names) differ from the checkpoint's."""
    obj = read_encoder_checkpoint(path)
    mean, std = obj.get("mean"), obj.get("std")
    if not mean or not std:
        return None
    if bands is not None and list(bands) != list(obj.get("bands") or []):
        return None
    return [float(v) for v in mean], [float(v) for v in std]
