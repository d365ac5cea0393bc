"""``terracarbon biomass``: train, evaluate, predict AGB maps, and the random-forest baseline."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table

app = typer.Typer(help="Aboveground biomass: train, evaluate, predict maps.", no_args_is_help=True)


def _metric_rows(metrics: dict) -> list[dict]:
    rows = [
        {
            "AGB bin (Mg/ha)": "all",
            "n": metrics.get("n", 0),
            "RMSE": metrics.get("rmse"),
            "MAE": metrics.get("mae"),
            "bias": metrics.get("bias"),
            "R²": metrics.get("r2"),
        }
    ]
    for name, m in (metrics.get("per_bin") or {}).items():
        if m.get("n"):
            rows.append(
                {
                    "AGB bin (Mg/ha)": name,
                    "n": m["n"],
                    "RMSE": m["rmse"],
                    "MAE": m["mae"],
                    "bias": m["bias"],
                    "R²": "",
                }
            )
    return rows


def _print_metrics(title: str, metrics: dict) -> None:
    print_table(title, _metric_rows(metrics), fmt="{:,.2f}")
    if metrics.get("noise_floor_rmse") is not None:
        console.print(
            f"label noise floor RMSE {metrics['noise_floor_rmse']:.2f} Mg/ha; "
            f"RMSE / floor = {metrics['rmse'] / metrics['noise_floor_rmse']:.3f}"
        )


def _spec(arch: str, encoder: str, encoder_depth: int, model_spec: str | None) -> dict:
    if model_spec:
        try:
            return json.loads(Path(model_spec).read_text() if Path(model_spec).exists() else model_spec)
        except ValueError as exc:
            from terracarbon.errors import ConfigError

            raise ConfigError(f"--model-spec is neither a JSON file nor JSON text: {exc}") from exc
    dec = [128, 64, 32, 16, 16][:encoder_depth]
    return {"arch": arch, "encoder_name": encoder, "encoder_depth": encoder_depth, "decoder_channels": dec}


@app.command("train")
@handle_errors
def train(
    scenes: list[Path] = typer.Argument(
        None, help="Training scene folders (stack.tif + labels.tif); or give --stack/--labels pairs."
    ),
    stack: list[Path] = typer.Option(
        [], "--stack", help="Training stack GeoTIFF/VRT (repeat; paired in order with --labels)."
    ),
    labels: list[Path] = typer.Option(
        [], "--labels", help="Label raster for the --stack at the same position (band 1 AGBD, Mg/ha)."
    ),
    val: list[Path] = typer.Option(
        [], "--val", help="Validation scene folder(s); default: hold out the bottom rows."
    ),
    test: list[Path] = typer.Option([], "--test", help="Test scene folder(s) scored after training."),
    out: Path = typer.Option(
        Path("runs/biomass"), "--out", "-o", help="Run folder (model.pt, model card, metrics)."
    ),
    epochs: int = typer.Option(30, help="Maximum epochs (early stopping on validation RMSE)."),
    lr: float = typer.Option(2e-3, help="Learning rate (AdamW, one-cycle)."),
    batch_size: int = typer.Option(16, help="Patches per batch."),
    patch_size: int = typer.Option(64, help="Patch side in pixels (multiple of 32)."),
    samples_per_epoch: int = typer.Option(512, help="Random patches per epoch."),
    arch: str = typer.Option("unet", help="Model architecture from the registry."),
    encoder: str = typer.Option("resnet18", help="Encoder (smp name)."),
    encoder_depth: int = typer.Option(4, help="Encoder depth (3-5)."),
    model_spec: str | None = typer.Option(
        None, help="Full model spec as JSON text or a JSON file (overrides arch)."
    ),
    seed: int = typer.Option(0, help="Random seed."),
    max_minutes: float | None = typer.Option(None, help="Stop training after this many minutes."),
    devices: str = typer.Option("1", help="Lightning devices (e.g. 1, 2, auto)."),
    strategy: str = typer.Option("auto", help="Lightning strategy (e.g. ddp)."),
    label_fraction: float | None = typer.Option(None, help="Keep only this fraction of label footprints."),
    init: Path | None = typer.Option(
        None, "--init", help="Fine-tune this model file (e.g. from `models import terratorch`); overrides --arch."
    ),
    freeze_encoder: bool | None = typer.Option(
        None, "--freeze-encoder/--no-freeze-encoder", help="With --init: freeze the encoder or train it too."
    ),
    agbd: Path | None = typer.Option(
        None, "--agbd", help="Train on an AGBD / AGBD-Lite folder with its own protocol (docs/agbd.md)."
    ),
    features: str = typer.Option("all", help="With --agbd: all|S2|RGBN|S2+ALOS|S2+DEM|S2+LC|S2+LC+DEM+ALOS|CH."),
    model: str = typer.Option("unet", "--model", help="With --agbd: unet | fcn | gbdt | gfm."),
    max_patches: int | None = typer.Option(None, help="With --agbd: at most this many training patches."),
    fraction: float | None = typer.Option(None, help="With --agbd: this fraction of the training split."),
    norm_strat: str = typer.Option("pct", help="With --agbd: pct | mean_std | min_max."),
    num_workers: int = typer.Option(0, help="With --agbd: DataLoader workers (one HDF5 handle each)."),
) -> None:
    """Train a U-Net on sparse labels; export the best epoch as OUT/model.pt with a model card.

    Scenes are scene folders and/or explicit ``--stack S.tif --labels L.tif`` pairs (e.g. from ``terracarbon data
    stack`` and ``terracarbon data labels``); crops are streamed from disk, so many full tiles train in bounded memory.
    """
    from terracarbon.biomass.train import train_biomass
    from terracarbon.errors import ConfigError

    if agbd is not None:  # AGBD protocol (issue 13): patch size 25 unless 15 is asked for
        _train_agbd(agbd, features, 15 if patch_size == 15 else 25, model, out, epochs, lr, batch_size,
                    max_patches, fraction, norm_strat, num_workers, seed, max_minutes)
        return
    if len(stack) != len(labels):
        raise ConfigError(f"--stack and --labels pair up in order: got {len(stack)} stacks and {len(labels)} labels")
    train_scenes: list = [*(scenes or []), *zip(stack, labels)]
    if not train_scenes:
        raise ConfigError("give training scene folders or --stack/--labels pairs")
    dev: int | str = int(devices) if devices.isdigit() else devices
    res = train_biomass(
        train_scenes,
        val_scenes=list(val) or None,
        test_scenes=list(test) or None,
        model_spec=_spec(arch, encoder, encoder_depth, model_spec),
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        patch_size=patch_size,
        samples_per_epoch=samples_per_epoch,
        seed=seed,
        out_dir=out,
        max_minutes=max_minutes,
        devices=dev,
        strategy=strategy,
        label_fraction_subsample=label_fraction,
        init=init,
        freeze_encoder=freeze_encoder,
    )
    _print_metrics("test metrics" if test else "validation metrics", res.metrics)
    fp = res.footprint or {}
    console.print(
        f"checkpoint [bold]{res.checkpoint}[/] (best epoch {res.best_epoch}); {res.wall_time_s:.0f} s; "
        f"{res.trainable_params:,} trainable / {res.total_params:,} parameters"
        + (
            f"; {fp['energy_kwh']:.4f} kWh, {fp['emissions_g']:.2f} g CO2e"
            if fp.get("energy_kwh") is not None
            else ""
        )
    )


@app.command("evaluate")
@handle_errors
def evaluate(
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-c", help="Checkpoint (model.pt) from biomass train."
    ),
    scenes: list[Path] = typer.Argument(None, help="Scene folders with labels.tif to score against."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
    agbd: Path | None = typer.Option(None, "--agbd", help="Score on an AGBD folder's split instead of scenes."),
    split: str = typer.Option("test", help="With --agbd: train | val | test."),
    tile_size: int = typer.Option(256, help="Tile size of the prediction."),
    backend: str = typer.Option("eager", help="eager | channels-last | onnx | onnx-int8 | bf16"),
) -> None:
    """RMSE, MAE, bias, R² at labelled pixels, overall and per AGB bin."""
    from terracarbon.biomass.evaluate import evaluate_biomass
    from terracarbon.utils import atomic_write_json

    if agbd is not None:
        from terracarbon.biomass.agbd import evaluate_agbd

        metrics = evaluate_agbd(checkpoint, agbd, split=split, progress=True)
        _print_metrics(f"AGBD {split} scores of {checkpoint.name}", metrics)
        if json_out is not None:
            atomic_write_json(json_out, metrics)
        return
    if not scenes:
        from terracarbon.errors import ConfigError

        raise ConfigError("give scene folders to score against, or --agbd ROOT")
    metrics = evaluate_biomass(checkpoint, list(scenes), tile_size=tile_size, backend=backend, progress=True)
    _print_metrics(f"evaluation of {checkpoint.name}", metrics)
    if json_out is not None:
        atomic_write_json(json_out, metrics)


@app.command("predict")
@handle_errors
def predict(
    src: Path = typer.Argument(..., help="Input stack GeoTIFF (same bands as the training stack)."),
    dst: Path = typer.Argument(..., help="Output AGB map GeoTIFF (Mg/ha)."),
    checkpoint: Path = typer.Option(
        ..., "--checkpoint", "-c", help="Checkpoint (model.pt) from biomass train."
    ),
    tile_size: int = typer.Option(256, help="Tile size in pixels."),
    overlap: int = typer.Option(32, help="Overlap between tiles in pixels (blended)."),
    batch_size: int = typer.Option(8, help="Tiles per batch."),
    backend: str = typer.Option("eager", help="eager | channels-last | onnx | onnx-int8 | bf16"),
    resume: bool = typer.Option(True, help="Continue an interrupted run."),
    scheduler: str | None = typer.Option(None, help="Dask scheduler: tcp://host:port or local:N."),
) -> None:
    """Predict an AGB map tile by tile (overlap, blending, resume)."""
    from terracarbon.biomass.predict import predict_biomass

    out = predict_biomass(
        checkpoint,
        src,
        dst,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        backend=backend,
        resume=resume,
        scheduler=scheduler,
    )
    console.print(f"wrote [bold]{out}[/]")


@app.command("baseline")
@handle_errors
def baseline(
    scenes: list[Path] = typer.Argument(..., help="Training scene folders."),
    test: list[Path] = typer.Option(
        [], "--test", help="Test scene folder(s); default: bottom 20 % of rows held out."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder for rf.joblib and metrics.json."),
    n_estimators: int = typer.Option(200, help="Trees in the forest."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Random-forest baseline on per-pixel features at labelled pixels, scored like the U-Net."""
    from terracarbon.biomass.baseline import train_rf_baseline

    res = train_rf_baseline(
        list(scenes), list(test) or None, out_dir=out, n_estimators=n_estimators, seed=seed
    )
    _print_metrics("random-forest baseline", res.metrics)
    console.print(f"{res.n_train:,} training pixels, {res.wall_time_s:.1f} s")


def _train_agbd(root, features, patch_size, model, out, epochs, lr, batch_size, max_patches, fraction, norm_strat,
                num_workers, seed, max_minutes) -> None:
    """``biomass train --agbd``: :func:`terracarbon.biomass.agbd.train_agbd` with the CLI's options."""
    from terracarbon.biomass.agbd import train_agbd

    res = train_agbd(
        root,
        features=features,
        patch_size=patch_size,
        model=model,
        out_dir=out,
        epochs=epochs,
        lr=lr if lr != 2e-3 else 1e-3,  # AGBD's learning rate unless one is given
        batch_size=batch_size if batch_size != 16 else 128,  # AGBD's batch size unless one is given
        max_patches=max_patches,
        fraction=fraction,
        norm_strat=norm_strat,
        num_workers=num_workers,
        seed=seed,
        max_minutes=max_minutes,
    )
    _print_metrics(f"AGBD test scores: {model} on {res.features}", res.metrics)
    fp = res.footprint or {}
    console.print(
        f"checkpoint [bold]{res.checkpoint}[/]; {res.n_train:,} training patches; {res.wall_time_s:.0f} s"
        + (f"; {fp['energy_kwh']:.4f} kWh, {fp['emissions_g']:.2f} g CO2e" if fp.get("energy_kwh") is not None else "")
    )


@app.command("agbd-table")
@handle_errors
def agbd_table_cmd(
    runs: list[Path] = typer.Argument(..., help="AGBD run folders (from biomass train --agbd)."),
    out: Path = typer.Option(Path("agbd_table.md"), "--out", "-o", help="Markdown table (a .csv is written beside)."),
) -> None:
    """The paper's table: one row per (model, features) with RMSE, MAE, bias, R², per-bin RMSE, energy, CO2e."""
    from terracarbon.biomass.agbd import agbd_table

    rows = agbd_table(list(runs), out)
    console.print(out.read_text())
    console.print(f"wrote [bold]{out}[/] and [bold]{out.with_suffix('.csv')}[/] ({len(rows)} rows)")


@app.command("predict-agbd")
@handle_errors
def predict_agbd_cmd(
    src: Path = typer.Argument(..., help="Stack with AGBD band names (terracarbon data stack)."),
    dst: Path = typer.Argument(..., help="Output AGB map GeoTIFF (Mg/ha)."),
    checkpoint: Path = typer.Option(..., "--checkpoint", "-c", help="AGBD-trained model.pt."),
    tile_size: int = typer.Option(256, help="Tile size in pixels."),
    overlap: int = typer.Option(32, help="Overlap between tiles in pixels (blended)."),
) -> None:
    """Map AGB with an AGBD-trained model: bands by name, units from the stack's tags, lat/lon from the grid."""
    from terracarbon.biomass.agbd import predict_agbd

    console.print(f"wrote [bold]{predict_agbd(checkpoint, src, dst, tile_size=tile_size, overlap=overlap)}[/]")
