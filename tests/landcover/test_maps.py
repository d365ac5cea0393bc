"""Maps and areas: whole-orthophoto prediction through the tiled engine, colour table, class areas over an AOI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

from terracarbon.cli.landcover import app
from terracarbon.data.landcover_ai import CLASS_NAMES, COLORMAP, CRS

runner = CliRunner()


def _write_map(path, classes, res=0.5, origin=(600_000.0, 400_000.0)):
    from terracarbon.raster.io import write_geotiff

    return write_geotiff(
        path,
        classes.astype(np.uint8),
        crs=CRS,
        transform=from_origin(*origin, res, res),
        nodata=255,
        colormap=COLORMAP,
        tags={"class_names": list(CLASS_NAMES)},
    )


def _aoi(path, coords, crs="EPSG:2180"):
    import geopandas as gpd
    from shapely.geometry import Polygon

    gpd.GeoDataFrame({"name": ["site"]}, geometry=[Polygon(coords)], crs=crs).to_file(path, driver="GeoJSON")
    return path


def test_predict_whole_orthophoto_writes_paletted_map(trained, holdout_scene, tmp_path, single_thread):
    from terracarbon.landcover.evaluate import evaluate_map

    img, ref, mask = holdout_scene
    out = tmp_path / "lc_map.tif"
    res = runner.invoke(
        app,
        ["predict", str(img), str(out), "--checkpoint", str(trained.checkpoint), "--tile-size", "128",
         "--overlap", "16", "--no-track"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    with rasterio.open(out) as ds, rasterio.open(img) as src:
        assert ds.count == 1 and ds.dtypes[0] == "uint8"
        assert ds.crs == src.crs and ds.transform == src.transform and ds.shape == src.shape
        cmap = ds.colormap(1)
        for k, rgba in COLORMAP.items():
            assert tuple(cmap[k]) == tuple(rgba)
        assert json.loads(ds.tags()["class_names"]) == list(CLASS_NAMES)
        pred = ds.read(1)
    assert set(np.unique(pred)) <= set(range(5))
    # the map of an unseen scene is right where the reference says so
    m = evaluate_map(out, ref)
    assert m["miou"] >= 0.7, m["iou"]
    assert (pred == mask).mean() > 0.85


def test_class_areas_sum_to_aoi_area(tmp_path):
    from terracarbon.landcover.areas import landcover_areas, woodland_area_ha

    rng = np.random.default_rng(0)
    classes = rng.integers(0, 5, (200, 240)).astype(np.uint8)
    classes[:50, :60] = 2  # a woodland block
    m = _write_map(tmp_path / "map.tif", classes)
    # AOI on pixel edges: rows 10..110, cols 20..140 (0.5 m pixels) -> exactly 100 x 120 pixels
    x0, y0 = 600_000.0 + 20 * 0.5, 400_000.0 - 10 * 0.5
    aoi = _aoi(tmp_path / "aoi.geojson", [(x0, y0), (x0 + 60, y0), (x0 + 60, y0 - 50), (x0, y0 - 50)])
    res = landcover_areas(m, aoi)
    # true (ellipsoidal) areas: EPSG:2180's scale factor 0.9993 makes them differ from planar ones by < 0.2 %
    assert res["aoi_area_ha"] == pytest.approx(60 * 50 / 1e4, rel=2e-3)
    assert sum(c["area_ha"] for c in res["classes"].values()) == pytest.approx(res["aoi_area_ha"], rel=1e-6)
    assert res["total_area_ha"] == pytest.approx(res["aoi_area_ha"], rel=1e-6)
    assert sum(c["percent"] for c in res["classes"].values()) == pytest.approx(100.0)
    window = classes[10:110, 20:140]
    for i, name in enumerate(CLASS_NAMES):
        assert res["classes"][name]["pixels"] == int((window == i).sum())
    px_ha = res["aoi_area_ha"] / window.size  # true area of one pixel here
    assert woodland_area_ha(m, aoi) == pytest.approx((window == 2).sum() * px_ha, rel=1e-4)
    assert woodland_area_ha(m) == pytest.approx((classes == 2).sum() * px_ha, rel=1e-4)
    # a round AOI: class areas still add up to the AOI area (to pixel discretisation)
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    circle = [(600_060.0 + 40 * np.cos(a), 399_950.0 + 40 * np.sin(a)) for a in t]
    res = landcover_areas(m, _aoi(tmp_path / "circle.geojson", circle))
    assert sum(c["area_ha"] for c in res["classes"].values()) == pytest.approx(res["aoi_area_ha"], rel=0.01)


def test_areas_cli_json(tmp_path):
    classes = np.zeros((40, 40), np.uint8)
    classes[:, :10] = 2
    classes[:, 10:14] = 4
    m = _write_map(tmp_path / "map.tif", classes, res=0.25)
    res = runner.invoke(app, ["areas", str(m), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    total_ha = 40 * 40 * 0.0625 / 1e4
    assert data["total_area_ha"] == pytest.approx(total_ha, rel=2e-3)
    assert data["classes"]["woodland"]["percent"] == pytest.approx(25.0, rel=1e-4)
    assert data["classes"]["road"]["area_ha"] == pytest.approx(data["total_area_ha"] * 0.1, rel=1e-4)
    assert data["classes"]["water"]["area_ha"] == 0.0


def _untrained_checkpoint(path):
    from terracarbon.landcover._common import resolve_spec
    from terracarbon.models.registry import build_model, save_checkpoint

    spec = resolve_spec("unet-tiny", 3, 5)
    meta = {
        "task": "segmentation",
        "class_names": list(CLASS_NAMES),
        "colormap": COLORMAP,
        "in_bands": [1, 2, 3],
    }
    return save_checkpoint(path, build_model(spec), spec, {**meta, "bands": ["red", "green", "blue"]})


def test_cli_errors_name_the_file(tmp_path):
    ckpt = _untrained_checkpoint(tmp_path / "lc.pt")
    bad = tmp_path / "not_a_raster.tif"
    bad.write_text("hello")
    res = runner.invoke(app, ["areas", str(bad), "--json"])
    assert res.exit_code == 2 and "not_a_raster.tif" in res.output
    single = _write_map(tmp_path / "one_band.tif", np.zeros((32, 32), np.uint8))
    res = runner.invoke(app, ["predict", str(single), str(tmp_path / "o.tif"), "-c", str(ckpt), "--no-track"])
    assert res.exit_code == 2 and "one_band.tif" in res.output and not (tmp_path / "o.tif").exists()
    # a checkpoint of another task is refused, naming the checkpoint
    from terracarbon.models.registry import build_model, save_checkpoint

    spec = {"arch": "unet", "in_channels": 3, "classes": 1, "encoder_name": "tu-resnet10t", "encoder_depth": 3,
            "decoder_channels": [8, 8, 8]}  # fmt: skip
    reg = save_checkpoint(tmp_path / "agb.pt", build_model(spec), spec, {"task": "regression"})
    img = tmp_path / "rgb.tif"
    from terracarbon.data.landcover_ai import write_orthophoto

    write_orthophoto(img, np.zeros((3, 64, 64), np.uint8))
    res = runner.invoke(app, ["predict", str(img), str(tmp_path / "o.tif"), "-c", str(reg), "--no-track"])
    assert res.exit_code == 2 and "agb.pt" in res.output
    res = runner.invoke(app, ["evaluate", "--map", str(img)])
    assert res.exit_code == 2 and "--reference" in res.output
