"""compare / transfer studies: tables with the right rows and columns, stratified k % label subsampling."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import rasterio

from terracarbon.errors import ConfigError
from terracarbon.gfm.compare import compare_models
from terracarbon.gfm.transfer import subsample_labels

MINI = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 4, 8], "window_size": 4}


def test_compare_writes_table_csv_and_plot(tmp_path):
    from terracarbon.data.synthetic.scenes import make_scene

    train = [make_scene(tmp_path / "s" / "train0", size=64, seed=0, label_fraction=0.05)]
    val = [make_scene(tmp_path / "s" / "val0", size=64, seed=4, label_fraction=0.05)]
    test = [make_scene(tmp_path / "s" / "test0", size=64, seed=5, label_fraction=0.05)]
    res = compare_models(
        train,
        test,
        tmp_path / "cmp",
        val_scenes=val,
        runs=["unet_scratch", "gfm_random_frozen"],
        gfm={**MINI, "decoder": "conv"},
        unet={"arch": "unet", "encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 8, 4]},
        epochs=1,
        samples_per_epoch=8,
        batch_size=4,
        patch_size=32,
        progress=False,
        command="terracarbon gfm compare --test-run",
    )
    assert [r["run"] for r in res.rows] == ["unet_scratch", "gfm_random_frozen"]
    unet, gfm = res.rows
    assert gfm["trainable_params"] == 128 * 9 + 1 < unet["trainable_params"]  # frozen: only the 1-conv head
    assert gfm["total_params"] > gfm["trainable_params"]
    assert all(np.isfinite(r["rmse"]) and r["wall_time_s"] > 0 for r in res.rows)
    with open(res.csv) as fh:
        rows = list(csv.DictReader(fh))
    assert [r["run"] for r in rows] == ["unet_scratch", "gfm_random_frozen"]
    assert {"rmse", "mae", "bias", "r2", "trainable_params", "wall_time_s", "emissions_g"} <= set(rows[0])
    md = res.markdown.read_text()
    assert "terracarbon gfm compare --test-run" in md and "| gfm_random_frozen |" in md
    assert res.plot is not None and res.plot.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match="unknown compare run"):
        compare_models(train, test, tmp_path / "x", runs=["nope"])


def test_subsample_labels_keeps_k_percent_with_validation_footprints(tmp_path):
    from terracarbon.data.synthetic.scenes import make_scene

    sc = make_scene(tmp_path / "s", size=128, seed=3)
    with rasterio.open(sc.labels) as ds:
        full = np.isfinite(ds.read(1)).sum()
    counts = []
    for k in (0.01, 0.2, 1.0):
        out, n_train = subsample_labels(sc.labels, k, tmp_path / f"k{k}.tif", seed=0)
        with rasterio.open(out) as ds, rasterio.open(sc.labels) as ref:
            a = ds.read(1)
            assert ds.crs == ref.crs and ds.transform == ref.transform
            kept = np.isfinite(a)
            assert np.array_equal(a[kept], ref.read(1)[kept])  # kept labels are unchanged
        assert np.isfinite(a[int(round(0.8 * a.shape[0])) :]).any()  # validation rows keep >= 1 footprint
        counts.append(kept.sum())
    assert counts[0] < counts[1] < counts[2] == full


def test_train_biomass_band_norm_must_match_the_bands(tmp_path):
    from terracarbon.biomass.train import train_biomass
    from terracarbon.data.synthetic.scenes import make_scene

    sc = make_scene(tmp_path / "s", size=64, seed=0)
    with pytest.raises(ConfigError, match="band_norm has 2/2 values for 12 bands"):
        train_biomass([sc], band_norm=([0.0, 0.0], [1.0, 1.0]), out_dir=tmp_path / "run", progress=False)


def test_eco_region_transfer_rows_and_normalisation(tmp_path):
    """Source on region 0 with the own encoder's band statistics; fine-tunes keep the source model's statistics."""
    import torch

    from terracarbon.gfm.pretrain import pretrain_simmim, read_encoder_checkpoint
    from terracarbon.gfm.transfer import eco_region_transfer, make_region_scenes

    scenes = make_region_scenes(tmp_path / "scenes", [0, 1], train_per_region=1, test_per_region=1, size=160)
    enc = pretrain_simmim(
        [s.stack for s in scenes[1]["train"]],  # statistics of region 1 differ from the source region's
        tmp_path / "enc" / "encoder.pt",
        img_size=32,
        mask_patch_size=8,
        epochs=1,
        tiles_per_epoch=8,
        val_tiles=4,
        batch_size=4,
        progress=False,
        accelerator="cpu",
        track=False,
        **MINI,
    ).checkpoint
    res = eco_region_transfer(
        tmp_path / "tr",
        regions=[0, 1],
        source=0,
        fractions=[0.5],
        scenes=scenes,
        encoder_weights=enc,
        gfm={"decoder": "conv", "head_upsample": "pixelshuffle", "head_kernel_size": 1},
        epochs=1,
        samples_per_epoch=8,
        batch_size=4,
        patch_size=32,
        baseline=True,
        progress=False,
    )
    settings = [(r["target_region"], r["setting"]) for r in res.rows]
    assert settings == [
        (0, "in-domain (source)"),
        (1, "zero-shot"),
        (1, "fine-tune from source"),
        (1, "target only (no source)"),
    ]
    assert all(np.isfinite(r["rmse"]) for r in res.rows)
    enc_mean = read_encoder_checkpoint(enc)["mean"]
    src = torch.load(res.source_checkpoint, weights_only=False)["meta"]
    ft = torch.load(tmp_path / "tr" / "finetune_region1_k50" / "model.pt", weights_only=False)["meta"]
    assert src["mean"] == pytest.approx(enc_mean) and ft["mean"] == pytest.approx(src["mean"])
    with open(res.csv) as fh:
        assert len(list(csv.DictReader(fh))) == 4
