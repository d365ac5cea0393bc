"""The tiled prediction engine: blending, nodata, georeferencing, backends, resume, Dask, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from torch import nn

from terracarbon.errors import ConfigError, InputError
from terracarbon.models.registry import build_model, load_checkpoint, save_checkpoint
from terracarbon.raster.checkpoint import predictor_from_checkpoint
from terracarbon.raster.io import open_raster, write_geotiff
from terracarbon.raster.predict import TileGrid, TilePredictor, predict_raster

TRANSFORM = from_origin(500000, 7000000, 10, 10)


class Affine1x1(nn.Module):
    """A per-pixel linear model: blending must reproduce it exactly, whatever the tiling."""

    def __init__(self, c_in: int, c_out: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 1)
        with torch.no_grad():
            self.conv.weight.copy_(
                torch.arange(1, c_in * c_out + 1, dtype=torch.float32).reshape(c_out, c_in, 1, 1)
            )
            self.conv.bias.fill_(0.5)

    def forward(self, x):
        return self.conv(x)


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((3, 300, 410)).astype("float32")
    x[:, 10:30, 20:60] = -1  # a nodata hole
    path = tmp_path / "in.tif"
    write_geotiff(path, x, crs="EPSG:32722", transform=TRANSFORM, nodata=-1)
    return path, x


class SmallCNN(nn.Sequential):
    """A small CNN with zero padding: its outputs near tile borders differ, as a U-Net's do."""

    def __init__(self):
        super().__init__(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 1, 3, padding=1),
        )


@pytest.fixture
def unet():
    torch.manual_seed(0)
    return SmallCNN()


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds


def test_grid_covers_raster_and_strips_partition_rows():
    g = TileGrid(1000, 700, 256, 32)
    assert g.stride == 224
    last = g.window(g.n_rows - 1, g.n_cols - 1)
    assert last.row_off + last.height >= 1000 and last.col_off + last.width >= 700
    rows = [r for i in range(g.n_rows) for r in range(*g.strip_rows(i))]
    assert rows == list(range(1000))
    w = g.blend_weights()
    assert w.min() > 0 and w[128, 128] == 1.0 and w[0, 0] < w[16, 16]
    with pytest.raises(ConfigError):
        TileGrid(100, 100, 64, 40)


def test_blending_is_seamless_and_nodata_georeferencing_kept(scene, tmp_path):
    src, x = scene
    model = Affine1x1(3)
    out = predict_raster(
        TilePredictor.for_regression(model, clip_min=None),
        src,
        tmp_path / "o.tif",
        tile_size=64,
        overlap=16,
        batch_size=3,
        progress_bar=False,
    )
    y, profile, _ = read(out)
    expected = 1 * x[0] + 2 * x[1] + 3 * x[2] + 0.5
    hole = np.zeros(x.shape[1:], bool)
    hole[10:30, 20:60] = True
    assert np.allclose(y[0][~hole], expected[~hole], atol=1e-5)
    assert (y[0][hole] == -9999).all()
    assert profile["crs"].to_epsg() == 32722 and profile["transform"] == TRANSFORM
    assert profile["tiled"] and profile["compress"] == "deflate"
    with rasterio.open(out) as ds:
        assert ds.overviews(1), "cloud-optimised output has overviews"
        assert ds.descriptions[0] == "prediction"


def test_overlap_hides_tile_seams(scene, unet, tmp_path):
    """With a real CNN, tile borders differ; blended overlap must be smoother across seams than no overlap."""
    src, _ = scene
    pred = TilePredictor.for_regression(unet, clip_min=None)
    hard = read(predict_raster(pred, src, tmp_path / "a.tif", tile_size=64, overlap=0, progress_bar=False))[
        0
    ][0]
    soft = read(predict_raster(pred, src, tmp_path / "b.tif", tile_size=64, overlap=16, progress_bar=False))[
        0
    ][0]
    # vertical seams of the overlap-0 run sit at columns 64, 128, ...; measure the jump across them
    seam_cols = np.arange(64, 400, 64)

    def jump(a):
        rows = slice(40, 290)
        return np.abs(a[rows, seam_cols] - a[rows, seam_cols - 1]).mean()

    assert jump(soft) < jump(hard)


def test_backends_agree(scene, unet, tmp_path):
    src, _ = scene
    pred = TilePredictor.for_regression(
        unet, clip_min=None, mean=[0.5] * 3, std=[0.3] * 3, onnx_cache=tmp_path / "m.onnx"
    )
    outs = {}
    for be in ("eager", "channels-last", "onnx"):
        outs[be] = read(
            predict_raster(
                pred, src, tmp_path / f"{be}.tif", tile_size=64, overlap=16, backend=be, progress_bar=False
            )
        )[0]
    assert np.abs(outs["eager"] - outs["channels-last"]).max() < 1e-3
    assert np.abs(outs["eager"] - outs["onnx"]).max() < 1e-3
    assert (tmp_path / "m.onnx").exists()


def test_killed_run_resumes_to_identical_file(scene, unet, tmp_path):
    src, _ = scene
    pred = TilePredictor.for_regression(unet, clip_min=None)
    full = predict_raster(pred, src, tmp_path / "full.tif", tile_size=64, overlap=16, progress_bar=False)

    class Killed(Exception):
        pass

    done_first = []

    def kill_after_two(done, total):
        done_first.append(done)
        if done == 2:
            raise Killed

    dst = tmp_path / "resumed.tif"
    with pytest.raises(Killed):
        predict_raster(pred, src, dst, tile_size=64, overlap=16, progress_bar=False, on_strip=kill_after_two)
    assert not dst.exists(), "no partial output at the destination"
    second = []
    predict_raster(
        pred, src, dst, tile_size=64, overlap=16, progress_bar=False, on_strip=lambda d, t: second.append(d)
    )
    assert second[0] == 3, "the rerun continued after the two finished tile rows"
    assert dst.read_bytes() == full.read_bytes()
    assert not list(tmp_path.glob(".resumed.tif.partial*")), "resume state cleaned up"


def test_segmentation_output_is_paletted_with_class_names(scene, tmp_path):
    src, x = scene
    model = Affine1x1(3, 3)
    pred = TilePredictor.for_segmentation(
        model, class_names=["a", "b", "c"], colormap={0: (0, 0, 0), 1: (255, 0, 0), 2: (0, 255, 0)}
    )
    out = predict_raster(pred, src, tmp_path / "cls.tif", tile_size=64, overlap=16, progress_bar=False)
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255
        assert ds.colormap(1)[1][:3] == (255, 0, 0)
        assert ds.tags()["class_names"] == '["a", "b", "c"]'
        y = ds.read(1)
    assert set(np.unique(y)) <= {0, 1, 2, 255}
    assert (y[10:30, 20:60] == 255).all()


def test_checkpoint_roundtrip_and_predictor(tmp_path):
    unet = build_model(
        {"arch": "unet", "in_channels": 3, "classes": 1, "encoder_name": "resnet18", "encoder_depth": 3}
    )
    spec = {"arch": "unet", "in_channels": 3, "classes": 1, "encoder_name": "resnet18", "encoder_depth": 3}
    ckpt = save_checkpoint(
        tmp_path / "m.pt", unet, spec, {"task": "regression", "mean": [0.5] * 3, "std": [0.3] * 3}
    )
    model, spec2, meta = load_checkpoint(ckpt)
    assert spec2 == spec and meta["task"] == "regression"
    pred = predictor_from_checkpoint(ckpt)
    assert (
        pred.in_channels == 3
        and pred.fingerprint()
        == TilePredictor(unet, mean=[0.5] * 3, std=[0.3] * 3, out_count=1).fingerprint()
    )
    # a spec naming an initial-weights file stays loadable after that file is gone
    ckpt2 = save_checkpoint(tmp_path / "m2.pt", unet, {**spec, "init_from": str(tmp_path / "gone.pt")}, {})
    _, spec3, meta3 = load_checkpoint(ckpt2)
    assert "init_from" not in spec3 and meta3["weights_source"]["init_from"].endswith("gone.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="bad.pt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_bad_inputs_name_the_file(tmp_path, scene):
    src, x = scene
    pred = TilePredictor.for_regression(Affine1x1(4), mean=[0] * 4, std=[1] * 4)
    with pytest.raises(InputError, match=r"in.tif: has 3 band\(s\) but the model expects 4"):
        predict_raster(pred, src, tmp_path / "o.tif", progress_bar=False)
    assert not (tmp_path / "o.tif").exists()
    with pytest.raises(InputError, match="does not exist"):
        open_raster(tmp_path / "missing.tif")
    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(nocrs, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32") as ds:
        ds.write(np.zeros((1, 8, 8), "float32"))
    with pytest.raises(InputError, match="no CRS"):
        open_raster(nocrs)
    truncated = tmp_path / "trunc.tif"
    data = src.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="trunc.tif"):
        open_raster(truncated)


def test_dask_run_is_byte_identical(tmp_path):
    """Dask workers (other processes) must reproduce the single-process map bit for bit, thread count included."""
    pytest.importorskip("distributed")
    rng = np.random.default_rng(3)
    src = tmp_path / "in12.tif"
    write_geotiff(
        src, (rng.random((12, 200, 260)) * 100).astype("float32"), crs="EPSG:32722", transform=TRANSFORM
    )
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(12, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 1, 3, padding=1))
    pred = TilePredictor.for_regression(model, clip_min=None)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        single = predict_raster(
            pred, src, tmp_path / "single.tif", tile_size=64, overlap=16, progress_bar=False
        )
        dist = predict_raster(
            pred,
            src,
            tmp_path / "dask.tif",
            tile_size=64,
            overlap=16,
            progress_bar=False,
            scheduler="local:2",
        )
    finally:
        torch.set_num_threads(threads)
    assert dist.read_bytes() == single.read_bytes()
