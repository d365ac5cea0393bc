"""``terracarbon trees`` commands: train, evaluate, predict, cv, synth, and error handling."""

from __future__ import annotations

import json

import geopandas as gpd
import pytest
import rasterio
from typer.testing import CliRunner

from terracarbon.cli.trees import app

runner = CliRunner()
TINY_UNET = json.dumps(
    {
        "arch": "unet",
        "in_channels": 3,
        "classes": 2,
        "encoder_name": "resnet18",
        "encoder_depth": 3,
        "decoder_channels": [32, 16, 8],
    }
)


def test_cv_reports_mean_and_std(tmp_path):
    from terracarbon.data.synthetic.trees import make_synthetic_tcd

    tiny = make_synthetic_tcd(tmp_path / "tcd64", n_images=10, size=64, n_trees=(2, 4), seed=1)
    res = runner.invoke(
        app,
        [
            "cv",
            "--data",
            str(tiny),
            "--out",
            str(tmp_path / "cv"),
            "--folds",
            "0,1",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--patch-size",
            "0",
            "--spec",
            TINY_UNET,
            "--accelerator",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "±" in res.output
    out = json.loads((tmp_path / "cv" / "cv_results.json").read_text())
    assert out["folds"] == [0, 1] and len(out["per_fold"]) == 2
    ious = [r["iou"] for r in out["per_fold"]]
    assert out["summary"]["iou"]["mean"] == pytest.approx(sum(ious) / 2)
    assert out["summary"]["iou"]["std"] == pytest.approx(abs(ious[0] - ious[1]) / 2**0.5)
    assert (tmp_path / "cv" / "fold_1" / "tree_cover.pt").exists()


def test_train_evaluate_predict_semantic(semantic_run, tcd_root, tmp_path):
    res = runner.invoke(app, ["evaluate", "-c", str(semantic_run.checkpoint), "-d", str(tcd_root), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["iou"] == pytest.approx(
        semantic_run.metrics["iou"]
    )
    assert runner.invoke(app, ["synth", str(tmp_path / "o.tif"), "--size", "160"]).exit_code == 0
    res = runner.invoke(
        app,
        [
            "predict",
            "--mode",
            "semantic",
            "-c",
            str(semantic_run.checkpoint),
            str(tmp_path / "o.tif"),
            str(tmp_path / "cover.tif"),
            "--tile-size",
            "128",
            "--overlap",
            "32",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "tree_cover_percent" in res.output
    with rasterio.open(tmp_path / "cover.tif") as src:
        assert src.crs.to_epsg() == 32632 and src.count == 1
    assert gpd.read_file(tmp_path / "o.crowns.gpkg").crs.to_epsg() == 32632


def test_predict_instance_writes_geopackage(instance_run, tmp_path):
    assert (
        runner.invoke(app, ["synth", str(tmp_path / "o.tif"), "--size", "160", "--seed", "2"]).exit_code == 0
    )
    res = runner.invoke(
        app,
        [
            "predict",
            "--mode",
            "instance",
            "-c",
            str(instance_run.checkpoint),
            str(tmp_path / "o.tif"),
            str(tmp_path / "crowns.gpkg"),
            "--tile-size",
            "128",
            "--overlap",
            "48",
            "--canopy",
            str(tmp_path / "c.tif"),
        ],
    )
    assert res.exit_code == 0, res.output
    gdf = gpd.read_file(tmp_path / "crowns.gpkg")
    assert gdf.crs.to_epsg() == 32632 and {"score", "area_m2"} <= set(gdf.columns)
    assert "crown_count" in res.output


def test_cli_errors_exit_2(tmp_path, semantic_run):
    res = runner.invoke(app, ["evaluate", "-c", str(tmp_path / "nope.pt"), "-d", str(tmp_path)])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = runner.invoke(app, ["train", "-d", str(tmp_path), "-o", str(tmp_path / "r"), "--mode", "panoptic"])
    assert res.exit_code == 2 and "--mode" in res.output
    # a semantic checkpoint cannot predict crowns
    (tmp_path / "x.tif").write_bytes(b"")
    res = runner.invoke(
        app,
        [
            "predict",
            "--mode",
            "instance",
            "-c",
            str(semantic_run.checkpoint),
            str(tmp_path / "x.tif"),
            str(tmp_path / "c.gpkg"),
        ],
    )
    assert res.exit_code == 2 and "instance" in res.output
