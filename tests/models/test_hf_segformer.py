"""Hugging Face SegFormer import: logits equal transformers' forward, and `trees predict --mode semantic` applies
restor's preprocessing (SegformerImageProcessor with do_resize=False, bilinear logits, argmax) through the engine.

transformers is a terracarbon dependency (and in the ``peers`` extra); the tests skip with a reason without it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None,
    reason="transformers not installed (pip install -e '.[peers]')",
)
runner = CliRunner()


def _tiny_segformer(tmp_path: Path, calib: np.ndarray | None = None) -> Path:
    """A seeded two-class SegFormer (MiT-b0 layout, tiny widths) saved as restor publishes: config + safetensors."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    torch.manual_seed(0)
    cfg = SegformerConfig(
        num_channels=3,
        num_encoder_blocks=4,
        depths=[1, 1, 2, 1],
        sr_ratios=[8, 4, 2, 1],
        hidden_sizes=[8, 16, 24, 32],
        num_attention_heads=[1, 2, 2, 4],
        decoder_hidden_size=16,
        num_labels=2,
        id2label={0: "__background__", 1: "tree"},
        label2id={"__background__": 0, "tree": 1},
    )
    model = SegformerForSemanticSegmentation(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # non-trivial norms, biases and BN statistics
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if p.ndim == 1 and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * r)
            elif p.ndim == 1:
                p.copy_(0.1 * r)
            else:
                p.add_(0.05 * r)
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
        if calib is not None:  # centre the tree-vs-background logit on this image: both classes appear
            pix = SegformerImageProcessor(do_resize=False)(images=torch.from_numpy(calib), return_tensors="pt")
            lg = model(pixel_values=pix.pixel_values).logits
            model.decode_head.classifier.bias[1] -= float((lg[:, 1] - lg[:, 0]).median())
    d = tmp_path / "tcd-segformer-tiny"
    model.save_pretrained(d)
    SegformerImageProcessor(do_resize=False).save_pretrained(d)
    assert (d / "config.json").exists() and (d / "model.safetensors").exists()
    return d


def test_logits_equal_transformers(tmp_path):
    from transformers import SegformerForSemanticSegmentation

    from terracarbon.models.hf_segformer import import_hf_segformer
    from terracarbon.models.registry import load_checkpoint

    d = _tiny_segformer(tmp_path)
    import_hf_segformer(d, tmp_path / "seg.pt", tile_size=256, overlap=0)
    model, spec, meta = load_checkpoint(tmp_path / "seg.pt")
    assert spec["arch"] == "hf_segformer" and meta["task"] == "segmentation"
    assert meta["class_names"] == ["no_tree", "tree"] and meta["source"]["id2label"]["1"] == "tree"
    assert meta["mean"] == pytest.approx([123.675, 116.28, 103.53]) and meta["std"] == pytest.approx([58.395, 57.12, 57.375])
    assert (meta["tile_size"], meta["overlap"], meta["in_bands"]) == (256, 0, [1, 2, 3])
    hf = SegformerForSemanticSegmentation.from_pretrained(str(d), local_files_only=True).eval()
    x = torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = hf(pixel_values=x).logits
        got = model.logits(x)
        up = model(x)
    assert want.shape == (2, 2, 32, 40) and float(want.std()) > 1e-2
    torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert up.shape == (2, 2, 128, 160)


def test_trees_predict_uses_restor_preprocessing(tmp_path):
    """Engine map == restor's SegFormer.forward on the tile (processor, logits, bilinear, softmax) then argmax."""
    import rasterio
    from affine import Affine
    from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

    from terracarbon.cli import app
    from terracarbon.raster.io import write_geotiff

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (3, 256, 256), dtype=np.uint8)
    img[:, :, :128] //= 3  # a darker half: some structure for the classes
    d = _tiny_segformer(tmp_path, calib=img)
    r = runner.invoke(
        app, ["models", "import", "hf-segformer", str(d), "--out", str(tmp_path / "seg.pt"), "--tile-size", "256",
              "--overlap", "0"]
    )
    assert r.exit_code == 0, r.output
    write_geotiff(
        tmp_path / "rgb.tif", img, crs="EPSG:32633", transform=Affine(0.1, 0, 400000, 0, -0.1, 5000000),
        band_descriptions=["red", "green", "blue"],
    )
    r = runner.invoke(
        app, ["trees", "predict", str(tmp_path / "rgb.tif"), str(tmp_path / "cover.tif"), "--mode", "semantic",
              "--checkpoint", str(tmp_path / "seg.pt")]
    )  # no --tile-size: the model's own (256, no overlap) -> one tile, comparable with one forward
    assert r.exit_code == 0, r.output
    with rasterio.open(tmp_path / "cover.tif") as ds:
        got = ds.read(1)
        names = json.loads(ds.tags().get("class_names", "[]"))
    # restor's Segformer.forward (tcd_pipeline/models/segformer.py), done with transformers directly
    proc = SegformerImageProcessor.from_pretrained(str(d), do_resize=False)
    hf = SegformerForSemanticSegmentation.from_pretrained(str(d), local_files_only=True).eval()
    pix = proc(images=torch.from_numpy(img), return_tensors="pt").pixel_values
    with torch.no_grad():
        logits = hf(pixel_values=pix).logits
    prob = torch.nn.functional.interpolate(logits, size=pix.shape[-2:], mode="bilinear", align_corners=False).softmax(1)
    want = prob.argmax(1)[0].numpy().astype(np.uint8)
    margin = (prob[0, 1] - prob[0, 0]).abs().numpy()
    assert 0.05 < want.mean() < 0.95  # both classes present
    assert names == ["no_tree", "tree"]
    np.testing.assert_array_equal(got[margin > 1e-4], want[margin > 1e-4])
