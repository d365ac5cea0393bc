"""Load Swin encoder weights from a local file into a :class:`~terracarbon.models.gfm.SwinEncoder`.

Nothing is downloaded: the user points at a file. Understood containers and layouts:

* **timm** state dicts (``patch_embed.proj.weight``, ``layers.{s}.blocks.{b}...``), as ``.pth``/``.pt``/``.bin`` or
  ``.safetensors``, optionally wrapped (``{"model": ...}``, ``{"state_dict": ...}``) and/or prefixed
  (``encoder.``, ``model.encoder.model.``, ``backbone.``...). The original Microsoft Swin layout (downsample at the end
  of a stage) is shifted to timm's, relative-position tables are resized by timm's own filter.
* **Lightning** checkpoints (``{"state_dict": {"model.encoder....": ...}, "epoch": ...}``) and terracarbon files
  (``terracarbon-model/1`` from ``save_checkpoint``, ``terracarbon-gfm-encoder/1`` from ``terracarbon gfm pretrain``).
* **torchvision** Swin layout (``features.0.0.weight``, ``features.{2s+1}.{b}.attn.qkv.weight``, ``mlp.0``/``mlp.3``...),
  v1 (``swin_t``/``swin_b``) and v2 (``swin_v2_t``/``swin_v2_b``). This is the layout of **SatlasPretrain**
  checkpoints (``satlaspretrain_models``: ``backbone.backbone.features.*`` for single-image models,
  ``backbone.backbone.backbone.features.*`` for multi-image ones; Sentinel-2 Swin-B MS = torchvision ``swin_v2_b``
  with a 9-band first conv, bands B04 B03 B02 B05 B06 B07 B08 B11 B12) and of TerraTorch's ``satlas_swin_*``
  backbones (``features.*`` inside ``swin_model``). These keys are remapped to timm's: ``features.0.0`` ->
  ``patch_embed.proj``, ``features.0.2`` -> ``patch_embed.norm``, ``features.{2s+1}.{b}`` -> ``layers.{s}.blocks.{b}``,
  ``features.{2s}`` -> ``layers.{s}.downsample``, ``mlp.0/3`` -> ``mlp.fc1/fc2``, and for v2 the fused
  ``attn.qkv.bias`` -> ``attn.q_bias`` + ``attn.v_bias`` (torchvision zeroes the key bias). SatlasPretrain is a
  **Swin v2**: load it into a GFM built with ``variant="swinv2"``.

When the checkpoint's first layer (patch embedding) has a different number of input bands, it is adapted:
``"select"`` (by band names: matching bands keep their filters, the others get the mean filter; or, without names,
the first ``C`` channels), ``"repeat"`` (cycle the checkpoint channels) or ``"average"`` (the mean filter for every band);
``repeat``/``average`` rescale by ``C_ckpt / C_model`` so the activation magnitude is preserved.

Any key that is missing, unexpected or has the wrong shape raises :class:`EncoderWeightsError` listing them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from terracarbon.errors import InputError

__all__ = [
    "EncoderWeightsError",
    "LoadReport",
    "read_state_dict",
    "torchvision_to_timm",
    "adapt_patch_embed",
    "load_encoder_weights",
    "SATLAS_S2_MS_BANDS",
]

#: Band order of SatlasPretrain's Sentinel-2 multispectral checkpoints (torchgeo ``_satlas_sentinel2_bands``).
SATLAS_S2_MS_BANDS = ("B04", "B03", "B02", "B05", "B06", "B07", "B08", "B11", "B12")

_PATCH = "patch_embed.proj.weight"
_TV_PATCH = "features.0.0.weight"
_SKIP = ("relative_position_index", "relative_coords_table", "attn_mask")


class EncoderWeightsError(InputError):
    """The weights file does not fit the encoder (lists missing / unexpected / mis-shaped keys)."""


@dataclass
class LoadReport:
    """What :func:`load_encoder_weights` did."""

    path: Path
    layout: str
    prefix: str
    loaded: int
    first_layer: str | None = None
    dropped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        s = f"{self.path.name}: {self.loaded} tensors ({self.layout} layout, prefix {self.prefix!r})"
        if self.first_layer:
            s += f"; first layer {self.first_layer}"
        return s


def _load_obj(path: Path, trust_pickle: bool) -> Any:
    if not path.exists():
        raise InputError(path, "encoder weights file does not exist")
    if path.stat().st_size == 0:
        raise InputError(path, "encoder weights file is empty")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise InputError(path, f"not a readable safetensors file ({exc})") from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        hint = "" if trust_pickle else " (if you trust the file, retry with trust_pickle=True)"
        raise InputError(
            path, f"not a readable torch checkpoint ({type(exc).__name__}: {exc}){hint}"
        ) from exc


def _state_dict_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    sd = _unwrap(obj)
    if sd is None:
        raise InputError(
            path,
            "holds no state dict of tensors (looked at the top level and under 'state_dict', 'model', 'encoder')",
        )
    return sd


def read_state_dict(path: str | Path, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a flat ``{name: tensor}`` dict from ``.safetensors`` / torch files, unwrapping common containers.

    Torch files are read with ``weights_only=True``; pass ``trust_pickle=True`` for files that need arbitrary pickles
    (some Lightning checkpoints), only for files you trust.
    """
    path = Path(path)
    return _state_dict_of(_load_obj(path, trust_pickle), path)


def _unwrap(obj: Any, depth: int = 0) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict())
    if not isinstance(obj, dict) or depth > 3:
        return None
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if tensors and len(tensors) >= max(1, len(obj) // 2):
        return tensors
    for key in ("state_dict", "model", "encoder", "model_state_dict", "module", "teacher", "student"):
        if key in obj:
            sd = _unwrap(obj[key], depth + 1)
            if sd:
                return sd
    return None


def _find_prefix(keys: Sequence[str], suffix: str) -> list[str]:
    return sorted({k[: -len(suffix)] for k in keys if k == suffix or k.endswith("." + suffix)}, key=len)


def torchvision_to_timm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a torchvision-layout Swin (v1 or v2) state dict (no prefix) to timm's layout."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if any(s in k for s in _SKIP) or k.startswith("head."):
            continue
        if k.startswith("norm."):
            out[k] = v
            continue
        m = re.match(r"features\.(\d+)\.(.*)$", k)
        if not m:
            out["__unexpected__." + k] = v
            continue
        idx, rest = int(m.group(1)), m.group(2)
        if idx == 0:
            rest = rest.replace("0.", "proj.", 1) if rest.startswith("0.") else rest.replace("2.", "norm.", 1)
            out["patch_embed." + rest] = v
        elif idx % 2 == 1:  # stage blocks
            stage = (idx - 1) // 2
            mb = re.match(r"(\d+)\.(.*)$", rest)
            if not mb:
                out["__unexpected__." + k] = v
                continue
            blk, name = mb.group(1), mb.group(2)
            if name.startswith("mlp.0."):
                name = "mlp.fc1." + name[len("mlp.0.") :]
            elif name.startswith("mlp.3."):
                name = "mlp.fc2." + name[len("mlp.3.") :]
            base = f"layers.{stage}.blocks.{blk}."
            if name == "attn.qkv.bias" and _is_v2(sd):
                dim = v.shape[0] // 3
                out[base + "attn.q_bias"] = v[:dim].clone()
                out[base + "attn.v_bias"] = v[2 * dim :].clone()
            else:
                out[base + name] = v
        else:  # patch merging between stages
            out[f"layers.{idx // 2}.downsample." + rest] = v
    return out


def _is_v2(sd: dict[str, torch.Tensor]) -> bool:
    return any("cpb_mlp" in k or "logit_scale" in k for k in sd)


def adapt_patch_embed(
    weight: torch.Tensor,
    in_chans: int,
    method: str = "average",
    checkpoint_bands: Sequence[str] | None = None,
    bands: Sequence[str] | None = None,
) -> tuple[torch.Tensor, str]:
    """Adapt a patch-embedding kernel ``O×C_ckpt×k×k`` to ``in_chans`` input bands. Returns (weight, description)."""
    c = weight.shape[1]
    if c == in_chans and method != "select":
        return weight, None  # type: ignore[return-value]
    mean = weight.mean(dim=1, keepdim=True)
    if method == "select":
        if checkpoint_bands is not None and bands is not None:
            if len(checkpoint_bands) != c:
                raise ValueError(
                    f"checkpoint_bands has {len(checkpoint_bands)} names but the checkpoint has {c} bands"
                )
            if len(bands) != in_chans:
                raise ValueError(f"bands has {len(bands)} names but the model has {in_chans} input bands")
            cols, kept = [], []
            for b in bands:
                if b in checkpoint_bands:
                    cols.append(
                        weight[:, list(checkpoint_bands).index(b) : list(checkpoint_bands).index(b) + 1]
                    )
                    kept.append(b)
                else:
                    cols.append(mean)
            new = torch.cat(cols, dim=1)
            return (
                new,
                f"{c}->{in_chans} bands, select by name (kept {', '.join(kept) or 'none'}; others = mean filter)",
            )
        if c == in_chans:
            return weight, None  # type: ignore[return-value]
        if in_chans < c:
            return weight[:, :in_chans].clone(), f"{c}->{in_chans} bands, select first {in_chans}"
        extra = mean.expand(-1, in_chans - c, -1, -1)
        return torch.cat([weight, extra], 1), f"{c}->{in_chans} bands, select {c} + mean filter for the rest"
    if method == "repeat":
        idx = [i % c for i in range(in_chans)]
        return weight[:, idx] * (c / in_chans), f"{c}->{in_chans} bands, repeat (scaled {c}/{in_chans})"
    if method == "average":
        return mean.repeat(1, in_chans, 1, 1) * (
            c / in_chans
        ), f"{c}->{in_chans} bands, average (scaled {c}/{in_chans})"
    raise ValueError(f"unknown band_adapt {method!r}; use 'average', 'repeat' or 'select'")


def _fmt_keys(keys: Sequence[str], n: int = 12) -> str:
    keys = list(keys)
    s = ", ".join(keys[:n])
    return s + (f" ... (+{len(keys) - n} more)" if len(keys) > n else "")


def load_encoder_weights(
    encoder: nn.Module,
    path: str | Path,
    *,
    band_adapt: str = "average",
    checkpoint_bands: Sequence[str] | None = None,
    bands: Sequence[str] | None = None,
    strict: bool = True,
    trust_pickle: bool = False,
) -> LoadReport:
    """Load the encoder weights in ``path`` into ``encoder`` (a ``SwinEncoder`` or a bare timm Swin).

    Detects the layout (timm / original Swin / torchvision / SatlasPretrain / Lightning / terracarbon), strips the
    prefix, remaps keys, adapts the first layer to the encoder's band count (``band_adapt``; names in
    ``checkpoint_bands``/``bands`` for ``"select"``; a terracarbon encoder checkpoint carries its band names) and loads.
    Raises :class:`EncoderWeightsError` naming the file and listing missing / unexpected / mis-shaped keys.
    """
    path = Path(path)
    target = getattr(encoder, "model", encoder)  # SwinEncoder wraps the timm model
    obj = _load_obj(path, trust_pickle)
    if checkpoint_bands is None:
        checkpoint_bands = _bands_in(obj)
    sd = _state_dict_of(obj, path)
    del obj
    keys = list(sd)

    tv = _find_prefix(keys, _TV_PATCH)
    tm = _find_prefix(keys, _PATCH)
    if tm:
        prefix, layout = tm[0], "timm"
        sub = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        sub = {
            k: v
            for k, v in sub.items()
            if not k.startswith(("head.", "fc.", "decoder.")) and not k.startswith("mask_token")
        }
        sub = {k: v for k, v in sub.items() if not any(s in k for s in _SKIP)}
        if "layers.0.downsample.reduction.weight" in sub:
            layout = "swin-original"
            sub = {
                re.sub(
                    r"layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", k
                ): v
                for k, v in sub.items()
            }
            sub.pop("layers.4.downsample.reduction.weight", None)
            sub = {k: v for k, v in sub.items() if not k.startswith("layers.4.")}
    elif tv:
        prefix = tv[0]
        sub = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        sub = {k: v for k, v in sub.items() if k.startswith(("features.", "norm."))}
        layout = "torchvision-swin-v2" if _is_v2(sub) else "torchvision-swin"
        if prefix.startswith("backbone.backbone."):
            layout = "satlaspretrain (" + layout + ")"
        sub = torchvision_to_timm(sub)
    else:
        raise EncoderWeightsError(
            path,
            "no Swin patch embedding found (expected a key ending in 'patch_embed.proj.weight' (timm) or "
            f"'features.0.0.weight' (torchvision/SatlasPretrain)); first keys: {_fmt_keys(keys, 8)}",
        )

    own = target.state_dict()
    model_v2 = any("cpb_mlp" in k for k in own)
    ckpt_v2 = any("cpb_mlp" in k or "logit_scale" in k for k in sub)
    if model_v2 != ckpt_v2:
        want = "swinv2" if ckpt_v2 else "swin"
        raise EncoderWeightsError(
            path,
            f"is a Swin {'v2' if ckpt_v2 else 'v1'} checkpoint but the encoder is Swin {'v2' if model_v2 else 'v1'}; "
            f"build the GFM with variant={want!r}",
        )

    first = None
    if _PATCH in sub and _PATCH in own:
        w = sub[_PATCH]
        in_chans = own[_PATCH].shape[1]
        if w.ndim == 4 and (
            w.shape[1] != in_chans or (band_adapt == "select" and checkpoint_bands and bands)
        ):
            try:
                sub[_PATCH], first = adapt_patch_embed(w, in_chans, band_adapt, checkpoint_bands, bands)
            except ValueError as exc:
                raise EncoderWeightsError(path, str(exc)) from exc

    # let timm resize relative-position tables / patch kernels where the geometry differs
    try:
        if model_v2:
            from timm.models.swin_transformer_v2 import checkpoint_filter_fn
        else:
            from timm.models.swin_transformer import checkpoint_filter_fn
        sub = {k: v for k, v in checkpoint_filter_fn(dict(sub), target).items()}
    except Exception:  # pragma: no cover - keep our own mapping if timm's filter cannot handle the dict
        pass

    missing = [k for k in own if k not in sub and not k.startswith("head.")]
    unexpected = [k for k in sub if k not in own]
    mis = [
        f"{k} {tuple(sub[k].shape)} vs {tuple(own[k].shape)}"
        for k in sub
        if k in own and sub[k].shape != own[k].shape
    ]
    if missing or unexpected or mis:
        if strict or mis or len(missing) == len(own):
            parts = [f"does not fit the {type(target).__name__} encoder ({layout} layout, prefix {prefix!r})"]
            if missing:
                parts.append(f"missing keys ({len(missing)}): {_fmt_keys(missing)}")
            if unexpected:
                parts.append(
                    f"unexpected keys ({len(unexpected)}): {_fmt_keys([k.replace('__unexpected__.', '') for k in unexpected])}"
                )
            if mis:
                parts.append(f"shape mismatches ({len(mis)}): {_fmt_keys(mis, 6)}")
            raise EncoderWeightsError(path, "; ".join(parts))
    load = {k: v for k, v in sub.items() if k in own}
    target.load_state_dict(load, strict=strict)
    return LoadReport(
        path=path, layout=layout, prefix=prefix, loaded=len(load), first_layer=first, dropped=unexpected
    )


def _bands_in(obj: Any) -> list[str] | None:
    """Band names stored in a terracarbon checkpoint (encoder or model), if any."""
    if isinstance(obj, dict):
        for holder in (obj, obj.get("meta") or {}):
            if isinstance(holder, dict) and isinstance(holder.get("bands"), list):
                return [str(b) for b in holder["bands"]]
    return None
