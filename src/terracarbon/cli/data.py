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
    from terracarbon.data.synthetic.scenes import make_scene

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


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    from terracarbon.errors import ConfigError

    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise ConfigError(f"--bbox must be MIN_LON,MIN_LAT,MAX_LON,MAX_LAT, got {text!r}") from exc
    if len(vals) != 4:
        raise ConfigError(f"--bbox must be 4 numbers MIN_LON,MIN_LAT,MAX_LON,MAX_LAT, got {text!r}")
    return vals  # type: ignore[return-value]


@app.command("gedi")
@handle_errors
def gedi(
    granules: list[Path] = typer.Argument(..., help="GEDI L4A granules (.h5, or .zip holding one)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output shots: .gpkg (GeoPackage) or .parquet (GeoParquet)."),
    aoi: Path | None = typer.Option(None, help="Keep shots inside this AOI vector file (any CRS)."),
    bbox: str | None = typer.Option(None, help="Keep shots inside MIN_LON,MIN_LAT,MAX_LON,MAX_LAT."),
    min_sensitivity: float | None = typer.Option(None, help="Keep shots with sensitivity >= X (e.g. 0.95)."),
    power_beams: bool = typer.Option(False, "--power-beams", help="Full-power beams only (BEAM0101/0110/1000/1011)."),
    degrade_ok: bool = typer.Option(
        True, "--degrade-ok/--no-degrade", help="--no-degrade keeps only degrade_flag == 0."
    ),
    quality: bool = typer.Option(
        True, "--quality/--any-quality", help="Keep only l4_quality_flag == 1 (default; --any-quality keeps all)."
    ),
    start: str | None = typer.Option(None, help="Keep shots at or after this UTC date/time (ISO, e.g. 2020-01-01)."),
    end: str | None = typer.Option(None, help="Keep shots before this UTC date/time (ISO)."),
) -> None:
    """GEDI L4A granules -> filtered EPSG:4326 footprint points (agbd, agbd_se, beam, time, quality, ...)."""
    from terracarbon.data.gedi import gedi_to_file

    res = gedi_to_file(
        list(granules),
        out,
        quality=quality,
        drop_degraded=not degrade_ok,
        min_sensitivity=min_sensitivity,
        power_beams=power_beams,
        start=start,
        end=end,
        bbox=_bbox(bbox),
        aoi=aoi,
    )
    read = sum(g["shots_read"] for g in res.metadata["granules"])
    print_table(
        f"GEDI L4A shots -> {res.path}",
        {
            "granules": len(res.metadata["granules"]),
            "shots read": read,
            "shots kept": res.n_shots,
            **{f"dropped: {k}": v for k, v in res.metadata["dropped"].items() if v},
            "filter": "; ".join(res.metadata["filter"]["rules"]),
        },
    )


@app.command("labels")
@handle_errors
def labels(
    shots: Path = typer.Argument(..., help="Shots file from `terracarbon data gedi` (.gpkg / .parquet, any CRS)."),
    like: Path = typer.Option(..., "--like", help="Reference grid raster (CRS, transform and size are copied)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output label GeoTIFF (band 1 AGBD, band 2 AGBD_SE)."),
    radius: float = typer.Option(12.5, help="Footprint radius in metres (pixel centres within it are labelled)."),
    center_only: bool = typer.Option(False, "--center-only", help="Label only the pixel holding each shot."),
) -> None:
    """Rasterise GEDI shots onto a grid: AGBD (Mg/ha) on footprint pixels, NaN elsewhere, mean where they overlap."""
    from terracarbon.data.labels import rasterize_shots

    res = rasterize_shots(shots, like, out, radius=radius, center_only=center_only)
    print_table(
        f"labels -> {res.path}",
        {
            "shots": res.n_shots,
            "shots on the grid": res.n_shots_on_grid,
            "labelled pixels": res.n_labelled_pixels,
            "pixels under > 1 footprint (mean)": res.n_overlap_pixels,
            "footprint": res.tags["footprint"],
        },
    )


@app.command("stack")
@handle_errors
def stack(
    s2: list[Path] = typer.Option(
        [], "--s2", help="Sentinel-2 L2A input: STAC item .json, SAFE folder or band folder (repeat for a median)."
    ),
    hls: list[Path] = typer.Option([], "--hls", help="HLS v2.0 S30/L30 granule folder (HLS.*.B02.tif + Fmask)."),
    bands: str | None = typer.Option(
        None, help="Optical bands in output order, e.g. B02,B03,B04,B08 or BLUE,GREEN,RED,NIR_NARROW,SWIR_1,SWIR_2."
    ),
    layer: list[str] = typer.Option(
        [], "--layer", help="Extra layer NAME=FILE (e.g. CH=canopy_height.tif; HH,HV=palsar.tif for two bands)."
    ),
    like: Path | None = typer.Option(None, "--like", help="Target grid: copy this raster's CRS, transform, size."),
    aoi: Path | None = typer.Option(None, "--aoi", help="Target grid: cover this AOI vector (needs --crs, --resolution)."),
    bounds: str | None = typer.Option(None, help="Target grid: LEFT,BOTTOM,RIGHT,TOP in --crs (needs --resolution)."),
    crs: str | None = typer.Option(None, "--crs", help="Target CRS, e.g. EPSG:32629."),
    resolution: float | None = typer.Option(None, "--resolution", help="Target pixel size in CRS units (m)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output stack: .tif (cloud-optimised GeoTIFF) or .vrt."),
    assets: Path | None = typer.Option(None, "--assets", help="Folder holding a STAC item's asset files."),
    scl: str | None = typer.Option(None, help="SCL classes to mask, e.g. 0,1,3,8,9,10 (default); 'none' masks none."),
    fmask_bits: str | None = typer.Option(None, help="HLS Fmask bits to mask (default 1,2,3: cloud, adjacent, shadow)."),
    boa_offset: float | None = typer.Option(None, help="Override the BOA offset in DN (e.g. -1000 or 0)."),
    resampling: str = typer.Option("bilinear", help="Resampling of optical bands (bilinear, nearest, cubic, average)."),
    layer_resampling: list[str] = typer.Option([], help="Per-layer resampling NAME=METHOD (e.g. DEM=bilinear)."),
    units: str = typer.Option("reflectance", help="reflectance (0-1) or reflectance_x10000 (HLS-trained models)."),
) -> None:
    """Build the predictor stack on one grid: S2 L2A / HLS reflectance (clouds nodata) + layers, bands named."""
    from terracarbon.data.sentinel2 import parse_band_list
    from terracarbon.data.stack import build_stack, parse_layers

    def ints(text: str | None) -> list[int] | None:
        if text is None:
            return None
        return [] if text.strip().lower() == "none" else [int(v) for v in text.split(",") if v.strip()]

    res = build_stack(
        list(s2),
        hls=list(hls),
        out=out,
        like=like,
        aoi=aoi,
        bounds=None if bounds is None else [float(v) for v in bounds.split(",")],
        crs=crs,
        resolution=resolution,
        bands=parse_band_list(bands),
        layers=layer,
        assets_dir=assets,
        scl_classes=ints(scl),
        fmask_bits=ints(fmask_bits),
        boa_offset=boa_offset,
        resampling=resampling,
        layer_resampling={k: str(v) for k, v in parse_layers(layer_resampling).items()},
        units=units,
    )
    import rasterio

    with rasterio.open(res) as ds:
        print_table(
            f"stack -> {res}",
            {
                "bands": ", ".join(d or "" for d in ds.descriptions),
                "size (px)": f"{ds.width} x {ds.height}",
                "CRS": str(ds.crs),
                "pixel size": f"{ds.res[0]:g}",
                "units": ds.tags().get("TERRACARBON_UNITS", ""),
            },
        )
