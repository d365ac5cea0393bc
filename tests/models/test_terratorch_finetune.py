"""Fine-tuning an imported granite-layout TerraTorch model on the synthetic testbed (HLS-named bands), encoder frozen.

Needs no peer and no ../shared: the TerraTorch config is written here (granite's layout, a reduced Swin)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import rasterio
import torch
import yaml
from typer.testing import CliRunner

HLS6 = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
MEANS = [547.36707, 898.5121, 1020.9082, 2665.5352, 2340.584, 1610.1407]
STDS = [411.4701, 558.54065, 815.94025, 812.4403, 1113.7145, 1067.641]
runner = CliRunner()


def _config(path: Path) -> Path:
    """A TerraTorch config in granite's layout (PrithviModelFactory, prithvi_swin_B reduced, UperNet 32, 2 upscales)."""
    cfg = {
        "model": {
            "class_path": "terratorch.tasks.PixelwiseRegressionTask",
            "init_args": {
                "model_args": {
                    "decoder": "UperNetDecoder",
                    "pretrained": False,
                    "backbone": "prithvi_swin_B",
                    "backbone_drop_path_rate": 0.3,
                    "backbone_embed_dim": 16,
                    "backbone_depths": [2, 2, 2, 2],
                    "backbone_num_heads": [1, 2, 2, 4],
                    "decoder_channels": 16,
                    "in_channels": 6,
                    "bands": HLS6,
                    "num_frames": 1,
                    "head_dropout": 0.16,
                    "head_final_act": "torch.nn.ReLU",
                    "head_learned_upscale_layers": 2,
                },
                "loss": "rmse",
                "freeze_backbone": False,
                "model_factory": "PrithviModelFactory",
            },
        },
        "data": {"init_args": {"means": MEANS, "stds": STDS}},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def _hls_scene(src: Path, dst: Path) -> Path:
    """The synthetic scene's Sentinel-2 bands as an HLS-named stack in reflectance × 10,000, with its labels."""
    dst.mkdir(parents=True, exist_ok=True)
    with rasterio.open(src / "stack.tif") as ds:
        arr = ds.read([1, 2, 3, 4, 5, 6]) * np.float32(10000)
        profile = ds.profile | {"count": 6, "dtype": "float32"}
    with rasterio.open(dst / "stack.tif", "w", **profile) as out:
        out.write(arr.astype(np.float32))
        out.descriptions = tuple(HLS6)
        out.update_tags(TERRACARBON_UNITS="reflectance_x10000")
    shutil.copy(src / "labels.tif", dst / "labels.tif")
    return dst


def test_finetune_imported_granite_layout_frozen(tmp_path):
    from terracarbon.cli import app
    from terracarbon.data.synthetic.scenes import make_scene
    from terracarbon.models.registry import build_model, count_parameters, load_checkpoint
    from terracarbon.models.terratorch_import import import_terratorch, read_terratorch_config

    cfg = _config(tmp_path / "config.yaml")
    torch.manual_seed(0)
    net = build_model(read_terratorch_config(cfg).spec)
    with torch.no_grad():
        net.head.head[-1].bias.fill_(100.0)  # start near the scene's AGB (Mg/ha)
    torch.save({"state_dict": {"model." + k: v for k, v in net.state_dict().items()}}, tmp_path / "m.ckpt")
    imported = import_terratorch(cfg, tmp_path / "m.ckpt", tmp_path / "granite.pt")
    scene = _hls_scene(Path(make_scene(tmp_path / "s0", size=160, seed=0).stack).parent, tmp_path / "hls")

    r = runner.invoke(
        app,
        ["biomass", "train", str(scene), "--init", str(imported), "--freeze-encoder", "--out", str(tmp_path / "ft"),
         "--epochs", "1", "--samples-per-epoch", "8", "--batch-size", "4", "--patch-size", "64"],
    )
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "ft" / "result.json").read_text())
    enc = sum(p.numel() for p in net.encoder.parameters())
    dec_head = sum(p.numel() for m in (net.decoder, net.head) for p in m.parameters())
    assert res["total_params"] == count_parameters(net)[1] == enc + dec_head
    assert res["trainable_params"] == dec_head  # frozen encoder: decoder + head only
    assert f"{dec_head:,} trainable" in r.output

    model, spec, meta = load_checkpoint(res["checkpoint"])
    assert spec["arch"] == "terratorch_upernet" and spec["freeze_encoder"] is True
    assert meta["bands"] == HLS6 and meta["mean"] == MEANS and meta["weights_source"]["init_from"] == str(imported)
    assert spec["output_scale"] == 1.0 / meta["target_scale"]  # outputs start as the imported model's (Mg/ha)
    before, after = net.state_dict(), model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(("decoder.", "head.")))
    assert np.isfinite(res["metrics"]["rmse"])

    # gfm compare accepts the imported file as --encoder-weights: its own network, frozen, from its weights
    from terracarbon.gfm.compare import compare_models

    cmp = compare_models(
        [scene], [scene], tmp_path / "cmp", runs=("gfm_frozen",), encoder_weights=imported, epochs=1,
        samples_per_epoch=8, batch_size=4, patch_size=64, progress=False,
    )
    (row,) = cmp.rows
    assert row["spec"]["arch"] == "terratorch_upernet" and row["trainable_params"] == dec_head
    assert np.isfinite(row["rmse"])
