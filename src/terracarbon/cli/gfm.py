"""``terracarbon gfm``: geospatial foundation models — pretrain, compare, transfer, params."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table

app = typer.Typer(help="Geospatial foundation models: pretrain, compare, transfer.", no_args_is_help=True)


def _ints(text: str | None) -> list[int] | None:
    if text is None or not str(text).strip():
        return None
    return [int(t) for t in str(text).replace(" ", "").split(",") if t]


def _geometry(size, variant, img_size, patch_size, window_size, embed_dim, depths, num_heads) -> dict:
    g = {"size": size, "variant": variant, "patch_size": patch_size}
    if img_size:
        g["img_size"] = img_size
    if window_size:
        g["window_size"] = window_size
    if embed_dim:
        g["embed_dim"] = embed_dim
    if _ints(depths):
        g["depths"] = _ints(depths)
    if _ints(num_heads):
        g["num_heads"] = _ints(num_heads)
    return g


def _command() -> str:
    return "terracarbon " + " ".join(shlex.quote(a) for a in sys.argv[1:])


_SIZE = typer.Option("tiny", help="Swin size: tiny | base.")
_VARIANT = typer.Option("swin", help="swin (timm Swin v1) | swinv2 (Swin v2, SatlasPretrain's family).")
_PATCH = typer.Option(4, help="Swin patch size.")
_MASK_RATIO = typer.Option(0.3, help="Fraction of mask blocks masked (SimMIM as published: 0.6).")
_VISIBLE = typer.Option(
    1.0,
    help="Loss weight of visible pixels (SimMIM as published: 0 = masked pixels only; 1 keeps each token's own "
    "content, which frozen-encoder fine-tunes need).",
)
_WINDOW = typer.Option(None, help="Attention window (default 7 for v1, 8 for v2).")
_EMBED = typer.Option(None, help="Override the Swin width (e.g. 48 for a CPU-sized model).")
_DEPTHS = typer.Option(None, help="Override stage depths, e.g. '2,2,2,2'.")
_HEADS = typer.Option(None, help="Override attention heads per stage, e.g. '3,6,12,24'.")


@app.command("pretrain")
@handle_errors
def pretrain(
    rasters: list[Path] = typer.Argument(
        ..., help="GeoTIFFs, folders of GeoTIFFs or scene folders (unlabelled)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Encoder checkpoint to write (.pt)."),
    bands: str = typer.Option(None, help="1-based band indexes to use, e.g. '1,2,3,4' (default: all)."),
    size: str = _SIZE,
    variant: str = _VARIANT,
    img_size: int = typer.Option(64, help="Tile size in pixels (multiple of patch_size*8)."),
    patch_size: int = _PATCH,
    window_size: int = _WINDOW,
    embed_dim: int = _EMBED,
    depths: str = _DEPTHS,
    num_heads: str = _HEADS,
    mask_patch_size: int = typer.Option(16, help="SimMIM mask block size in pixels."),
    mask_ratio: float = _MASK_RATIO,
    visible_weight: float = _VISIBLE,
    epochs: int = typer.Option(10),
    tiles_per_epoch: int = typer.Option(256),
    val_tiles: int = typer.Option(32, help="Fixed held-out tiles on which the reconstruction L1 is tracked."),
    batch_size: int = typer.Option(16),
    lr: float = typer.Option(1e-3),
    seed: int = typer.Option(0),
    devices: str = typer.Option("1", help="Lightning devices."),
    strategy: str = typer.Option("auto", help="Lightning strategy (e.g. ddp)."),
    max_minutes: float = typer.Option(None, help="Wall-clock cap."),
    track: bool = typer.Option(True, help="Measure energy / CO2e with codecarbon."),
) -> None:
    """SimMIM masked-image pretraining of a Swin encoder on unlabelled raster tiles."""
    from terracarbon.gfm.pretrain import pretrain_simmim

    g = _geometry(size, variant, img_size, patch_size, window_size, embed_dim, depths, num_heads)
    res = pretrain_simmim(
        rasters,
        out,
        bands=_ints(bands),
        mask_patch_size=mask_patch_size,
        mask_ratio=mask_ratio,
        visible_weight=visible_weight,
        epochs=epochs,
        tiles_per_epoch=tiles_per_epoch,
        val_tiles=val_tiles,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        devices=int(devices) if devices.isdigit() else devices,
        strategy=strategy,
        max_minutes=max_minutes,
        track=track,
        **g,
    )
    print_table(
        f"SimMIM pretraining -> {res.checkpoint}",
        {
            "encoder": res.encoder["timm_name"],
            "bands": ", ".join(res.bands),
            "held-out reconstruction L1 before": res.initial_val_loss,
            "held-out reconstruction L1 after": res.final_val_loss,
            "trainable / total params": f"{res.trainable_params:,} / {res.total_params:,}",
            "wall time (s)": res.wall_time_s,
            "energy (kWh)": (res.footprint or {}).get("energy_kwh", "–"),
            "CO2e (g)": (res.footprint or {}).get("emissions_g", "–"),
        },
    )


@app.command("compare")
@handle_errors
def compare(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder (tables, plot, one run folder per model)."
    ),
    train: list[Path] = typer.Option(None, "--train", help="Training scene folder (repeatable)."),
    test: list[Path] = typer.Option(None, "--test", help="Test scene folder (repeatable)."),
    val: list[Path] = typer.Option(
        None, "--val", help="Validation scene folder (repeatable; default: held-out rows)."
    ),
    synthetic_size: int = typer.Option(
        256, help="Without --train/--test: size of generated synthetic scenes."
    ),
    synthetic_train: int = typer.Option(
        2, help="Without --train/--test: number of generated training scenes."
    ),
    runs: str = typer.Option(
        "unet_scratch,gfm_frozen,gfm_unfrozen,gfm_random_frozen",
        help="Comma-separated runs (see compare.RUNS).",
    ),
    encoder_weights: Path = typer.Option(
        None, help="Encoder weights for the pretrained GFM runs (else own SimMIM)."
    ),
    pretrain_epochs: int = typer.Option(10),
    pretrain_tiles: int = typer.Option(256, help="SimMIM tiles per epoch."),
    pretrain_lr: float = typer.Option(1e-3),
    mask_patch_size: int = typer.Option(16),
    mask_ratio: float = _MASK_RATIO,
    visible_weight: float = _VISIBLE,
    size: str = _SIZE,
    variant: str = _VARIANT,
    patch: int = _PATCH,
    window_size: int = _WINDOW,
    embed_dim: int = _EMBED,
    depths: str = _DEPTHS,
    num_heads: str = _HEADS,
    decoder: str = typer.Option(
        "conv", help="GFM decoder: conv (paper: 1 conv + upsampling) | upernet | unet."
    ),
    head_upsample: str = typer.Option("bilinear", help="conv head upsampling: bilinear | pixelshuffle."),
    head_kernel_size: int = typer.Option(3, help="Kernel size of the conv head."),
    band_adapt: str = typer.Option("average", help="First-layer adaptation: average | repeat | select."),
    checkpoint_bands: str = typer.Option(
        None, help="Band names of --encoder-weights for --band-adapt select: 'satlas' or 'B04,B03,B02,...'."
    ),
    unet_encoder: str = typer.Option("resnet18", help="smp U-Net encoder of the baseline."),
    epochs: int = typer.Option(10),
    lr: float = typer.Option(2e-3),
    lr_frozen: float = typer.Option(None, help="Learning rate of the frozen-encoder runs (default: --lr)."),
    batch_size: int = typer.Option(16),
    patch_size: int = typer.Option(64, help="Training crop size (also the GFM img_size)."),
    samples_per_epoch: int = typer.Option(256),
    encoder_norm: bool = typer.Option(
        True,
        help="GFM runs normalise bands with the own encoder checkpoint's statistics (else the training stack's).",
    ),
    seed: int = typer.Option(0),
    devices: str = typer.Option("1"),
    strategy: str = typer.Option("auto"),
) -> None:
    """U-Net from scratch vs GFM frozen / unfrozen / own-pretrained / random on the same data -> table + plot."""
    from terracarbon.gfm.compare import compare_models

    if not train or not test:
        from terracarbon.data.synthetic.scenes import make_scene

        with console.status("generating synthetic scenes"):
            train = [
                make_scene(out / "scenes" / f"train{i}", size=synthetic_size, seed=i)
                for i in range(synthetic_train)
            ]
            test = [make_scene(out / "scenes" / "test0", size=synthetic_size, seed=500)]
    g = _geometry(size, variant, patch_size, patch, window_size, embed_dim, depths, num_heads)
    g.update(decoder=decoder, head_upsample=head_upsample, head_kernel_size=head_kernel_size)
    if encoder_weights is not None:
        g["band_adapt"] = band_adapt
        if checkpoint_bands:
            from terracarbon.models.weights import SATLAS_S2_MS_BANDS

            g["checkpoint_bands"] = (
                list(SATLAS_S2_MS_BANDS)
                if checkpoint_bands.strip().lower() == "satlas"
                else [b.strip() for b in checkpoint_bands.split(",") if b.strip()]
            )
    res = compare_models(
        train,
        test,
        out,
        val_scenes=val or None,
        runs=[r.strip() for r in runs.split(",") if r.strip()],
        encoder_weights=encoder_weights,
        pretrain_epochs=pretrain_epochs,
        pretrain_tiles_per_epoch=pretrain_tiles,
        pretrain_kwargs={
            "lr": pretrain_lr,
            "mask_patch_size": mask_patch_size,
            "mask_ratio": mask_ratio,
            "visible_weight": visible_weight,
        },
        gfm=g,
        unet={
            "arch": "unet",
            "encoder_name": unet_encoder,
            "encoder_depth": 4,
            "decoder_channels": [128, 64, 32, 16],
        },
        epochs=epochs,
        lr=lr,
        lr_frozen=lr_frozen,
        batch_size=batch_size,
        patch_size=patch_size,
        samples_per_epoch=samples_per_epoch,
        encoder_norm=encoder_norm,
        seed=seed,
        devices=int(devices) if devices.isdigit() else devices,
        strategy=strategy,
        command=_command(),
    )
    print_table(
        "GFM comparison",
        [
            {
                "run": r["run"],
                "RMSE": r["rmse"],
                "MAE": r["mae"],
                "bias": r["bias"],
                "R2": r["r2"],
                "trainable": f"{r['trainable_params']:,}",
                "wall s": r["wall_time_s"],
            }
            for r in res.rows
        ],
    )
    console.print(f"tables: {res.markdown}, {res.csv}; plot: {res.plot}")


@app.command("transfer")
@handle_errors
def transfer(
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    regions: str = typer.Option("0,1,2,3", help="Eco-regions (synthetic generator)."),
    source: int = typer.Option(0, help="Region the source model is trained on."),
    fractions: str = typer.Option("1,5,20", help="Percent of target labels for fine-tuning."),
    scene_size: int = typer.Option(256),
    train_per_region: int = typer.Option(2),
    test_per_region: int = typer.Option(1),
    encoder_weights: Path = typer.Option(
        None, help="Encoder weights (else own SimMIM pretraining on all regions)."
    ),
    pretrain_epochs: int = typer.Option(10),
    pretrain_tiles: int = typer.Option(256),
    size: str = _SIZE,
    variant: str = _VARIANT,
    patch: int = _PATCH,
    window_size: int = _WINDOW,
    embed_dim: int = _EMBED,
    depths: str = _DEPTHS,
    num_heads: str = _HEADS,
    decoder: str = typer.Option("conv"),
    head_upsample: str = typer.Option("bilinear"),
    head_kernel_size: int = typer.Option(3),
    unfreeze: bool = typer.Option(False, help="Train the encoder too (default: frozen)."),
    epochs: int = typer.Option(10),
    finetune_epochs: int = typer.Option(None),
    lr: float = typer.Option(2e-3),
    finetune_lr: float = typer.Option(None),
    batch_size: int = typer.Option(16),
    patch_size: int = typer.Option(64),
    samples_per_epoch: int = typer.Option(256),
    baseline: bool = typer.Option(False, help="Also train target-only models on the same k % labels."),
    source_checkpoint: Path = typer.Option(
        None, help="Reuse a trained source model (GFM .pt) instead of training."
    ),
    seed: int = typer.Option(0),
    devices: str = typer.Option("1"),
    strategy: str = typer.Option("auto"),
) -> None:
    """Train on one eco-region, score zero-shot on the others, fine-tune with k % of their labels -> table."""
    from terracarbon.gfm.transfer import eco_region_transfer

    g = _geometry(size, variant, patch_size, patch, window_size, embed_dim, depths, num_heads)
    g.update(
        decoder=decoder,
        head_upsample=head_upsample,
        head_kernel_size=head_kernel_size,
        freeze_encoder=not unfreeze,
    )
    res = eco_region_transfer(
        out,
        regions=_ints(regions) or [0, 1, 2, 3],
        source=source,
        fractions=[float(f) / 100.0 for f in fractions.split(",") if f.strip()],
        scene_size=scene_size,
        train_per_region=train_per_region,
        test_per_region=test_per_region,
        encoder_weights=encoder_weights,
        gfm=g,
        pretrain_epochs=pretrain_epochs,
        pretrain_kwargs={"tiles_per_epoch": pretrain_tiles},
        epochs=epochs,
        finetune_epochs=finetune_epochs,
        lr=lr,
        finetune_lr=finetune_lr,
        batch_size=batch_size,
        patch_size=patch_size,
        samples_per_epoch=samples_per_epoch,
        baseline=baseline,
        source_checkpoint=source_checkpoint,
        seed=seed,
        devices=int(devices) if devices.isdigit() else devices,
        strategy=strategy,
        command=_command(),
    )
    print_table(
        "eco-region transfer",
        [
            {
                "target": r["target_region"],
                "setting": r["setting"],
                "k": "–" if r["label_fraction"] is None else f"{r['label_fraction'] * 100:g}%",
                "RMSE": r["rmse"],
                "R2": r["r2"],
            }
            for r in res.rows
        ],
    )
    console.print(f"tables: {res.markdown}, {res.csv}")


@app.command("params")
@handle_errors
def params(
    in_channels: int = typer.Option(12, help="Input bands."),
    unet_encoder: str = typer.Option("resnet34", help="smp U-Net encoder of the baseline."),
    size: str = typer.Option("base", help="Swin size of the GFM (paper: base)."),
    variant: str = _VARIANT,
) -> None:
    """Trainable parameters: U-Net from scratch vs frozen GFM heads (paper configuration: Swin-B + 1 conv)."""
    from terracarbon.models.gfm import parameter_table

    rows = parameter_table(in_channels=in_channels, unet_encoder=unet_encoder, size=size, variant=variant)
    print_table(
        f"trainable parameters ({in_channels} bands)",
        [
            {
                "model": r["model"],
                "trainable": f"{r['trainable']:,}",
                "total": f"{r['total']:,}",
                "U-Net : this": f"{r['unet_ratio']:.1f}x",
            }
            for r in rows
        ],
    )
