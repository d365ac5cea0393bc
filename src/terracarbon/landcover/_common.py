"""Helpers shared by the land-cover pipelines: emissions tracking that never breaks a run, model specs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class _Holder:
    result: dict[str, Any] | None = None


@contextlib.contextmanager
def tracked(
    out_dir: str | Path, task_name: str, *, enabled: bool = True, country_iso_code: str = "USA"
) -> Iterator[_Holder]:
    """Wrap a block in :func:`terracarbon.footprint.track_emissions`; a tracker failure never breaks the run.

    After the block, ``holder.result`` is the tracker's result dict (or None).
    """
    holder = _Holder()
    tracker = None
    if enabled:
        try:
            from terracarbon.footprint import track_emissions

            tracker = track_emissions(out_dir, task_name, country_iso_code=country_iso_code)
            tracker.__enter__()
        except Exception as exc:  # pragma: no cover - depends on codecarbon / the machine
            log.warning("emissions tracking unavailable: %s", exc)
            tracker = None
    try:
        yield holder
    finally:
        if tracker is not None:
            try:
                tracker.__exit__(None, None, None)
                holder.result = dict(getattr(tracker, "result", None) or {}) or None
            except Exception as exc:  # pragma: no cover
                log.warning("emissions tracking failed: %s", exc)
