"""``terracarbon models``: bring published checkpoints (TerraTorch, Hugging Face) into terracarbon's model format."""

from __future__ import annotations

from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table

app = typer.Typer(help="Published models: import TerraTorch / Hugging Face checkpoints.", no_args_is_help=True)
import_app = typer.Typer(help="Import a published checkpoint as a terracarbon model file.", no_args_is_help=True)
app.add_typer(import_app, name="import")


def _summary(path: Path) -> None:
    import torch

    payload = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    meta, spec = payload.get("meta", {}), payload.get("spec", {})
    rows = {
        "arch": spec.get("arch"),
        "task": meta.get("task"),
        "bands": ", ".join(meta.get("bands") or []),
        "input units": meta.get("input_units", ""),
        "tile size": meta.get("tile_size", ""),
        "parameters": f"{meta.get('total_params', 0):,}",
    }
    if meta.get("class_names"):
        rows["classes"] = ", ".join(meta["class_names"])
    print_table(f"{path.name}", rows)


@import_app.command("terratorch")
@handle_errors
def import_terratorch_cmd(
    config: Path = typer.Option(..., "--config", help="TerraTorch config YAML the checkpoint was trained with."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="TerraTorch checkpoint (.ckpt or state dict)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output terracarbon model file (.pt)."),
    trust_pickle: bool = typer.Option(
        False, "--trust-pickle", help="Allow arbitrary pickles in the checkpoint (only for files you trust)."
    ),
    input_units: str | None = typer.Option(
        None, help="Units of the input bands (default: inferred from the config's means)."
    ),
) -> None:
    """TerraTorch PixelwiseRegressionTask (e.g. granite-geospatial-biomass) -> terracarbon model file."""
    from terracarbon.models.terratorch_import import import_terratorch

    path = import_terratorch(config, checkpoint, out, trust_pickle=trust_pickle, input_units=input_units)
    _summary(path)
    console.print(f"wrote [bold]{path}[/]")


@import_app.command("hf-segformer")
@handle_errors
def import_hf_segformer_cmd(
    model_dir: Path = typer.Argument(..., help="Folder with config.json + model.safetensors (transformers layout)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output terracarbon model file (.pt)."),
    tile_size: int = typer.Option(1024, help="Tile size trees predict uses by default (restor: 1024)."),
    overlap: int = typer.Option(256, help="Tile overlap trees predict uses by default (restor: 256)."),
) -> None:
    """Hugging Face SegFormer (e.g. restor/tcd-segformer-mit-b5) -> terracarbon tree-cover model file."""
    from terracarbon.models.hf_segformer import import_hf_segformer

    path = import_hf_segformer(model_dir, out, tile_size=tile_size, overlap=overlap)
    _summary(path)
    console.print(f"wrote [bold]{path}[/]")
