"""Streaming training data: windowed reads equal the in-memory path; stack nodata never reaches the loss."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from terracarbon.biomass.datasets import (
    GridPatchDataset,
    RandomPatchDataset,
    band_stats,
    label_stats,
    load_scene,
    open_scene,
)
from terracarbon.raster.io import band_names, write_geotiff

TINY = {"arch": "unet", "encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 16, 16]}
FAST = {"epochs": 1, "samples_per_epoch": 16, "batch_size": 8, "patch_size": 32, "eval_tile_size": 64}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from terracarbon.data.synthetic.scenes import make_scene

    return make_scene(tmp_path_factory.mktemp("stream") / "s", size=160, seed=4, nodata_fraction=0.1)


@pytest.fixture(scope="module")
def nodata_pair(scene, tmp_path_factory):
    """The scene's stack with a numeric nodata (-9999) block under labels, a 2-band label raster, a units tag."""
    root = tmp_path_factory.mktemp("nodata")
    with rasterio.open(scene.stack) as ds:
        img, names, crs, tr = ds.read(), band_names(ds), ds.crs, ds.transform
    with rasterio.open(scene.labels) as ds:
        lab = ds.read(1)
    img = np.where(np.isfinite(img), img, -9999.0).astype(np.float32)
    ok = np.isfinite(lab) & np.all(img != -9999.0, axis=0)
    ok[:10], ok[-10:], ok[:, :10], ok[:, -10:] = False, False, False, False
    rr, cc = np.nonzero(ok)
    hole = (slice(int(rr[0]) - 3, int(rr[0]) + 4), slice(int(cc[0]) - 3, int(cc[0]) + 4))
    img[(slice(None), *hole)] = -9999.0
    lab = lab.copy()
    lab[hole] = 1e6  # absurd labels on nodata: they must never count
    stack = write_geotiff(
        root / "stack.tif", img, crs=crs, transform=tr, nodata=-9999.0, band_descriptions=names,
        tags={"TERRACARBON_UNITS": "reflectance"}, cog=False,
    )
    labels = write_geotiff(
        root / "labels.tif", np.stack([lab, np.full_like(lab, 3.0)]), crs=crs, transform=tr,
        nodata=float("nan"), band_descriptions=["AGBD", "AGBD_SE"], cog=False,
    )
    return stack, labels, hole


def test_streamed_scene_equals_in_memory(scene):
    mem, src = load_scene(scene), open_scene(scene, window=64)  # small windows: many blocks, edges included
    for region in (None, (0.0, 0.8), (0.8, 1.0)):
        for a, b in zip(mem.labelled_pixels(region), src.labelled_pixels(region)):
            np.testing.assert_array_equal(a, b)
        assert label_stats([mem], region) == pytest.approx(label_stats([src], region))
        np.testing.assert_allclose(band_stats([mem], region), band_stats([src], region, window=64), rtol=1e-9)
    mean, std = band_stats([mem], (0.0, 0.8))
    d_mem = RandomPatchDataset([mem], 32, 12, mean, std, region=(0.0, 0.8), seed=5)
    d_src = RandomPatchDataset([src], 32, 12, mean, std, region=(0.0, 0.8), seed=5)
    for i in range(12):
        a, b = d_mem[i], d_src[i]
        torch.testing.assert_close(a["image"], b["image"])
        torch.testing.assert_close(a["label"], b["label"], equal_nan=True)
    g_mem = GridPatchDataset([mem], 64, mean, std, region=(0.8, 1.0))
    g_src = GridPatchDataset([src], 64, mean, std, region=(0.8, 1.0))
    n_mem = sum(int(torch.isfinite(g_mem[i]["label"]).sum()) for i in range(len(g_mem)))
    n_src = sum(int(torch.isfinite(g_src[i]["label"]).sum()) for i in range(len(g_src)))
    assert n_mem == n_src == len(src.labelled_pixels((0.8, 1.0))[0]) > 0


def test_dataloader_workers_open_their_own_handles(scene):
    from torch.utils.data import DataLoader

    src = open_scene(scene)
    mean, std = band_stats([src])
    ds = RandomPatchDataset([src], 32, 16, mean, std, seed=1)
    batches = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert len(batches) == 4 and batches[0]["image"].shape == (4, 12, 32, 32)
    assert src._handles is None  # the main process never opened the rasters for the workers


def test_stack_nodata_is_excluded(nodata_pair):
    stack, labels, hole = nodata_pair
    src = open_scene((stack, labels))
    assert src.vals.max() < 1e5  # the absurd labels under nodata were dropped
    rr, cc = src.labelled_pixels()
    assert not ((rr >= hole[0].start) & (rr < hole[0].stop) & (cc >= hole[1].start) & (cc < hole[1].stop)).any()
    img, lab, valid = src.read(hole[0].start, hole[1].start, 7, 7)
    assert not valid.any() and (img == 0).all()  # nodata inputs are zeroed, never -9999
    mean, std = band_stats([src])
    assert max(abs(m) for m in mean) < 1000  # -9999 did not leak into the normalisation
    ds = RandomPatchDataset([src], 32, 8, mean, std, label_bias=1.0, seed=0)
    for i in range(8):
        lab = ds[i]["label"]
        assert float(torch.nan_to_num(lab, nan=0.0).max()) < 1e5


@pytest.mark.slow
def test_train_on_pair_records_units_and_excludes_nodata(nodata_pair, tmp_path):
    from terracarbon.biomass.train import train_biomass
    from terracarbon.models.registry import load_checkpoint

    stack, labels, _ = nodata_pair
    res = train_biomass(
        [(stack, labels)], model_spec=TINY, out_dir=tmp_path / "run", progress=False, track=False, **FAST
    )
    _, _, meta = load_checkpoint(res.checkpoint)
    assert meta["input_units"] == "reflectance"
    src = open_scene((stack, labels))
    assert meta["n_train_labels"] == len(src.label_values((0.0, 0.8)))
    assert meta["target_offset"] < 1e4  # the mean label, unaffected by the 1e6 labels on nodata
    assert np.isfinite(res.metrics["rmse"])
