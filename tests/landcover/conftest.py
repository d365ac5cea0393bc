"""Shared fixtures: a synthetic LandCover.ai look-alike and one small model trained on it (once per session)."""

from __future__ import annotations

import contextlib

import pytest


@contextlib.contextmanager
def one_thread():
    """Train single-threaded: tiny models gain little from a second thread, and OpenMP threads spin (burning
    CPU) when other processes share the cores. Restores the previous setting for the rest of the session."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


#: CI-sized training recipe (tiny U-Net, 64 px tiles); see the README section on land cover
TRAIN_KW = dict(model="unet-tiny", epochs=14, lr=1e-2, batch_size=8)  # default weighting: inverse, capped 10


@pytest.fixture
def single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    from terracarbon.data.synthetic.landcover import make_synthetic_release

    return make_synthetic_release(
        tmp_path_factory.mktemp("lc_synth"), n_images=8, size=(256, 256), tile_size=64, seed=0
    )


@pytest.fixture(scope="session")
def trained(synthetic_root, tmp_path_factory):
    from terracarbon.landcover.train import train_landcover

    with one_thread():
        return train_landcover(
            synthetic_root,
            out_dir=tmp_path_factory.mktemp("lc_run"),
            seed=0,
            accelerator="cpu",
            progress=False,
            **TRAIN_KW,
        )


@pytest.fixture(scope="session")
def holdout_scene(tmp_path_factory):
    """A whole synthetic orthophoto (not tiled, unseen seed) with its reference mask, EPSG:2180, 25 cm."""
    from terracarbon.data.landcover_ai import write_mask, write_orthophoto
    from terracarbon.data.synthetic.landcover import render_scene

    d = tmp_path_factory.mktemp("lc_holdout")
    rgb, mask = render_scene(200, 264, seed=12345)
    img = write_orthophoto(d / "images" / "N-34-97-C-b-3-2.tif", rgb, resolution=0.25)
    ref = write_mask(d / "masks" / "N-34-97-C-b-3-2.tif", mask, resolution=0.25)
    return img, ref, mask
