"""The granite-layout network (Swin + UperNet + PixelShuffle head) on the ONNX backends.

Swin pads each stage to whole windows and builds the shifted-window mask from the feature size; UperNet's pyramid
pooling pools a 7×7 map to 2×2, 3×3 and 6×6 bins, which ONNX's pooling ops cannot express. The engine therefore exports
this network for its one tile size (``onnx_static_tiles``) and the pooling as two matmuls with PyTorch's bin
matrices; the map must equal the eager one.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from rasterio.transform import from_origin

from terracarbon.errors import ConfigError
from terracarbon.models.upernet import TerraTorchRegressor, _adaptive_pool_matrix
from terracarbon.raster.io import write_geotiff
from terracarbon.raster.predict import TilePredictor, _onnx_export, predict_raster

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize(("n", "s"), [(7, 1), (7, 2), (7, 3), (7, 6), (14, 6), (5, 3)])
def test_adaptive_pool_matrix_is_pytorch_pooling(n, s):
    x = torch.randn(2, 3, n, n + 1)
    ph = torch.from_numpy(_adaptive_pool_matrix(n, s))
    pw = torch.from_numpy(_adaptive_pool_matrix(n + 1, s))
    torch.testing.assert_close(ph @ x @ pw.T, F.adaptive_avg_pool2d(x, s), atol=1e-6, rtol=1e-6)


def _tiny_granite() -> TerraTorchRegressor:
    torch.manual_seed(0)
    m = TerraTorchRegressor(
        6, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), decoder_channels=16,
        head_learned_upscale_layers=2, head_channel_list=[16],
    ).eval()
    with torch.no_grad():  # non-trivial norms and biases, so that a wrong graph cannot hide behind zeros
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def test_granite_layout_onnx_map_equals_eager(tmp_path):
    model = _tiny_granite()
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(6, 300, 260)) * 500 + 1500).astype("float32")
    src = tmp_path / "hls.tif"
    write_geotiff(src, x, crs="EPSG:32630", transform=from_origin(400000, 5000000, 30, 30))
    pred = TilePredictor.for_regression(
        model, mean=[1500.0] * 6, std=[500.0] * 6, clip_min=None, onnx_cache=tmp_path / "m.onnx"
    )
    maps = {}
    for backend in ("eager", "onnx"):
        out = predict_raster(
            pred, src, tmp_path / f"{backend}.tif", tile_size=224, overlap=32, backend=backend, progress_bar=False
        )
        with rasterio.open(out) as ds:
            maps[backend] = ds.read(1)
    assert np.abs(maps["eager"]).max() > 0
    np.testing.assert_allclose(maps["onnx"], maps["eager"], atol=1e-4, rtol=1e-4)
    # exported once, for the 224 px tiles, beside the checkpoint
    assert (tmp_path / "m.t224.onnx").exists()


def test_static_export_needs_tile_size():
    pred = TilePredictor.for_regression(_tiny_granite(), mean=[0.0] * 6, std=[1.0] * 6)
    with pytest.raises(ConfigError, match="one tile size"):
        _onnx_export(pred)
