"""TerraTorch's pixel-wise regression network (Prithvi Swin + UperNet + PixelShuffle head), rebuilt without TerraTorch.

IBM's granite-geospatial-biomass model is a TerraTorch ``PixelwiseRegressionTask`` whose ``model`` is a
``PixelWiseModel`` with three parts, named in its state dict ``model.encoder.*``, ``model.decoder.*`` and
``model.head.*``. This module builds the same network from timm layers (``DropPath``, ``trunc_normal_``) and
own modules, so that the published weights load one to one (same keys, same shapes, same arithmetic):

* **Encoder** (:class:`MMSegSwin`): TerraTorch's ``prithvi_swin_B`` / ``prithvi_swin_L`` backbones are the
  MMSegmentation layout of Swin (``terratorch/models/backbones/swin_encoder_decoder.py``, ``MMSegSwinTransformer``,
  wrapped by timm's ``features_only`` builder, hence the ``stages_0`` … ``stages_3`` names):
  ``patch_embed.projection`` (a ``patch_size`` strided conv, the input padded bottom/right by *replication* to a
  multiple of the patch size) + ``patch_embed.norm``; per stage, blocks with ``norm1``, ``attn.w_msa`` (``qkv``,
  ``proj``, ``relative_position_bias_table`` and the ``relative_position_index`` buffer), ``norm2`` and an FFN
  ``ffn.layers.0.0`` / ``ffn.layers.1`` (GELU); odd blocks use shifted windows (shift ``window // 2``), the feature
  map is zero-padded bottom/right to a multiple of the window *before* the cyclic shift, and the shift is kept even
  when the map is no larger than one window (unlike timm's Swin, which turns it off). Each stage returns its
  ``norm`` (a LayerNorm per stage) of the pre-merging tokens; ``downsample`` is a 2×2 patch merging in the
  ``nn.Unfold`` channel order (channel-major: ``c * 4 + dy * 2 + dx``), zero-padding odd maps, LayerNorm over the
  ``4C`` vector, then a bias-free ``reduction`` to ``2C``.
* **Decoder** (:class:`UperNetDecoder`): ``terratorch/models/decoders/upernet_decoder.py`` (adapted from
  MMSegmentation): pyramid pooling (``psp_modules``, scales 1, 2, 3, 6) on the last stage + ``bottleneck``, FPN
  ``lateral_convs`` / ``fpn_convs`` and ``fpn_bottleneck``; every conv is ``ConvModule`` = bias-free conv +
  BatchNorm + ReLU; all resizes are bilinear with ``align_corners=True`` (TerraTorch's default). Output at 1/4 of the
  input resolution.
* **Head** (:class:`RegressionHead`): ``terratorch/models/heads/regression_head.py``: ``learned_upscale_layers``
  PixelShuffle blocks (conv 3×3 to ``4C`` with bias, ``PixelShuffle(2)``, BatchNorm, ReLU), optional conv blocks
  (``channel_list``), ``Dropout2d``, a 1×1 conv to one channel and the final activation (granite: ``ReLU``).
* ``PixelWiseModel.forward`` (``terratorch/models/pixel_wise_model.py``) resizes the head output bilinearly
  (``align_corners=False``) to the input size when it differs (inputs that are not a multiple of 4).

Facts were read from TerraTorch's sources (github.com/IBM/terratorch, Apache-2.0); no TerraTorch code is imported or
copied. The forward of :class:`TerraTorchRegressor` equals TerraTorch 1.2.11's within 1e-4 (see
``tests/models/test_terratorch_import.py``, which compares against TerraTorch itself when it is installed).

The network is registered as ``{"arch": "terratorch_upernet", ...}`` in :mod:`terracarbon.models.registry`; its
output is ``B×1×H×W`` (the channel kept, as the tiled engine expects). ``freeze_encoder`` / ``init_from`` /
``output_scale`` / ``output_shift`` serve fine-tuning (``biomass train --init``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from terracarbon.errors import ConfigError, InputError

__all__ = [
    "SWIN_VARIANTS",
    "MMSegSwin",
    "UperNetDecoder",
    "RegressionHead",
    "TerraTorchRegressor",
    "build_terratorch_upernet",
    "final_activation",
]

#: TerraTorch backbone name -> MMSeg Swin geometry (``terratorch/models/backbones/prithvi_swin.py``)
SWIN_VARIANTS: dict[str, dict[str, Any]] = {
    "prithvi_swin_B": {"embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32)},
    "prithvi_swin_L": {"embed_dim": 192, "depths": (2, 2, 18, 2), "num_heads": (6, 12, 24, 48)},
}

_ACTIVATIONS = ("ReLU", "Sigmoid", "Softplus", "Tanh", "Identity", "GELU", "SiLU", "ELU", "LeakyReLU")


def final_activation(name: str | None) -> nn.Module:
    """The head's final activation from a TerraTorch ``head_final_act`` value (``"torch.nn.ReLU"``, ``"ReLU"``, None)."""
    if name is None or name in ("", "None", "none"):
        return nn.Identity()
    short = str(name).rsplit(".", 1)[-1]
    if short not in _ACTIVATIONS:
        raise ConfigError(f"unsupported head final activation {name!r}; supported: {', '.join(_ACTIVATIONS)}")
    return getattr(nn, short)()


# ---------------------------------------------------------------------------------------------------------- encoder


class _PatchEmbed(nn.Module):
    """Strided conv patch embedding; input padded bottom/right by replication to a multiple of the patch size."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.patch_size = int(patch_size)
        self.projection = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        p = self.patch_size
        ph, pw = (-x.shape[-2]) % p, (-x.shape[-1]) % p
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = self.projection(x)
        hw = (int(x.shape[2]), int(x.shape[3]))
        return self.norm(x.flatten(2).transpose(1, 2)), hw


class _PatchMerging(nn.Module):
    """2×2 patch merging in ``nn.Unfold`` channel order (``c*4 + dy*2 + dx``), zero padding, LayerNorm, reduction."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
        b, _, c = x.shape
        h, w = hw
        x = x.view(b, h, w, c)
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
            h, w = h + h % 2, w + w % 2
        # B, H/2, dy, W/2, dx, C -> B, H/2, W/2, C, dy, dx
        x = x.view(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 5, 2, 4).reshape(b, (h // 2) * (w // 2), 4 * c)
        return self.reduction(self.norm(x)), (h // 2, w // 2)


def _relative_position_index(ws: int) -> torch.Tensor:
    """Standard Swin relative-position index of a ``ws×ws`` window (``(dy + ws-1) * (2ws-1) + dx + ws-1``)."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :] + (ws - 1)
    return (rel[0] * (2 * ws - 1) + rel[1]).contiguous()


class _WindowAttention(nn.Module):
    """Window multi-head self-attention with a relative-position bias (MMSeg ``WindowMSA`` parameters)."""

    def __init__(self, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        self.num_heads = int(num_heads)
        self.window_size = int(window_size)
        n_rel = (2 * window_size - 1) ** 2
        self.relative_position_bias_table = nn.Parameter(torch.zeros(n_rel, num_heads))
        self.register_buffer("relative_position_index", _relative_position_index(window_size))
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, n_windows: int, mask: torch.Tensor | None) -> torch.Tensor:
        """``x``: ``(B*nW)×N×C`` windows (batch-major); ``mask``: ``nW×N×N`` additive mask or None."""
        bw, n, c = x.shape
        h = self.num_heads
        qkv = self.qkv(x).view(bw // n_windows, n_windows, n, 3, h, c // h).permute(3, 0, 1, 4, 2, 5)
        q, k, v = qkv[0], qkv[1], qkv[2]  # B, nW, heads, N, hd
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        bias = bias.view(n, n, h).permute(2, 0, 1)  # heads, N, N
        attn = (q * (c // h) ** -0.5) @ k.transpose(-2, -1) + bias[None, None].to(q.dtype)
        if mask is not None:
            attn = attn + mask[None, :, None].to(q.dtype)
        # two plain matmuls, as MMSeg's WindowMSA: with a float mask on 5-D windows, fused SDPA takes its generic
        # CPU kernel, 1.5-2.8x slower at granite's window shapes (measured, 2026-12-01)
        y = attn.softmax(dim=-1) @ v
        y = y.permute(0, 1, 3, 2, 4).reshape(bw, n, c)
        return self.proj(y)


class _ShiftWindowAttention(nn.Module):
    """Pads to the window grid, cyclically shifts (odd blocks), attends per window, undoes both (MMSeg semantics)."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, drop_path: float) -> None:
        super().__init__()
        from timm.layers import DropPath

        if not 0 <= shift_size < window_size:
            raise ConfigError(f"shift size {shift_size} must be in [0, window size {window_size})")
        self.window_size, self.shift_size = int(window_size), int(shift_size)
        self.w_msa = _WindowAttention(dim, num_heads, window_size)
        self.drop = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self._masks: dict[tuple, torch.Tensor] = {}

    def _mask(self, hp: int, wp: int, device, dtype) -> torch.Tensor:
        key = (hp, wp, str(device), dtype)
        m = self._masks.get(key)
        if m is None:
            # built in numpy from the (static) padded size: under ONNX tracing it becomes one constant
            ws, s = self.window_size, self.shift_size
            img = np.zeros((hp, wp), np.float32)
            cnt = 0
            for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                for vs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                    img[hs, vs] = cnt
                    cnt += 1
            win = img.reshape(hp // ws, ws, wp // ws, ws).transpose(0, 2, 1, 3).reshape(-1, ws * ws)
            diff = win[:, None, :] - win[:, :, None]
            m = torch.from_numpy(np.where(diff != 0, np.float32(-100.0), np.float32(0.0))).to(device, dtype)
            if not torch.jit.is_tracing():
                self._masks[key] = m
        return m

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, _, c = x.shape
        h, w = hw
        ws, s = self.window_size, self.shift_size
        x = x.view(b, h, w, c)
        pb, pr = (-h) % ws, (-w) % ws
        if pb or pr:
            x = F.pad(x, (0, 0, 0, pr, 0, pb))
        hp, wp = h + pb, w + pr
        mask = None
        if s > 0:
            x = torch.roll(x, shifts=(-s, -s), dims=(1, 2))
            mask = self._mask(hp, wp, x.device, x.dtype)
        nh, nw = hp // ws, wp // ws
        win = x.view(b, nh, ws, nw, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b * nh * nw, ws * ws, c)
        y = self.w_msa(win, nh * nw, mask)
        y = y.view(b, nh, nw, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        if s > 0:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        if pb or pr:
            y = y[:, :h, :w, :]
        return self.drop(y.reshape(b, h * w, c))


class _FFN(nn.Module):
    """MMSeg FFN: ``layers.0.0`` (Linear to ``hidden``) + GELU, ``layers.1`` (Linear back), drop-path residual."""

    def __init__(self, dim: int, hidden: int, drop_path: float) -> None:
        super().__init__()
        from timm.layers import DropPath

        self.layers = nn.Sequential(
            nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0)),
            nn.Linear(hidden, dim),
            nn.Dropout(0.0),
        )
        self.dropout_layer = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        return identity + self.dropout_layer(self.layers(x))


class _SwinBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, hidden: int, window_size: int, shift: bool, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _ShiftWindowAttention(dim, num_heads, window_size, window_size // 2 if shift else 0, drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = _FFN(dim, hidden, drop_path)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), hw)
        return self.ffn(self.norm2(x), identity=x)


class _SwinStage(nn.Module):
    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        window_size: int,
        mlp_ratio: float,
        drop_paths: Sequence[float],
        downsample: bool,
    ) -> None:
        super().__init__()
        hidden = int(mlp_ratio * dim)
        self.blocks = nn.ModuleList(
            _SwinBlock(dim, num_heads, hidden, window_size, i % 2 == 1, float(drop_paths[i])) for i in range(depth)
        )
        self.downsample = _PatchMerging(dim) if downsample else None
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]):
        for blk in self.blocks:
            x = blk(x, hw)
        # the channel count spelled out (not -1): ONNX shape inference then knows every dim but the batch
        out = self.norm(x).view(x.shape[0], hw[0], hw[1], self.norm.normalized_shape[0]).permute(0, 3, 1, 2)
        if self.downsample is None:
            return out, x, hw
        x, hw = self.downsample(x, hw)
        return out, x, hw


class MMSegSwin(nn.Module):
    """Swin transformer in the MMSegmentation layout TerraTorch's ``prithvi_swin_*`` backbones use.

    Returns the four stage outputs (each after its stage ``norm``) as ``B×C_i×H_i×W_i`` (channels first), at
    strides 4, 8, 16, 32 (sizes rounded up: any input size works, through padding).
    """

    def __init__(
        self,
        in_chans: int = 6,
        embed_dim: int = 128,
        depths: Sequence[int] = (2, 2, 18, 2),
        num_heads: Sequence[int] = (4, 8, 16, 32),
        window_size: int = 7,
        patch_size: int = 4,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ConfigError(f"depths {list(depths)} and num_heads {list(num_heads)} differ in length")
        self.patch_embed = _PatchEmbed(in_chans, embed_dim, patch_size)
        n = sum(int(d) for d in depths)
        dpr = [float(drop_path_rate) * i / max(n - 1, 1) for i in range(n)]  # linear decay rule
        self.num_stages = len(depths)
        self.channels = [int(embed_dim * 2**i) for i in range(self.num_stages)]
        for i, d in enumerate(depths):
            stage = _SwinStage(
                self.channels[i],
                int(d),
                int(num_heads[i]),
                int(window_size),
                float(mlp_ratio),
                dpr[sum(depths[:i]) : sum(depths[: i + 1])],
                downsample=i < self.num_stages - 1,
            )
            self.add_module(f"stages_{i}", stage)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def stages(self) -> list[nn.Module]:
        """The Swin stages in order."""
        return [getattr(self, f"stages_{i}") for i in range(self.num_stages)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``B×C×H×W`` -> four channels-first feature maps."""
        y, hw = self.patch_embed(x)
        feats = []
        for stage in self.stages:
            out, y, hw = stage(y, hw)
            feats.append(out.contiguous())
        return feats


# ---------------------------------------------------------------------------------------------------------- decoder


class _ConvModule(nn.Module):
    """Bias-free conv + BatchNorm + ReLU (TerraTorch ``decoders.utils.ConvModule``: keys ``conv``, ``norm``)."""

    def __init__(self, cin: int, cout: int, k: int, padding: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=padding, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


def _adaptive_pool_matrix(n: int, s: int) -> np.ndarray:
    """``s×n`` matrix of ``adaptive_avg_pool`` from ``n`` to ``s`` cells: bin ``i`` averages
    ``[floor(i n / s), ceil((i + 1) n / s))``, PyTorch's bin rule (ONNX has no adaptive pooling when ``s`` does not
    divide ``n``)."""
    a = np.zeros((s, n), np.float32)
    for i in range(s):
        lo, hi = (i * n) // s, -(-((i + 1) * n) // s)
        a[i, lo:hi] = 1.0 / (hi - lo)
    return a


class UperNetDecoder(nn.Module):
    """UperNet (PPM + FPN) with TerraTorch's parameter names; output ``channels`` maps at the first level's size."""

    def __init__(
        self,
        embed_dim: Sequence[int],
        channels: int = 256,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        align_corners: bool = True,
    ) -> None:
        super().__init__()
        embed_dim = [int(c) for c in embed_dim]
        self.out_channels = int(channels)
        self.align_corners = bool(align_corners)
        self.psp_modules = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(int(s)), _ConvModule(embed_dim[-1], channels, 1)) for s in pool_scales
        )
        self.bottleneck = _ConvModule(embed_dim[-1] + len(pool_scales) * channels, channels, 3, padding=1)
        self.lateral_convs = nn.ModuleList(_ConvModule(c, channels, 1) for c in embed_dim[:-1])
        self.fpn_convs = nn.ModuleList(_ConvModule(channels, channels, 3, padding=1) for _ in embed_dim[:-1])
        self.fpn_bottleneck = _ConvModule(len(embed_dim) * channels, channels, 3, padding=1)

    def _up(self, x: torch.Tensor, size) -> torch.Tensor:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def _pool(self, m: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        """One PPM branch; under ONNX export the adaptive pooling is two matmuls with its bin-averaging matrices."""
        if not torch.onnx.is_in_onnx_export():
            return m(x)
        s = int(m[0].output_size)
        h, w = int(x.shape[2]), int(x.shape[3])
        ph = torch.from_numpy(_adaptive_pool_matrix(h, s)).to(x.dtype)
        pw = torch.from_numpy(_adaptive_pool_matrix(w, s)).to(x.dtype)
        return m[1](ph @ x @ pw.T)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        top = feats[-1]
        psp = [top] + [self._up(self._pool(m, top), top.shape[2:]) for m in self.psp_modules]
        lat = [conv(feats[i]) for i, conv in enumerate(self.lateral_convs)]
        lat.append(self.bottleneck(torch.cat(psp, 1)))
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + self._up(lat[i], lat[i - 1].shape[2:])
        outs = [conv(lat[i]) for i, conv in enumerate(self.fpn_convs)] + [lat[-1]]
        size = outs[0].shape[2:]
        outs = [outs[0]] + [self._up(o, size) for o in outs[1:]]
        return self.fpn_bottleneck(torch.cat(outs, 1))


# ------------------------------------------------------------------------------------------------------------- head


class _PixelShuffleUpscale(nn.Module):
    """conv 3×3 (C -> 4C, bias) -> PixelShuffle(2) -> BatchNorm(C) -> ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * 4, kernel_size=3, padding=1)
        self.upscale = nn.PixelShuffle(2)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.upscale(self.conv(x))))


class RegressionHead(nn.Module):
    """TerraTorch's regression head: ``head`` = optional PixelShuffle upscales, optional conv blocks, Dropout2d, 1×1 conv; final activation."""

    def __init__(
        self,
        in_channels: int,
        final_act: str | None = None,
        learned_upscale_layers: int = 0,
        channel_list: Sequence[int] | None = None,
        dropout: float = 0.0,
        out_channels: int = 1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if learned_upscale_layers:
            layers.append(nn.Sequential(*[_PixelShuffleUpscale(in_channels) for _ in range(learned_upscale_layers)]))
        if channel_list:
            chans = [int(in_channels), *[int(c) for c in channel_list]]
            layers.append(
                nn.Sequential(
                    *[
                        nn.Sequential(
                            nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                            nn.BatchNorm2d(chans[i + 1]),
                            nn.ReLU(),
                        )
                        for i in range(len(chans) - 1)
                    ]
                )
            )
            in_channels = chans[-1]
        layers += [nn.Dropout2d(float(dropout)), nn.Conv2d(in_channels, out_channels, kernel_size=1)]
        self.head = nn.Sequential(*layers)
        self.final_act = final_activation(final_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_act(self.head(x))


# ------------------------------------------------------------------------------------------------------------ model


class TerraTorchRegressor(nn.Module):
    """``encoder`` (MMSeg Swin) + ``decoder`` (UperNet) + ``head`` (regression): TerraTorch's ``PixelWiseModel``.

    Args:
        in_channels: input bands. embed_dim, depths, num_heads, window_size, patch_size, mlp_ratio: Swin geometry
            (:data:`SWIN_VARIANTS` holds TerraTorch's named backbones). drop_path_rate: stochastic depth (training).
        decoder_channels, pool_scales, align_corners: UperNet settings (TerraTorch defaults 256, (1, 2, 3, 6), True).
        head_learned_upscale_layers, head_channel_list, head_dropout, head_final_act: regression-head settings.
        freeze_encoder: only decoder and head are trainable (the frozen encoder also stays in eval mode).
        init_from: a terracarbon model file of this architecture whose weights are the starting point (fine-tuning).
        output_scale, output_shift: fixed affine map ``y * scale + shift`` after the head (non-persistent buffers),
            used when a fine-tune standardises its targets: the imported model's output stays the starting point.

    The ONNX backends export it for one tile size (``onnx_static_tiles``): the shifted-window padding and mask are
    computed from the feature size, which exports as constants but not symbolically.
    """

    onnx_static_tiles = True

    def __init__(
        self,
        in_channels: int = 6,
        *,
        embed_dim: int = 128,
        depths: Sequence[int] = (2, 2, 18, 2),
        num_heads: Sequence[int] = (4, 8, 16, 32),
        window_size: int = 7,
        patch_size: int = 4,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
        decoder_channels: int = 256,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
        align_corners: bool = True,
        head_learned_upscale_layers: int = 0,
        head_channel_list: Sequence[int] | None = None,
        head_dropout: float = 0.0,
        head_final_act: str | None = None,
        freeze_encoder: bool = False,
        init_from: str | Path | None = None,
        output_scale: float = 1.0,
        output_shift: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = MMSegSwin(
            in_channels, embed_dim, depths, num_heads, window_size, patch_size, mlp_ratio, drop_path_rate
        )
        self.decoder = UperNetDecoder(self.encoder.channels, decoder_channels, pool_scales, align_corners)
        self.head = RegressionHead(
            decoder_channels, head_final_act, head_learned_upscale_layers, head_channel_list, head_dropout
        )
        self.register_buffer("out_scale", torch.tensor(float(output_scale)), persistent=False)
        self.register_buffer("out_shift", torch.tensor(float(output_shift)), persistent=False)
        self.in_channels = int(in_channels)
        if init_from is not None:
            self._init_from(Path(init_from))
        self.frozen = bool(freeze_encoder)
        for p in self.encoder.parameters():
            p.requires_grad = not self.frozen

    def _init_from(self, path: Path) -> None:
        if not path.exists():
            raise InputError(path, "init_from model file does not exist")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputError(path, f"not a readable torch file ({exc})") from exc
        sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not isinstance(sd, dict):
            raise InputError(path, "holds no state dict")
        own = self.state_dict()
        bad = [k for k in own if k not in sd or tuple(sd[k].shape) != tuple(own[k].shape)]
        if bad:
            raise InputError(
                path, f"does not match this network ({len(bad)} missing or mis-shaped keys, e.g. {', '.join(bad[:5])})"
            )
        self.load_state_dict({k: sd[k] for k in own})

    def train(self, mode: bool = True) -> TerraTorchRegressor:
        """Keep a frozen encoder in eval mode (no drop-path noise on frozen features)."""
        super().train(mode)
        if mode and self.frozen:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B×C×H×W`` -> ``B×1×H×W`` (TerraTorch's output with the channel kept)."""
        size = x.shape[-2:]
        y = self.head(self.decoder(self.encoder(x)))
        if y.shape[-2:] != size:
            y = F.interpolate(y, size=size, mode="bilinear")
        return y * self.out_scale + self.out_shift


def build_terratorch_upernet(in_channels: int = 6, classes: int | None = None, **kwargs: Any) -> TerraTorchRegressor:
    """Registry builder for ``{"arch": "terratorch_upernet", ...}`` (``classes`` must be 1: a regression model)."""
    if classes not in (None, 1):
        raise ConfigError(f"terratorch_upernet is a one-output regression network, got classes={classes}")
    return TerraTorchRegressor(in_channels=int(in_channels), **kwargs)


try:  # register with the model registry (imported lazily by the registry for this arch)
    from terracarbon.models.registry import register_arch

    register_arch("terratorch_upernet")(build_terratorch_upernet)
except ImportError:  # pragma: no cover
    pass
