"""GFM model: frozen encoder -> exactly the head is trainable; any input size; registry + checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from terracarbon.errors import ConfigError
from terracarbon.models.gfm import GFMRegressor, count_parameters, make_portable, parameter_table
from terracarbon.models.registry import build_model, load_checkpoint, save_checkpoint

MINI = {"size": "tiny", "embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 4, 8), "window_size": 4}


def _numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_frozen_swin_tiny_has_exactly_its_head_trainable():
    with torch.device("meta"):  # real Swin-T widths, counted without allocating or computing anything
        m = GFMRegressor(12, 1, size="tiny", img_size=64, window_size=4, decoder="conv", freeze_encoder=True)
    trainable, total = count_parameters(m)
    # Swin-T last stage has 768 channels: one 3x3 conv to 1 output = 768*9 + 1 bias
    assert trainable == 768 * 9 + 1 == _numel(m.decoder)
    assert total == _numel(m.encoder) + _numel(m.decoder)
    assert 27_000_000 < total < 29_000_000
    assert not any(p.requires_grad for p in m.encoder.parameters())
    assert all(p.requires_grad for p in m.decoder.parameters())


def test_frozen_encoder_gets_no_gradient():
    torch.manual_seed(0)
    m = GFMRegressor(12, 1, img_size=64, decoder="conv", freeze_encoder=True, **MINI)
    assert count_parameters(m)[0] == 128 * 9 + 1 == _numel(m.decoder)
    m.train()
    assert not m.encoder.training  # a frozen encoder stays in eval mode
    m(torch.randn(2, 12, 64, 64)).mean().backward()
    assert all(p.grad is None for p in m.encoder.parameters())
    assert m.decoder.conv.weight.grad is not None


@pytest.mark.parametrize("decoder", ["upernet", "unet"])
def test_frozen_other_decoders_and_partial_unfreeze(decoder):
    m = GFMRegressor(5, 1, decoder=decoder, img_size=64, freeze_encoder=True, **MINI)
    assert count_parameters(m)[0] == _numel(m.decoder)
    m2 = GFMRegressor(
        5, 1, decoder=decoder, img_size=64, freeze_encoder=True, unfreeze_last_n_stages=1, **MINI
    )
    expected = _numel(m2.decoder) + _numel(m2.encoder.stages[-1]) + _numel(m2.encoder.model.norm)
    assert count_parameters(m2)[0] == expected
    m3 = GFMRegressor(5, 1, decoder=decoder, img_size=64, freeze_encoder=False, **MINI)
    assert count_parameters(m3)[0] == count_parameters(m3)[1]
    with pytest.raises(ConfigError):
        GFMRegressor(5, 1, decoder=decoder, img_size=64, unfreeze_last_n_stages=9, **MINI)


def test_paper_configuration_parameter_ratio():
    rows = parameter_table(in_channels=12, unet_encoder="resnet34", size="base", heads=["(paper)"])
    unet, paper = rows[0], rows[1]
    assert unet["model"] == "U-Net (smp, resnet34, from scratch)"
    assert paper["model"] == "GFM Swin-B frozen + 1 conv 3x3 + bilinear (paper)"
    assert paper["trainable"] == 1024 * 9 + 1  # Swin-B's last stage has 1024 channels
    assert 86_000_000 < paper["total"] - paper["trainable"] < 88_000_000  # Swin-B encoder, 12 bands
    assert 24_000_000 < unet["trainable"] < 25_000_000
    assert paper["unet_ratio"] == pytest.approx(unet["trainable"] / paper["trainable"])
    assert paper["unet_ratio"] > 1000


@pytest.mark.parametrize("bands,h,w", [(1, 64, 64), (5, 100, 72)])
def test_any_band_count_and_any_size(bands, h, w):
    m = GFMRegressor(bands, 1, img_size=64, **MINI).eval()
    with torch.no_grad():
        y = m(torch.randn(2, bands, h, w))
    assert y.shape == (2, 1, h, w)
    assert torch.isfinite(y).all()


def test_swinv2_and_pixelshuffle_head():
    m = GFMRegressor(3, 2, variant="swinv2", img_size=64, head_upsample="pixelshuffle", **MINI).eval()
    assert count_parameters(m)[0] == 128 * 9 * 2 * 32 * 32 + 2 * 32 * 32
    with torch.no_grad():
        assert m(torch.randn(1, 3, 64, 96)).shape == (1, 2, 64, 96)
    with pytest.raises(ConfigError):
        GFMRegressor(3, 1, decoder="nope", **MINI)


def test_registry_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    spec = {"arch": "gfm", "in_channels": 4, "classes": 1, "img_size": 64, "decoder": "upernet", **MINI}
    model = build_model(spec).eval()
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        ref = model(x)
    path = save_checkpoint(tmp_path / "gfm.pt", model, spec, {"task": "regression", "bands": list("abcd")})
    loaded, spec2, meta = load_checkpoint(path)
    with torch.no_grad():
        assert torch.allclose(loaded(x), ref, atol=1e-5)
    assert spec2["arch"] == "gfm" and meta["bands"] == list("abcd")


def test_make_portable_checkpoint_loads_without_the_pretraining_file(tmp_path):
    torch.manual_seed(0)
    enc = GFMRegressor(4, 1, img_size=64, **MINI).encoder
    wpath = tmp_path / "enc.pth"
    torch.save(enc.model.state_dict(), wpath)
    spec = {
        "arch": "gfm",
        "in_channels": 4,
        "classes": 1,
        "img_size": 64,
        "encoder_weights": str(wpath),
        **MINI,
    }
    model = build_model(spec).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, spec, {"task": "regression"})
    make_portable(path)
    wpath.unlink()  # e.g. another machine
    loaded, spec2, meta = load_checkpoint(path)
    assert "encoder_weights" not in spec2 and meta["weights_source"]["encoder_weights"] == str(wpath)
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_init_from_with_output_calibration(tmp_path):
    torch.manual_seed(0)
    spec = {"arch": "gfm", "in_channels": 3, "classes": 1, "img_size": 64, "decoder": "unet", **MINI}
    src = build_model(spec).eval()
    path = save_checkpoint(tmp_path / "src.pt", src, spec, {"task": "regression"})
    ft = build_model({**spec, "init_from": str(path), "output_scale": 2.0, "output_shift": -1.0}).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ft(x), 2.0 * src(x) - 1.0, atol=1e-5)
    with pytest.raises(Exception, match="does not match this GFM"):
        build_model({**spec, "decoder": "conv", "init_from": str(path)})
