"""Import a TerraTorch pixel-wise regression checkpoint (e.g. IBM's granite-geospatial-biomass) as a terracarbon model.

    terracarbon models import terratorch --config config.yaml --checkpoint biomass_model.ckpt --out granite.pt
    terracarbon biomass predict --checkpoint granite.pt hls_stack.tif agb.tif --tile-size 224 --overlap 0

What is read, and where the facts come from (TerraTorch sources, github.com/IBM/terratorch; the granite config,
github.com/ibm-granite/granite-geospatial-biomass ``configs/config.yaml``):

* **Config** (a LightningCLI YAML): ``model.class_path`` must be ``terratorch.tasks.PixelwiseRegressionTask``;
  ``model.init_args.model_args`` holds ``backbone`` (``prithvi_swin_B`` / ``prithvi_swin_L``: the MMSeg Swin of
  :mod:`terracarbon.models.upernet`), ``decoder`` (``UperNetDecoder``), prefixed options the model factories route
  by prefix (``backbone_*``, ``decoder_*``, ``head_*``: ``decoder_channels``, ``head_learned_upscale_layers``,
  ``head_dropout``, ``head_final_act``, ``head_channel_list``...), ``bands`` (HLS names) and ``in_channels``;
  ``data.init_args.means`` / ``stds`` normalise the input bands as ``(x - mean) / std`` in band order, and the
  commented ``tiled_inference_parameters`` give the crop TerraTorch predicts with (224).
* **Checkpoint**: a Lightning file (``{"state_dict": ...}``) or a bare state dict, keys ``model.encoder.*``,
  ``model.decoder.*``, ``model.head.*`` (TerraTorch loads it as ``w = torch.load(p); w.get("state_dict", w)``).
  Some 0.99.x releases put ``_timm_module.`` after ``model.encoder.``; it is stripped, as is ``stages.N`` spelled
  with a dot. Every key must be used and every tensor must have the shape the config implies: anything else is an
  :class:`~terracarbon.errors.InputError` listing the keys.
* **Units**: the config's means (about 500 to 2,700 for granite) are in HLS surface reflectance × 10,000, so the
  model file records ``meta["input_units"] = "reflectance_x10000"`` (inferred from the means unless given), which a
  stack's ``TERRACARBON_UNITS`` tag is checked against at prediction.

TerraTorch itself is never imported (it is heavy, and importing it sets torch's global float32 matmul precision to
"medium"); the network is rebuilt by :class:`terracarbon.models.upernet.TerraTorchRegressor`.

Prithvi-EO-2.0 backbones (``prithvi_eo_v2_300`` / ``_600`` and their ``_tl`` variants) are ViTs with a 3-D
(temporal) patch embedding whose features need TerraTorch necks (``SelectIndices``, ``ReshapeTokensToImage``,
``LearnedInterpolateToPyramidal``) before a UperNet decoder; they are not supported yet and are refused with that
reason.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from terracarbon.errors import InputError

__all__ = [
    "HLS_BANDS",
    "TerraTorchConfig",
    "read_terratorch_config",
    "read_terratorch_state_dict",
    "import_terratorch",
    "finetune_start",
]

#: TerraTorch's ``HLSBands`` names (``terratorch/datasets/utils.py``) accepted as model bands
HLS_BANDS = (
    "COASTAL_AEROSOL",
    "BLUE",
    "GREEN",
    "RED",
    "NIR_NARROW",
    "SWIR_1",
    "SWIR_2",
    "NIR_BROAD",
    "RED_EDGE_1",
    "RED_EDGE_2",
    "RED_EDGE_3",
    "WATER_VAPOR",
    "CIRRUS",
    "THEMRAL_INFRARED_1",
    "THEMRAL_INFRARED_2",
)

_TASKS = ("PixelwiseRegressionTask",)
_DECODERS = ("UperNetDecoder",)
_EO_V2 = ("prithvi_eo_v2", "prithvi_eo_v1", "prithvi_vit")
# factory arguments that do not change the network's weights or arithmetic at inference
_IGNORED_ARGS = {"pretrained", "num_frames", "rescale", "backbone_pretrained", "backbone_num_frames"}


@dataclass
class TerraTorchConfig:
    """What :func:`read_terratorch_config` found: a terracarbon spec plus bands, normalisation and provenance."""

    path: Path
    backbone: str
    spec: dict[str, Any]
    bands: list[str]
    mean: list[float]
    std: list[float]
    tile_size: int = 224
    tile_stride: int | None = None
    ignored: dict[str, Any] = field(default_factory=dict)

    @property
    def input_units(self) -> str:
        """``reflectance_x10000`` when the band means are in the hundreds/thousands, else ``reflectance``."""
        return "reflectance_x10000" if max(abs(m) for m in self.mean) > 20 else "reflectance"


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    if not path.exists():
        raise InputError(path, "TerraTorch config does not exist")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML ({exc})") from exc
    if not isinstance(cfg, dict):
        raise InputError(path, "is not a TerraTorch (LightningCLI) config: no top-level mapping")
    return cfg


def _short(name: Any) -> str:
    return str(name).rsplit(".", 1)[-1]


def read_terratorch_config(path: str | Path) -> TerraTorchConfig:
    """Parse a TerraTorch fine-tuning config into a ``{"arch": "terratorch_upernet", ...}`` spec and band metadata."""
    from terracarbon.models.upernet import SWIN_VARIANTS

    path = Path(path)
    cfg = _load_yaml(path)
    model = cfg.get("model") or {}
    task = _short(model.get("class_path", ""))
    if task not in _TASKS:
        raise InputError(
            path, f"model.class_path is {model.get('class_path')!r}; supported: terratorch.tasks.{', '.join(_TASKS)}"
        )
    init = model.get("init_args") or {}
    args = dict(init.get("model_args") or {})
    if not args:
        raise InputError(path, "has no model.init_args.model_args")
    backbone = str(args.pop("backbone", ""))
    if any(backbone.startswith(p) for p in _EO_V2):
        raise InputError(
            path,
            f"backbone {backbone!r} is a Prithvi ViT with a temporal patch embedding; its features need TerraTorch "
            "necks before a UperNet and are not supported yet (supported: " + ", ".join(SWIN_VARIANTS) + ")",
        )
    if backbone not in SWIN_VARIANTS:
        raise InputError(path, f"backbone {backbone!r} is not supported; supported: {', '.join(SWIN_VARIANTS)}")
    decoder = _short(args.pop("decoder", ""))
    if decoder not in _DECODERS:
        raise InputError(path, f"decoder {decoder!r} is not supported; supported: {', '.join(_DECODERS)}")
    if args.pop("necks", None):
        raise InputError(path, "model_args.necks are not supported for Swin backbones")

    bands = args.pop("bands", None) or args.pop("backbone_bands", None)
    if not bands:
        raise InputError(path, "model_args.bands is missing: the model's input bands must be named")
    bands = [_short(b) for b in bands]
    bad = [b for b in bands if b not in HLS_BANDS]
    if bad:
        raise InputError(path, f"bands {bad} are not HLS band names ({', '.join(HLS_BANDS)})")
    in_ch = args.pop("in_channels", None) or args.pop("backbone_in_chans", None) or len(bands)
    if int(in_ch) != len(bands):
        raise InputError(path, f"in_channels={in_ch} but {len(bands)} bands are named")
    frames = args.get("num_frames", args.get("backbone_num_frames", 1))
    if int(frames or 1) != 1:
        raise InputError(path, f"num_frames={frames}: multi-temporal inputs are not supported")

    spec: dict[str, Any] = {"arch": "terratorch_upernet", "in_channels": len(bands)}
    spec.update({k: list(v) if isinstance(v, tuple) else v for k, v in SWIN_VARIANTS[backbone].items()})
    spec.update({"window_size": 7, "patch_size": 4, "mlp_ratio": 4.0, "decoder_channels": 256})
    ignored: dict[str, Any] = {}
    backbone_keys = {"window_size", "patch_size", "mlp_ratio", "drop_path_rate", "embed_dim", "depths", "num_heads"}
    for k, v in args.items():
        if k in _IGNORED_ARGS:
            ignored[k] = v
        elif k.startswith("backbone_") and k[9:] in backbone_keys:
            spec[k[9:]] = list(v) if isinstance(v, (list, tuple)) else v
        elif k == "decoder_channels":
            spec["decoder_channels"] = int(v)
        elif k == "decoder_pool_scales":
            spec["pool_scales"] = [int(s) for s in v]
        elif k == "decoder_align_corners":
            spec["align_corners"] = bool(v)
        elif k == "decoder_scale_modules":
            if v:
                raise InputError(path, "decoder_scale_modules=True (for plain ViTs) is not supported")
        elif k in ("head_learned_upscale_layers", "head_dropout", "head_final_act", "head_channel_list"):
            spec[k] = v
        elif k == "head_batch_norm":
            ignored[k] = v  # TerraTorch's RegressionHead accepts it but always uses BatchNorm in its conv blocks
        else:
            raise InputError(path, f"model_args.{k}={v!r} is not understood by the importer")
    spec.setdefault("head_final_act", None)
    spec["freeze_encoder"] = bool(init.get("freeze_backbone", False))

    data = (cfg.get("data") or {}).get("init_args") or {}
    means, stds = data.get("means"), data.get("stds")
    if not means or not stds:
        raise InputError(path, "data.init_args.means / stds are missing: the input normalisation is unknown")
    means, stds = [float(m) for m in means], [float(s) for s in stds]
    if len(means) != len(bands):
        dsb = [str(b) for b in data.get("dataset_bands") or []]
        if len(means) == len(dsb) and all(b in dsb for b in bands):
            means = [means[dsb.index(b)] for b in bands]
            stds = [stds[dsb.index(b)] for b in bands]
        else:
            raise InputError(path, f"{len(means)} band means for {len(bands)} model bands ({', '.join(bands)})")
    if len(stds) != len(means) or min(stds) <= 0 or not all(math.isfinite(v) for v in means + stds):
        raise InputError(path, "data.init_args.stds must be one positive number per band")
    tiled = init.get("tiled_inference_parameters") or {}
    return TerraTorchConfig(
        path=path,
        backbone=backbone,
        spec=spec,
        bands=bands,
        mean=means,
        std=stds,
        tile_size=int(tiled.get("h_crop", 224)),
        tile_stride=int(tiled["h_stride"]) if "h_stride" in tiled else None,
        ignored=ignored,
    )


def _normalise_key(k: str) -> str:
    k = k.replace("._timm_module.", ".")
    if k.startswith("model."):
        k = k[len("model.") :]
    parts = k.split(".")
    if len(parts) > 2 and parts[0] == "encoder" and parts[1] == "stages" and parts[2].isdigit():
        k = ".".join(["encoder", f"stages_{parts[2]}", *parts[3:]])
    return k


def read_terratorch_state_dict(path: str | Path, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The network weights of a TerraTorch checkpoint as ``{"encoder.…"/"decoder.…"/"head.…": tensor}``.

    Reads a Lightning checkpoint (its ``state_dict``) or a bare state dict with ``weights_only=True`` unless
    ``trust_pickle`` (only for files you trust). Strips ``model.`` and a ``_timm_module.`` infix; auxiliary heads and
    any other non-network keys are dropped, keys under ``encoder``/``decoder``/``head`` are kept.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "checkpoint does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:
        hint = "" if trust_pickle else " (if you trust the file, retry with --trust-pickle)"
        raise InputError(path, f"not a readable torch checkpoint ({type(exc).__name__}: {exc}){hint}") from exc
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict) or not any(torch.is_tensor(v) for v in sd.values()):
        raise InputError(path, "holds no state dict of tensors (looked at the top level and under 'state_dict')")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        nk = _normalise_key(k)
        if nk.split(".", 1)[0] in ("encoder", "decoder", "head"):
            out[nk] = v
    if not out:
        raise InputError(path, "has no model.encoder.* / model.decoder.* / model.head.* weights")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fmt(keys: Sequence[str], n: int = 8) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f" … (+{len(keys) - n})" if len(keys) > n else "")


def import_terratorch(
    config: str | Path,
    checkpoint: str | Path,
    out: str | Path,
    *,
    trust_pickle: bool = False,
    input_units: str | None = None,
    target_name: str = "agb_mg_per_ha",
    units: str = "Mg/ha",
) -> Path:
    """Write a terracarbon model file (``terracarbon-model/1``) equivalent to a TerraTorch regression checkpoint.

    Args:
        config: the TerraTorch YAML config the checkpoint was trained with.
        checkpoint: the ``.ckpt`` (Lightning) or bare state-dict file.
        out: output ``.pt`` (written atomically).
        trust_pickle: allow arbitrary pickles in the checkpoint (only for files you trust).
        input_units: units of the input bands recorded in ``meta["input_units"]`` (default: inferred from the means).
        target_name, units: name and units of the output band (granite: aboveground biomass, Mg/ha).

    Returns:
        ``out``. The file's meta carries ``bands`` (HLS names, the order the model reads them), ``mean``/``std``,
        ``input_units``, ``tile_size`` (TerraTorch's crop), the output's name/units and the sources' SHA-256.
    """
    from terracarbon.models.registry import build_model, count_parameters, save_checkpoint

    cfg = read_terratorch_config(config)
    ckpt_path = Path(checkpoint)
    sd = read_terratorch_state_dict(ckpt_path, trust_pickle=trust_pickle)
    model = build_model(cfg.spec)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k} {tuple(sd[k].shape)} != {tuple(own[k].shape)}" for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {_fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {_fmt(unexpected)}")
        if shapes:
            parts.append(f"mis-shaped {len(shapes)}: {_fmt(shapes, 4)}")
        raise InputError(ckpt_path, f"weights do not fit the {cfg.backbone} network of {cfg.path.name} ({'; '.join(parts)})")
    model.load_state_dict({k: sd[k].to(own[k].dtype) for k in own})
    trainable, total = count_parameters(model)
    meta: dict[str, Any] = {
        "task": "regression",
        "target_name": target_name,
        "units": units,
        "bands": list(cfg.bands),
        "in_bands": None,
        "mean": cfg.mean,
        "std": cfg.std,
        "input_units": input_units or cfg.input_units,
        "target_scale": 1.0,
        "target_offset": 0.0,
        "clip_min": 0.0,
        "tile_size": cfg.tile_size,
        "patch_size": cfg.tile_size,
        "total_params": total,
        "source": {
            "format": "terratorch",
            "task": "terratorch.tasks.PixelwiseRegressionTask",
            "backbone": cfg.backbone,
            "config": str(cfg.path),
            "config_sha256": _sha256(cfg.path),
            "checkpoint": str(ckpt_path),
            "checkpoint_sha256": _sha256(ckpt_path),
            "tiled_inference": {"crop": cfg.tile_size, "stride": cfg.tile_stride},
            "ignored_model_args": cfg.ignored,
        },
    }
    spec = dict(cfg.spec)
    spec["freeze_encoder"] = False  # a predictor; fine-tunes choose (biomass train --init --freeze-encoder)
    return save_checkpoint(out, model, spec, meta)


def finetune_start(
    checkpoint: str | Path, *, freeze_encoder: bool | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(spec, meta)`` to fine-tune a terracarbon model file: its spec with ``init_from`` = the file.

    For architectures whose builder takes ``init_from`` and an output affine map (``terratorch_upernet``,
    ``gfm``). The caller sets ``output_scale``/``output_shift`` with :func:`output_affine` once the target
    standardisation is known, so that the fine-tune starts from the checkpoint's own predictions.
    """
    from terracarbon.models.registry import load_checkpoint

    path = Path(checkpoint)
    payload = torch.load(path, map_location="cpu", weights_only=False, mmap=True) if path.exists() else None
    if payload is None:
        raise InputError(path, "checkpoint to fine-tune from does not exist")
    if not isinstance(payload, dict) or "spec" not in payload:
        load_checkpoint(path)  # raises the registry's clear error
    spec, meta = dict(payload["spec"]), dict(payload.get("meta") or {})
    if spec.get("arch") not in ("terratorch_upernet", "gfm"):
        raise InputError(path, f"arch {spec.get('arch')!r} cannot be fine-tuned with --init (terratorch_upernet, gfm)")
    if meta.get("task", "regression") != "regression":
        raise InputError(path, f"is a {meta.get('task')!r} model, not a regression model")
    spec["init_from"] = str(path)
    spec.pop("encoder_weights", None)
    if freeze_encoder is not None:
        spec["freeze_encoder"] = bool(freeze_encoder)
    return spec, meta


def output_affine(spec: dict[str, Any], meta: dict[str, Any], target_mean: float, target_std: float) -> dict[str, Any]:
    """Spec with ``output_scale``/``output_shift`` so the network outputs standardised targets from the start.

    The checkpoint's output ``r`` (after its own affine ``a r0 + b``) means ``r * s + o`` in target units
    (``meta`` ``target_scale`` ``s`` / ``target_offset`` ``o``); the fine-tune trains on ``(y - mean) / std``, so the
    new affine is ``a' = a s / std``, ``b' = (s b + o - mean) / std``.
    """
    a, b = float(spec.get("output_scale", 1.0)), float(spec.get("output_shift", 0.0))
    s, o = float(meta.get("target_scale", 1.0)), float(meta.get("target_offset", 0.0))
    return {**spec, "output_scale": a * s / target_std, "output_shift": (s * b + o - target_mean) / target_std}
