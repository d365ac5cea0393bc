"""Eco-region transfer: train on region A, score zero-shot on the others, fine-tune with k % of their labels.

The synthetic scene generator (:func:`terracarbon.data.synthetic.scenes.make_scene`) has eco-regions (``region=0..3``) whose
allometry (canopy height -> AGB), land-cover mix and sensor offsets differ. :func:`eco_region_transfer`

1. makes ``train_per_region`` training scenes and ``test_per_region`` test scenes per region (or uses the folders you
   pass), with disjoint seeds;
2. trains the source model on region ``source`` (``train_biomass``, any registry spec; default the frozen GFM);
3. scores it on every region's test scenes (zero-shot for the targets, in-domain for the source);
4. for every target region and every ``k`` in ``fractions`` fine-tunes the source model on the target training scenes
   keeping only ``k`` of the label footprints (``label_fraction_subsample``), starting from all source weights
   (GFM ``init_from``), and scores it on the target test scenes; optionally also trains the same model from its
   initial weights on the same k % (``baseline=True``: how much the source region helps). The k % are drawn per
   footprint, separately in the training rows and in the held-out validation rows (at least one footprint each,
   :func:`subsample_labels`).

Writes ``transfer.md`` / ``transfer.csv`` / ``transfer.json`` (one row per (target, setting)).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terracarbon.errors import ConfigError
from terracarbon.utils import atomic_path, atomic_write_json, atomic_write_text, to_json

__all__ = ["TransferResult", "eco_region_transfer", "make_region_scenes", "subsample_labels"]

COLUMNS = [
    "target_region",
    "setting",
    "label_fraction",
    "n_train_labels",
    "rmse",
    "mae",
    "bias",
    "r2",
    "wall_time_s",
]


@dataclass
class TransferResult:
    """Outcome of :func:`eco_region_transfer`."""

    rows: list[dict[str, Any]]
    markdown: Path
    csv: Path
    source_checkpoint: Path


def make_region_scenes(
    root: str | Path,
    regions: Sequence[int],
    *,
    train_per_region: int,
    test_per_region: int,
    size: int,
    seed: int = 0,
) -> dict[int, dict[str, list[Any]]]:
    """Synthetic scenes per region: ``{region: {"train": [...], "test": [...]}}`` (reused when already on disk)."""
    from terracarbon.data.synthetic.scenes import load_scene, make_scene

    root = Path(root)
    out: dict[int, dict[str, list[Any]]] = {}
    for r in regions:
        out[r] = {"train": [], "test": []}
        for split, n, base in (("train", train_per_region, 0), ("test", test_per_region, 500)):
            for i in range(n):
                d = root / f"region{r}" / f"{split}{i}"
                s = seed * 1000 + base + i
                if (d / "scene.json").exists():
                    sc = load_scene(d)
                else:
                    sc = make_scene(d, size=size, seed=s, region=r)
                out[r][split].append(sc)
    return out


def subsample_labels(
    labels_path: str | Path,
    fraction: float,
    out_path: str | Path,
    *,
    seed: int = 0,
    val_fraction: float = 0.2,
) -> tuple[Path, int]:
    """Keep ``fraction`` of the label footprints (connected labelled blobs) of a label raster, write it to ``out_path``.

    The footprints are drawn separately in the training rows and in the bottom ``val_fraction`` of rows (the
    validation part ``train_biomass`` holds out), keeping at least one footprint in each, so that every k % run has
    validation labels. Returns ``(out_path, labelled pixels kept in the training rows)``.
    """
    import numpy as np
    import rasterio
    from scipy import ndimage

    from terracarbon.utils import atomic_path

    with rasterio.open(labels_path) as ds:
        lab = ds.read(1, out_dtype="float32")
        profile = ds.profile
        if ds.nodata is not None and np.isfinite(ds.nodata):
            lab[lab == ds.nodata] = np.nan
    h = lab.shape[0]
    split = int(round((1.0 - val_fraction) * h))
    rng = np.random.default_rng([seed, int(round(fraction * 1000)), 17])
    keep_mask = np.zeros(lab.shape, bool)
    for r0, r1 in ((0, split), (split, h)):
        part = np.isfinite(lab[r0:r1])
        comp, n = ndimage.label(part)
        if n == 0:
            continue
        keep = np.zeros(n + 1, bool)
        keep[1:] = rng.random(n) < fraction
        if not keep.any():
            keep[1 + int(rng.integers(n))] = True
        keep_mask[r0:r1] = keep[comp]
    out = np.where(keep_mask, lab, np.nan).astype(np.float32)
    profile.update(dtype="float32", nodata=float("nan"), count=1)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(out, 1)
    return out_path, int(np.isfinite(out[:split]).sum())


def eco_region_transfer(
    out_dir: str | Path,
    *,
    regions: Sequence[int] = (0, 1, 2, 3),
    source: int = 0,
    fractions: Sequence[float] = (0.01, 0.05, 0.20),
    scenes: dict[int, dict[str, list[Any]]] | None = None,
    scene_size: int = 256,
    train_per_region: int = 2,
    test_per_region: int = 1,
    model_spec: dict[str, Any] | None = None,
    encoder_weights: str | Path | None = None,
    gfm: dict[str, Any] | None = None,
    pretrain_epochs: int = 10,
    pretrain_kwargs: dict[str, Any] | None = None,
    epochs: int = 10,
    finetune_epochs: int | None = None,
    lr: float = 2e-3,
    finetune_lr: float | None = None,
    batch_size: int = 16,
    patch_size: int = 64,
    samples_per_epoch: int = 256,
    baseline: bool = False,
    source_checkpoint: str | Path | None = None,
    seed: int = 0,
    devices: int | str = 1,
    strategy: str = "auto",
    command: str | None = None,
    progress: bool = True,
) -> TransferResult:
    """Run the eco-region transfer study and write its table (see module docs).

    ``model_spec`` must be a GFM spec (``{"arch": "gfm", ...}``, e.g. from
    :func:`terracarbon.gfm.pretrain.gfm_spec_from_encoder`) so that fine-tuning can start from the source weights.
    ``source_checkpoint``: reuse an already trained source model (a terracarbon GFM file) instead of training one.
    Fine-tunes start exactly where the source model is: they normalise the bands with the source model's statistics
    (not the target scenes'), and, because ``train_biomass`` standardises targets with the k % labels' mean/std,
    the fine-tuned model gets a fixed output affine map (``output_scale``/``output_shift``) back to the source
    model's calibration. With an own encoder checkpoint the source model (and the target-only baseline) normalise
    the bands with the statistics the encoder was pretrained with.
    Without ``model_spec`` the model is a frozen GFM (``gfm`` overrides: size, decoder, geometry) whose encoder comes
    from ``encoder_weights`` or, when None, from own SimMIM pretraining (``pretrain_epochs``, ``pretrain_kwargs``) on
    the unlabelled imagery of every region's training scenes.
    """
    from terracarbon.biomass.evaluate import evaluate_biomass
    from terracarbon.biomass.train import train_biomass

    if source not in regions:
        raise ConfigError(f"source region {source} is not among regions {list(regions)}")
    if any(not 0 < k <= 1 for k in fractions):
        raise ConfigError(f"fractions must be in (0, 1], got {list(fractions)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if scenes is None:
        scenes = make_region_scenes(
            out / "scenes",
            regions,
            train_per_region=train_per_region,
            test_per_region=test_per_region,
            size=scene_size,
            seed=seed,
        )
    pre_info = None
    encoder_norm = None
    if model_spec is None:
        from terracarbon.gfm.pretrain import gfm_spec_from_encoder, pretrain_simmim

        g = dict(gfm or {})
        geo_keys = (
            "size",
            "variant",
            "img_size",
            "patch_size",
            "window_size",
            "embed_dim",
            "depths",
            "num_heads",
        )
        geometry = {k: g.pop(k) for k in geo_keys if k in g}
        geometry.setdefault("img_size", patch_size)
        g.setdefault("decoder", "conv")
        g.setdefault("freeze_encoder", True)
        if encoder_weights is None:
            kw = {"epochs": pretrain_epochs, "seed": seed, "progress": progress, **(pretrain_kwargs or {})}
            stacks = [Path(s.stack) for r in regions for s in scenes[r]["train"]]
            pre = pretrain_simmim(
                stacks, out / "pretrain" / "encoder.pt", devices=devices, strategy=strategy, **geometry, **kw
            )
            encoder_weights = pre.checkpoint
            pre_info = {
                "initial_val_l1": pre.initial_val_loss,
                "final_val_l1": pre.final_val_loss,
                "wall_time_s": pre.wall_time_s,
            }
        try:
            spec = gfm_spec_from_encoder(encoder_weights, **g)
        except Exception:  # a foreign checkpoint (timm / Satlas): geometry from the options
            spec = {"arch": "gfm", **geometry, **g, "encoder_weights": str(encoder_weights)}
        else:  # an own encoder: train with the band statistics it was pretrained with
            from terracarbon.gfm.pretrain import encoder_band_norm
            from terracarbon.raster.io import read_band_names

            encoder_norm = encoder_band_norm(
                encoder_weights, read_band_names(scenes[source]["train"][0].stack)
            )
    else:
        spec = dict(model_spec)
    if spec.get("arch") != "gfm":
        raise ConfigError(
            "eco_region_transfer fine-tunes from the source weights, which needs a GFM spec (arch 'gfm')"
        )
    common = dict(
        batch_size=batch_size, patch_size=patch_size, samples_per_epoch=samples_per_epoch, seed=seed
    )
    common.update(devices=devices, strategy=strategy, progress=progress, patience=100)

    t0 = time.time()
    if source_checkpoint is None:
        src_ckpt = train_biomass(
            scenes[source]["train"],
            model_spec=spec,
            epochs=epochs,
            lr=lr,
            out_dir=out / f"source_region{source}",
            band_norm=encoder_norm,
            **common,
        ).checkpoint
    else:
        src_ckpt = Path(source_checkpoint)
    src_time = time.time() - t0
    import torch

    from terracarbon.models.gfm import make_portable

    make_portable(src_ckpt)  # the spec's weight paths are not needed once the weights are in the file
    src_meta = torch.load(src_ckpt, map_location="cpu", weights_only=False)["meta"]
    s_src, m_src = float(src_meta.get("target_scale", 1.0)), float(src_meta.get("target_offset", 0.0))
    src_norm = (src_meta["mean"], src_meta["std"]) if src_meta.get("mean") and src_meta.get("std") else None
    rows: list[dict[str, Any]] = []

    def _row(target: int, setting: str, k: float | None, metrics: dict[str, Any], wall: float, n: int | None):
        rows.append(
            {
                "target_region": target,
                "setting": setting,
                "label_fraction": k,
                "n_train_labels": n,
                "rmse": metrics.get("rmse"),
                "mae": metrics.get("mae"),
                "bias": metrics.get("bias"),
                "r2": metrics.get("r2"),
                "wall_time_s": wall,
                "noise_floor_rmse": metrics.get("noise_floor_rmse"),
            }
        )

    for r in regions:
        t = time.time()
        m = evaluate_biomass(src_ckpt, scenes[r]["test"])
        _row(
            r,
            "in-domain (source)" if r == source else "zero-shot",
            None,
            m,
            src_time if r == source else time.time() - t,
            None,
        )
    ft_epochs = finetune_epochs or epochs
    ft_lr = finetune_lr or lr
    for r in regions:
        if r == source:
            continue
        for k in fractions:
            ft_spec = {**spec, "init_from": str(src_ckpt)}
            ft_spec.pop("encoder_weights", None)  # all weights come from the source model
            t = time.time()
            tag = f"region{r}_k{int(round(k * 100))}"
            sub_dir = out / "labels_subsampled" / tag
            train_k, n = [], 0
            for i, sc in enumerate(scenes[r]["train"]):
                lp, cnt = subsample_labels(Path(sc.labels), k, sub_dir / f"labels{i}.tif", seed=seed + i)
                train_k.append((Path(sc.stack), lp))
                n += cnt
            m_t, s_t = _label_stats(train_k)
            ft_spec["output_scale"] = s_src / s_t  # start from the source model's predictions in target units
            ft_spec["output_shift"] = (m_src - m_t) / s_t
            res = train_biomass(
                train_k,
                test_scenes=scenes[r]["test"],
                model_spec=ft_spec,
                epochs=ft_epochs,
                lr=ft_lr,
                out_dir=out / f"finetune_{tag}",
                band_norm=src_norm,
                **common,
            )
            make_portable(res.checkpoint)
            _row(r, "fine-tune from source", k, res.metrics, time.time() - t, n)
            if baseline:
                t = time.time()
                res_b = train_biomass(
                    train_k,
                    test_scenes=scenes[r]["test"],
                    model_spec=spec,
                    epochs=ft_epochs,
                    lr=ft_lr,
                    out_dir=out / f"target_only_{tag}",
                    band_norm=encoder_norm,
                    **common,
                )
                make_portable(res_b.checkpoint)
                _row(r, "target only (no source)", k, res_b.metrics, time.time() - t, n)

    config = {
        "regions": list(regions),
        "source": source,
        "fractions": list(fractions),
        "scene_size": scene_size,
        "train_per_region": train_per_region,
        "test_per_region": test_per_region,
        "model_spec": spec,
        "pretrain": pre_info,
        "epochs": epochs,
        "finetune_epochs": ft_epochs,
        "lr": lr,
        "finetune_lr": ft_lr,
        **{k: v for k, v in common.items() if k not in ("progress",)},
    }
    atomic_write_json(
        out / "transfer.json", {"rows": rows, "config": config, "source_checkpoint": str(src_ckpt)}
    )
    csv_path = out / "transfer.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow(row)
    lines = ["# Eco-region transfer", ""]
    if command:
        lines += ["Command:", "", "```", command, "```", ""]
    lines += [
        f"Source model trained on region {source}; RMSE/MAE/bias in Mg/ha on each region's held-out test scene(s).",
        "",
        "| target region | setting | k (label fraction) | train labels | RMSE | MAE | bias | R² | wall time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        k = row["label_fraction"]
        lines.append(
            f"| {row['target_region']} | {row['setting']} | {'–' if k is None else f'{k * 100:g} %'} | "
            f"{row['n_train_labels'] if row['n_train_labels'] is not None else '–'} | {_f(row['rmse'])} | "
            f"{_f(row['mae'])} | {_f(row['bias'])} | {_f(row['r2'], 3)} | {_f(row['wall_time_s'], 0)} |"
        )
    lines += ["", "Configuration:", "", "```json", to_json(config), "```", ""]
    md = out / "transfer.md"
    atomic_write_text(md, "\n".join(lines))
    return TransferResult(rows=rows, markdown=md, csv=csv_path, source_checkpoint=src_ckpt)


def _label_stats(pairs: list[tuple[Path, Path]], val_fraction: float = 0.2) -> tuple[float, float]:
    """Mean/std of the labels in the training rows, exactly as ``train_biomass`` standardises its targets."""
    from terracarbon.biomass.datasets import label_stats, load_scene

    arrays = [load_scene(p) for p in pairs]
    m, s, _ = label_stats(arrays, (0.0, 1.0 - val_fraction))
    return float(m), float(s)


def _f(v: Any, nd: int = 1) -> str:
    return "–" if v is None else f"{float(v):.{nd}f}"
