"""Every predict selects the model's bands by name: shuffled or extra bands give the same map; missing -> clear error."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from terracarbon.biomass.predict import predict_biomass
from terracarbon.errors import InputError
from terracarbon.models.registry import build_model, register_arch, save_checkpoint
from terracarbon.raster.checkpoint import (
    UnitsWarning,
    predict_checkpoint,
    predictor_from_checkpoint,
    resolve_in_bands,
)
from terracarbon.raster.io import write_geotiff

BANDS = ["B02", "B04", "B8A"]
SPEC = {"arch": "test_tiny_conv", "in_channels": 3}


@register_arch("test_tiny_conv")
def _tiny(in_channels: int):
    """A 3x3 convolution: small and fast, and its output depends on which band is which."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    import torch

    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("m") / "agb.pt"
    meta = {"task": "regression", "bands": BANDS, "mean": [0.1, 0.2, 0.3], "std": [0.05, 0.06, 0.07],
            "input_units": "reflectance"}
    return save_checkpoint(path, build_model(SPEC), SPEC, meta)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {b: rng.uniform(0, 0.5, (64, 64)).astype(np.float32) for b in [*BANDS, "B03", "HH"]}


def _stack(path, data, names, described=True, tags=None):
    arr = np.stack([data[n] for n in names])
    write_geotiff(path, arr, crs="EPSG:32629", transform=from_origin(300000, 3300000, 10, 10),
                  nodata=float("nan"), band_descriptions=names if described else None, tags=tags)
    return path


def _predict(ckpt, src, dst):
    predict_biomass(ckpt, src, dst, tile_size=32, overlap=8, progress=False, track=False, resume=False)
    with rasterio.open(dst) as ds:
        return ds.read(1)


def test_shuffled_and_extra_bands_predict_the_same_map(ckpt, data, tmp_path):
    ref = _predict(ckpt, _stack(tmp_path / "a.tif", data, BANDS), tmp_path / "a_agb.tif")
    assert np.nanstd(ref) > 0 and (ref > 0).mean() > 0.2  # a map that shows which band is which
    shuffled = ["HH", "B8A", "B03", "B02", "B04"]  # other order + two extra bands
    assert resolve_in_bands({"bands": BANDS}, _stack(tmp_path / "b.tif", data, shuffled)) == [4, 5, 2]
    got = _predict(ckpt, tmp_path / "b.tif", tmp_path / "b_agb.tif")
    np.testing.assert_array_equal(got, ref)
    # the generic entry point (land cover, trees) and the predictor factory select the same bands
    predict_checkpoint(ckpt, tmp_path / "b.tif", tmp_path / "c_agb.tif", tile_size=32, overlap=8,
                       progress_bar=False, track=False, resume=False)
    with rasterio.open(tmp_path / "c_agb.tif") as ds:
        np.testing.assert_array_equal(ds.read(1), ref)
    assert predictor_from_checkpoint(ckpt, stack=tmp_path / "b.tif").in_bands == [4, 5, 2]
    # band names match ignoring case
    assert resolve_in_bands({"bands": BANDS}, _stack(tmp_path / "l.tif", {k.lower(): v for k, v in data.items()},
                                                        ["b8a", "b04", "b02"])) == [3, 2, 1]


def test_missing_band_is_a_clear_error(ckpt, data, tmp_path):
    src = _stack(tmp_path / "m.tif", data, ["B02", "B03", "B04", "HH"])
    with pytest.raises(InputError, match=r"m\.tif.*no band B8A"):
        _predict(ckpt, src, tmp_path / "m_agb.tif")
    # HLS-named model on a stack with Sentinel-2 names: the error says how to rebuild the stack
    with pytest.raises(InputError, match="--bands BLUE,RED"):
        resolve_in_bands({"bands": ["BLUE", "RED"]}, src)


def test_unnamed_stack_keeps_positional_behaviour(ckpt, data, tmp_path):
    ref = _predict(ckpt, _stack(tmp_path / "a.tif", data, BANDS), tmp_path / "a_agb.tif")
    got = _predict(ckpt, _stack(tmp_path / "u.tif", data, BANDS, described=False), tmp_path / "u_agb.tif")
    np.testing.assert_array_equal(got, ref)
    swapped = _predict(ckpt, _stack(tmp_path / "s.tif", data, BANDS[::-1], described=False), tmp_path / "s_agb.tif")
    assert not np.allclose(swapped, ref)  # positional: an unnamed stack in another order gives another map
    with pytest.raises(InputError, match="without names"):
        _predict(ckpt, _stack(tmp_path / "u4.tif", data, [*BANDS, "HH"], described=False), tmp_path / "u4_agb.tif")
    # RGB-style checkpoints with explicit in_bands keep their positions on rasters named otherwise
    rgb = {"bands": ["red", "green", "blue"], "in_bands": [1, 2, 3]}
    assert resolve_in_bands(rgb, _stack(tmp_path / "o.tif", data, ["B02", "B03", "B04", "HH"])) == [1, 2, 3]


def test_units_mismatch_warns_in_one_line(ckpt, data, tmp_path):
    src = _stack(tmp_path / "x.tif", data, BANDS, tags={"TERRACARBON_UNITS": "reflectance_x10000"})
    with pytest.warns(UnitsWarning, match="reflectance_x10000.*reflectance") as rec:
        predictor_from_checkpoint(ckpt, stack=src)
    assert "\n" not in str(rec[0].message)
    ok = _stack(tmp_path / "y.tif", data, BANDS, tags={"TERRACARBON_UNITS": "reflectance"})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnitsWarning)
        predictor_from_checkpoint(ckpt, stack=ok)


def test_engine_streams_a_stack_vrt_like_its_cog(ckpt, tmp_path):
    """A built stack (extra bands, another order) predicts by name; the VRT (no copy) gives the COG's map."""
    from terracarbon.data.sentinel2 import write_s2_lookalike
    from terracarbon.data.stack import Grid, build_stack

    scl = np.full((32, 32), 4, np.uint8)
    scl[4:10, 4:10] = 9
    item = write_s2_lookalike(tmp_path, layout="earth-search", size=64, baseline="04.00", scl=scl,
                              bands=["B02", "B03", "B04", "B8A"])
    grid = Grid(rasterio.crs.CRS.from_epsg(32629), from_origin(300000, 3300000, 10, 10), 64, 64)
    maps = []
    for name in ("stack.tif", "stack.vrt"):
        src = build_stack([item], out=tmp_path / name, grid=grid, bands=["B8A", "B03", "B04", "B02"],
                          progress_bar=False)
        maps.append(_predict(ckpt, src, tmp_path / f"agb_{name}.tif"))
    np.testing.assert_array_equal(maps[0], maps[1])
    assert np.isfinite(maps[0][:, 30:]).all() and (maps[0][8:20, 8:20] == -9999).all()  # clouds -> map nodata
