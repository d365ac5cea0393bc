"""Synthetic scene generator: contract, determinism, labels, noise floor, regions, nodata."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import rasterio

from terracarbon.data.synthetic.scenes import BANDS, LC_CLASSES, Scene, agb_allometry, make_scene
from terracarbon.errors import ConfigError, InputError


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene") / "s", size=256, seed=5)


def test_contract_files_bands_crs(scene):
    assert isinstance(scene, Scene)
    for p in (scene.stack, scene.agb, scene.labels, scene.aoi, scene.meta, scene.parcels):
        assert p.exists(), p
    assert scene.bands == BANDS
    with rasterio.open(scene.stack) as ds:
        assert ds.count == 12
        assert list(ds.descriptions) == BANDS
        assert ds.crs.to_epsg() == 32722
        assert ds.res == (10.0, 10.0)
        assert ds.dtypes[0] == "float32"
        stack = ds.read()
    s2 = stack[:6]
    assert 0 < s2.min() and s2.max() <= 1
    assert stack[6:8].max() < 5 and stack[6:8].min() > -45  # dB
    lc = stack[BANDS.index("LC")]
    assert set(np.unique(lc).astype(int)) <= set(LC_CLASSES)
    assert len(np.unique(lc)) >= 5
    with rasterio.open(scene.labels) as ds:
        assert np.isnan(ds.nodata)
    aoi = json.loads(scene.aoi.read_text())
    lon, lat = np.array(aoi["features"][0]["geometry"]["coordinates"][0]).T
    assert -60 < lon.min() < lon.max() < -48 and -10 < lat.min() < lat.max() < 0  # EPSG:4326, UTM 22S


def test_deterministic_bytes(tmp_path):
    a = make_scene(tmp_path / "a", size=64, seed=11, region=1)
    b = make_scene(tmp_path / "b", size=64, seed=11, region=1)
    c = make_scene(tmp_path / "c", size=64, seed=12, region=1)
    for name in ("stack", "agb", "labels"):
        assert _md5(getattr(a, name)) == _md5(getattr(b, name))
        assert _md5(getattr(a, name)) != _md5(getattr(c, name))
    assert a.aoi.read_text() == b.aoi.read_text()


def test_label_fraction_footprints_and_noise_floor(scene):
    labels = scene.read_labels()
    agb = scene.read_agb()
    m = ~np.isnan(labels)
    frac = m.mean()
    assert 0.013 <= frac <= 0.02
    # footprints: 25 m at 10 m pixels -> clusters of 2-5 pixels sharing one value
    meta = scene.metadata()
    per_fp = m.sum() / meta["labels"]["n_footprints"]
    assert 2.0 <= per_fp <= 5.5
    # labels along tracks: not uniformly spread, rows and columns both covered
    assert m.any(axis=0).mean() > 0.5 and m.any(axis=1).mean() > 0.5
    rmse = float(np.sqrt(np.mean((labels[m].astype(float) - agb[m]) ** 2)))
    assert rmse == pytest.approx(scene.noise_floor_rmse, rel=1e-5)
    assert meta["noise_floor_rmse"] == pytest.approx(rmse, rel=1e-5)
    # multiplicative noise: relative error ~ 25 %, roughly unbiased
    rel = labels[m] / np.maximum(agb[m], 1e-3)
    big = agb[m] > 50
    assert 0.15 < np.std(np.log(rel[big])) < 0.5
    assert abs(np.median(rel[big]) - 1.0) < 0.15


def test_agb_is_saturating_function_of_height(scene):
    ch = np.linspace(0, 80, 200)
    forest = agb_allometry(ch, np.full_like(ch, 1), region=0)
    assert np.all(np.diff(forest) >= 0)
    slope_low = forest[20] - forest[10]
    slope_high = forest[-1] - forest[-11]
    assert slope_high < 0.3 * slope_low  # saturates
    crop = agb_allometry(ch, np.full_like(ch, 4), region=0)
    assert np.all(crop[ch > 5] < forest[ch > 5])
    # the true AGB follows the (noisy) CH band and differs by class
    stack = scene.read_stack()
    agb = scene.read_agb()
    lc = stack[BANDS.index("LC")]
    assert np.corrcoef(stack[BANDS.index("CH")].ravel(), agb.ravel())[0, 1] > 0.7
    assert agb[lc == 1].mean() > 3 * agb[lc == 3].mean()
    assert agb[lc == 5].max() == 0.0


def test_regions_differ(tmp_path):
    r0 = make_scene(tmp_path / "r0", size=96, seed=1, region=0)
    r2 = make_scene(tmp_path / "r2", size=96, seed=1, region=2)
    m0, m2 = r0.metadata(), r2.metadata()
    assert m0["region_name"] != m2["region_name"]
    assert m0["agb_model"]["a"] != m2["agb_model"]["a"]
    s0, s2 = r0.read_stack(), r2.read_stack()
    assert abs(np.median(s0[6]) - np.median(s2[6])) > 0.5  # SAR offset
    # same canopy height maps to different biomass in different regions
    ch = np.array([25.0])
    assert agb_allometry(ch, np.array([1]), 0)[0] != pytest.approx(
        agb_allometry(ch, np.array([1]), 2)[0], rel=0.05
    )


def test_nodata_fraction(tmp_path):
    s = make_scene(tmp_path / "nd", size=128, seed=2, nodata_fraction=0.2)
    stack = s.read_stack()
    nod = np.isnan(stack).all(axis=0)
    assert nod.mean() == pytest.approx(0.2, abs=0.02)
    assert nod[:, 0].all()  # swath-edge strip
    assert np.isnan(s.read_agb()[nod]).all()
    assert np.isnan(s.read_labels()[nod]).all()
    assert (~np.isnan(s.read_labels())).sum() > 0


def test_load_and_bad_parameters(tmp_path, scene):
    again = Scene.load(scene.root)
    assert again.stack == scene.stack and again.noise_floor_rmse == scene.noise_floor_rmse
    with pytest.raises(InputError, match="scene.json"):
        Scene.load(tmp_path)
    with pytest.raises(ConfigError, match="region"):
        make_scene(tmp_path / "x", size=64, region=99)
    with pytest.raises(ConfigError, match="label_fraction"):
        make_scene(tmp_path / "x", size=64, label_fraction=0.0)


def test_cli_synth_prints_noise_floor(tmp_path):
    from typer.testing import CliRunner

    from terracarbon.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["data", "synth", str(tmp_path / "c"), "--size", "64", "--seed", "4", "--json"])
    assert res.exit_code == 0, res.output
    meta = json.loads(res.output)
    assert meta["noise_floor_rmse"] > 0 and meta["size"] == 64
    res = runner.invoke(app, ["data", "synth", str(tmp_path / "c2"), "--size", "64"])
    assert res.exit_code == 0 and "noise floor" in res.output
    res = runner.invoke(app, ["data", "synth", str(tmp_path / "c3"), "--size", "64", "--region", "9"])
    assert res.exit_code == 2
