"""Training on synthetic aerial scenes: class weighting, accuracy, export (checkpoint + model card), evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from terracarbon.data.landcover_ai import CLASS_NAMES
from terracarbon.errors import ConfigError
from terracarbon.landcover.train import inverse_frequency_weights


def test_inverse_frequency_weights():
    w = inverse_frequency_weights([600, 100, 300, 0])
    assert w[3] == 0.0  # absent class
    assert w[1] > w[2] > w[0]
    assert w[1] / w[0] == pytest.approx(6.0)  # inverse frequency
    assert np.dot(w[:3], [600, 100, 300]) / 1000 == pytest.approx(1.0)  # pixel-weighted mean 1
    capped = inverse_frequency_weights([1000, 1], max_ratio=10)
    assert capped[1] / capped[0] == pytest.approx(10.0)
    sq = inverse_frequency_weights([400, 100], power=0.5)
    assert sq[1] / sq[0] == pytest.approx(2.0)
    with pytest.raises(ConfigError):
        inverse_frequency_weights([0, 0])


def test_class_weights_come_from_train_split(trained, synthetic_root):
    from terracarbon.data.landcover_ai import LandCoverAIDataset

    counts = LandCoverAIDataset(synthetic_root, "train").class_pixel_counts()
    assert trained.class_pixel_counts == counts.tolist()
    assert trained.class_weights == pytest.approx(inverse_frequency_weights(counts, max_ratio=10.0))
    assert trained.class_weights[1] > trained.class_weights[0]  # rare buildings weigh more than background


def test_train_reaches_miou_on_synthetic_scenes(trained):
    m = trained.metrics
    assert m["split"] == "test" and m["n_tiles"]["test"] > 0
    assert set(m["iou"]) == set(CLASS_NAMES)
    assert m["miou"] >= 0.8, m["iou"]
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (5, 5)
    assert cm.sum() == m["n_tiles"]["test"] * 64 * 64
    assert np.trace(cm) / cm.sum() > 0.9  # pixel accuracy
    assert len(trained.history) == 14 and "val_miou" in trained.history[-1]


def test_export_checkpoint_and_model_card(trained):
    from terracarbon.models.registry import load_checkpoint

    model, spec, meta = load_checkpoint(trained.checkpoint)
    assert spec["arch"] == "unet" and spec["classes"] == 5 and spec["in_channels"] == 3
    assert meta["task"] == "segmentation"
    assert meta["class_names"] == list(CLASS_NAMES)
    assert meta["bands"] == ["red", "green", "blue"] and len(meta["mean"]) == 3 and len(meta["std"]) == 3
    assert set(meta["colormap"]) == {0, 1, 2, 3, 4}
    card = (trained.out_dir / "README.md").read_text()
    assert "co2_eq_emissions" in card and "image-segmentation" in card
    assert (trained.out_dir / "emissions.json").exists()
    assert json.loads((trained.out_dir / "metrics.json").read_text())["test"]["miou"] == pytest.approx(
        trained.metrics["miou"]
    )


def test_evaluate_checkpoint_matches_training_metrics(trained, synthetic_root, single_thread):
    from terracarbon.landcover.evaluate import evaluate_landcover

    ev = evaluate_landcover(trained.checkpoint, synthetic_root, "test", progress=False)
    assert ev["miou"] == pytest.approx(trained.metrics["miou"], abs=1e-6)
    assert ev["confusion_matrix"] == trained.metrics["confusion_matrix"]


def test_deeplabv3plus_trains_and_exports(tmp_path, single_thread):
    from terracarbon.data.synthetic.landcover import make_synthetic_release
    from terracarbon.landcover.train import train_landcover
    from terracarbon.models.registry import load_checkpoint

    root = make_synthetic_release(tmp_path / "d", n_images=2, size=(128, 128), tile_size=64, seed=5)
    res = train_landcover(
        root,
        out_dir=tmp_path / "run",
        model={"arch": "deeplabv3plus", "encoder_name": "resnet18", "decoder_channels": 32},
        epochs=1,
        batch_size=4,
        accelerator="cpu",
        progress=False,
        track=False,
    )
    _, spec, meta = load_checkpoint(res.checkpoint)
    assert spec["arch"] == "deeplabv3plus" and meta["task"] == "segmentation"
    assert 0.0 <= res.metrics.get("miou", 0.0) <= 1.0


def test_cli_synth_train_evaluate(tmp_path, single_thread):
    from typer.testing import CliRunner

    from terracarbon.cli.landcover import app

    runner = CliRunner()
    root = tmp_path / "synth"
    res = runner.invoke(app, ["synth", str(root), "--n-images", "2", "--size", "128", "--tile-size", "64"])
    assert res.exit_code == 0, res.output
    assert len(list((root / "output").glob("*_m.png"))) == 8
    run = tmp_path / "run"
    res = runner.invoke(
        app,
        ["train", str(root), "--out", str(run), "--model", "unet-tiny", "--epochs", "1", "--batch-size", "4",
         "--accelerator", "cpu", "--lr", "1e-2", "--no-track"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (run / "landcover.pt").exists() and (run / "README.md").exists()
    res = runner.invoke(app, ["evaluate", "--checkpoint", str(run / "landcover.pt"), str(root), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["split"] == "test" and set(data["iou"]) == set(CLASS_NAMES)
    assert np.array(data["confusion_matrix"]).sum() == data["n_tiles"] * 64 * 64
