"""Own SimMIM pretraining: it lowers its own held-out reconstruction loss and writes a loadable encoder."""

from __future__ import annotations

import pytest
import torch

from terracarbon.errors import ConfigError, InputError
from terracarbon.gfm.pretrain import (
    encoder_band_norm,
    gfm_spec_from_encoder,
    pretrain_simmim,
    random_block_mask,
    read_encoder_checkpoint,
)
from terracarbon.models.registry import build_model

MINI = {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 4, 8), "window_size": 4}


def test_block_mask_ratio_and_shape():
    m = random_block_mask(3, (16, 16), 4, 0.5, torch.Generator().manual_seed(0))
    assert m.shape == (3, 16, 16)
    assert torch.allclose(m.mean(dim=(1, 2)), torch.full((3,), 0.5))
    # blocks of 4x4 patches: constant inside each block
    blocks = m.view(3, 4, 4, 4, 4)
    assert torch.equal(blocks.amax(dim=(2, 4)), blocks.amin(dim=(2, 4)))


def test_pretraining_lowers_reconstruction_loss_and_checkpoint_loads(stacks, tmp_path):
    out = tmp_path / "enc" / "encoder.pt"
    res = pretrain_simmim(
        stacks,
        out,
        img_size=32,
        mask_patch_size=8,
        mask_ratio=0.5,
        epochs=3,
        tiles_per_epoch=32,
        val_tiles=16,
        batch_size=16,
        lr=5e-3,
        seed=0,
        progress=False,
        accelerator="cpu",
        track=False,
        **MINI,
    )
    assert out.exists() and len(res.history) == 3
    # fixed held-out tiles and fixed masks: the masked-pixel L1 must drop clearly (about 0.88 -> 0.78 here)
    assert res.final_val_loss < 0.93 * res.initial_val_loss, (res.initial_val_loss, res.history)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] * 1.05
    assert res.bands == [f"B{i}" for i in range(1, 7)]

    ck = read_encoder_checkpoint(out)
    assert ck["encoder"]["in_chans"] == 6 and len(ck["mean"]) == 6
    spec = gfm_spec_from_encoder(out, freeze_encoder=True)
    model = build_model({**spec, "classes": 1})
    for k, v in ck["state_dict"].items():
        assert torch.equal(model.encoder.model.state_dict()[k], v), k
    assert model.load_report.layout == "timm"
    # fine-tuning reuses the pretraining normalisation, but only for the same bands
    assert encoder_band_norm(out, res.bands) == (res.mean, res.std)
    assert encoder_band_norm(out, ["B1", "B2"]) is None


def test_pretrain_rejects_bad_input(tmp_path, make_stack):
    with pytest.raises(InputError, match="does not exist"):
        pretrain_simmim([tmp_path / "absent.tif"], tmp_path / "e.pt", progress=False)
    small = make_stack(tmp_path / "small.tif", size=24)
    with pytest.raises(InputError, match="smaller than"):
        pretrain_simmim([small], tmp_path / "e.pt", img_size=32, progress=False, **MINI)
    with pytest.raises(ConfigError, match="multiple of"):
        pretrain_simmim([small], tmp_path / "e.pt", img_size=40, progress=False, **MINI)
    with pytest.raises(InputError, match="not a terracarbon GFM encoder"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "other.pt")
        read_encoder_checkpoint(tmp_path / "other.pt")


def test_visible_weight_adds_the_visible_pixels_to_the_loss():
    from terracarbon.gfm.pretrain import SimMIM
    from terracarbon.models.gfm import SwinEncoder

    x = torch.randn(2, 3, 32, 32)
    valid = torch.ones(2, 32, 32, dtype=torch.bool)
    mask = random_block_mask(2, (8, 8), 2, 0.5, torch.Generator().manual_seed(1))
    pix = mask.repeat_interleave(4, 1).repeat_interleave(4, 2).unsqueeze(1)
    rec = x + (1.0 - pix)  # perfect on masked pixels, off by exactly 1 on visible pixels
    losses = {}
    for vw in (0.0, 1.0):
        m = SimMIM(SwinEncoder(3, img_size=32, **MINI), mask_patch_size=8, mask_ratio=0.5, visible_weight=vw)
        m.reconstruct = lambda *_: rec
        losses[vw] = float(m.loss(x, valid, mask))
    assert losses[0.0] == pytest.approx(0.0, abs=1e-6)  # SimMIM proper ignores visible pixels
    assert losses[1.0] == pytest.approx(0.5, abs=1e-4)  # half the pixels visible, each off by 1
    with pytest.raises(ConfigError, match="visible_weight"):
        SimMIM(SwinEncoder(3, img_size=32, **MINI), mask_patch_size=8, visible_weight=-1.0)
