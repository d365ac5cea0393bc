"""``biomass predict`` accepts a GFM checkpoint through the one tiled engine (tile sizes other than img_size)."""

from __future__ import annotations

import numpy as np
import rasterio
import torch

from terracarbon.biomass.predict import predict_biomass
from terracarbon.models.registry import build_model, save_checkpoint

MINI = {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 4, 8), "window_size": 4}


def test_gfm_checkpoint_predicts_through_tiled_engine(stacks, tmp_path):
    torch.manual_seed(0)
    spec = {"arch": "gfm", "in_channels": 6, "classes": 1, "img_size": 64, **MINI}
    model = build_model(spec).eval()
    meta = {
        "task": "regression",
        "bands": [f"B{i}" for i in range(1, 7)],
        "mean": [0.0] * 6,
        "std": [1.0] * 6,
        "target_scale": 50.0,
        "target_offset": 100.0,
    }
    ckpt = save_checkpoint(tmp_path / "gfm.pt", model, spec, meta)
    # 96 px raster, 48 px tiles (not the model's img_size and not a multiple of the 32 px encoder stride)
    out = predict_biomass(
        ckpt, stacks[1], tmp_path / "agb.tif", tile_size=48, overlap=8, progress=False, track=False
    )
    with rasterio.open(out) as ds, rasterio.open(stacks[1]) as src:
        agb = ds.read(1)
        assert ds.crs == src.crs and ds.transform == src.transform and agb.shape == (96, 96)
    assert np.isfinite(agb).all() and (agb >= 0).all() and agb.std() > 0
