"""``terracarbon trees``: tree cover and tree crowns from 10 cm aerial imagery (OAM-TCD).

Each command is one call of the Python API in :mod:`terracarbon.trees`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from terracarbon.cli.common import console, handle_errors, print_table
from terracarbon.errors import ConfigError

app = typer.Typer(help="Tree cover and tree crowns from aerial imagery (OAM-TCD).", no_args_is_help=True)

MODE_HELP = "semantic (tree cover, U-Net) or instance (tree crowns, Mask R-CNN)."


def _mode(mode: str) -> str:
    if mode not in ("semantic", "instance"):
        raise ConfigError(f"--mode must be 'semantic' or 'instance', not {mode!r}")
    return mode


def _spec(mode: str, spec: str | None, encoder: str | None, backbone: str | None, size: int | None) -> dict:
    from terracarbon.trees.instance import DEFAULT_INSTANCE_SPEC
    from terracarbon.trees.semantic import DEFAULT_SEMANTIC_SPEC

    if spec:
        try:
            out = json.loads(Path(spec).read_text() if Path(spec).exists() else spec)
        except (json.JSONDecodeError, OSError) as exc:
            raise ConfigError(f"--spec is neither a JSON object nor a JSON file ({exc})") from exc
        if not isinstance(out, dict):
            raise ConfigError(
                '--spec must be a JSON object, e.g. \'{"arch": "unet", "encoder_name": "resnet34"}\''
            )
        return out
    out = dict(DEFAULT_SEMANTIC_SPEC if mode == "semantic" else DEFAULT_INSTANCE_SPEC)
    if mode == "semantic" and encoder:
        out["encoder_name"] = encoder
    if mode == "instance":
        if backbone:
            out["backbone"] = backbone
        if size:
            out["min_size"] = out["max_size"] = size
    return out


def _train_kwargs(**kw: Any) -> dict[str, Any]:
    devices = kw.pop("devices")
    kw["devices"] = int(devices) if str(devices).isdigit() else devices
    return kw


def _metrics_table(title: str, metrics: dict) -> None:
    print_table(title, {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}, fmt="{:.4f}")


@app.command("train")
@handle_errors
def train(
    data: Path = typer.Option(..., "--data", "-d", help="OAM-TCD export (holdout/ and kfold_*/ folders)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (checkpoint, metrics.json, model card)."),
    mode: str = typer.Option("semantic", help=MODE_HELP),
    fold: int | None = typer.Option(None, help="Train on kfold_<k>/train.json, evaluate on its val.json."),
    epochs: int = typer.Option(20, help="Training epochs."),
    batch_size: int = typer.Option(8, help="Batch size."),
    lr: float = typer.Option(1e-3, help="Learning rate (AdamW)."),
    patch_size: int | None = typer.Option(1024, help="Random crop size (0: whole tiles)."),
    spec: str | None = typer.Option(
        None, help="Model spec as JSON text or file (overrides --encoder/--backbone)."
    ),
    encoder: str | None = typer.Option(None, help="U-Net encoder (semantic), e.g. resnet34."),
    backbone: str | None = typer.Option(
        None, help="Mask R-CNN backbone (instance): resnet18|resnet34|resnet50|mobilenet_v3_large."
    ),
    backbone_weights: Path | None = typer.Option(
        None, help="Local backbone weights file (instance; never downloaded)."
    ),
    seed: int = typer.Option(0, help="Random seed."),
    devices: str = typer.Option("1", help="Lightning devices (number or 'auto')."),
    strategy: str = typer.Option("auto", help="Lightning strategy, e.g. ddp."),
    accelerator: str = typer.Option("auto", help="cpu, gpu or auto."),
    max_minutes: float | None = typer.Option(None, help="Stop training after this many minutes."),
) -> None:
    """Train a tree-cover (semantic) or crown (instance) model and evaluate it on the held-out split."""
    mode = _mode(mode)
    model_spec = _spec(mode, spec, encoder, backbone, patch_size or None)
    if backbone_weights is not None:
        model_spec["backbone_weights"] = str(backbone_weights)
    kw = _train_kwargs(
        fold=fold,
        model_spec=model_spec,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patch_size=patch_size or None,
        seed=seed,
        devices=devices,
        strategy=strategy,
        accelerator=accelerator,
        max_minutes=max_minutes,
    )
    if mode == "semantic":
        from terracarbon.trees.semantic import train_semantic

        res = train_semantic(data, out, **kw)
    else:
        from terracarbon.trees.instance import train_instance

        res = train_instance(data, out, **kw)
    _metrics_table(f"{mode} model, {res.metrics.get('split', 'no')} split", res.metrics)
    console.print(f"checkpoint: [bold]{res.checkpoint}[/]  ({res.wall_time_s:.0f} s)")


@app.command("evaluate")
@handle_errors
def evaluate(
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Checkpoint (.pt) from `trees train`."),
    data: Path = typer.Option(..., "--data", "-d", help="OAM-TCD export."),
    mode: str = typer.Option("semantic", help=MODE_HELP),
    split: str = typer.Option("test", help="Split: test/train (holdout) or val/train (with --fold)."),
    fold: int | None = typer.Option(None, help="Cross-validation fold."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Metrics of a checkpoint: IoU/F1/precision/recall (semantic) or mask mAP@[.5:.95]/mAP@.5 (instance)."""
    mode = _mode(mode)
    if mode == "semantic":
        from terracarbon.trees.semantic import evaluate_semantic

        metrics = evaluate_semantic(checkpoint, data, split=split, fold=fold, progress=not as_json)
    else:
        from terracarbon.trees.instance import evaluate_instance

        metrics = evaluate_instance(checkpoint, data, split=split, fold=fold, progress=not as_json)
    if as_json:
        typer.echo(json.dumps(metrics))
    else:
        _metrics_table(f"{mode} metrics on {split}", metrics)


@app.command("predict")
@handle_errors
def predict(
    input_path: Path = typer.Argument(..., metavar="INPUT.tif", help="RGB orthomosaic (GeoTIFF with CRS)."),
    output: Path = typer.Argument(
        ..., metavar="OUTPUT", help="Tree-cover GeoTIFF (semantic) or crowns .gpkg (instance)."
    ),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Checkpoint (.pt)."),
    mode: str = typer.Option("semantic", help=MODE_HELP),
    tile_size: int | None = typer.Option(
        None, help="Tile size (px); default: the checkpoint's (imported restor SegFormer: 1024), else 512."
    ),
    overlap: int | None = typer.Option(
        None, help="Tile overlap (px; default: the checkpoint's, else 128); crowns: at least the largest crown."
    ),
    batch_size: int = typer.Option(4, help="Tiles per batch."),
    backend: str = typer.Option("eager", help="Semantic engine backend: eager, channels-last, onnx, onnx-int8 or bf16."),
    score_threshold: float = typer.Option(0.5, help="Instance: minimum detection score."),
    merge_threshold: float = typer.Option(
        0.3, help="Instance: overlap joining a crown's pieces across tiles."
    ),
    suppress_threshold: float = typer.Option(
        0.5, help="Instance: overlap dropping a weaker same-tile duplicate."
    ),
    min_area: float = typer.Option(
        0.25, help="Instance: drop crowns smaller than this (m²; 0.25 m² = 25 px at 10 cm)."
    ),
    canopy: Path | None = typer.Option(None, help="Instance: also write the crowns as a tree-cover GeoTIFF."),
    aoi: Path | None = typer.Option(None, help="Area of interest (GeoJSON/GPKG) for the tree-cover summary."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Semantic: start over instead of resuming."),
) -> None:
    """Predict a large orthomosaic tile by tile; print tree cover % and crown counts (over --aoi if given)."""
    from terracarbon.trees import predict as tp

    mode = _mode(mode)
    if mode == "semantic":
        tp.predict_tree_cover(
            checkpoint,
            input_path,
            output,
            tile_size=tile_size,
            overlap=None if overlap is None else min(overlap, (tile_size or overlap * 2) // 2),
            batch_size=batch_size,
            backend=backend,
            resume=not no_resume,
        )
        summary = tp.tree_cover_summary(output, aoi=aoi)
    else:
        tile_size, overlap = tile_size or 512, 128 if overlap is None else overlap
        gdf = tp.predict_crowns(
            checkpoint,
            input_path,
            output,
            tile_size=tile_size,
            overlap=min(overlap, tile_size // 2),
            score_threshold=score_threshold,
            merge_threshold=merge_threshold,
            suppress_threshold=suppress_threshold,
            min_area_m2=min_area,
            batch_size=batch_size,
        )
        if canopy is not None:
            tp.rasterize_crowns(gdf, input_path, canopy)
            summary = tp.tree_cover_summary(canopy, crowns=gdf, aoi=aoi)
        else:
            summary = {"crown_count": len(gdf), "crown_area_m2_total": float(gdf["area_m2"].sum())}
    _metrics_table(f"trees in {input_path.name}" + (f" within {aoi.name}" if aoi else ""), summary)
    console.print(f"wrote [bold]{output}[/]")


@app.command("cv")
@handle_errors
def cv(
    data: Path = typer.Option(..., "--data", "-d", help="OAM-TCD export with kfold_*/ folders."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (fold_k/ runs, cv_results.json/.md)."),
    mode: str = typer.Option("semantic", help=MODE_HELP),
    folds: str | None = typer.Option(None, help="Comma-separated folds (default: all found)."),
    epochs: int = typer.Option(20, help="Training epochs per fold."),
    batch_size: int = typer.Option(8, help="Batch size."),
    lr: float = typer.Option(1e-3, help="Learning rate."),
    patch_size: int | None = typer.Option(1024, help="Random crop size (0: whole tiles)."),
    spec: str | None = typer.Option(None, help="Model spec as JSON text or file."),
    encoder: str | None = typer.Option(None, help="U-Net encoder (semantic)."),
    backbone: str | None = typer.Option(None, help="Mask R-CNN backbone (instance)."),
    seed: int = typer.Option(0, help="Random seed."),
    devices: str = typer.Option("1", help="Lightning devices."),
    strategy: str = typer.Option("auto", help="Lightning strategy."),
    accelerator: str = typer.Option("auto", help="cpu, gpu or auto."),
) -> None:
    """k-fold cross-validation (the paper's protocol): mean ± std of the metrics over folds."""
    from terracarbon.trees.cv import cross_validate

    mode = _mode(mode)
    try:
        fold_list = None if not folds else [int(f) for f in folds.split(",") if f.strip()]
    except ValueError as exc:
        raise ConfigError(f"--folds must be comma-separated integers, not {folds!r}") from exc
    res = cross_validate(
        data,
        out,
        mode=mode,
        folds=fold_list,
        **_train_kwargs(
            model_spec=_spec(mode, spec, encoder, backbone, patch_size or None),
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            patch_size=patch_size or None,
            seed=seed,
            devices=devices,
            strategy=strategy,
            accelerator=accelerator,
        ),
    )
    print_table(
        f"{len(res.folds)}-fold cross-validation ({mode})", [dict(r) for r in res.per_fold], fmt="{:.4f}"
    )
    print_table("mean ± std over folds", res.table())
    console.print(f"results: [bold]{out / 'cv_results.json'}[/]")


@app.command("synth")
@handle_errors
def synth(
    out: Path = typer.Argument(
        ..., help="Folder for a look-alike OAM-TCD export, or a .tif for an orthomosaic."
    ),
    n_images: int = typer.Option(20, help="Tiles in the export."),
    size: int = typer.Option(128, help="Tile size (px), or orthomosaic height/width."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Write synthetic data with known crowns: an OAM-TCD look-alike export, or (OUT ends in .tif) an orthomosaic."""
    from terracarbon.data.synthetic.trees import make_orthomosaic, make_synthetic_tcd

    if out.suffix.lower() in (".tif", ".tiff"):
        o = make_orthomosaic(out, height=size, n_groups=max(1, size // 512), seed=seed)
        o.crowns_gdf().to_file(out.with_suffix(".crowns.gpkg"), driver="GPKG")
        console.print(
            f"wrote {out} ({size}×{size} px, {len(o.crowns)} crowns) and {out.with_suffix('.crowns.gpkg')}"
        )
    else:
        make_synthetic_tcd(out, n_images=n_images, size=size, seed=seed)
        console.print(f"wrote a look-alike OAM-TCD export with {n_images} tiles of {size} px to {out}")
