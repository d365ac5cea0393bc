"""Accuracy on the synthetic testbed: the U-Net trained on sparse labels vs the label noise floor and an RF."""

from __future__ import annotations

import json

import numpy as np
import torch

from terracarbon.biomass.baseline import train_rf_baseline
from terracarbon.models.registry import load_checkpoint


def test_unet_reaches_noise_floor_on_heldout_scene(trained, scenes):
    _, test = scenes
    m = trained.metrics
    floor = m["noise_floor_rmse"]
    # the floor is the labels' own RMSE against the true AGB at the scored pixels
    assert 0.7 * test.noise_floor_rmse < floor < 1.3 * test.noise_floor_rmse
    rf = train_rf_baseline([scenes[0]], [test], n_estimators=60, seed=0, n_jobs=2, track=False)
    print(
        f"\nU-Net test RMSE {m['rmse']:.1f} Mg/ha (R² {m['r2']:.3f}, bias {m['bias']:+.1f}) | "
        f"RF baseline RMSE {rf.metrics['rmse']:.1f} (R² {rf.metrics['r2']:.3f}) | noise floor {floor:.1f} | "
        f"U-Net/floor {m['rmse'] / floor:.3f}, RF/floor {rf.metrics['rmse'] / floor:.3f} | "
        f"n={m['n']} labelled test pixels | train {trained.wall_time_s:.0f} s"
    )
    assert m["n"] > 500
    assert m["rmse"] <= 1.3 * floor
    assert m["r2"] > 0.5
    assert abs(m["bias"]) < 0.25 * m["label_mean"]
    # the model beats predicting the training mean by far
    assert m["rmse"] < 0.7 * np.sqrt(m["rmse"] ** 2 / max(1e-9, 1 - m["r2"]))
    assert rf.metrics["n"] == m["n"]  # same labelled test pixels
    assert np.isfinite(rf.metrics["rmse"])


def test_train_result_and_exported_checkpoint(trained):
    res = trained
    assert res.checkpoint.exists() and res.checkpoint.name == "model.pt"
    model, spec, meta = load_checkpoint(res.checkpoint)
    assert spec["arch"] == "unet" and spec["in_channels"] == 12
    assert meta["task"] == "regression"
    assert meta["bands"][0] == "B02" and len(meta["mean"]) == len(meta["std"]) == 12
    assert meta["target_scale"] > 0 and meta["target_offset"] > 0
    assert meta["metrics"]["rmse"] == res.metrics["rmse"]
    assert set(res.metrics["per_bin"]) >= {"0-50", "50-100", "450-500", "500+"}
    assert sum(b["n"] for b in res.metrics["per_bin"].values()) == res.metrics["n"]
    assert 0 < res.trainable_params <= res.total_params
    assert res.history and all("val_rmse" in h for h in res.history)
    assert res.best_epoch is not None
    assert min(h["val_rmse"] for h in res.history) == res.val_metrics["rmse"]
    # run folder records
    out = res.out_dir
    assert json.loads((out / "metrics.json").read_text())["rmse"] == res.metrics["rmse"]
    card = (out / "README.md").read_text()
    assert "co2_eq_emissions" in card or res.footprint is None
    # the exported model reproduces itself
    x = torch.zeros(1, 12, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (1, 1, 64, 64)
