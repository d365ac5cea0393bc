"""``terracarbon assess`` and ``terracarbon report``: site assessment and its HTML report (top-level commands)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table
from terracarbon.errors import ConfigError


def _parse_models(items: list[str] | None) -> dict[str, Path] | None:
    if not items:
        return None
    out: dict[str, Path] = {}
    for item in items:
        layer, sep, path = item.partition("=")
        if not sep or not layer or not path:
            raise ConfigError(f"--model takes LAYER=CHECKPOINT (e.g. biomass=model.pt), got {item!r}")
        out[layer.strip()] = Path(path.strip())
    return out


def register(root: typer.Typer) -> None:
    """Add the top-level ``assess`` and ``report`` commands to the root app."""

    @root.command("assess")
    @handle_errors
    def assess_cmd(
        scene_dir: Path = typer.Argument(
            ..., help="Scene folder (stack.tif, optional aerial.tif, scene.json)."
        ),
        aoi: Path | None = typer.Option(
            None,
            "--aoi",
            help="AOI (GeoJSON/GeoPackage; several polygons -> per-polygon figures). "
            "Default: the scene's aoi.geojson.",
        ),
        model: list[str] | None = typer.Option(
            None,
            "--model",
            "--models",
            "-m",
            help="LAYER=CHECKPOINT, repeatable; layers: biomass, landcover, tree_cover. "
            "Default: the models the demo trained (--models-dir).",
        ),
        models_dir: Path = typer.Option(
            Path("demo-output"), help="Where to look for models when none is given."
        ),
        no_models: bool = typer.Option(False, "--no-models", help="Run no model (derived layers only)."),
        out: Path = typer.Option(Path("assessment"), "--out", "-o", help="Run folder to write."),
        scheduler: str | None = typer.Option(
            None, help="Dask scheduler for the tiled engine: tcp://host:port or local:N."
        ),
        workers: int | None = typer.Option(None, help="Run on a local Dask cluster of N worker processes."),
        tile_size: int = typer.Option(256, help="Tile size (px)."),
        overlap: int = typer.Option(32, help="Tile overlap (px)."),
        batch_size: int = typer.Option(8, help="Tiles per batch."),
        backend: str = typer.Option("eager", help="eager, channels-last, onnx, onnx-int8 or bf16."),
        carbon_fraction: float = typer.Option(0.47, help="Carbon share of dry biomass."),
        derive: bool = typer.Option(
            True, help="Derive land cover (LC band) / tree cover (CH >= 5 m) without models."
        ),
        country: str = typer.Option(
            "USA", help="ISO 3166-1 alpha-3 code of the electricity grid (footprint)."
        ),
        report: bool = typer.Option(True, help="Also write report.html."),
        as_json: bool = typer.Option(False, "--json", help="Print assessment.json instead of a table."),
    ) -> None:
        """Assess a site: map biomass, land cover and tree cover; stocks and class areas inside the AOI."""
        from terracarbon.assess import assess

        models = {} if no_models else _parse_models(model)
        res = assess(
            scene_dir,
            aoi,
            models,
            out,
            scheduler=scheduler,
            workers=workers,
            tile_size=tile_size,
            overlap=overlap,
            batch_size=batch_size,
            backend=backend,
            carbon_fraction=carbon_fraction,
            derive_missing=derive,
            demo_dir=models_dir,
            country_iso_code=country,
            progress=not as_json,
        )
        html = None
        if report:
            from terracarbon.report import build_report

            html = build_report(res.run_dir)
        if as_json:
            typer.echo(json.dumps(res.data, indent=2))
            return
        print_table(f"assessment of {scene_dir}", res.summary_rows())
        console.print(f"wrote {res.json_path}" + (f" and {html}" if html else ""))

    @root.command("report")
    @handle_errors
    def report_cmd(
        run_dir: Path = typer.Argument(..., help="Run folder written by `terracarbon assess`."),
        out: Path | None = typer.Option(None, "--out", "-o", help="HTML file (default RUN_DIR/report.html)."),
        title: str | None = typer.Option(None, help="Page title."),
    ) -> None:
        """Write a self-contained, offline HTML report (map, stocks, class areas, footprint, provenance) + PNGs."""
        from terracarbon.report import build_report

        path = build_report(run_dir, out, title=title)
        console.print(f"wrote {path} (figures in {Path(run_dir) / 'figures'})")
