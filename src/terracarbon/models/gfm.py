"""Geospatial foundation model (GFM) for pixel regression: a timm Swin encoder plus a light decoder.

The paper configuration (Muszynski et al., 2024, "Fine-tuning of Geospatial Foundation Models for Aboveground Biomass
Estimation") is a Swin-B encoder, frozen, feeding a decoder made of **one convolutional layer** whose output is
upsampled to the input resolution. :class:`GFMRegressor` builds that (``decoder="conv"``) and two heavier options
(``"upernet"``: UPerNet-style pyramid pooling + FPN fusion; ``"unet"``: U-Net-style decoder with skip connections).

* Encoder: ``timm`` Swin (v1: ``swin_tiny_patch4_window7_224`` / ``swin_base_patch4_window7_224``; v2:
  ``swinv2_tiny_window8_256`` / ``swinv2_base_window8_256``, the family SatlasPretrain uses) created with
  ``pretrained=False`` (nothing is downloaded), ``in_chans`` = any number of bands, ``img_size`` = the training patch
  size and ``dynamic_img_size=True`` so that any other tile size works at prediction time.
* Any input ``H×W`` is accepted: the input is padded (reflect) to a multiple of ``patch_size * 8`` (the total stride
  of the four Swin stages, 32 for patch 4) and the output is cropped back, so the tiled prediction engine can use any
  tile size. Window sizes are fixed when the model is built (from ``img_size``); tiles at least as large as
  ``img_size`` are the intended use.
* ``freeze_encoder=True`` leaves only the decoder trainable; ``unfreeze_last_n_stages=N`` re-enables the last ``N``
  Swin stages (and the final norm).
* ``encoder_weights=path`` loads encoder weights from a local file through :mod:`terracarbon.models.weights`
  (timm/safetensors state dicts, Lightning checkpoints, torchvision/SatlasPretrain layouts, own SimMIM checkpoints).

The architecture is registered as ``"gfm"`` in :mod:`terracarbon.models.registry`, so ``build_model({"arch": "gfm",
"in_channels": 12, "size": "tiny"})``, ``train_biomass`` and the tiled ``predict`` all accept it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from terracarbon.errors import ConfigError

__all__ = [
    "ENCODER_NAMES",
    "DECODERS",
    "SwinEncoder",
    "GFMRegressor",
    "build_gfm",
    "count_parameters",
    "freeze_encoder",
    "parameter_table",
    "make_portable",
]

#: (variant, size) -> timm model name
ENCODER_NAMES: dict[tuple[str, str], str] = {
    ("swin", "tiny"): "swin_tiny_patch4_window7_224",
    ("swin", "base"): "swin_base_patch4_window7_224",
    ("swinv2", "tiny"): "swinv2_tiny_window8_256",
    ("swinv2", "base"): "swinv2_base_window8_256",
}
DECODERS = ("conv", "upernet", "unet")


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Return ``(trainable, total)`` parameter counts of ``model``."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


class SwinEncoder(nn.Module):
    """A timm Swin (v1 or v2) returning the four stage feature maps as ``B×C×H×W`` (channels first).

    timm's Swin keeps features channels-last (``NHWC``); they are permuted here. The last stage goes through the
    encoder's final ``norm`` (as in timm's ``forward_features``); the earlier ones through a parameter-free layer norm
    so a frozen encoder hands the decoder features on a comparable scale.
    """

    def __init__(
        self,
        in_chans: int,
        *,
        size: str = "tiny",
        variant: str = "swin",
        img_size: int = 256,
        patch_size: int = 4,
        window_size: int | None = None,
        drop_path_rate: float = 0.0,
        embed_dim: int | None = None,
        depths: Sequence[int] | None = None,
        num_heads: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        import timm

        key = (variant, size)
        if key not in ENCODER_NAMES:
            raise ConfigError(
                f"unknown GFM encoder variant/size {variant!r}/{size!r}; use variant in 'swin'|'swinv2' and size in "
                "'tiny'|'base'"
            )
        if in_chans < 1:
            raise ConfigError(f"in_channels must be >= 1, got {in_chans}")
        self.timm_name = ENCODER_NAMES[key]
        self.variant, self.size = variant, size
        kwargs: dict[str, Any] = {
            "pretrained": False,
            "in_chans": int(in_chans),
            "img_size": int(img_size),
            "patch_size": int(patch_size),
            "num_classes": 0,
            "dynamic_img_size": True,
            "drop_path_rate": float(drop_path_rate),
        }
        if window_size is not None:
            kwargs["window_size"] = int(window_size)
        if embed_dim is not None:  # custom (test-sized) widths
            kwargs["embed_dim"] = int(embed_dim)
        if depths is not None:
            kwargs["depths"] = tuple(int(d) for d in depths)
        if num_heads is not None:
            kwargs["num_heads"] = tuple(int(h) for h in num_heads)
        self.model = timm.create_model(self.timm_name, **kwargs)
        self.in_chans = int(in_chans)
        self.patch_size = int(patch_size)
        self.num_stages = len(self.model.layers)
        self.channels = [int(info["num_chs"]) for info in self.model.feature_info]
        self.reductions = [int(info["reduction"]) for info in self.model.feature_info]
        self.stride = self.reductions[-1]

    @property
    def stages(self) -> nn.ModuleList:
        """The Swin stages (``timm``'s ``layers``)."""
        return self.model.layers

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Map ``B×C×H×W`` (``H, W`` multiples of :attr:`stride`) to four ``B×C_i×H/r_i×W/r_i`` feature maps."""
        m = self.model
        y = m.patch_embed(x)  # NHWC
        feats = []
        for i, stage in enumerate(m.layers):
            y = stage(y)
            if i == self.num_stages - 1:
                f = m.norm(y)
            else:
                f = F.layer_norm(y, y.shape[-1:])
            feats.append(f.permute(0, 3, 1, 2).contiguous())
        return feats


def _conv_bn_relu(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ConvHead(nn.Module):
    """The paper's decoder: ONE convolution on the last encoder stage, then upsampling to full resolution.

    ``upsample="bilinear"``: the conv maps to ``out_channels`` and the map is bilinearly upsampled (the plain
    reading of "one conv layer + upsampling"). ``upsample="pixelshuffle"``: the conv maps to
    ``out_channels * stride**2`` and a parameter-free pixel shuffle rearranges them to full resolution (each
    last-stage token predicts its ``stride×stride`` pixel block, like SimMIM's reconstruction head).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 1,
        kernel_size: int = 3,
        upsample: str = "bilinear",
        stride: int = 32,
    ) -> None:
        super().__init__()
        if upsample not in ("bilinear", "pixelshuffle"):
            raise ConfigError(f"head_upsample must be 'bilinear' or 'pixelshuffle', got {upsample!r}")
        self.upsample = upsample
        self.stride = stride
        c = out_channels * (stride * stride if upsample == "pixelshuffle" else 1)
        self.conv = nn.Conv2d(in_channels[-1], c, kernel_size, padding=kernel_size // 2)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        y = self.conv(feats[-1])
        if self.upsample == "pixelshuffle":
            y = F.pixel_shuffle(y, self.stride)
            if tuple(y.shape[-2:]) == tuple(size):
                return y
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class UPerHead(nn.Module):
    """UPerNet-style decoder: pyramid pooling on the last stage, FPN lateral/top-down fusion, 1 conv to the output."""

    def __init__(
        self, in_channels: Sequence[int], out_channels: int = 1, channels: int = 64, pool_scales=(1, 2, 3, 6)
    ) -> None:
        super().__init__()
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), _conv_bn_relu(in_channels[-1], channels, 1))
            for s in pool_scales
        )
        self.bottleneck = _conv_bn_relu(in_channels[-1] + len(pool_scales) * channels, channels)
        self.lateral = nn.ModuleList(_conv_bn_relu(c, channels, 1) for c in in_channels[:-1])
        self.fpn = nn.ModuleList(_conv_bn_relu(channels, channels) for _ in in_channels[:-1])
        self.fuse = _conv_bn_relu(len(in_channels) * channels, channels)
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        top = feats[-1]
        pooled = [top] + [
            F.interpolate(p(top), size=top.shape[-2:], mode="bilinear", align_corners=False) for p in self.ppm
        ]
        lat = [lat_conv(f) for lat_conv, f in zip(self.lateral, feats[:-1])] + [
            self.bottleneck(torch.cat(pooled, 1))
        ]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(
                lat[i], size=lat[i - 1].shape[-2:], mode="bilinear", align_corners=False
            )
        outs = [conv(lat[i]) for i, conv in enumerate(self.fpn)] + [lat[-1]]
        outs = [outs[0]] + [
            F.interpolate(o, size=outs[0].shape[-2:], mode="bilinear", align_corners=False) for o in outs[1:]
        ]
        y = self.out(self.fuse(torch.cat(outs, 1)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class UNetHead(nn.Module):
    """U-Net-style decoder: upsample x2 + skip connection + two 3×3 convs per stage, then to full resolution."""

    def __init__(self, in_channels: Sequence[int], out_channels: int = 1, channels: int = 64) -> None:
        super().__init__()
        rev = list(in_channels)[::-1]
        self.blocks = nn.ModuleList()
        cur = rev[0]
        for skip in rev[1:]:
            self.blocks.append(
                nn.Sequential(_conv_bn_relu(cur + skip, channels), _conv_bn_relu(channels, channels))
            )
            cur = channels
        self.final = nn.Sequential(
            _conv_bn_relu(cur, channels // 2), nn.Conv2d(channels // 2, out_channels, 1)
        )

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        rev = feats[::-1]
        y = rev[0]
        for block, skip in zip(self.blocks, rev[1:]):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], 1))
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.final(y)


def freeze_encoder(model: GFMRegressor, freeze: bool = True, unfreeze_last_n_stages: int = 0) -> None:
    """Set ``requires_grad`` on the encoder: frozen (except the last ``N`` stages + final norm) or fully trainable."""
    enc = model.encoder
    for p in enc.parameters():
        p.requires_grad = not freeze
    n = int(unfreeze_last_n_stages)
    if freeze and n > 0:
        if n > enc.num_stages:
            raise ConfigError(f"unfreeze_last_n_stages={n} but the encoder has {enc.num_stages} stages")
        for stage in list(enc.stages)[-n:]:
            for p in stage.parameters():
                p.requires_grad = True
        for p in enc.model.norm.parameters():
            p.requires_grad = True


class GFMRegressor(nn.Module):
    """Swin encoder + decoder mapping ``B×C×H×W`` to ``B×out_channels×H×W`` for any ``H, W``.

    Args:
        in_channels: number of input bands (any; the patch embedding is built for it).
        out_channels: output channels (1 for biomass regression).
        size: ``"tiny"`` or ``"base"`` (Swin-T / Swin-B widths and depths).
        variant: ``"swin"`` (timm Swin v1) or ``"swinv2"`` (Swin v2, SatlasPretrain's family).
        decoder: ``"conv"`` (paper: one conv + upsampling), ``"upernet"`` or ``"unet"``.
        img_size: patch size the model is trained on (sets the window layout); other sizes work at inference.
        patch_size: Swin patch-embedding stride (4 in the standard models).
        window_size: attention window (default 7 for v1, 8 for v2); small values for small test images.
        freeze_encoder: only the decoder is trainable when True.
        unfreeze_last_n_stages: with ``freeze_encoder``, the last N encoder stages stay trainable.
        decoder_channels: width of the ``upernet``/``unet`` decoders. head_kernel_size: kernel of the ``conv`` head.
        head_upsample: ``"bilinear"`` or ``"pixelshuffle"`` upsampling after the ``conv`` head.
        encoder_weights: local file with encoder weights (see :func:`terracarbon.models.weights.load_encoder_weights`).
        band_adapt: how the first layer is adapted when the checkpoint's band count differs
            (``"average"`` | ``"repeat"`` | ``"select"``).
        checkpoint_bands / bands: band names of the checkpoint and of this model (for ``"select"`` by name).
        embed_dim, depths, num_heads: override the Swin widths (small models for tests).
        init_from: a terracarbon model file of the same GFM whose weights (encoder and decoder) are the start point.
        output_scale, output_shift: fixed affine map of the output (``y * scale + shift``, stored as buffers); used
            when fine-tuning from a model whose targets were standardised differently (eco-region transfer).
    """

    def __init__(
        self,
        in_channels: int = 12,
        out_channels: int = 1,
        *,
        size: str = "tiny",
        variant: str = "swin",
        decoder: str = "conv",
        img_size: int = 256,
        patch_size: int = 4,
        window_size: int | None = None,
        freeze_encoder: bool = True,
        unfreeze_last_n_stages: int = 0,
        decoder_channels: int = 64,
        head_kernel_size: int = 3,
        head_upsample: str = "bilinear",
        encoder_weights: str | Path | None = None,
        band_adapt: str = "average",
        checkpoint_bands: Sequence[str] | None = None,
        bands: Sequence[str] | None = None,
        drop_path_rate: float = 0.0,
        embed_dim: int | None = None,
        depths: Sequence[int] | None = None,
        num_heads: Sequence[int] | None = None,
        init_from: str | Path | None = None,
        output_scale: float = 1.0,
        output_shift: float = 0.0,
    ) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ConfigError(f"unknown GFM decoder {decoder!r}; use one of {', '.join(DECODERS)}")
        self.encoder = SwinEncoder(
            in_channels,
            size=size,
            variant=variant,
            img_size=img_size,
            patch_size=patch_size,
            window_size=window_size,
            drop_path_rate=drop_path_rate,
            embed_dim=embed_dim,
            depths=depths,
            num_heads=num_heads,
        )
        chans = self.encoder.channels
        if decoder == "conv":
            self.decoder = ConvHead(
                chans,
                out_channels,
                kernel_size=head_kernel_size,
                upsample=head_upsample,
                stride=self.encoder.stride,
            )
        elif decoder == "upernet":
            self.decoder = UPerHead(chans, out_channels, channels=decoder_channels)
        else:
            self.decoder = UNetHead(chans, out_channels, channels=decoder_channels)
        self.decoder_name = decoder
        self.out_channels = out_channels
        self.load_report = None
        if encoder_weights is not None:
            from terracarbon.models.weights import load_encoder_weights

            self.load_report = load_encoder_weights(
                self.encoder,
                encoder_weights,
                band_adapt=band_adapt,
                checkpoint_bands=checkpoint_bands,
                bands=bands,
            )
        self.register_buffer("out_scale", torch.tensor(float(output_scale)), persistent=False)
        self.register_buffer("out_shift", torch.tensor(float(output_shift)), persistent=False)
        if init_from is not None:
            self._init_from(Path(init_from))
        self.frozen = bool(freeze_encoder)
        freeze_encoder_fn(self, self.frozen, unfreeze_last_n_stages)

    def _init_from(self, path: Path) -> None:
        """Start from all weights (encoder + decoder) of a terracarbon GFM model file (fine-tuning a trained model)."""
        from terracarbon.errors import InputError

        if not path.exists():
            raise InputError(path, "init_from model file does not exist")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputError(path, f"not a readable torch file ({exc})") from exc
        sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not isinstance(sd, dict):
            raise InputError(path, "holds no state dict")
        own = {k: v for k, v in self.state_dict().items() if k not in ("out_scale", "out_shift")}
        bad = [k for k in own if k not in sd or sd[k].shape != own[k].shape]
        if bad:
            raise InputError(
                path,
                f"does not match this GFM ({len(bad)} missing or mis-shaped keys, e.g. {', '.join(bad[:5])})",
            )
        self.load_state_dict({k: sd[k] for k in own}, strict=False)

    def train(self, mode: bool = True) -> GFMRegressor:
        """Keep a fully frozen encoder in eval mode (no dropout / drop-path noise on frozen features)."""
        super().train(mode)
        if mode and self.frozen and not any(p.requires_grad for p in self.encoder.parameters()):
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B×C×H×W`` -> ``B×out_channels×H×W`` (input padded to the encoder stride, output cropped back)."""
        h, w = x.shape[-2:]
        s = self.encoder.stride
        ph, pw = (-h) % s, (-w) % s
        if ph or pw:
            mode = "reflect" if (ph < h and pw < w) else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        feats = self.encoder(x)
        y = self.decoder(feats, size=tuple(x.shape[-2:]))
        return y[..., :h, :w] * self.out_scale + self.out_shift


freeze_encoder_fn = freeze_encoder


def build_gfm(
    in_channels: int = 12,
    classes: int | None = None,
    out_channels: int | None = None,
    **kwargs: Any,
) -> GFMRegressor:
    """Registry builder for ``{"arch": "gfm", ...}``; ``classes`` is accepted as an alias of ``out_channels``."""
    out = out_channels if out_channels is not None else (classes if classes is not None else 1)
    return GFMRegressor(in_channels=in_channels, out_channels=int(out), **kwargs)


def parameter_table(
    in_channels: int = 12,
    unet_encoder: str = "resnet34",
    size: str = "base",
    variant: str = "swin",
    heads: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Trainable/total parameters of a U-Net from scratch and of GFMs with a frozen encoder and each head.

    The paper's configuration is ``size="base"`` (Swin-B) + ``decoder="conv"``. Models are built on the ``meta``
    device (no memory, no compute). Each row: ``model``, ``trainable``, ``total``, ``unet_ratio`` (U-Net trainable
    / this model's trainable). ``heads``: only the GFM rows whose label contains one of these strings.
    """
    from terracarbon.models.registry import build_model

    rows: list[dict[str, Any]] = []
    with torch.device("meta"):
        unet = build_model(
            {"arch": "unet", "in_channels": in_channels, "classes": 1, "encoder_name": unet_encoder}
        )
        u_tr, u_tot = count_parameters(unet)
        rows.append(
            {"model": f"U-Net (smp, {unet_encoder}, from scratch)", "trainable": u_tr, "total": u_tot}
        )
        name = "Swin-B" if size == "base" else "Swin-T"
        if variant == "swinv2":
            name += " v2"
        configs = [
            (f"GFM {name} frozen + 1 conv 3x3 + bilinear (paper)", {"decoder": "conv"}),
            (f"GFM {name} frozen + 1 conv 1x1 + bilinear", {"decoder": "conv", "head_kernel_size": 1}),
            (
                f"GFM {name} frozen + 1 conv 1x1 + pixel shuffle",
                {"decoder": "conv", "head_kernel_size": 1, "head_upsample": "pixelshuffle"},
            ),
            (f"GFM {name} frozen + UPerNet-style (64 ch)", {"decoder": "upernet"}),
            (f"GFM {name} frozen + U-Net-style (64 ch)", {"decoder": "unet"}),
            (f"GFM {name} unfrozen + 1 conv 3x3", {"decoder": "conv", "freeze_encoder": False}),
        ]
        for label, kw in configs:
            if heads is not None and not any(h in label for h in heads):
                continue
            kw = {"freeze_encoder": True, **kw}
            m = GFMRegressor(
                in_channels, 1, size=size, variant=variant, img_size=224 if variant == "swin" else 256, **kw
            )
            tr, tot = count_parameters(m)
            rows.append({"model": label, "trainable": tr, "total": tot})
    for r in rows:
        r["unet_ratio"] = u_tr / max(r["trainable"], 1)
    return rows


def make_portable(checkpoint: str | Path) -> Path:
    """Drop ``encoder_weights`` / ``init_from`` file paths from a saved GFM model's spec, in place (atomically).

    The saved ``state_dict`` already holds every weight; without the paths the checkpoint loads on machines where
    the pretraining files do not exist (``models.registry.load_checkpoint`` rebuilds the model from its spec).
    """
    from terracarbon.utils import atomic_path

    path = Path(checkpoint)
    payload = torch.load(path, map_location="cpu", weights_only=False)
    spec = dict(payload.get("spec") or {})
    if spec.get("arch") != "gfm" or not ({"encoder_weights", "init_from"} & set(spec)):
        return path
    meta = dict(payload.get("meta") or {})
    meta["weights_source"] = {k: str(spec.pop(k)) for k in ("encoder_weights", "init_from") if k in spec}
    payload["spec"], payload["meta"] = spec, meta
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return path


try:  # register with the model registry (imported lazily by the registry for arch "gfm")
    from terracarbon.models.registry import register_arch

    register_arch("gfm")(build_gfm)
except ImportError:  # pragma: no cover - registry not importable
    pass
