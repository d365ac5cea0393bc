"""Site assessment: layers from models and inputs, stocks with uncertainty, class areas per polygon, Dask, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from torch import nn
from typer.testing import CliRunner

from terracarbon.assess import assess, default_models, load_assessment
from terracarbon.assess.models import classify_checkpoint, layer_name
from terracarbon.carbon import carbon_stock
from terracarbon.data.synthetic.scenes import BANDS, make_scene
from terracarbon.errors import ConfigError, InputError
from terracarbon.models.registry import register_arch, save_checkpoint
from terracarbon.raster.io import write_geotiff
from terracarbon.raster.zonal import class_areas

LC_NAMES = ["background", "building", "woodland", "water", "road"]


@register_arch("tc-assess-tiny")
def _tiny(in_channels: int, classes: int = 1, hidden: int = 6) -> nn.Module:
    """A two-layer CNN of built-in modules (pickles into Dask workers without this test module)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, hidden, 3, padding=1), nn.ReLU(), nn.Conv2d(hidden, classes, 1)
    )


def _save(path, in_ch, classes, meta, seed=0):
    torch.manual_seed(seed)
    spec = {"arch": "tc-assess-tiny", "in_channels": in_ch, "classes": classes}
    from terracarbon.models.registry import build_model

    model = build_model(spec)
    with torch.no_grad():  # a positive, scene-dependent AGB-like output
        model[2].bias.fill_(0.5)
    return save_checkpoint(path, model, spec, meta)


BIOMASS_META = {
    "task": "regression",
    "bands": BANDS,
    "mean": [0.1] * 6 + [-10.0, -15.0, 15.0, 2.0, 300.0, 2.0],
    "std": [0.1] * 6 + [3.0, 3.0, 10.0, 1.0, 100.0, 2.0],
    "target_scale": 80.0,
    "target_offset": 120.0,
    "metrics": {
        "rmse": 40.0,
        "per_bin": {
            "0-50": {"n": 200, "rmse": 15.0},
            "50-100": {"n": 120, "rmse": 25.0},
            "100-150": {"n": 3, "rmse": 999.0},  # too few labels -> overall RMSE
            "150-200": {"n": 80, "rmse": 45.0},
            "500+": {"n": 0, "rmse": None},
        },
    },
    "footprint": {"energy_kwh": 0.002, "emissions_g": 0.8, "duration_s": 12.0, "method": "RAPL"},
}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A 96 px scene with an aerial RGB image, a biomass and a land-cover checkpoint."""
    root = tmp_path_factory.mktemp("site")
    scene = make_scene(root / "scene", size=96, seed=3)
    with rasterio.open(scene.stack) as ds:
        t, crs = ds.transform, ds.crs
    # 5 m aerial RGB over the same extent (a LandCover.ai-like 3-band input)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (3, 192, 192), dtype=np.uint8)
    write_geotiff(
        scene.root / "aerial.tif",
        rgb,
        crs=crs,
        transform=Affine(5.0, 0, t.c, 0, -5.0, t.f),
        band_descriptions=["R", "G", "B"],
    )
    models = root / "models"
    bio = _save(models / "biomass.pt", 12, 1, BIOMASS_META)
    lc_meta = {
        "task": "segmentation",
        "bands": ["R", "G", "B"],
        "mean": [128.0] * 3,
        "std": [64.0] * 3,
        "class_names": LC_NAMES,
        "colormap": {
            0: [220, 220, 200],
            1: [200, 40, 40],
            2: [30, 120, 30],
            3: [40, 90, 220],
            4: [90, 90, 90],
        },
    }
    lc = _save(models / "lc.pt", 3, 5, lc_meta, seed=1)
    return {"root": root, "scene": scene, "biomass": bio, "landcover": lc}


@pytest.fixture(scope="module")
def run(site):
    out = site["root"] / "run"
    res = assess(
        site["scene"].root,
        site["scene"].root / "parcels.geojson",
        {"biomass": site["biomass"], "land_cover": site["landcover"]},
        out,
        tile_size=64,
        overlap=16,
        progress=False,
        track=True,
    )
    return res


def test_assessment_files_and_layers(run, site):
    data = load_assessment(run.run_dir)
    assert data == run.data
    assert set(run.layers) == {"biomass", "landcover", "tree_cover"}
    for path in run.layers.values():
        with rasterio.open(path) as ds:
            assert ds.crs is not None
    assert data["layers"]["biomass"]["source"] == "model"
    assert data["layers"]["landcover"]["source"] == "model"
    # the land-cover model read the aerial image, at its resolution
    assert data["layers"]["landcover"]["input"].endswith("aerial.tif")
    assert data["layers"]["landcover"]["shape"] == [192, 192]
    # no tree-cover model: derived from canopy height, and said so
    assert data["layers"]["tree_cover"]["source"] == "derived"
    assert (run.run_dir / "aoi.geojson").exists()
    fp = data["footprint"]["assessment"]
    assert fp is not None and fp["duration_s"] > 0 and (run.run_dir / "emissions.json").exists()
    assert data["footprint"]["training"]["biomass"]["emissions_g"] == 0.8
    roles = {r["role"] for r in data["provenance"]["inputs"]}
    assert {"stack, biomass input", "aoi", "landcover input"} <= roles
    assert all(len(r["sha256"]) == 64 for r in data["provenance"]["inputs"])
    assert data["models"]["biomass"]["sha256"] and data["models"]["landcover"]["class_names"] == LC_NAMES


def test_stock_matches_carbon_stock_per_polygon(run, site):
    st = run.stock
    direct = carbon_stock(run.layers["biomass"], site["scene"].root / "parcels.geojson").to_dict()
    assert st["co2e_total_t"] == pytest.approx(direct["co2e_total_t"], rel=1e-12)
    assert len(st["polygons"]) == 4
    assert [p["name"] for p in st["polygons"]] == [f"parcel-{i}" for i in range(1, 5)]
    assert st["co2e_total_t"] == pytest.approx(st["carbon_total_mg"] * 44 / 12)
    assert sum(p["agb_total_mg"] for p in st["polygons"]) == pytest.approx(st["agb_total_mg"], rel=1e-9)


def test_uncertainty_from_binned_rmse(run):
    st = run.stock
    assert st["uncertainty_source"].endswith("biomass_std.tif")
    assert 0 < st["co2e_total_std_t_independent"] < st["co2e_total_std_t_correlated"]
    with (
        rasterio.open(run.layers["biomass"]) as a,
        rasterio.open(run.run_dir / "layers/biomass_std.tif") as s,
    ):
        agb, sd = a.read(1), s.read(1)
    expect = np.select(
        [agb < 50, agb < 100, agb < 150, agb < 200], [15.0, 25.0, 40.0, 45.0], default=40.0
    )  # 100-150 has too few labels; bins without figures take the overall RMSE
    np.testing.assert_allclose(sd, expect)
    # correlated sd = sum(sigma_i * area_i) over the AOI pixels: between min and max sigma times the area
    agb_sd = st["agb_total_std_mg_correlated"]
    assert 15.0 * st["valid_area_ha"] <= agb_sd <= 45.0 * st["valid_area_ha"] + 1e-6


def test_class_areas_total_and_per_polygon(run, site):
    ca = run.data["class_areas"]["landcover"]
    direct = class_areas(run.layers["landcover"], site["scene"].root / "parcels.geojson", LC_NAMES)
    assert ca["total"]["total_area_ha"] == pytest.approx(direct.total_area_ha)
    assert set(ca["total"]["classes"]) == set(LC_NAMES)
    assert sum(v["percent"] for v in ca["total"]["classes"].values()) == pytest.approx(100.0)
    assert [p["label"] for p in ca["polygons"]] == [f"parcel-{i}" for i in range(1, 5)]
    # parcels do not overlap: their classified areas add up to the union's
    assert sum(p["total_area_ha"] for p in ca["polygons"]) == pytest.approx(ca["total"]["total_area_ha"])
    tc = run.data["tree_cover"]
    assert tc["tree_class"] == "tree" and 0 <= tc["percent"] <= 100 and len(tc["polygons"]) == 4
    # tree cover derived as CH >= 5 m: check against the stack directly (whole layer)
    with rasterio.open(site["scene"].stack) as ds, rasterio.open(run.layers["tree_cover"]) as tcd:
        ch = ds.read(BANDS.index("CH") + 1)
        np.testing.assert_array_equal(tcd.read(1), np.where(np.isfinite(ch), ch >= 5.0, 255).astype(np.uint8))


def test_dask_workers_give_the_same_layers(run, site, tmp_path, monkeypatch):
    """``workers=N`` reaches the engine as ``scheduler="local:N"``; the Dask path gives the same map.

    To stay fast the LocalCluster is an in-process one (threads); the engine's own test runs real worker processes.
    """
    import contextlib

    from distributed import Client

    import terracarbon.raster.predict as engine

    seen = []

    @contextlib.contextmanager
    def fake_dask_client(scheduler):
        if isinstance(scheduler, Client):  # the engine's own call with assess's client
            yield scheduler
            return
        seen.append(scheduler)
        with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None) as client:
            yield client

    monkeypatch.setattr(engine, "dask_client", fake_dask_client)
    res = assess(
        site["scene"].root,
        site["scene"].root / "aoi.geojson",
        {"biomass": site["biomass"]},
        tmp_path / "dask",
        workers=3,
        tile_size=64,
        overlap=16,
        progress=False,
        track=False,
    )
    assert seen == ["local:3"] and res.data["options"]["scheduler"] == "local:3"
    with rasterio.open(res.layers["biomass"]) as a, rasterio.open(run.layers["biomass"]) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert res.stock["co2e_total_t"] > 0
    with pytest.raises(ConfigError, match="either a scheduler or a number of workers"):
        assess(site["scene"].root, None, {}, tmp_path / "x", workers=2, scheduler="tcp://h:1", track=False)


def test_skips_aerial_model_without_matching_input(site, tmp_path):
    scene = make_scene(tmp_path / "bare", size=48, seed=5)
    res = assess(
        scene.root,
        None,
        {"landcover": site["landcover"]},
        tmp_path / "out",
        derive_missing=False,
        tile_size=32,
        overlap=8,
        progress=False,
        track=False,
    )
    reasons = {s["layer"]: s["reason"] for s in res.data["skipped"]}
    assert "aerial.tif" in reasons["landcover"] and "biomass" in reasons
    assert res.stock is None and res.data["layers"] == {}


def test_default_models_and_classification(site, tmp_path):
    base = tmp_path / "demo-output"
    (base / "biomass").mkdir(parents=True)
    (base / "biomass" / "model.pt").write_bytes(site["biomass"].read_bytes())
    (base / "models").mkdir()
    (base / "models" / "trees.pt").write_bytes(site["landcover"].read_bytes())  # named by file: tree_cover
    (base / "models" / "seg.pt").write_bytes(site["landcover"].read_bytes())  # classified by class names
    found = default_models(base)
    assert found["biomass"].name == "model.pt"
    assert found["tree_cover"].name == "trees.pt"
    assert found["landcover"].name == "seg.pt"
    assert default_models(tmp_path / "nothing") == {}
    assert classify_checkpoint({"task": "segmentation", "class_names": ["no tree", "tree"]}) == "tree_cover"
    assert classify_checkpoint({"task": "regression"}) == "biomass"
    assert layer_name("Trees") == "tree_cover"


def test_bad_inputs(site, tmp_path):
    with pytest.raises(InputError, match="scene folder does not exist"):
        assess(tmp_path / "nope", None, {}, tmp_path / "o", track=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="stack.tif"):
        assess(tmp_path / "empty", None, {}, tmp_path / "o", track=False)
    with pytest.raises(ConfigError, match="unknown layer"):
        assess(site["scene"].root, None, {"soil": site["biomass"]}, tmp_path / "o", track=False)
    with pytest.raises(InputError, match="checkpoint does not exist"):
        assess(site["scene"].root, None, {"biomass": tmp_path / "x.pt"}, tmp_path / "o", track=False)
    far = tmp_path / "far.geojson"
    far.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[10, 50], [10.1, 50], [10.1, 50.1], [10, 50]]],
                        },
                    }
                ],
            }
        )
    )
    with pytest.raises(InputError, match="outside"):
        assess(site["scene"].root, far, {}, tmp_path / "o2", track=False, progress=False)
    with pytest.raises(InputError, match="no assessment record"):
        load_assessment(tmp_path)


def test_cli_assess_and_report(site, tmp_path):
    from terracarbon.cli import app

    out = tmp_path / "cli-run"
    r = CliRunner().invoke(
        app,
        [
            "assess",
            str(site["scene"].root),
            "--aoi",
            str(site["scene"].root / "aoi.geojson"),
            "-m",
            f"biomass={site['biomass']}",
            "--out",
            str(out),
            "--tile-size",
            "64",
            "--overlap",
            "16",
            "--no-report",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["stock"]["co2e_total_t"] > 0 and (out / "assessment.json").exists()
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    assert (out / "report.html").exists() and (out / "figures" / "stock.png").exists()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "no assessment record" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["assess", str(site["scene"].root), "-m", "biomass", "--out", str(out)])
    assert r.exit_code == 2 and "LAYER=CHECKPOINT" in " ".join(r.output.split())


def test_given_layer_is_used_without_predicting(run, site, tmp_path, monkeypatch):
    import terracarbon.raster.predict as engine

    def boom(*a, **k):
        raise AssertionError("must not predict")

    monkeypatch.setattr(engine, "predict_raster", boom)
    res = assess(
        site["scene"].root,
        site["scene"].root / "parcels.geojson",
        {"biomass": site["biomass"]},
        tmp_path / "given",
        layers={"biomass": run.layers["biomass"]},
        derive_missing=False,
        progress=False,
        track=False,
    )
    entry = res.data["layers"]["biomass"]
    assert entry["source"] == "given" and entry["input"] == str(run.layers["biomass"].resolve())
    assert res.stock["co2e_total_t"] == pytest.approx(run.stock["co2e_total_t"], rel=1e-12)
    # the checkpoint still gives the uncertainty
    assert res.stock["co2e_total_std_t_correlated"] == pytest.approx(run.stock["co2e_total_std_t_correlated"])
    with pytest.raises(InputError, match="missing.tif"):
        assess(
            site["scene"].root,
            None,
            {},
            tmp_path / "g2",
            layers={"biomass": tmp_path / "missing.tif"},
            track=False,
        )
