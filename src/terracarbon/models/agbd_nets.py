"""The AGBD paper's baseline networks and the input adapter that lets an AGBD-trained model map a raster stack.

Architectures (registered in :mod:`terracarbon.models.registry` under these names):

* ``agbd_unet`` — a U-Net as in AGBD ``Models/models.py`` (Sialelli et al., arXiv:2406.04928,
  github.com/ghjuliasialelli/AGBD): residual double-conv blocks (conv-BN-ReLU ×2 plus a 1×1 projection), stride-2
  double convs for the way down, transposed convs (kernel 3 for odd, 4 for even sizes) for the way up, widths
  ``64-128-256-512`` for 25×25 patches and ``32-64-128-256-512`` for 15×15. ``width`` scales every stage (1.0 =
  the paper's; smaller for tests). Output = input size, so the centre pixel is the footprint's prediction.
* ``agbd_fcn`` — the paper's ``SimpleFCN``: 3×3 conv-BN-ReLU layers of ``channel_dims`` (the training scripts use
  ``32 32 64 128 128 128``) and a 1×1 output conv.
* ``agbd_gbdt`` — a LightGBM booster (text model, as AGBD ``Models/rf.py`` trains it) applied per pixel, so the
  trees baseline also maps rasters through the tiled engine. The booster text lives in the spec (``booster``),
  hence inside the checkpoint file itself.
* ``agbd`` — :class:`AGBDModel`: :class:`AGBDInput` (raw stack values → the AGBD loader's features) followed by any
  of the above (``net`` spec). Training feeds the loader's features straight to ``.net``; prediction over a stack
  feeds raw bands (reflectance, dB or DN, m, class codes, degrees) to the whole model.

The adapter follows AGBD ``Models/inference_helper.py``/``inference.py`` conventions: S2 reflectance =
``(DN - 1000·boa_offset) / 10000`` (a stack holds reflectance already, or reflectance×10000 with
``input_units["S2"] = "reflectance_x10000"``), PALSAR-2 γ⁰ = ``10·log10(DN²) - 83`` dB, latitude/longitude of each
pixel encoded as ``((cos+1)/2, (sin+1)/2)`` of ``π·lat/90`` and ``π·lon/180``, land cover ``(cos+1)/2, (sin+1)/2``
of ``2π·class/100`` and probability / 100, then each band normalised with the dataset statistics (``pct`` clipped
to [0, 1], ``mean_std`` or ``min_max``) and nodata → 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "AGBDUNet",
    "AGBDFCN",
    "AGBDGBDT",
    "AGBDInput",
    "AGBDModel",
    "raw_bands_for",
    "feature_norm",
]


class _DoubleConv(nn.Module):
    """Two conv-BN-ReLU layers with a residual (1×1 projected when shapes differ); ``stride`` on the second."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, stride=stride),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity()
            if cin == cout and stride == 1
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, odd: bool) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=3 if odd else 4, stride=2, padding=1)
        self.conv = _DoubleConv(cin // 2 + cout, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:  # other sizes than the training patch: align by cropping/padding
            dh, dw = skip.shape[-2] - x.shape[-2], skip.shape[-1] - x.shape[-1]
            x = nn.functional.pad(x, (0, max(dw, 0), 0, max(dh, 0)))[..., : skip.shape[-2], : skip.shape[-1]]
        return self.conv(torch.cat([skip, x], dim=1))


class AGBDUNet(nn.Module):
    """AGBD's U-Net (see module docstring); ``patch_size`` 25 or 15 picks the stage widths, ``width`` scales them."""

    def __init__(
        self, in_channels: int, classes: int = 1, patch_size: int = 25, width: float = 1.0, **_: Any
    ) -> None:
        super().__init__()
        if patch_size == 25:
            basis = [64, 128, 256, 512]
        elif patch_size == 15:
            basis = [32, 64, 128, 256, 512]
        else:
            raise ValueError(f"agbd_unet supports patch_size 25 or 15, got {patch_size}")
        basis = [max(4, int(round(b * width / 2)) * 2) for b in basis]
        self.inc = _DoubleConv(in_channels, basis[0])
        self.downs = nn.ModuleList()
        self.ups = nn.ModuleList()
        dim = patch_size
        ups = []
        for lo, hi in zip(basis[:-1], basis[1:]):
            self.downs.append(_DoubleConv(lo, hi, stride=2))
            ups.append(_Up(hi, lo, odd=dim % 2 == 1))
            dim = dim // 2 + dim % 2
        self.ups = nn.ModuleList(reversed(ups))
        self.outc = nn.Conv2d(basis[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.inc(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        y = feats.pop()
        for up in self.ups:
            y = up(y, feats.pop())
        return self.outc(y)


class AGBDFCN(nn.Module):
    """AGBD's ``SimpleFCN``: 3×3 conv-BN-ReLU stack of ``channel_dims`` and a 1×1 output conv (size preserving)."""

    def __init__(
        self,
        in_channels: int,
        classes: int = 1,
        channel_dims: Sequence[int] = (32, 32, 64, 128, 128, 128),
        **_: Any,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for c in channel_dims:
            layers += [nn.Conv2d(cin, int(c), 3, padding=1), nn.BatchNorm2d(int(c)), nn.ReLU(inplace=True)]
            cin = int(c)
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(cin, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class AGBDGBDT(nn.Module):
    """A LightGBM booster (model text) predicting every pixel from its C feature values; ``B×C×H×W → B×1×H×W``."""

    def __init__(self, booster: str, in_channels: int, classes: int = 1, **_: Any) -> None:
        super().__init__()
        import lightgbm as lgb

        self.booster_text = str(booster)
        self.in_channels = int(in_channels)
        self._booster = lgb.Booster(model_str=self.booster_text)
        self.register_buffer("_dummy", torch.zeros(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.detach().permute(0, 2, 3, 1).reshape(-1, c).cpu().numpy().astype(np.float64)
        pred = self._booster.predict(flat, num_threads=1)
        return torch.from_numpy(np.asarray(pred, dtype=np.float32)).reshape(b, 1, h, w).to(x.device)


# ---------------------------------------------------------------------------------------------------- input adapter

_S2 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"]


def raw_bands_for(features: Sequence[str]) -> list[str]:
    """The raw stack bands (by AGBD name) that the loader features ``features`` are computed from, in first-use order.

    S2 bands, ``HH``/``HV``, ``CH``/``CH_STD``, ``DEM`` map to themselves; ``LAT_*``/``LON_*`` need ``LAT`` and
    ``LON`` (degrees); ``LC_COS``/``LC_SIN``/``LC_OH_*`` need ``LC`` (class code), ``LC_PROB`` needs ``LC_PROB``
    (percent); ``S2_*``/``GEDI_*`` date features need ``S2_DATE``/``GEDI_DATE`` (days since 2019-04-17).
    """
    out: list[str] = []

    def add(name: str) -> None:
        if name not in out:
            out.append(name)

    for f in features:
        if f.startswith(("LAT_", "LON_")):
            add("LAT")
            add("LON")
        elif f in ("LC_COS", "LC_SIN") or f.startswith("LC_OH_"):
            add("LC")
        elif f.startswith("S2_") and f != "S2_bands":
            add("S2_DATE")
        elif f.startswith("GEDI_"):
            add("GEDI_DATE")
        else:
            add(f)
    return out


def feature_norm(feature: str, stats: dict, norm_strat: str) -> tuple[float, float, bool] | None:
    """``(offset, scale, clip)`` so that the loader's normalised value is ``(x - offset) / scale`` (clipped to
    [0, 1] when ``clip``), for a feature normalised with the statistics pickle; None for encoded features."""
    if feature in _S2:
        st = stats["S2_bands"][feature]
    elif feature in ("HH", "HV"):
        st = stats["ALOS_bands"][feature]
    elif feature == "CH":
        st = stats["CH"]["ch"]
    elif feature == "CH_STD":
        st = stats["CH"]["std"]
    elif feature == "DEM":
        st = stats["DEM"]
    elif feature in ("S2_DAY", "GEDI_DAY"):
        st = stats["Sentinel_metadata"]["S2_date"] if feature == "S2_DAY" else stats["GEDI"]["date"]
        strat = "min_max" if norm_strat == "pct" else norm_strat
        return _affine(st, strat)
    else:
        return None
    return _affine(st, norm_strat)


def _affine(st: dict, strat: str) -> tuple[float, float, bool]:
    if strat == "pct":
        return float(st["p1"]), float(st["p99"]) - float(st["p1"]), True
    if strat == "mean_std":
        return float(st["mean"]), float(st["std"]), False
    if strat == "min_max":
        return float(st["min"]), float(st["max"]) - float(st["min"]), False
    raise ValueError(f"unknown normalisation strategy {strat!r}")


class AGBDInput(nn.Module):
    """Raw stack bands (``raw_bands`` order) → the AGBD loader's normalised ``features`` (see module docstring).

    ``norm``: ``{feature: [offset, scale, clip]}`` from :func:`feature_norm`. ``input_units``: ``{"S2":
    "reflectance" | "reflectance_x10000", "ALOS": "dn" | "db", "LC_PROB": "percent" | "fraction"}``. Nodata
    (non-finite, or the AGBD nodata value of the band: S2 0, ALOS DN 0, CH 255, DEM -9999, LC 255) → 0.
    """

    def __init__(
        self,
        features: Sequence[str],
        raw_bands: Sequence[str],
        norm: dict[str, Sequence[float]],
        input_units: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.features = [str(f) for f in features]
        self.raw_bands = [str(b) for b in raw_bands]
        self.norm = {k: [float(v[0]), float(v[1]), bool(v[2])] for k, v in norm.items()}
        self.input_units = {"S2": "reflectance", "ALOS": "dn", "LC_PROB": "percent", **(input_units or {})}
        missing = [b for b in raw_bands_for(self.features) if b not in self.raw_bands]
        if missing:
            raise ValueError(f"raw bands {missing} needed by the features are not in raw_bands {self.raw_bands}")

    def _raw(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return x[:, self.raw_bands.index(name)]

    def _normed(self, v: torch.Tensor, feature: str, invalid: torch.Tensor) -> torch.Tensor:
        off, scale, clip = self.norm[feature]
        out = (v - off) / scale
        if clip:
            out = out.clamp(0.0, 1.0)
        return torch.where(invalid, torch.zeros_like(out), out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        outs = []
        for f in self.features:
            if f in _S2:
                v = self._raw(x, f)
                bad = ~torch.isfinite(v) | (v == 0)
                v = torch.nan_to_num(v)
                if self.input_units["S2"] == "reflectance_x10000":
                    v = v / 10000.0
                outs.append(self._normed(v.clamp(min=0.0), f, bad))
            elif f in ("HH", "HV"):
                v = self._raw(x, f)
                if self.input_units["ALOS"] == "dn":
                    bad = ~torch.isfinite(v) | (v <= 0)
                    v = 10.0 * torch.log10(torch.nan_to_num(v).clamp(min=1e-6) ** 2) - 83.0
                else:
                    bad = ~torch.isfinite(v)
                    v = torch.nan_to_num(v)
                outs.append(self._normed(v, f, bad))
            elif f in ("CH", "CH_STD", "DEM"):
                v = self._raw(x, f)
                nod = -9999.0 if f == "DEM" else 255.0
                bad = ~torch.isfinite(v) | (v == nod)
                outs.append(self._normed(torch.nan_to_num(v), f, bad))
            elif f.startswith(("LAT_", "LON_")):
                v = self._raw(x, f[:3])
                half = 90.0 if f.startswith("LAT") else 180.0
                ang = math.pi * torch.nan_to_num(v) / half
                outs.append(((torch.cos(ang) if f.endswith("COS") else torch.sin(ang)) + 1) / 2)
            elif f in ("LC_COS", "LC_SIN"):
                v = self._raw(x, "LC")
                bad = ~torch.isfinite(v) | (v == 255)
                ang = 2 * math.pi * torch.nan_to_num(v) / 100
                enc = ((torch.cos(ang) if f == "LC_COS" else torch.sin(ang)) + 1) / 2
                outs.append(torch.where(bad, torch.zeros_like(enc), enc))
            elif f == "LC_PROB":
                v = self._raw(x, "LC_PROB")
                bad = ~torch.isfinite(v) | (v == 255)
                v = torch.nan_to_num(v) / (100.0 if self.input_units["LC_PROB"] == "percent" else 1.0)
                outs.append(torch.where(bad, torch.zeros_like(v), v))
            elif f.startswith("LC_OH_"):
                from terracarbon.data.agbd import REF_BIOMES

                v = torch.nan_to_num(self._raw(x, "LC"))
                code = float(f[6:])
                known = torch.zeros_like(v, dtype=torch.bool)
                for c in REF_BIOMES:
                    known |= v == float(c)
                first = float(next(iter(REF_BIOMES)))
                hit = (v == code) | ((~known) & (code == first))
                outs.append(hit.float())
            elif f.endswith("_DAY"):
                v = torch.nan_to_num(self._raw(x, f"{f[:-4]}_DATE"))
                outs.append(self._normed(v, f, torch.zeros_like(v, dtype=torch.bool)))
            elif "_DOY_" in f:
                v = torch.nan_to_num(self._raw(x, f"{f.split('_DOY_')[0]}_DATE"))
                # day of year (0-based) of days since 2019-04-17 (doy 106); leap days ignored
                ang = 2 * math.pi * torch.remainder(v + 106.0, 365.0) / 365
                outs.append(((torch.cos(ang) if f.endswith("COS") else torch.sin(ang)) + 1) / 2)
            else:  # pragma: no cover - guarded by the dataset's band list
                raise ValueError(f"feature {f!r} has no raw-band recipe")
        return torch.stack(outs, dim=1)


class AGBDModel(nn.Module):
    """:class:`AGBDInput` followed by the network ``net``: raw stack bands in, standardised AGBD out."""

    def __init__(self, net: nn.Module, adapter: AGBDInput) -> None:
        super().__init__()
        self.net = net
        self.adapter = adapter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.adapter(x))


def _register() -> None:
    from terracarbon.models.registry import build_model, register_arch

    register_arch("agbd_unet")(AGBDUNet)
    register_arch("agbd_fcn")(AGBDFCN)
    register_arch("agbd_gbdt")(AGBDGBDT)

    @register_arch("agbd")
    def _agbd(
        net: dict[str, Any],
        features: Sequence[str],
        raw_bands: Sequence[str],
        norm: dict[str, Sequence[float]],
        input_units: dict[str, str] | None = None,
        **_: Any,
    ) -> AGBDModel:
        """AGBD input adapter + network (``net`` is the network's own spec)."""
        return AGBDModel(build_model(net), AGBDInput(features, raw_bands, norm, input_units))


_register()
