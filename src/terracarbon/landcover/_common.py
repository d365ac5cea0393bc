"""Helpers shared by the land-cover pipelines: emissions tracking that never breaks a run, model specs."""

from __future__ import annotations

import logging
from typing import Any

from terracarbon.footprint.track import tracked  # noqa: F401 (re-exported for this domain)

log = logging.getLogger("terracarbon.landcover")

#: Named model specs for :func:`terracarbon.landcover.train.train_landcover` (registry specs without
#: ``in_channels``/``classes``). ``deeplabv3plus`` is the paper's baseline family (the paper used an
#: Xception-71 encoder pretrained on ImageNet; here encoders start from scratch, no weight download).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "deeplabv3plus": {"arch": "deeplabv3plus", "encoder_name": "resnet50"},
    "unet": {"arch": "unet", "encoder_name": "resnet34"},
    "deeplabv3plus-small": {"arch": "deeplabv3plus", "encoder_name": "resnet18"},
    "unet-small": {"arch": "unet", "encoder_name": "resnet18"},
    # CPU/CI-sized U-Net: 3 encoder stages of a ResNet-10 (timm), ~0.4 M parameters
    "unet-tiny": {
        "arch": "unet",
        "encoder_name": "tu-resnet10t",
        "encoder_depth": 3,
        "decoder_channels": [32, 16, 8],
    },
}


def resolve_spec(model: str | dict[str, Any], in_channels: int, classes: int) -> dict[str, Any]:
    """A full registry spec from a preset name or a partial spec dict."""
    from terracarbon.errors import ConfigError

    if isinstance(model, str):
        if model not in MODEL_PRESETS:
            raise ConfigError(f"unknown land-cover model {model!r}; choose one of {', '.join(MODEL_PRESETS)}")
        spec = dict(MODEL_PRESETS[model])
    else:
        spec = dict(model)
        if "arch" not in spec:
            raise ConfigError("model spec needs an 'arch' key (e.g. 'unet' or 'deeplabv3plus')")
    spec.setdefault("in_channels", in_channels)
    spec.setdefault("classes", classes)
    return spec
