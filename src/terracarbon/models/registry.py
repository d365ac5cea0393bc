"""A registry of model architectures and one portable checkpoint format.

A model is described by a *spec*: a plain dict ``{"arch": name, **kwargs}`` that :func:`build_model` turns into a
``torch.nn.Module``. Checkpoints are single ``.pt`` files holding the spec, the weights and a ``meta`` dict (task, band
names, normalisation, class names, metrics, footprint), so any later command can rebuild the model without the code that
trained it::

    model = build_model({"arch": "unet", "in_channels": 12, "classes": 1, "encoder_name": "resnet18"})
    save_checkpoint("agb.pt", model, spec, {"task": "regression", "bands": [...], "mean": [...], "std": [...]})
    model, spec, meta = load_checkpoint("agb.pt")

Other packages add architectures with :func:`register_arch` (``gfm`` in :mod:`terracarbon.models.gfm`, ``maskrcnn`` in
:mod:`terracarbon.models.crowns`); they are imported lazily by name when a spec asks for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from terracarbon.errors import InputError
from terracarbon.utils import atomic_path

FORMAT = "terracarbon-model/1"
# spec keys that only say where initial weights come from (a local file); the saved state_dict holds the weights
INIT_ONLY_KEYS = ("encoder_weights", "init_from")

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
# architectures defined in other modules, imported on first use
_LAZY = {
    "gfm": "terracarbon.models.gfm",
    "maskrcnn": "terracarbon.models.crowns",
    "terratorch_upernet": "terracarbon.models.upernet",
    "hf_segformer": "terracarbon.models.hf_segformer",
}
_LAZY.update({k: "terracarbon.models.agbd_nets" for k in ("agbd", "agbd_unet", "agbd_fcn", "agbd_gbdt")})


def register_arch(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering ``builder(**kwargs) -> nn.Module`` under ``name``."""

    def deco(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = builder
        return builder

    return deco


def available_archs() -> list[str]:
    """Names accepted in a spec's ``arch``."""
    return sorted(set(_REGISTRY) | set(_LAZY))


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Build the model a spec describes (``{"arch": name, **kwargs}``)."""
    spec = dict(spec)
    arch = spec.pop("arch", None)
    if arch not in _REGISTRY and arch in _LAZY:
        importlib.import_module(_LAZY[arch])
    if arch not in _REGISTRY:
        raise ValueError(f"unknown model arch {arch!r}; available: {', '.join(available_archs())}")
    return _REGISTRY[arch](**spec)


@register_arch("unet")
def _unet(
    in_channels: int,
    classes: int = 1,
    encoder_name: str = "resnet18",
    encoder_depth: int = 5,
    decoder_channels: tuple[int, ...] | list[int] | None = None,
    **kwargs: Any,
) -> nn.Module:
    """segmentation-models-pytorch U-Net, trained from scratch (no weight download)."""
    import segmentation_models_pytorch as smp

    if decoder_channels is None:
        decoder_channels = (256, 128, 64, 32, 16)[:encoder_depth]
    return smp.Unet(
        encoder_name=encoder_name,
        encoder_weights=None,
        encoder_depth=encoder_depth,
        decoder_channels=tuple(decoder_channels),
        in_channels=in_channels,
        classes=classes,
        **kwargs,
    )


@register_arch("deeplabv3plus")
def _deeplabv3plus(
    in_channels: int, classes: int, encoder_name: str = "resnet18", **kwargs: Any
) -> nn.Module:
    """segmentation-models-pytorch DeepLabv3+ (LandCover.ai's baseline family), from scratch."""
    import segmentation_models_pytorch as smp

    return smp.DeepLabV3Plus(
        encoder_name=encoder_name, encoder_weights=None, in_channels=in_channels, classes=classes, **kwargs
    )


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def save_checkpoint(path: str | Path, model: nn.Module, spec: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Save model weights with their spec and metadata as one portable file, atomically.

    Spec keys naming initial-weight files (``encoder_weights``, ``init_from``) move to ``meta["weights_source"]``:
    the file holds the weights, so it loads where those files do not exist.
    """
    spec, meta = _portable(spec, meta)
    payload = {"format": FORMAT, "spec": spec, "state_dict": model.state_dict(), "meta": meta}
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)
    return Path(path)


def _portable(spec: dict[str, Any], meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, meta = dict(spec), dict(meta)
    moved = {k: str(spec.pop(k)) for k in INIT_ONLY_KEYS if spec.get(k) is not None and k in spec}
    for k in INIT_ONLY_KEYS:
        if spec.get(k, "") is None:
            spec.pop(k)
    if moved:
        meta["weights_source"] = {**meta.get("weights_source", {}), **moved}
    return spec, meta


def load_checkpoint(
    path: str | Path, map_location: str = "cpu"
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`; returns ``(model in eval mode, spec, meta)``."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "checkpoint does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise InputError(path, f"not a readable checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(
            path, f"not a terracarbon model file (expected format {FORMAT!r}); export it with save_checkpoint"
        )
    spec, meta = _portable(payload["spec"], payload["meta"])
    payload["spec"], payload["meta"] = spec, meta
    model = build_model(spec)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise InputError(path, f"weights do not match the model spec ({exc})") from exc
    model.eval()
    return model, payload["spec"], payload["meta"]


def predictor_from_checkpoint(path: str | Path, **overrides: Any):
    """A :class:`~terracarbon.raster.predict.TilePredictor` for a checkpoint, with ``finalize`` chosen by its task.

    ``meta["task"] == "regression"`` keeps band 1 (and undoes ``meta["target_scale"]``/``target_offset``);
    ``"segmentation"`` writes the argmax class as a paletted uint8 map with class names. ``stack=PATH`` selects the
    model's bands from that raster by name (:func:`resolve_in_bands`).
    """
    model, _, meta = load_checkpoint(path)
    return predictor_from_loaded(
        model, meta, onnx_cache=Path(path).with_suffix(".onnx"), source=path, **overrides
    )


def predictor_from_loaded(
    model: nn.Module,
    meta: dict[str, Any],
    *,
    source: str | Path | None = None,
    stack: str | Path | None = None,
    **overrides: Any,
):
    """Like :func:`predictor_from_checkpoint`, for a model and meta already loaded (no second read of the file).

    With ``stack`` (the raster to predict) and no ``in_bands`` override, the bands the model reads are chosen from the
    stack's band descriptions by the model's band names (:func:`resolve_in_bands`), and a units mismatch warns
    (:func:`check_input_units`).
    """
    from terracarbon.raster.predict import TilePredictor

    task = meta.get("task", "regression")
    in_bands = meta.get("in_bands")
    if stack is not None and "in_bands" not in overrides:
        in_bands = resolve_in_bands(meta, stack, checkpoint=source)
        check_input_units(meta, stack, checkpoint=source)
    common = {
        "in_bands": in_bands,
        "mean": meta.get("mean"),
        "std": meta.get("std"),
        "onnx_cache": None,
    }
    common.update({k: v for k, v in overrides.items() if k in common})
    rest = {k: v for k, v in overrides.items() if k not in common}
    if task == "regression":
        return TilePredictor.for_regression(
            model,
            scale=meta.get("target_scale", 1.0),
            offset=meta.get("target_offset", 0.0),
            clip_min=meta.get("clip_min", 0.0),
            band_name=meta.get("target_name", "agb_mg_per_ha"),
            **common,
            **rest,
        )
    if task == "segmentation":
        return TilePredictor.for_segmentation(
            model,
            class_names=meta["class_names"],
            colormap=meta.get("colormap"),
            **common,
            **rest,
        )
    raise InputError(source, f"task {task!r} cannot be predicted tile by tile with this engine")


# --------------------------------------------------------------------------------------------------- bands by name


class UnitsWarning(UserWarning):
    """A stack's ``TERRACARBON_UNITS`` differs from the units the model was trained on."""


def _described(descriptions) -> bool:
    return bool(descriptions) and all(d for d in descriptions)


def resolve_in_bands(
    meta: dict[str, Any], stack: str | Path, *, checkpoint: str | Path | None = None
) -> list[int] | None:
    """The 1-based bands of ``stack`` a model reads, found by the model's band names (``meta["bands"]``).

    * A stack whose bands all carry descriptions: each model band is looked up by name (exact, then ignoring case),
      so another order or extra bands do not matter. A missing band is an :class:`InputError` naming the stack and the
      band (with a hint when it is an HLS/Sentinel-2 alias such as ``BLUE`` = ``B02``). A stack where *no* model band
      name occurs, read by a checkpoint with explicit ``in_bands`` (RGB orthophoto models), keeps those positions.
    * A stack without descriptions: today's positional behaviour, ``meta["in_bands"]`` or all bands; the band count
      must then equal the model's when it has no ``in_bands``.
    * A model without band names: ``meta["in_bands"]`` unchanged.
    """
    from terracarbon.raster.io import open_raster

    names = [str(b) for b in (meta.get("bands") or [])]
    in_bands = meta.get("in_bands")
    if not names:
        return None if in_bands is None else list(in_bands)
    with open_raster(stack, require_crs=False) as ds:
        descs = [d or "" for d in ds.descriptions]
        count = ds.count
    if not _described(descs):
        if in_bands is None and count != len(names):
            raise InputError(
                stack,
                f"has {count} band(s) without names, but the model reads {len(names)} ({', '.join(names)}); "
                "name the bands (band descriptions) or give a stack with exactly these bands in this order",
            )
        return None if in_bands is None else list(in_bands)
    exact = {}
    folded = {}
    for i, d in enumerate(descs, start=1):
        exact.setdefault(d, i)
        folded.setdefault(d.upper(), i)
    picked: list[int] = []
    missing: list[str] = []
    for n in names:
        i = exact.get(n) or folded.get(n.upper())
        if i is None:
            missing.append(n)
        else:
            picked.append(i)
    if not missing:
        return picked
    if len(missing) == len(names) and in_bands is not None and count >= max(in_bands):
        return list(in_bands)
    raise InputError(
        stack,
        f"has no band {', '.join(missing)} that the model{_of(checkpoint)} needs "
        f"(it needs {', '.join(names)}; the stack has {', '.join(descs)}){_alias_hint(missing, descs)}",
    )


def _of(checkpoint) -> str:
    return f" {Path(checkpoint).name}" if checkpoint is not None else ""


def _alias_hint(missing: list[str], descs: list[str]) -> str:
    from terracarbon.data.sentinel2 import HLS_S30_NAMES

    have = {d.upper() for d in descs}
    pairs = [f"{m}={HLS_S30_NAMES[m.upper()]}" for m in missing if HLS_S30_NAMES.get(m.upper()) in have]
    if not pairs:
        return ""
    return (
        f"; the stack has them under Sentinel-2 names ({', '.join(pairs)}): rebuild it with "
        f"`terracarbon data stack --bands {','.join(missing)} ...`"
    )


def check_input_units(meta: dict[str, Any], stack: str | Path, *, checkpoint: str | Path | None = None) -> bool:
    """Warn (:class:`UnitsWarning`, one line) when the checkpoint's ``input_units`` differ from the stack's
    ``TERRACARBON_UNITS`` tag; True when they differ. Either side missing: no warning."""
    import warnings

    import rasterio

    want = meta.get("input_units")
    if not want or not isinstance(want, str):
        return False
    with rasterio.open(stack) as ds:
        have = ds.tags().get("TERRACARBON_UNITS")
    if not have or have.strip().lower() == want.strip().lower():
        return False
    warnings.warn(
        f"{stack}: the stack's units are {have} (TERRACARBON_UNITS) but the model{_of(checkpoint)} was trained on "
        f"{want} inputs; rebuild the stack with `terracarbon data stack --units {want}`",
        UnitsWarning,
        stacklevel=2,
    )
    return True
