"""OAM-TCD reader and look-alike writer: pixel-exact masks, instance targets, folds, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from terracarbon.data.oam_tcd import (
    OAMTCDDataset,
    TileSample,
    annotation_to_mask,
    mask_to_rle,
    write_oam_tcd,
)
from terracarbon.errors import ConfigError, InputError

H, W = 10, 12


def _hand_built(tmp_path):
    """One 10×12 tile: a polygon tree, an uncompressed-RLE tree, a compressed-RLE canopy, a polygon canopy."""
    canopy_rle = np.zeros((H, W), np.uint8)
    canopy_rle[0:2, 6:12] = 1
    canopy_rle[2, 9:12] = 1
    anns = [
        # tree 1: pixel-edge rectangle x 1..4, y 2..6 -> rows 2-5, cols 1-3
        {"category": "tree", "segmentation": [[1, 2, 4, 2, 4, 6, 1, 6]]},
        # tree 2: uncompressed column-major RLE of rows 7-8 x cols 8-10 (indices col*10+row: 87,88,97,98,107,108)
        {"category": "tree", "segmentation": {"size": [H, W], "counts": [87, 2, 8, 2, 8, 2, 11]}},
        # canopy: compressed RLE string, as the release stores complex outlines
        {"category": "canopy", "segmentation": mask_to_rle(canopy_rle)},
        # canopy polygon overlapping tree 1: x 3..6, y 4..8 -> rows 4-7, cols 3-5
        {"category": "canopy", "segmentation": [[3, 4, 6, 4, 6, 8, 3, 8]]},
    ]
    img = np.arange(3 * H * W, dtype=np.uint16).reshape(3, H, W) % 251
    img = img.astype(np.uint8)
    write_oam_tcd(tmp_path, [TileSample(img, anns, image_id=7, oam_id="abc", validation_fold=0)])
    return img


def test_semantic_mask_pixel_exact(tmp_path):
    img = _hand_built(tmp_path)
    ds = OAMTCDDataset(tmp_path, "train", mode="semantic")
    assert len(ds) == 1 and ds.image_ids == [7]
    expected = np.zeros((H, W), np.int64)
    expected[2:6, 1:4] = 1  # tree polygon
    expected[7:9, 8:11] = 1  # tree RLE
    expected[0:2, 6:12] = 1  # canopy RLE
    expected[2, 9:12] = 1
    expected[4:8, 3:6] = 1  # canopy polygon
    s = ds[0]
    np.testing.assert_array_equal(s["mask"].numpy(), expected)
    # image: RGB, scaled to 0-1, pixel for pixel what was written
    np.testing.assert_allclose(s["image"].numpy(), img.astype(np.float32) / 255.0, rtol=0, atol=1e-7)


def test_instance_targets_pixel_exact(tmp_path):
    _hand_built(tmp_path)
    image, target = OAMTCDDataset(tmp_path, "train", mode="instance")[0]
    assert image.shape == (3, H, W)
    assert target["labels"].tolist() == [1, 1]  # only `tree` annotations are instances
    assert target["boxes"].tolist() == [[1.0, 2.0, 4.0, 6.0], [8.0, 7.0, 11.0, 9.0]]
    m1 = np.zeros((H, W), np.uint8)
    m1[2:6, 1:4] = 1
    m2 = np.zeros((H, W), np.uint8)
    m2[7:9, 8:11] = 1
    np.testing.assert_array_equal(target["masks"].numpy(), np.stack([m1, m2]))
    assert target["area"].tolist() == [12.0, 6.0]
    assert target["image_id"] == 7


def test_written_layout_matches_the_release(tmp_path):
    _hand_built(tmp_path)
    hold = tmp_path / "holdout"
    assert (hold / "images" / "abc_7.tif").exists() and (hold / "masks" / "abc_7.png").exists()
    coco = json.loads((hold / "train.json").read_text())
    assert {c["name"]: c["id"] for c in coco["categories"]} == {"tree": 2, "canopy": 1}
    segs = [a["segmentation"] for a in coco["annotations"]]
    assert isinstance(segs[0], list) and isinstance(segs[2]["counts"], str)  # polygon and compressed RLE kept
    assert coco["annotations"][0]["bbox"] == [1.0, 2.0, 3.0, 4.0]  # COCO xywh
    assert json.loads((hold / "test.json").read_text())["images"] == []
    # fold 0 validates on the tile; the other folds train on it; fold dirs link the holdout images
    assert [im["id"] for im in json.loads((tmp_path / "kfold_0" / "val.json").read_text())["images"]] == [7]
    assert json.loads((tmp_path / "kfold_1" / "train.json").read_text())["images"][0]["id"] == 7
    assert (tmp_path / "kfold_3" / "images" / "abc_7.tif").exists()
    with rasterio.open(hold / "images" / "abc_7.tif") as src:
        assert src.count == 3 and src.crs.to_epsg() == 3395 and abs(src.res[0] - 0.1) < 1e-9


def test_folds_partition_the_training_split(tcd_root):
    train = set(OAMTCDDataset(tcd_root, "train").image_ids)
    test = set(OAMTCDDataset(tcd_root, "test").image_ids)
    assert len(train) == 16 and len(test) == 4 and not train & test
    vals = []
    for k in range(5):
        tr = set(OAMTCDDataset(tcd_root, "train", fold=k).image_ids)
        va = set(OAMTCDDataset(tcd_root, "val", fold=k).image_ids)
        assert va and not tr & va and tr | va == train
        assert va == set(
            OAMTCDDataset(tcd_root, "test", fold=k).image_ids
        )  # the paper's configs say test.json
        vals.append(va)
    assert set().union(*vals) == train and sum(len(v) for v in vals) == len(train)


def test_synthetic_masks_agree_with_the_rendered_crowns(tmp_path):
    """Reader masks == the masks the synthetic generator painted (polygons for trees, RLE for canopy)."""
    from terracarbon.data.synthetic.trees import render_tile

    img, crowns, masks = render_tile(96, 96, n_trees=5, n_groups=1, seed=3)
    anns = [
        {"category": c.category, "segmentation": m if c.category == "canopy" else c.coco_polygon()}
        for c, m in zip(crowns, masks)
    ]
    write_oam_tcd(tmp_path, [TileSample(img, anns, image_id=1, validation_fold=2)])
    ds = OAMTCDDataset(tmp_path, "train")
    cover = np.zeros((96, 96), bool)
    for m in masks:
        cover |= m
    np.testing.assert_array_equal(ds.semantic_mask(0).astype(bool), cover)
    trees = [m for c, m in zip(crowns, masks) if c.category == "tree"]
    _, t = OAMTCDDataset(tmp_path, "train", mode="instance")[0]
    np.testing.assert_array_equal(t["masks"].numpy().astype(bool), np.stack(trees))
    assert img[1][cover].mean() > img[1][~cover].mean() * 0.6  # crowns are green-dominant
    assert annotation_to_mask(crowns[0].coco_polygon(), 96, 96).sum() == masks[0].sum()


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        OAMTCDDataset(tmp_path / "nope", "train")
    with pytest.raises(InputError, match="no annotation file"):
        OAMTCDDataset(tmp_path, "train")
    with pytest.raises(ConfigError):
        OAMTCDDataset(tmp_path, "train", mode="panoptic")
    _hand_built(tmp_path)
    with pytest.raises(InputError, match="fold folder missing"):
        OAMTCDDataset(tmp_path, "train", fold=9)
    # malformed JSON names the file
    bad = tmp_path / "holdout" / "test.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="test.json.*not valid JSON"):
        OAMTCDDataset(tmp_path, "test")
    # a broken segmentation names the annotation
    coco = json.loads((tmp_path / "holdout" / "train.json").read_text())
    coco["annotations"][0]["segmentation"] = [[1, 2]]
    (tmp_path / "holdout" / "train.json").write_text(json.dumps(coco))
    ds = OAMTCDDataset(tmp_path, "train")
    with pytest.raises(InputError, match="annotation 1 of image 7"):
        ds[0]
    # a missing image names the image file
    (tmp_path / "holdout" / "images" / "abc_7.tif").unlink()
    with pytest.raises(InputError, match="abc_7.tif"):
        ds.read_image(0)


def test_windows_crop_image_masks_and_instances(tmp_path):
    img = _hand_built(tmp_path)
    ds = OAMTCDDataset(tmp_path, "train", mode="instance")
    win = (3, 2, 6, 9)  # rows 3-8, cols 2-10
    full = OAMTCDDataset(tmp_path, "train").semantic_mask(0)
    np.testing.assert_array_equal(ds.semantic_mask(0, win), full[3:9, 2:11])
    np.testing.assert_allclose(ds.read_image(0, win), img[:, 3:9, 2:11] / 255.0, atol=1e-7)
    t = ds.instance_target(0, win)
    # tree 1 (rows 2-5, cols 1-3) keeps rows 3-5 x cols 2-3 = 6 of 12 px; tree 2 (rows 7-8, cols 8-10) stays whole
    assert t["boxes"].tolist() == [[0.0, 0.0, 2.0, 3.0], [6.0, 4.0, 9.0, 6.0]]
    assert t["area"].tolist() == [6.0, 6.0]
    assert ds.instance_target(0, win, min_visible=0.6)["labels"].tolist() == [1]  # half-visible crown dropped
    with pytest.raises(ConfigError, match="outside"):
        ds.instance_target(0, (5, 5, 10, 10))


def test_patch_views_cached_and_windowed_agree(tcd_root):
    """Cached in-memory crops (small tiles) and window-by-window reads (release-size tiles) give the same samples."""
    import torch

    from terracarbon.trees.instance import InstancePatches
    from terracarbon.trees.semantic import SemanticPatches

    sem = OAMTCDDataset(tcd_root, "train")
    ins = OAMTCDDataset(tcd_root, "train", mode="instance")
    for cache in (True, False):
        torch.manual_seed(5)
        s = [SemanticPatches(sem, 64, train=True, cache=cache)[i] for i in range(3)]
        torch.manual_seed(5)
        p = [InstancePatches(ins, 64, train=True, cache=cache)[i] for i in range(3)]
        if cache:
            ref_s, ref_p = s, p
    for a, b in zip(ref_s, s):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        assert a["image"].shape == (3, 64, 64)
    for (ia, ta), (ib, tb) in zip(ref_p, p):
        assert (
            torch.equal(ia, ib)
            and torch.equal(ta["masks"], tb["masks"])
            and torch.equal(ta["boxes"], tb["boxes"])
        )
