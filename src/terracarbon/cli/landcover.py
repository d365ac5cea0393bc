"""``terracarbon landcover``: LandCover.ai land cover — train, evaluate, predict maps, class areas."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table

app = typer.Typer(help="Land cover from aerial imagery (LandCover.ai).", no_args_is_help=True)


def _devices(text: str):
    return int(text) if text.isdigit() else text


def _metric_rows(metrics: dict) -> list[dict]:
    rows = []
    for name, iou in (metrics.get("iou") or {}).items():
        rows.append(
            {
                "class": name,
                "IoU": iou,
                "F1": (metrics.get("f1") or {}).get(name, float("nan")),
                "precision": (metrics.get("precision") or {}).get(name, float("nan")),
                "recall": (metrics.get("recall") or {}).get(name, float("nan")),
            }
        )
    if "miou" in metrics:
        rows.append({"class": "mean (mIoU)", "IoU": metrics["miou"], "F1": "", "precision": "", "recall": ""})
    return rows


def _print_confusion(metrics: dict) -> None:
    cm = metrics.get("confusion_matrix")
    names = list((metrics.get("iou") or {}).keys())
    if not cm or not names:
        return
    rows = [
        {"reference \\ predicted": n, **{m: int(v) for m, v in zip(names, row)}} for n, row in zip(names, cm)
    ]
    print_table("confusion matrix (pixels)", rows, fmt="{:,.0f}")


@app.command("synth")
@handle_errors
def synth(
    out: Path = typer.Argument(..., help="Folder to write (LandCover.ai release layout)."),
    n_images: int = typer.Option(8, help="Number of synthetic orthophotos."),
    size: int = typer.Option(256, help="Orthophoto height and width in pixels."),
    tile_size: int = typer.Option(64, help="Tile size of the official tiling (512 in the real release)."),
    seed: int = typer.Option(0),
) -> None:
    """Write synthetic aerial scenes with known classes as a LandCover.ai look-alike (images, masks, tiles, splits)."""
    from terracarbon.data.synthetic.landcover import make_synthetic_release

    root = make_synthetic_release(out, n_images=n_images, size=(size, size), tile_size=tile_size, seed=seed)
    counts = {s: len((root / f"{s}.txt").read_text().split()) for s in ("train", "val", "test")}
    console.print(f"wrote {n_images} orthophotos and {sum(counts.values())} tiles {counts} under {root}")


@app.command("split")
@handle_errors
def split(
    root: Path = typer.Argument(..., help="LandCover.ai root with images/*.tif and masks/*.tif."),
    tile_size: int = typer.Option(512, help="Tile size (the official split.py uses 512)."),
    output: Path = typer.Option(None, help="Tile folder (default ROOT/output)."),
) -> None:
    """Cut the orthophotos into tiles exactly like the official split.py (only full tiles; k counts all positions)."""
    from terracarbon.data.landcover_ai import split_orthophotos

    stems = split_orthophotos(root, target_size=tile_size, output_dir=output, progress=True)
    console.print(f"wrote {len(stems)} tiles to {output or root / 'output'}")


@app.command("train")
@handle_errors
def train(
    root: Path = typer.Argument(..., help="LandCover.ai root (train.txt, val.txt, test.txt, output/)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Run folder (checkpoint landcover.pt, model card, metrics)."
    ),
    model: str = typer.Option(
        "deeplabv3plus", help="deeplabv3plus | unet | deeplabv3plus-small | unet-small | unet-tiny."
    ),
    encoder: str = typer.Option(None, help="Override the encoder (smp name, e.g. resnet50, tu-xception71)."),
    epochs: int = typer.Option(30),
    lr: float = typer.Option(1e-3, help="Peak learning rate (one-cycle schedule)."),
    batch_size: int = typer.Option(8),
    crop_size: int = typer.Option(None, help="Random crops of this size from the training tiles."),
    class_weighting: str = typer.Option(
        "inverse", help="inverse | sqrt | none (computed on the train split)."
    ),
    max_weight_ratio: float = typer.Option(10.0, help="Cap on the largest/smallest class weight ratio."),
    seed: int = typer.Option(0),
    devices: str = typer.Option("1", help="Lightning devices."),
    strategy: str = typer.Option("auto", help="Lightning strategy (e.g. ddp)."),
    accelerator: str = typer.Option("auto", help="cpu | gpu | auto."),
    precision: str = typer.Option(None, help="Lightning precision, e.g. 16-mixed."),
    num_workers: int = typer.Option(0, help="DataLoader workers."),
    max_minutes: float = typer.Option(None, help="Wall-clock cap on training."),
    country: str = typer.Option("USA", help="ISO3 grid code for the emissions estimate."),
    track: bool = typer.Option(
        True, help="Track energy and CO2e of training (codecarbon) for the model card."
    ),
) -> None:
    """Train DeepLabv3+ or U-Net on the official tiles; export checkpoint + model card with tracked emissions."""
    from terracarbon.landcover._common import MODEL_PRESETS
    from terracarbon.landcover.train import train_landcover

    spec: str | dict = model
    if encoder:
        if model not in MODEL_PRESETS:
            from terracarbon.errors import ConfigError

            raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODEL_PRESETS)}")
        spec = {**MODEL_PRESETS[model], "encoder_name": encoder}
    res = train_landcover(
        root,
        out_dir=out,
        model=spec,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        crop_size=crop_size,
        class_weighting=class_weighting,
        max_weight_ratio=max_weight_ratio,
        seed=seed,
        devices=_devices(devices),
        strategy=strategy,
        accelerator=accelerator,
        precision=precision,
        num_workers=num_workers,
        max_minutes=max_minutes,
        country_iso_code=country,
        track=track,
    )
    print_table(
        f"test metrics ({res.metrics.get('n_tiles', {}).get('test', 0)} tiles)", _metric_rows(res.metrics)
    )
    fp = res.footprint or {}
    print_table(
        f"LandCover training -> {res.checkpoint}",
        {
            "model": f"{res.spec['arch']} / {res.spec.get('encoder_name', '')}",
            "class weights": ", ".join(f"{w:.3g}" for w in res.class_weights),
            "best val mIoU": res.extra.get("best_val_miou") or float("nan"),
            "test mIoU": res.metrics.get("miou", float("nan")),
            "trainable / total params": f"{res.trainable_params:,} / {res.total_params:,}",
            "wall time (s)": res.wall_time_s,
            "energy (kWh)": fp.get("energy_kwh", "–"),
            "CO2e (g)": fp.get("emissions_g", "–"),
            "model card": str(res.model_card or "–"),
        },
    )


@app.command("evaluate")
@handle_errors
def evaluate(
    checkpoint: Path = typer.Option(None, "--checkpoint", "-c", help="Checkpoint (.pt) to score on tiles."),
    root: Path = typer.Argument(None, help="LandCover.ai root (with --checkpoint)."),
    split: str = typer.Option("test", help="train | val | test."),
    map_path: Path = typer.Option(
        None, "--map", help="Predicted map GeoTIFF to score instead of a checkpoint."
    ),
    reference: Path = typer.Option(None, "--reference", help="Reference mask GeoTIFF for --map."),
    batch_size: int = typer.Option(8),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Per-class IoU, mIoU, F1 and the confusion matrix of a checkpoint (tiles) or of a predicted map."""
    from terracarbon.errors import ConfigError

    if map_path is not None:
        if reference is None:
            raise ConfigError("--map needs --reference (the reference mask GeoTIFF)")
        from terracarbon.landcover.evaluate import evaluate_map

        metrics = evaluate_map(map_path, reference)
    else:
        if checkpoint is None or root is None:
            raise ConfigError("give --checkpoint CKPT ROOT, or --map MAP --reference MASK")
        from terracarbon.landcover.evaluate import evaluate_landcover

        metrics = evaluate_landcover(checkpoint, root, split, batch_size=batch_size, progress=not as_json)
    if as_json:
        from terracarbon.utils import to_json

        typer.echo(to_json(metrics))
        return
    print_table(f"land-cover metrics ({metrics.get('split', 'map')})", _metric_rows(metrics))
    _print_confusion(metrics)


@app.command("predict")
@handle_errors
def predict(
    src: Path = typer.Argument(..., help="RGB orthophoto GeoTIFF (bands 1-3 = red, green, blue)."),
    dst: Path = typer.Argument(..., help="Output land-cover map (paletted uint8 GeoTIFF)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="Land-cover checkpoint (.pt)."),
    tile_size: int = typer.Option(512, help="Tile size in pixels (multiple of 32)."),
    overlap: int = typer.Option(64, help="Overlap blended on each side of a tile."),
    batch_size: int = typer.Option(4),
    backend: str = typer.Option("eager", help="eager | channels-last | onnx | onnx-int8 | bf16."),
    resume: bool = typer.Option(True, help="Resume an interrupted run."),
    scheduler: str = typer.Option(None, help="Dask scheduler: tcp://host:port or local:N."),
    track: bool = typer.Option(True, help="Record energy and CO2e next to the output."),
) -> None:
    """Predict a whole orthophoto through the tiled engine -> colour-table GeoTIFF with class names."""
    from terracarbon.landcover.predict import predict_landcover

    out = predict_landcover(
        checkpoint,
        src,
        dst,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        backend=backend,
        resume=resume,
        scheduler=scheduler,
        track=track,
    )
    console.print(f"wrote {out}")


@app.command("areas")
@handle_errors
def areas(
    map_path: Path = typer.Argument(..., help="Land-cover map GeoTIFF (class ids, class_names tag)."),
    aoi: Path = typer.Option(None, "--aoi", help="Area of interest (GeoJSON / GeoPackage)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (hectares and percent per class)."),
) -> None:
    """Area per class in hectares and percent, over the AOI or the whole map."""
    from terracarbon.landcover.areas import landcover_areas

    res = landcover_areas(map_path, aoi)
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    rows = [
        {"class": n, "id": v["class_id"], "area (ha)": v["area_ha"], "percent": v["percent"]}
        for n, v in res["classes"].items()
    ]
    rows.append({"class": "total", "id": "", "area (ha)": res["total_area_ha"], "percent": 100.0})
    print_table(f"land-cover areas of {map_path.name}" + (f" in {aoi.name}" if aoi else ""), rows)
