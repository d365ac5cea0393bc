"""The sparse-label task, the patch datasets and the metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from terracarbon.biomass.datasets import GridPatchDataset, RandomPatchDataset, band_stats, load_scene
from terracarbon.biomass.metrics import full_report, per_bin_metrics
from terracarbon.errors import InputError
from terracarbon.tasks.regression import SparseRegressionTask, masked_loss


class Const(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x):
        return self.p.expand(x.shape[0], 1, *x.shape[2:])


def test_masked_loss_ignores_unlabelled_pixels():
    pred = torch.zeros(1, 1, 4, 4, requires_grad=True)
    target = torch.full((1, 1, 4, 4), float("nan"))
    target[0, 0, 1, 2] = 2.0
    loss = masked_loss(pred, target)
    assert loss.item() == pytest.approx(4.0)
    loss.backward()
    g = pred.grad[0, 0]
    assert g[1, 2] != 0 and int((g != 0).sum()) == 1
    # nothing labelled: zero loss that still backpropagates
    empty = masked_loss(pred, torch.full_like(target, float("nan")))
    assert empty.item() == 0.0 and empty.requires_grad


def test_task_dense_and_center_modes():
    task = SparseRegressionTask(Const(0.0), target_mean=100.0, target_std=50.0)
    lab = torch.full((2, 1, 5, 5), float("nan"))
    lab[0, 0, 0, 0] = 150.0  # = +1 std
    pred, label = task._pred_and_label({"image": torch.zeros(2, 3, 5, 5), "label": lab})
    assert task._step_loss(pred, label).item() == pytest.approx(1.0)
    # centre mode: one label per patch compared with the centre pixel only
    ctask = SparseRegressionTask(Const(1.0), mode="center", target_mean=100.0, target_std=50.0)
    p, y = ctask._pred_and_label(
        {"image": torch.zeros(3, 3, 25, 25), "agbd": torch.tensor([150.0, 100.0, 200.0])}
    )
    assert p.shape == (3,) and y.shape == (3,)
    assert ctask._step_loss(p, y).item() == pytest.approx((0 + 1 + 1) / 3)
    with pytest.raises(ValueError):
        SparseRegressionTask(Const(0.0), mode="bogus")


def test_metrics_per_bin():
    y = np.array([10.0, 40.0, 60.0, 520.0, 700.0])
    p = y + np.array([1.0, -1.0, 2.0, 10.0, -10.0])
    rep = full_report(p, y)
    assert rep["n"] == 5
    assert rep["rmse"] == pytest.approx(math.sqrt((1 + 1 + 4 + 100 + 100) / 5))
    assert rep["bias"] == pytest.approx(2.0 / 5)
    bins = per_bin_metrics(p, y)
    assert bins["0-50"]["n"] == 2 and bins["0-50"]["rmse"] == pytest.approx(1.0)
    assert bins["50-100"]["n"] == 1 and bins["500+"]["n"] == 2
    assert bins["100-150"]["n"] == 0 and math.isnan(bins["100-150"]["rmse"])


def test_patch_datasets_sample_labels(scenes):
    sc = load_scene(scenes[0])
    assert sc.image.shape == (12, 256, 256) and sc.bands[-1] == "LC"
    mean, std = band_stats([sc], (0.0, 0.8))
    ds = RandomPatchDataset([sc], 64, 40, mean, std, region=(0.0, 0.8), label_bias=1.0, seed=3)
    items = [ds[i] for i in range(len(ds))]
    assert items[0]["image"].shape == (12, 64, 64) and items[0]["label"].shape == (1, 64, 64)
    # every label-biased crop holds labels
    assert all(torch.isfinite(it["label"]).any() for it in items)
    # normalised with train statistics
    allimg = torch.stack([it["image"] for it in items])
    assert abs(float(allimg.mean())) < 1.0
    # the grid dataset counts each labelled pixel of the region exactly once
    gds = GridPatchDataset([sc], 256, mean, std, region=(0.8, 1.0))
    n = sum(int(torch.isfinite(gds[i]["label"]).sum()) for i in range(len(gds)))
    rr, _ = sc.labelled_pixels((0.8, 1.0))
    assert n == len(rr) > 0
    assert all(
        gds[i]["image"].shape[-1] % 32 == 0 and gds[i]["image"].shape[-2] % 32 == 0 for i in range(len(gds))
    )


def test_bad_scene_inputs(scenes, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_scene(tmp_path / "nope")
    # labels without any labelled pixel
    with rasterio.open(scenes[0].labels) as ds:
        prof = ds.profile
        prof.update(driver="GTiff")
        prof.pop("blockxsize", None), prof.pop("blockysize", None)
        empty = np.full((ds.height, ds.width), np.nan, np.float32)
    bad = tmp_path / "labels_empty.tif"
    with rasterio.open(bad, "w", **{**prof, "tiled": False}) as dst:
        dst.write(empty, 1)
    with pytest.raises(InputError, match="no labelled pixels") as exc:
        load_scene((scenes[0].stack, bad))
    assert "labels_empty.tif" in str(exc.value)
    # labels on another grid
    small = tmp_path / "labels_small.tif"
    with rasterio.open(small, "w", **{**prof, "tiled": False, "height": 100, "width": 100}) as dst:
        dst.write(np.ones((100, 100), np.float32), 1)
    with pytest.raises(InputError, match="100×100"):
        load_scene((scenes[0].stack, small))


def test_label_subsample_keeps_whole_footprints(scenes):
    from scipy import ndimage

    from terracarbon.biomass.train import _subsample_labels

    sc = load_scene(scenes[0])
    before = np.isfinite(sc.labels)
    _, n_before = ndimage.label(before)
    _subsample_labels([sc], 0.3, seed=0)
    after = np.isfinite(sc.labels)
    assert after.sum() < before.sum() and not (after & ~before).any()
    _, n_after = ndimage.label(after)
    assert 0.15 * n_before < n_after < 0.45 * n_before
    # kept footprints are whole: every kept blob equals a blob of the original
    comp, _ = ndimage.label(before)
    kept = np.unique(comp[after])
    assert after.sum() == np.isin(comp, kept).sum()
