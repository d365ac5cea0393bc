"""``terracarbon data``: synthetic scenes and dataset utilities."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table

app = typer.Typer(help="Synthetic scenes and dataset utilities.", no_args_is_help=True)


@app.command("synth")
@handle_errors
def synth(
    out_dir: Path = typer.Argument(..., help="Folder to write the scene into (created if needed)."),
    size: int = typer.Option(512, help="Width and height in 10 m pixels."),
    seed: int = typer.Option(0, help="Random seed (same seed -> byte-identical GeoTIFFs)."),
    region: int = typer.Option(0, help="Eco-region 0..3 (tropical_moist, temperate, boreal, dry_tropical)."),
    label_fraction: float = typer.Option(0.015, help="Share of pixels with a GEDI-like label."),
    label_noise: float = typer.Option(0.25, help="Sigma of the log of the multiplicative label error."),
    nodata_fraction: float = typer.Option(0.0, help="Share of nodata pixels (swath edge + cloud holes)."),
    as_json: bool = typer.Option(False, "--json", help="Print scene.json instead of a table."),
) -> None:
    """Generate a synthetic scene (12-band stack, true AGB, sparse GEDI-like labels, AOI) and print its noise floor."""
    from terracarbon.data.scenes import make_scene

    with console.status(f"generating {size}x{size} scene (seed {seed}, region {region})"):
        scene = make_scene(
            out_dir,
            size=size,
            seed=seed,
            region=region,
            label_fraction=label_fraction,
            label_noise=label_noise,
            nodata_fraction=nodata_fraction,
        )
    meta = scene.metadata()
    if as_json:
        typer.echo(json.dumps(meta))
        return
    print_table(
        f"synthetic scene {scene.root}",
        {
            "region": f"{region} ({meta['region_name']})",
            "size (px, 10 m)": f"{size} x {size}",
            "CRS": meta["crs"],
            "mean true AGB (Mg/ha)": meta["agb_mean"],
            "labelled pixels": meta["labels"]["n_labelled_pixels"],
            "label fraction": meta["labels"]["label_fraction"],
            "GEDI-like footprints": meta["labels"]["n_footprints"],
            "label noise floor RMSE (Mg/ha)": meta["noise_floor_rmse"],
            "  of which 25 m footprint vs 10 m pixel": meta.get("noise_floor_footprint_rmse", float("nan")),
            "nodata fraction": meta["nodata_fraction"],
        },
    )
    console.print(
        f"label noise floor RMSE: [bold]{scene.noise_floor_rmse:.2f} Mg/ha[/] (RMSE of the labels vs true AGB)"
    )
    for name in ("stack", "agb", "labels", "aoi", "parcels", "meta"):
        p = getattr(scene, name)
        if p is not None:
            console.print(f"  {name:7s} {p}")
