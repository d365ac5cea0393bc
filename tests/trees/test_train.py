"""Training reaches the issue's targets on synthetic crowns; checkpoints predict large orthomosaics."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import rasterio

from terracarbon.models.registry import load_checkpoint


@pytest.mark.slow
def test_semantic_model_reaches_iou_08(semantic_run, tcd_root):
    m = semantic_run.metrics
    assert m["split"] == "test" and m["n_images"] == 4
    assert m["iou"] >= 0.8
    assert m["f1"] >= m["iou"] and 0.8 <= m["precision"] <= 1 and 0.8 <= m["recall"] <= 1
    _, spec, meta = load_checkpoint(semantic_run.checkpoint)
    assert meta["task"] == "segmentation" and meta["class_names"] == ["no_tree", "tree"]
    assert spec["classes"] == 2 and len(meta["mean"]) == 3
    saved = json.loads((semantic_run.out_dir / "metrics.json").read_text())
    assert saved["metrics"]["iou"] == pytest.approx(m["iou"])
    assert len(semantic_run.history) == 5
    assert semantic_run.history[-1]["train_loss"] < semantic_run.history[0]["train_loss"]
    from terracarbon.trees.semantic import evaluate_semantic

    again = evaluate_semantic(semantic_run.checkpoint, tcd_root, split="test")
    assert again["iou"] == pytest.approx(m["iou"], abs=1e-6)


@pytest.mark.slow
def test_instance_model_reaches_map50_05(instance_run, tcd_root):
    m = instance_run.metrics
    assert m["split"] == "test" and m["n_images"] == 4
    assert m["map_50"] >= 0.5
    assert 0 <= m["map"] <= m["map_50"]
    _, spec, meta = load_checkpoint(instance_run.checkpoint)
    assert meta["task"] == "instance" and spec["arch"] == "maskrcnn"
    from terracarbon.trees.instance import evaluate_instance

    again = evaluate_instance(instance_run.checkpoint, tcd_root, split="test")
    assert again["map_50"] == pytest.approx(m["map_50"], abs=1e-6)


@pytest.mark.slow
def test_predict_trees_on_orthomosaic(semantic_run, instance_run, tmp_path):
    """Both models through the tiled paths on a 256 px orthomosaic: canopy GeoTIFF, crowns GeoPackage, summary."""
    from terracarbon.data.synthetic.trees import make_orthomosaic
    from terracarbon.trees.predict import predict_trees

    ortho = make_orthomosaic(tmp_path / "ortho.tif", height=256, seed=11, crs="EPSG:32633")
    summary = predict_trees(
        ortho.path,
        tmp_path / "out",
        semantic_checkpoint=semantic_run.checkpoint,
        instance_checkpoint=instance_run.checkpoint,
        tile_size=128,
        overlap=32,
        progress=False,
        track=False,
    )
    with rasterio.open(summary["canopy"]) as src:
        assert src.crs.to_epsg() == 32633 and src.transform == ortho.transform
        cover = src.read(1) == 1
    truth = ortho.cover
    assert (cover & truth).sum() / (cover | truth).sum() >= 0.8  # tree-cover IoU through the engine
    assert summary["tree_cover_percent"] == pytest.approx(100 * truth.mean(), abs=5)
    crowns = gpd.read_file(summary["crowns"])
    assert crowns.crs.to_epsg() == 32633
    assert (crowns["score"] >= 0.5).all() and (crowns["area_m2"] > 0).all()
    assert summary["crown_count"] == len(crowns)
    # most predicted crowns sit on a true crown
    true_union = ortho.crowns_gdf().geometry.union_all()
    on_tree = np.mean([g.representative_point().within(true_union) for g in crowns.geometry])
    assert len(crowns) >= 0.5 * len(ortho.crowns) and on_tree >= 0.8
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["crown_count"] == len(crowns)
