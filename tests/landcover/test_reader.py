"""LandCover.ai reader: official tiling (count, numbering, pixel-exact content), splits, raw orthophotos, errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from terracarbon.data.landcover_ai import (
    CLASS_NAMES,
    LandCoverAIDataset,
    LandCoverAIOrthophotos,
    official_tile_grid,
    read_mask_tile,
    split_orthophotos,
    write_lookalike_release,
    write_mask,
    write_orthophoto,
)
from terracarbon.errors import InputError


def _jpeg_roundtrip(rgb_hwc: np.ndarray) -> np.ndarray:
    """Encode like OpenCV's cv2.imwrite defaults (quality 95, 4:2:0) and decode."""
    buf = io.BytesIO()
    Image.fromarray(rgb_hwc).save(buf, format="JPEG", quality=95, subsampling="4:2:0")
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@pytest.fixture(scope="module")
def release_512(tmp_path_factory):
    """Two look-alike orthophotos cut with the official 512 px tiling (25 cm and 50 cm)."""
    root = tmp_path_factory.mktemp("lcai512")
    return write_lookalike_release(root, shapes=[(1100, 1300), (600, 530)], resolutions=[0.25, 0.5], seed=3)


def test_official_grid_numbering_skips_partial_tiles():
    # 1100 x 1300 px -> 3 x 3 grid positions (k = 0..8), only 2 x 2 full tiles: k = 0, 1, 3, 4
    grid = official_tile_grid(1100, 1300, 512)
    assert [(t.k, t.row, t.col) for t in grid] == [(0, 0, 0), (1, 0, 512), (3, 512, 0), (4, 512, 512)]
    # exact multiples keep every tile; smaller than one tile keeps none
    assert [t.k for t in official_tile_grid(1024, 1536, 512)] == list(range(6))
    assert official_tile_grid(511, 4000, 512) == []


def test_release_layout_and_tile_count(release_512):
    root = release_512
    images = sorted(p.name for p in (root / "images").glob("*.tif"))
    assert images == sorted(p.name for p in (root / "masks").glob("*.tif"))
    out = sorted(p.name for p in (root / "output").iterdir())
    a, b = (p[:-4] for p in images)  # sorted stems: M-33-20-D-c-4-2 (1100x1300), M-33-32-B-b-4-4 (600x530)
    expected = [f"{a}_{k}" for k in (0, 1, 3, 4)] + [f"{b}_0"]
    assert out == sorted([f"{s}.jpg" for s in expected] + [f"{s}_m.png" for s in expected])
    lists = {s: (root / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    assert sorted(sum(lists.values(), [])) == sorted(expected)  # a partition of all tiles
    assert all(lists.values())


def test_tiles_are_pixel_exact_crops(release_512):
    root = release_512
    photos = LandCoverAIOrthophotos(root)
    assert len(photos) == 2
    big = photos.by_stem("M-33-20-D-c-4-2")
    assert big.shape == (1100, 1300) and big.crs.to_epsg() == 2180 and big.resolution == pytest.approx(0.25)
    assert photos.by_stem("M-33-32-B-b-4-4").resolution == pytest.approx(0.5)
    rgb, mask = big.read_image(), big.read_mask()
    for k, r, c in [(0, 0, 0), (1, 0, 512), (3, 512, 0), (4, 512, 512)]:
        src_rgb = rgb[:, r : r + 512, c : c + 512].transpose(1, 2, 0)
        src_mask = mask[r : r + 512, c : c + 512]
        m = np.asarray(Image.open(root / "output" / f"M-33-20-D-c-4-2_{k}_m.png"))
        assert m.shape == (512, 512, 3)  # OpenCV writes the mask as 3 equal channels
        assert (m == src_mask[:, :, None]).all()
        tile = np.asarray(Image.open(root / "output" / f"M-33-20-D-c-4-2_{k}.jpg"))
        assert tile.shape == (512, 512, 3)
        assert np.array_equal(tile, _jpeg_roundtrip(np.ascontiguousarray(src_rgb)))
        assert np.abs(tile.astype(int) - src_rgb).mean() < 8.0  # JPEG loss only
    # window reads of the raw orthophoto agree with the full read
    assert np.array_equal(big.read_image(window=(512, 100, 64, 32)), rgb[:, 512:576, 100:132])


def test_dataset_items_and_torchgeo_agreement(release_512):
    ds = LandCoverAIDataset(release_512, "train")
    assert len(ds) == len((release_512 / "train.txt").read_text().split())
    item = ds[0]
    assert item["image"].shape == (3, 512, 512) and str(item["image"].dtype) == "torch.float32"
    assert item["mask"].shape == (512, 512) and str(item["mask"].dtype) == "torch.int64"
    assert int(item["mask"].max()) < len(CLASS_NAMES)
    counts = ds.class_pixel_counts()
    assert counts.sum() == 512 * 512 * len(ds)
    # the field's reader (torchgeo, a peer: pip install -e .[peers]) accepts the same folder and returns the same pixels
    LandCoverAI = pytest.importorskip("torchgeo.datasets", reason="torchgeo (the peers extra) is not installed").LandCoverAI

    tg = LandCoverAI(root=str(release_512), split="train")
    assert len(tg) == len(ds)
    s = tg[0]
    assert np.array_equal(s["mask"].numpy(), item["mask"].numpy())
    assert np.array_equal(s["image"].numpy(), item["image"].numpy())


def test_resplit_reproduces_tiles(release_512, tmp_path):
    stems = split_orthophotos(release_512, output_dir=tmp_path / "again")
    assert len(stems) == 5
    for s in stems:
        assert (tmp_path / "again" / f"{s}.jpg").read_bytes() == (
            release_512 / "output" / f"{s}.jpg"
        ).read_bytes()


def test_errors_name_the_file(tmp_path, release_512):
    with pytest.raises(ValueError):
        LandCoverAIDataset(release_512, "holdout")
    with pytest.raises(InputError, match="train.txt"):
        LandCoverAIDataset(tmp_path, "train")
    bad = tmp_path / "bad_m.png"
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(bad)
    with pytest.raises(InputError, match="bad_m.png"):
        read_mask_tile(bad)
    # an image without its mask
    root = tmp_path / "r"
    write_orthophoto(root / "images" / "a.tif", np.zeros((3, 16, 16), np.uint8))
    with pytest.raises(InputError, match="masks"):
        LandCoverAIOrthophotos(root)
    # mask on a different grid
    write_mask(root / "masks" / "a.tif", np.zeros((8, 16), np.uint8))
    with pytest.raises(InputError, match="a.tif"):
        LandCoverAIOrthophotos(root)
    # truncated orthophoto
    (root / "images" / "a.tif").write_bytes((root / "images" / "a.tif").read_bytes()[:200])
    with pytest.raises(InputError, match="a.tif"):
        split_orthophotos(root)
