"""``terracarbon carbon``: carbon and CO2e stocks over an area of interest."""

from __future__ import annotations

from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table

app = typer.Typer(help="Carbon and CO2e stocks over an area of interest.", no_args_is_help=True)


@app.command("stock")
@handle_errors
def stock(
    raster: Path = typer.Argument(..., help="AGB map (Mg/ha), any CRS (projected or geographic)."),
    aoi: Path | None = typer.Option(
        None, "--aoi", help="AOI polygons (GeoJSON/GeoPackage); default: whole raster."
    ),
    carbon_fraction: float = typer.Option(0.47, help="Carbon fraction of dry biomass (IPCC default 0.47)."),
    band: int = typer.Option(1, help="Band holding AGB."),
    std: str = typer.Option(
        "auto", help="Per-pixel std: 'auto' (std band or <name>_std.tif), 'none', or a path."
    ),
    std_band: int | None = typer.Option(None, help="Band of RASTER holding the AGB std (overrides --std)."),
    all_touched: bool = typer.Option(
        False, help="Count every pixel touched by a polygon (default: pixel centres)."
    ),
    layer: str | None = typer.Option(None, help="Layer of a multi-layer AOI file (GeoPackage)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
    out: Path | None = typer.Option(None, "--out", help="Also write the JSON result to this file."),
) -> None:
    """AGB -> carbon -> CO2e totals of RASTER over the AOI (per polygon and in total), with uncertainty if available."""
    from terracarbon.carbon import carbon_stock
    from terracarbon.utils import atomic_write_text

    result = carbon_stock(
        raster,
        aoi,
        carbon_fraction=carbon_fraction,
        band=band,
        std=std,
        std_band=std_band,
        all_touched=all_touched,
        layer=layer,
        progress=not as_json,
    )
    text = result.to_json()
    if out is not None:
        atomic_write_text(out, text + "\n")
    if as_json:
        typer.echo(result.to_json(indent=None))
        return
    print_table(
        f"carbon stock of {raster.name}" + (f" over {aoi.name}" if aoi else ""), result.summary_rows()
    )
    if len(result.polygons) > 1:
        rows = []
        for i, p in enumerate(result.polygons):
            name = p.get("name") or p.get("id") or p.get("parcel_id") or f"#{i + 1}"
            rows.append(
                {
                    "polygon": str(name),
                    "area (ha)": p["area_ha"],
                    "mean AGB (Mg/ha)": p["agb_mean_mg_per_ha"],
                    "carbon (Mg C)": p["carbon_total_mg"],
                    "CO2e (t)": p["co2e_total_t"],
                }
            )
        print_table("per polygon", rows)
    if result.aoi_coverage is not None and result.aoi_coverage < 0.95:
        console.print(
            f"[yellow]warning:[/] the raster covers only {100 * result.aoi_coverage:.1f} % of the AOI; "
            "totals are for the covered part"
        )
    if result.uncertainty_source:
        console.print(f"uncertainty from {result.uncertainty_source}: {result.uncertainty_assumption}")
