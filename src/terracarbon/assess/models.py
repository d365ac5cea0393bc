"""Which checkpoint maps which layer: layer names and aliases, checkpoint metadata, the demo's default models.

:func:`layer_name` canonicalises a layer name (``"trees"`` -> ``"tree_cover"``), :func:`classify_checkpoint` tells the
layer of a terracarbon checkpoint from its metadata (task and class names), and :func:`default_models` finds the
models the demo trained. The private helpers read a checkpoint's ``meta`` (:func:`_checkpoint_meta`), its class
names and the band count its model expects; :mod:`terracarbon.assess.layers` uses them to pick each model's input.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from terracarbon.errors import ConfigError, InputError

__all__ = ["LAYERS", "classify_checkpoint", "default_models", "layer_name"]


LAYERS: tuple[str, ...] = ("biomass", "landcover", "tree_cover")
"""Layer names an assessment knows."""


_ALIASES = {
    "agb": "biomass",
    "land_cover": "landcover",
    "land-cover": "landcover",
    "lc": "landcover",
    "trees": "tree_cover",
    "tree": "tree_cover",
    "treecover": "tree_cover",
    "tree-cover": "tree_cover",
    "canopy": "tree_cover",
}


def layer_name(name: str) -> str:
    """Canonical layer name (``"trees"`` -> ``"tree_cover"`` ...); ConfigError for unknown names."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LAYERS:
        raise ConfigError(f"unknown layer {name!r}; choose one of {', '.join(LAYERS)}")
    return key


def _checkpoint_meta(path: Path) -> dict[str, Any]:
    """The ``meta`` dict of a terracarbon checkpoint (InputError when it is not one)."""
    import torch

    from terracarbon.models.registry import FORMAT as MODEL_FORMAT

    if not path.exists():
        raise InputError(path, "checkpoint does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(path, f"not a readable checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise InputError(path, f"not a terracarbon model file (expected format {MODEL_FORMAT!r})")
    meta = dict(payload.get("meta") or {})
    meta["_spec"] = payload.get("spec")
    return meta


def _class_names(meta: Mapping[str, Any]) -> list[str]:
    names = meta.get("class_names") or []
    if isinstance(names, Mapping):
        return [str(v) for _, v in sorted(names.items(), key=lambda kv: int(kv[0]))]
    return [str(n) for n in names]


def classify_checkpoint(meta: Mapping[str, Any]) -> str | None:
    """Which layer a checkpoint maps, from its metadata: regression -> biomass; segmentation -> land cover (LandCover.ai
    style classes) or tree cover (a ``tree`` class / two classes); None when unknown."""
    if meta.get("layer"):
        with contextlib.suppress(ConfigError):
            return layer_name(meta["layer"])
    task = meta.get("task", "regression")
    if task == "regression":
        return "biomass"
    if task == "segmentation":
        names = [n.lower() for n in _class_names(meta)]
        if any(k in n for n in names for k in ("woodland", "building", "road", "water", "urban", "crop")):
            return "landcover"
        if any("tree" in n or "canopy" in n for n in names) or len(names) == 2:
            return "tree_cover"
        return "landcover"
    return None


def default_models(base: str | os.PathLike = "demo-output") -> dict[str, Path]:
    """The models the demo trained: ``base/models/<layer>.pt`` (or any ``.pt`` there), else ``*.pt`` under ``base``.

    Each checkpoint's layer comes from its file name when that is a layer name, else from its metadata
    (:func:`classify_checkpoint`); the first match per layer wins (``models/`` first, then sorted paths).
    """
    base = Path(base)
    found: dict[str, Path] = {}
    if not base.is_dir():
        return found
    first = sorted((base / "models").glob("*.pt")) if (base / "models").is_dir() else []
    rest = sorted(
        p
        for p in base.rglob("*.pt")
        if p not in first and not any(part.startswith(".") for part in p.relative_to(base).parts)
    )
    for p in [*first, *rest]:
        layer = None
        with contextlib.suppress(ConfigError):
            layer = layer_name(p.stem)
        if layer is None:
            try:
                layer = classify_checkpoint(_checkpoint_meta(p))
            except InputError:
                continue
        if layer is not None and layer not in found:
            found[layer] = p.resolve()
    return found


def _model_in_count(meta: Mapping[str, Any]) -> int | None:
    for key in ("in_bands", "bands", "mean"):
        v = meta.get(key)
        if v:
            return len(v)
    spec = meta.get("_spec") or {}
    return spec.get("in_channels")
