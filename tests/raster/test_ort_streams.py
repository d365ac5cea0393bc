"""onnxruntime batches on concurrent single-threaded streams (``ORT_STREAMS``) give the one-stream map.

With several streams, batches finish out of order; the engine must still blend them in submission order, so the map
equals the one-stream run, and an error inside a stream must reach the caller.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from torch import nn

from terracarbon.raster import predict as engine
from terracarbon.raster.io import write_geotiff
from terracarbon.raster.predict import TilePredictor, predict_raster

pytest.importorskip("onnxruntime")


def _model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 3, padding=1)).eval()


def _stack(path, size=150):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    x = np.stack([np.sin(4 * xx * (b + 1)) + yy + 0.1 * rng.standard_normal((size, size)) for b in range(3)])
    write_geotiff(path, x.astype("float32"), crs="EPSG:32630", transform=from_origin(0, 0, 10, 10))
    return path


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_streams_give_the_one_stream_map(tmp_path, monkeypatch, backend):
    src = _stack(tmp_path / "in.tif")
    pred = TilePredictor(_model(), out_channels=2, mean=[0.0] * 3, std=[1.0] * 3, onnx_cache=tmp_path / "m.onnx")
    kw = dict(tile_size=32, overlap=8, batch_size=2, backend=backend, progress_bar=False, resume=False)
    maps = {}
    for n in (1, 3):
        monkeypatch.setenv("TERRACARBON_ORT_STREAMS", str(n))
        assert engine._model_streams(backend, "cpu") == n
        with rasterio.open(predict_raster(pred, src, tmp_path / f"s{n}.tif", **kw)) as ds:
            maps[n] = ds.read()
    assert np.abs(maps[1]).max() > 0
    np.testing.assert_allclose(maps[3], maps[1], atol=1e-5, rtol=1e-5)


def test_torch_backends_use_one_stream():
    assert engine._model_streams("eager", "cpu") == 1
    assert engine._model_streams("onnx", "cuda") == 1


def test_error_in_a_stream_reaches_the_caller(tmp_path, monkeypatch):
    src = _stack(tmp_path / "in.tif")
    pred = TilePredictor(_model(), out_channels=2, mean=[0.0] * 3, std=[1.0] * 3, onnx_cache=tmp_path / "m.onnx")
    monkeypatch.setenv("TERRACARBON_ORT_STREAMS", "2")
    calls = {"n": 0}
    real = engine._Runner.__call__

    def flaky(self, x):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("stream failed")
        return real(self, x)

    monkeypatch.setattr(engine._Runner, "__call__", flaky)
    with pytest.raises(RuntimeError, match="stream failed"):
        predict_raster(pred, src, tmp_path / "out.tif", tile_size=32, overlap=8, batch_size=2, backend="onnx",
                       progress_bar=False)
    assert not (tmp_path / "out.tif").exists()
