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
