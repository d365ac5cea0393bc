"""``terracarbon carbon``: carbon and CO2e stocks, and stock change, over an area of interest."""

from __future__ import annotations

from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table

app = typer.Typer(help="Carbon and CO2e stocks over an area of interest.", no_args_is_help=True)

METHOD_HELP = (
    "Pixel weights: 'coverage' (fraction of each pixel inside the polygon, exact; default) or 'centre' "
    "(pixel-centre rule)."
)


def _method(method: str, all_touched: bool) -> str:
    return "centre" if all_touched else method


def _polygon_name(p: dict, i: int) -> str:
    for k in ("name", "id", "parcel_id"):
        if p.get(k) not in (None, ""):
            return str(p[k])
    return f"#{i + 1}"


def _print_warnings(warnings: list[str], limit: int = 20) -> None:
    for w in warnings[:limit]:
        console.print(f"[yellow]warning:[/] {w}")
    if len(warnings) > limit:
        console.print(f"[yellow]... and {len(warnings) - limit} more warning(s)[/] (all in the JSON output)")


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
    method: str = typer.Option("coverage", "--method", help=METHOD_HELP),
    all_touched: bool = typer.Option(
        False, help="Count every pixel touched by a polygon, weight 1 (implies --method centre)."
    ),
    bgb: bool = typer.Option(False, "--bgb", help="Add belowground biomass (IPCC Table 4.4 root-to-shoot ratios)."),
    zone: str | None = typer.Option(None, help="Ecological zone for R, e.g. tropical_moist_deciduous, boreal."),
    zone_raster: Path | None = typer.Option(None, help="Raster of FAO GEZ zone codes for R (instead of --zone)."),
    root_shoot: float | None = typer.Option(None, help="Fixed root-to-shoot ratio R (instead of the table)."),
    layer: str | None = typer.Option(None, help="Layer of a multi-layer AOI file (GeoPackage)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
    out: Path | None = typer.Option(None, "--out", help="Also write the JSON result to this file."),
) -> None:
    """AGB (+ BGB) -> carbon -> CO2e totals of RASTER over the AOI (per polygon and in total), with uncertainty."""
    from terracarbon.carbon import carbon_stock
    from terracarbon.utils import atomic_write_text

    result = carbon_stock(
        raster,
        aoi,
        carbon_fraction=carbon_fraction,
        band=band,
        std=std,
        std_band=std_band,
        method=_method(method, all_touched),
        all_touched=all_touched,
        bgb=bgb or root_shoot is not None,
        zone=zone,
        zone_raster=zone_raster,
        root_shoot=root_shoot,
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
        for i, p in enumerate(result.polygons[:50]):
            rows.append(
                {
                    "polygon": _polygon_name(p, i),
                    "area (ha)": p["area_ha"],
                    "mean AGB (Mg/ha)": p["agb_mean_mg_per_ha"],
                    "carbon (Mg C)": p["carbon_total_mg"],
                    "CO2e (t)": p["co2e_total_t"],
                }
            )
        print_table("per polygon" + (" (first 50)" if len(result.polygons) > 50 else ""), rows)
    if result.aoi_coverage is not None and result.aoi_coverage < 0.95:
        console.print(
            f"[yellow]warning:[/] the raster covers only {100 * result.aoi_coverage:.1f} % of the AOI; "
            "totals are for the covered part"
        )
    _print_warnings(result.warnings)
    if result.uncertainty_source:
        console.print(f"uncertainty from {result.uncertainty_source}: {result.uncertainty_assumption}")


@app.command("change")
@handle_errors
def change(
    t0: Path = typer.Argument(..., help="AGB map at the first date (Mg/ha)."),
    t1: Path = typer.Argument(..., help="AGB map at the second date (Mg/ha); any grid (warped onto T0's)."),
    aoi: Path | None = typer.Option(None, "--aoi", help="Parcels (GeoJSON/GeoPackage); default: whole raster."),
    years: float | None = typer.Option(
        None, "--years", help="Years between the maps (default: from their ACQUISITION_DATE/date/TIFFTAG_DATETIME tags)."
    ),
    correlation: float = typer.Option(
        0.0, "--correlation", help="Correlation of the two maps' errors: 0 independent, 1 the same model."
    ),
    std0: str = typer.Option("auto", help="T0 std: 'auto' (std band or <name>_std.tif), 'none', or a path."),
    std1: str = typer.Option("auto", help="T1 std: 'auto', 'none', or a path."),
    std_band: int | None = typer.Option(None, help="Band holding the AGB std in both maps."),
    band: int = typer.Option(1, help="Band holding AGB."),
    method: str = typer.Option("coverage", "--method", help=METHOD_HELP),
    carbon_fraction: float = typer.Option(0.47, help="Carbon fraction of dry biomass (IPCC default 0.47)."),
    bgb: bool = typer.Option(False, "--bgb", help="Include belowground biomass (IPCC Table 4.4 ratios)."),
    zone: str | None = typer.Option(None, help="Ecological zone for R (see `carbon stock --help`)."),
    zone_raster: Path | None = typer.Option(None, help="Raster of FAO GEZ zone codes for R."),
    root_shoot: float | None = typer.Option(None, help="Fixed root-to-shoot ratio R."),
    resampling: str = typer.Option("bilinear", help="Resampling of T1 onto T0's grid when they differ."),
    delta_raster: Path | None = typer.Option(
        None, "--delta-raster", help="Also write the per-pixel ΔCO2e map (t/ha, + = emission) here."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Also write an HTML page with the change tables and the ΔCO2e map (needs --delta-raster)."
    ),
    layer: str | None = typer.Option(None, help="Layer of a multi-layer AOI file (GeoPackage)."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object."),
    out: Path | None = typer.Option(None, "--out", help="Also write the JSON result to this file."),
) -> None:
    """Stock change T0 -> T1 per parcel and in total: ΔAGB, ΔC (+ = gain) and ΔCO2e (+ = emission, − = removal)."""
    from terracarbon.carbon import carbon_change
    from terracarbon.utils import atomic_write_text

    result = carbon_change(
        t0,
        t1,
        aoi,
        years=years,
        correlation=correlation,
        std0=std0,
        std1=std1,
        std_band=std_band,
        band=band,
        method=method,
        carbon_fraction=carbon_fraction,
        bgb=bgb or root_shoot is not None,
        zone=zone,
        zone_raster=zone_raster,
        root_shoot=root_shoot,
        resampling=resampling,
        delta_raster=delta_raster,
        layer=layer,
        progress=not as_json,
    )
    if out is not None:
        atomic_write_text(out, result.to_json() + "\n")
    if report is not None:
        from terracarbon.report.change import build_change_report

        build_change_report(result.to_dict(), report)
    if as_json:
        typer.echo(result.to_json(indent=None))
        return
    print_table(f"carbon stock change {t0.name} -> {t1.name}" + (f" over {aoi.name}" if aoi else ""),
                result.summary_rows())
    if len(result.per_polygon) > 1:
        rows = []
        for i, p in enumerate(result.per_polygon[:50]):
            row = {
                "parcel": _polygon_name(p, i),
                "area (ha)": p["area_ha"],
                "ΔAGB (Mg)": p["d_agb_mg"],
                "ΔC (Mg C)": p["d_carbon_mg"],
                "ΔCO2e (t, +emission)": p["d_co2e_t"],
                "ΔCO2e/yr (t)": p["d_co2e_t_per_year"],
            }
            if p.get("sd_d_co2e_t") is not None:
                row["sd ΔCO2e (t)"] = p["sd_d_co2e_t"]
            rows.append(row)
        print_table("per parcel" + (" (first 50)" if len(result.per_polygon) > 50 else ""), rows)
    console.print(f"sign convention: {result.sign_convention}")
    _print_warnings(result.warnings)
    if result.uncertainty_source:
        console.print(f"uncertainty from {result.uncertainty_source}: {result.uncertainty_assumption}")
