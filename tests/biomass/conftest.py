"""Fixtures for the biomass tests: small seeded synthetic scenes and one trained CI-sized U-Net."""

from __future__ import annotations

import pytest

# The accuracy testbed: a 256 px training scene (seed 0) and a held-out 256 px scene (seed 1), 10 m pixels,
# ~1.5 % of pixels labelled with 25 % multiplicative (lognormal) label noise.
SCENE_SIZE = 256
CI_SPEC = {"arch": "unet", "encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [64, 32, 16]}
CI_TRAIN = {
    "epochs": 5,
    "samples_per_epoch": 192,
    "patch_size": 64,
    "batch_size": 16,
    "lr": 3e-3,
    "patience": 10,
}


@pytest.fixture(scope="session")
def scenes(tmp_path_factory):
    from terracarbon.data.synthetic.scenes import make_scene

    root = tmp_path_factory.mktemp("biomass-scenes")
    train = make_scene(root / "train", size=SCENE_SIZE, seed=0)
    test = make_scene(root / "test", size=SCENE_SIZE, seed=1)
    return train, test


@pytest.fixture(scope="session")
def trained(scenes, tmp_path_factory):
    """train_biomass on the training scene, scored on the held-out scene (shared by several tests)."""
    from terracarbon.biomass.train import train_biomass

    train, test = scenes
    out = tmp_path_factory.mktemp("biomass-run")
    return train_biomass(
        [train], test_scenes=[test], model_spec=CI_SPEC, seed=0, out_dir=out, progress=False, **CI_TRAIN
    )


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """An untrained tiny U-Net checkpoint for 12 bands (fast engine/CLI tests)."""
    import torch

    from terracarbon.data.synthetic.scenes import BANDS
    from terracarbon.models.registry import build_model, save_checkpoint

    torch.manual_seed(0)
    spec = {
        "arch": "unet",
        "in_channels": 12,
        "classes": 1,
        "encoder_name": "resnet18",
        "encoder_depth": 3,
        "decoder_channels": [16, 16, 16],
    }
    model = build_model(spec)
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    meta = {
        "task": "regression",
        "bands": BANDS,
        "mean": [0.0] * 12,
        "std": [100.0] * 12,
        "target_scale": 50.0,
        "target_offset": 150.0,
        "clip_min": 0.0,
    }
    return save_checkpoint(path, model, spec, meta)
