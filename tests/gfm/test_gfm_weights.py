"""Encoder weights from local files: layouts, band adaptation of the first layer, clear errors."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.swin_transformer import (
    PatchMerging,
    PatchMergingV2,
    SwinTransformer,
    SwinTransformerBlock,
    SwinTransformerBlockV2,
)

from terracarbon.errors import InputError
from terracarbon.models.gfm import GFMRegressor, SwinEncoder
from terracarbon.models.weights import SATLAS_S2_MS_BANDS, EncoderWeightsError, load_encoder_weights

MINI = {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 4, 8), "window_size": 4}
PE = "patch_embed.proj.weight"


def _enc(bands: int, variant: str = "swin", img: int = 64) -> SwinEncoder:
    return SwinEncoder(bands, variant=variant, img_size=img, **MINI).eval()


def _tv_swin(bands: int, v2: bool) -> SwinTransformer:
    """A torchvision Swin with the same (small) geometry, first conv swapped for ``bands`` inputs (as Satlas does)."""
    m = SwinTransformer(
        patch_size=[4, 4],
        embed_dim=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        window_size=[4, 4],
        block=SwinTransformerBlockV2 if v2 else SwinTransformerBlock,
        downsample_layer=PatchMergingV2 if v2 else PatchMerging,
    )
    m.features[0][0] = torch.nn.Conv2d(bands, 16, kernel_size=4, stride=4)
    return m.eval()


def test_lightning_checkpoint_with_other_band_count_loads_with_adapted_first_layer(tmp_path):
    torch.manual_seed(0)
    src = _enc(3)
    sd = {f"model.encoder.model.{k}": v for k, v in src.model.state_dict().items()}
    sd["model.decoder.conv.weight"] = torch.zeros(1, 128, 3, 3)  # a head that must be ignored
    path = tmp_path / "epoch=3.ckpt"
    torch.save({"state_dict": sd, "epoch": 3, "global_step": 10}, path)

    dst = _enc(5)
    rep = load_encoder_weights(dst, path, band_adapt="repeat")
    w3, w5 = src.model.state_dict()[PE], dst.model.state_dict()[PE]
    assert w5.shape[1] == 5
    assert torch.allclose(w5, w3[:, [0, 1, 2, 0, 1]] * 3 / 5)
    assert rep.prefix == "model.encoder.model." and rep.layout == "timm"
    assert "3->5" in rep.first_layer
    for k, v in src.model.state_dict().items():
        if k != PE:
            assert torch.equal(v, dst.model.state_dict()[k]), k

    dst2 = _enc(2)
    load_encoder_weights(dst2, path, band_adapt="average")
    assert torch.allclose(dst2.model.state_dict()[PE], w3.mean(1, keepdim=True).repeat(1, 2, 1, 1) * 3 / 2)


def test_safetensors_same_band_count_is_exact(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(1)
    src = _enc(4)
    path = tmp_path / "enc.safetensors"
    save_file({k: v.contiguous() for k, v in src.model.state_dict().items()}, str(path))
    dst = _enc(4)
    load_encoder_weights(dst, path)
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        assert torch.allclose(src(x)[-1], dst(x)[-1], atol=1e-6)


@pytest.mark.parametrize("v2", [False, True])
def test_torchvision_and_satlas_layouts_match_numerically(tmp_path, v2):
    """torchvision Swin (v1) / Swin v2 in Satlas's ``backbone.backbone.features.*`` layout -> timm, same output."""
    torch.manual_seed(2)
    tv = _tv_swin(9, v2)
    holder = torch.nn.Module()
    holder.backbone = torch.nn.Module()
    holder.backbone.backbone = tv
    path = tmp_path / "sentinel2_swin_si_ms.pth"
    torch.save(holder.state_dict(), path)  # keys: backbone.backbone.features.0.0.weight, ...

    enc = _enc(9, "swinv2" if v2 else "swin", img=128)
    rep = load_encoder_weights(enc, path)
    assert rep.layout.startswith("satlaspretrain") and rep.prefix == "backbone.backbone."
    x = torch.randn(1, 9, 128, 128)
    with torch.no_grad():
        ref = tv.norm(tv.features(x)).permute(0, 3, 1, 2)
        out = enc(x)[-1]
    assert torch.allclose(out, ref, atol=1e-4)

    # our 12-band stack: Sentinel-2 bands keep their Satlas filters (by name), the others get the mean filter
    ours = ["B02", "B03", "B04", "B08", "B11", "B12", "HH", "HV", "CH", "CH_STD", "DEM", "LC"]
    m = GFMRegressor(
        12,
        1,
        variant="swinv2" if v2 else "swin",
        img_size=128,
        encoder_weights=path,
        band_adapt="select",
        checkpoint_bands=SATLAS_S2_MS_BANDS,
        bands=ours,
        **MINI,
    )
    w_ckpt = tv.features[0][0].weight.detach()
    w = m.encoder.model.patch_embed.proj.weight.detach()
    for i, b in enumerate(ours):
        expect = w_ckpt[:, SATLAS_S2_MS_BANDS.index(b)] if b in SATLAS_S2_MS_BANDS else w_ckpt.mean(1)
        assert torch.allclose(w[:, i], expect), b
    assert m.load_report is not None and "select by name" in m.load_report.first_layer


def test_malformed_checkpoints_give_clear_errors(tmp_path):
    enc = _enc(4)
    good = enc.model.state_dict()

    missing = {k: v for k, v in good.items() if not k.startswith("layers.3.")}
    p = tmp_path / "missing.pth"
    torch.save(missing, p)
    with pytest.raises(EncoderWeightsError) as e:
        load_encoder_weights(_enc(4), p)
    msg = str(e.value)
    assert str(p) in msg and "missing keys" in msg and "layers.3.blocks.0.attn.qkv.weight" in msg

    extra = dict(good)
    extra["layers.0.blocks.0.attn.surprise"] = torch.zeros(3)
    torch.save(extra, p)
    with pytest.raises(
        EncoderWeightsError, match=r"unexpected keys \(1\): layers\.0\.blocks\.0\.attn\.surprise"
    ):
        load_encoder_weights(_enc(4), p)

    wide = SwinEncoder(
        4, img_size=64, embed_dim=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=4
    )
    torch.save(wide.model.state_dict(), p)
    with pytest.raises(EncoderWeightsError, match="shape mismatches"):
        load_encoder_weights(_enc(4), p)

    torch.save({"foo.weight": torch.zeros(2)}, p)
    with pytest.raises(EncoderWeightsError, match="no Swin patch embedding"):
        load_encoder_weights(_enc(4), p)

    torch.save(_enc(4, "swinv2").model.state_dict(), p)
    with pytest.raises(EncoderWeightsError, match="variant='swinv2'"):
        load_encoder_weights(_enc(4), p)

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="not a readable torch checkpoint"):
        load_encoder_weights(_enc(4), junk)
    with pytest.raises(InputError, match="does not exist"):
        load_encoder_weights(_enc(4), tmp_path / "absent.pth")
