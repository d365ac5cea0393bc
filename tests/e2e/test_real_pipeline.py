"""End to end on real-format files, through the CLI, over a synthetic scene (so the truth is known):
an L4A-layout GEDI granule (zipped, like ORNL DAAC's sample) -> ``data gedi`` shots; a Planetary-Computer-style
Sentinel-2 L2A item (COGs, baseline 04.00 offset) + a PALSAR/CH/DEM/LC layer file -> ``data stack`` VRT;
-> ``data labels`` -> ``biomass train`` -> ``biomass predict`` -> ``carbon stock``."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from typer.testing import CliRunner

from terracarbon.cli import app
from terracarbon.data.gedi import write_l4a_granule
from terracarbon.models.registry import load_checkpoint
from terracarbon.raster.io import write_geotiff

TINY_SPEC = json.dumps(
    {"arch": "unet", "encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 16, 16]}
)


def _granule(scene_dir, out_zip, n=400, seed=0):
    """GEDI-like shots over the scene: AGBD = the true AGB at the shot's pixel (x lognormal noise), 4 beams,
    plus the quirks of real granules: -9999 fill, quality-0 shots, an empty beam, shots from far away."""
    rng = np.random.default_rng(seed)
    with rasterio.open(scene_dir / "agb.tif") as ds:
        agb, tr, crs = ds.read(1), ds.transform, ds.crs
    h, w = agb.shape
    col, row = rng.uniform(2, w - 2, n), rng.uniform(2, h - 2, n)
    x, y = tr.c + tr.a * col, tr.f + tr.e * row
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    val = agb[row.astype(int), col.astype(int)] * np.exp(rng.normal(-0.02, 0.2, n))
    val = np.where(np.isfinite(val), val, -9999.0).astype(np.float32)
    qf = np.ones(n, np.uint8)
    qf[::17] = 0
    val[::23] = -9999.0
    beams = {}
    for k, name in enumerate(["BEAM0101", "BEAM0110", "BEAM1000", "BEAM1011"]):
        sl = slice(k, None, 4)
        beams[name] = {"agbd": val[sl], "lat_lowestmode": lat[sl], "lon_lowestmode": lon[sl], "l4_quality_flag": qf[sl]}
    beams["BEAM0000"] = {"agbd": [], "lat_lowestmode": [], "lon_lowestmode": []}
    beams["BEAM0010"] = {"agbd": [-9999.0, 80.0], "lat_lowestmode": [13.07, 13.08], "lon_lowestmode": [-75.5, -75.5]}
    h5 = write_l4a_granule(out_zip.with_suffix(".h5"), beams)
    with zipfile.ZipFile(out_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(h5, h5.name)
    h5.unlink()
    expect = int(((qf == 1) & (val != -9999.0)).sum())
    return out_zip, expect


def _s2_item_and_layers(scene_dir, root):
    """The scene's reflectance as a Planetary-Computer-style L2A item (DN = reflectance x 10000 + 1000, 20 m bands
    at 20 m), and its other six bands as one layer file."""
    from terracarbon.data.sentinel2 import write_s2_lookalike

    with rasterio.open(scene_dir / "stack.tif") as ds:
        img, tr, crs = ds.read(), ds.transform, ds.crs
    names = ["B02", "B03", "B04", "B08", "B11", "B12"]
    n = img.shape[1]
    dn = {}
    for i, b in enumerate(names):
        r = img[i] if b not in ("B11", "B12") else img[i].reshape(n // 2, 2, n // 2, 2).mean(axis=(1, 3))
        dn[b] = np.clip(np.round(r * 10000 + 1000), 1, 65535).astype(np.uint16)
    item = write_s2_lookalike(
        root / "s2", layout="planetary-computer", size=n, crs=str(crs), origin=(tr.c, tr.f), baseline="04.00",
        bands=names, dn=dn,
    )
    layers = write_geotiff(
        root / "layers.tif", img[6:], crs=crs, transform=tr, nodata=float("nan"),
        band_descriptions=["HH", "HV", "CH", "CH_STD", "DEM", "LC"], cog=False,
    )
    return item, layers


@pytest.mark.slow
def test_gedi_to_carbon_stock_via_cli(tmp_path):
    runner = CliRunner()

    def run(*args):
        r = runner.invoke(app, [str(a) for a in args])
        assert r.exit_code == 0, f"{args}: {r.output}"
        return r

    scene = tmp_path / "scene"
    run("data", "synth", scene, "--size", "160", "--seed", "3")
    granule, expect = _granule(scene, tmp_path / "GEDI04_A_2020036151358_O06515_02_T00198_02_002_01_V002.zip")

    shots = tmp_path / "shots.gpkg"
    run("data", "gedi", granule, "--out", shots, "--aoi", scene / "aoi.geojson")
    import geopandas as gpd

    got = gpd.read_file(shots)
    assert 0 < len(got) < expect  # the AOI keeps the shots inside it; the far-away beam is gone
    run("data", "gedi", granule, "--out", tmp_path / "all.parquet", "--power-beams")
    assert len(gpd.read_parquet(tmp_path / "all.parquet")) == expect

    item, layers = _s2_item_and_layers(scene, tmp_path)
    stack = tmp_path / "stack.vrt"
    run(
        "data", "stack", "--s2", item, "--bands", "B02,B03,B04,B08,B11,B12", "--layer",
        f"HH,HV,CH,CH_STD,DEM,LC={layers}", "--like", scene / "stack.tif", "--out", stack,
    )
    with rasterio.open(stack) as a, rasterio.open(scene / "stack.tif") as b:
        assert a.descriptions == b.descriptions  # the scene's 12 bands, by name
        np.testing.assert_allclose(a.read([1, 2, 3, 4]), b.read([1, 2, 3, 4]), atol=1e-4)  # (DN - 1000) / 10000
    labels = tmp_path / "labels.tif"
    run("data", "labels", tmp_path / "all.parquet", "--like", stack, "--out", labels)
    with rasterio.open(labels) as ds:
        assert ds.descriptions == ("AGBD", "AGBD_SE") and ds.shape == (160, 160)
        lab = ds.read(1)
    assert 3 * expect < np.isfinite(lab).sum() <= 5 * expect  # 3-5 pixels of 10 m per 25 m footprint

    run_dir = tmp_path / "run"
    run(
        "biomass", "train", "--stack", stack, "--labels", labels, "--out", run_dir, "--epochs", "1",
        "--samples-per-epoch", "16", "--batch-size", "8", "--patch-size", "32", "--model-spec", TINY_SPEC,
    )
    _, _, meta = load_checkpoint(run_dir / "model.pt")
    assert meta["input_units"] == "reflectance" and meta["bands"][0] == "B02"

    agb_map = tmp_path / "agb_map.tif"
    run("biomass", "predict", stack, agb_map, "--checkpoint", run_dir / "model.pt", "--tile-size", "64",
        "--overlap", "16")
    with rasterio.open(agb_map) as ds:
        pred = ds.read(1)
    assert pred.shape == (160, 160) and np.isfinite(pred).all() and pred.min() >= 0

    r = run("carbon", "stock", agb_map, "--aoi", scene / "aoi.geojson", "--json")
    obj = json.loads(r.stdout)
    assert obj["agb_total_mg"] > 0 and obj["co2e_total_t"] > 0
