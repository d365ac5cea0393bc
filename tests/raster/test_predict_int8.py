"""The onnx-int8 and bf16 backends: agreement with eager, calibration cache, CLI option, Dask path.

Tolerance of ``onnx-int8`` against ``eager`` (stated in docs/performance.md): on a small seeded CNN, the mean absolute
difference is at most 0.5 % of the eager map's value range and the 99th percentile at most 2 %; ``bf16`` (autocast)
stays within 2 % / 6 %. Quantisation is lossy, so a few pixels may differ more; the map as a whole may not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from torch import nn
from typer.testing import CliRunner

from terracarbon.errors import ConfigError
from terracarbon.models.registry import save_checkpoint
from terracarbon.raster.io import write_geotiff
from terracarbon.raster.predict import BACKENDS, TilePredictor, predict_raster

pytest.importorskip("onnxruntime")

TRANSFORM = from_origin(500000, 7000000, 10, 10)


def small_cnn(c_in: int = 4) -> nn.Sequential:
    """Three 3x3 convolutions with ReLU and a batch norm: the layer kinds a U-Net quantises.

    A plain ``nn.Sequential`` (no class defined here), so Dask workers can unpickle it.
    """
    return nn.Sequential(
        nn.Conv2d(c_in, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 1, 3, padding=1),
    )


def _smooth_stack(path, bands=4, size=160, seed=0, nodata=None):
    """A smooth multi-band scene (like reflectance), so outputs have structure and a real value range."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    x = np.stack(
        [np.sin(3 * xx * (b + 1)) + np.cos(2 * yy * (b + 2)) + 0.1 * rng.standard_normal((size, size)) for b in range(bands)]
    ).astype("float32")
    if nodata is not None:
        x[:, 5:15, 20:40] = nodata
    write_geotiff(path, x, crs="EPSG:32722", transform=TRANSFORM, nodata=nodata)
    return path


@pytest.fixture
def model():
    torch.manual_seed(0)
    m = small_cnn()
    m.eval()
    return m


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1), ds.nodata


def _agreement(a: np.ndarray, b: np.ndarray, ok: np.ndarray) -> tuple[float, float]:
    rng = float(a[ok].max() - a[ok].min())
    d = np.abs(a[ok] - b[ok]) / rng
    return float(d.mean()), float(np.percentile(d, 99))


def test_backends_listed():
    assert {"onnx-int8", "bf16"} <= set(BACKENDS)
    with pytest.raises(ConfigError, match="onnx-int8"):
        predict_raster(TilePredictor(nn.Identity()), "x.tif", "y.tif", backend="int4")


def test_onnx_int8_agrees_with_eager_and_is_cached(model, tmp_path):
    src = _smooth_stack(tmp_path / "in.tif", nodata=-9999.0)
    pred = TilePredictor.for_regression(
        model, clip_min=None, mean=[0.0] * 4, std=[1.0] * 4, onnx_cache=tmp_path / "m.onnx"
    )
    kw = dict(tile_size=64, overlap=16, progress_bar=False)
    eager, nd = _read(predict_raster(pred, src, tmp_path / "eager.tif", backend="eager", **kw))
    int8, _ = _read(predict_raster(pred, src, tmp_path / "int8.tif", backend="onnx-int8", **kw))
    ok = eager != nd
    assert (int8 == nd).sum() == (~ok).sum() and (int8[~ok] == nd).all(), "nodata kept"
    mean_d, p99 = _agreement(eager, int8, ok)
    assert mean_d <= 0.005 and p99 <= 0.02, (mean_d, p99)
    assert not np.array_equal(eager, int8), "the int8 graph really ran"
    q = tmp_path / "m.int8.onnx"
    stamp = json.loads((tmp_path / "m.int8.onnx.json").read_text())
    assert q.exists() and stamp["fingerprint"] == pred.fingerprint() and "in.tif" in stamp["calibration"]
    # a second run reuses the cached quantised model (same file, not rebuilt)
    mtime = q.stat().st_mtime_ns
    again, _ = _read(predict_raster(pred, src, tmp_path / "int8b.tif", backend="onnx-int8", **kw))
    assert q.stat().st_mtime_ns == mtime and np.array_equal(again, int8)


def test_bf16_agrees_with_eager(model, tmp_path):
    src = _smooth_stack(tmp_path / "in.tif", size=96)
    pred = TilePredictor.for_regression(model, clip_min=None)
    kw = dict(tile_size=64, overlap=16, progress_bar=False)
    eager, _ = _read(predict_raster(pred, src, tmp_path / "eager.tif", backend="eager", **kw))
    bf16, _ = _read(predict_raster(pred, src, tmp_path / "bf16.tif", backend="bf16", **kw))
    mean_d, p99 = _agreement(eager, bf16, np.ones_like(eager, bool))
    assert mean_d <= 0.02 and p99 <= 0.06, (mean_d, p99)


def test_int8_dask_run_is_byte_identical(model, tmp_path):
    """The client quantises once; workers run the same int8 graph, so the map matches the single-process one."""
    pytest.importorskip("distributed")
    src = _smooth_stack(tmp_path / "in.tif", size=96)
    pred = TilePredictor.for_regression(model, clip_min=None, onnx_cache=tmp_path / "m.onnx", mean=[0.0] * 4, std=[1.0] * 4)
    kw = dict(tile_size=64, overlap=16, progress_bar=False, backend="onnx-int8")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = predict_raster(pred, src, tmp_path / "single.tif", **kw)
        dist = predict_raster(pred, src, tmp_path / "dask.tif", scheduler="local:1", **kw)
    finally:
        torch.set_num_threads(threads)
    assert dist.read_bytes() == single.read_bytes()


def test_cli_accepts_onnx_int8(tmp_path):
    from terracarbon.cli import app

    names = [f"B{i}" for i in range(1, 5)]
    src = tmp_path / "stack.tif"
    rng = np.random.default_rng(2)
    write_geotiff(
        src,
        (rng.random((4, 80, 90)) * 1000).astype("float32"),
        crs="EPSG:32722",
        transform=TRANSFORM,
        band_descriptions=names,
    )
    torch.manual_seed(0)
    spec = {
        "arch": "unet",
        "in_channels": 4,
        "classes": 1,
        "encoder_name": "resnet18",
        "encoder_depth": 3,
        "decoder_channels": [16, 16, 16],
    }
    from terracarbon.models.registry import build_model

    meta = {"task": "regression", "bands": names, "mean": [500.0] * 4, "std": [300.0] * 4, "target_scale": 50.0}
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model(spec), spec, meta)
    runner = CliRunner()
    out = tmp_path / "agb.tif"
    res = runner.invoke(
        app,
        ["biomass", "predict", str(src), str(out), "-c", str(ckpt), "--backend", "onnx-int8", "--tile-size", "64"],
    )
    assert res.exit_code == 0, res.output
    assert out.exists() and (tmp_path / "m.int8.onnx").exists()
    bad = runner.invoke(
        app, ["biomass", "predict", str(src), str(tmp_path / "x.tif"), "-c", str(ckpt), "--backend", "int4"]
    )
    assert bad.exit_code != 0 and "onnx-int8" in bad.output
