"""Hugging Face SegFormer tree-cover models (restor's ``tcd-segformer-*``) as terracarbon models.

    terracarbon models import hf-segformer tcd-segformer-mit-b5/ --out tcd_segformer.pt
    terracarbon trees predict --mode semantic --checkpoint tcd_segformer.pt ortho.tif cover.tif

restor publishes its OAM-TCD SegFormers in the transformers layout: a folder with ``config.json`` (a
``SegformerConfig``: MiT encoder sizes, ``num_labels``, ``id2label`` ``{0: "__background__", 1: "tree"}``),
``model.safetensors`` and usually ``preprocessor_config.json``. The importer loads that folder with
``transformers.SegformerForSemanticSegmentation.from_pretrained`` (local files only, nothing downloaded) and writes
a ``terracarbon-model/1`` file whose architecture ``hf_segformer`` wraps the same transformers module, so
transformers is needed at run time for these models (it is a terracarbon dependency; the error says so if it is
missing).

Restor's preprocessing and prediction (Restor-Foundation/tcd, ``src/tcd_pipeline/models/segformer.py`` and
``config/data/default.yaml``), reproduced by the engine from the file's meta:

* ``SegformerImageProcessor`` with ``do_resize=False``: pixels × ``rescale_factor`` (1/255), then ``(x - mean) / std``
  with ``image_mean`` / ``image_std`` (ImageNet's by default). The engine normalises raw 8-bit pixels, so the meta
  holds ``mean / rescale_factor`` and ``std / rescale_factor`` (e.g. 123.675 … / 58.395 …), bands red, green, blue.
* SegFormer's logits come out at 1/4 of the tile size; restor resizes them bilinearly (``align_corners=False``) to
  the tile and takes the softmax. :class:`HFSegformer` returns the resized logits (argmax is unchanged by softmax).
* Tiles of 1,024 px with 256 px overlap (``tile_size``, ``tile_overlap``) at a 0.1 m ground sampling distance
  (``gsd``): recorded as ``meta["tile_size"]``, ``meta["overlap"]`` and ``meta["gsd_m"]``; ``trees predict`` uses
  them unless told otherwise.
* Classes from ``id2label``; a two-class ``__background__`` / ``tree`` model is written with terracarbon's tree-cover
  class names and palette (``no_tree``, ``tree``), so its maps read like every other tree-cover map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from terracarbon.errors import ConfigError, InputError

__all__ = ["HFSegformer", "build_hf_segformer", "import_hf_segformer", "RESTOR_TILE_SIZE", "RESTOR_OVERLAP"]

RESTOR_TILE_SIZE = 1024
RESTOR_OVERLAP = 256
RESTOR_GSD_M = 0.1


def _transformers():
    try:
        import transformers
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise ConfigError(
            "Hugging Face SegFormer models need the 'transformers' package: pip install 'transformers>=4.40'"
        ) from exc
    return transformers


class HFSegformer(nn.Module):
    """transformers' ``SegformerForSemanticSegmentation`` (as ``model``) returning logits at the input size.

    Args:
        config: the ``config.json`` dict of the SegFormer (``SegformerConfig.from_dict``).
        upsample: resize the 1/4-resolution logits bilinearly to the input size (restor's prediction); False
            returns transformers' raw logits.
    """

    def __init__(self, config: dict[str, Any], upsample: bool = True) -> None:
        super().__init__()
        tf = _transformers()
        cfg = tf.SegformerConfig.from_dict(dict(config))
        self.model = tf.SegformerForSemanticSegmentation(cfg)
        self.upsample = bool(upsample)
        self.num_labels = int(cfg.num_labels)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """transformers' forward: ``B×num_labels×H/4×W/4`` logits."""
        return self.model(pixel_values=x).logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B×3×H×W`` normalised pixels -> ``B×num_labels×H×W`` logits (or ``H/4`` with ``upsample=False``)."""
        y = self.logits(x)
        if self.upsample and y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return y


def build_hf_segformer(
    config: dict[str, Any], in_channels: int | None = None, classes: int | None = None, upsample: bool = True
) -> HFSegformer:
    """Registry builder for ``{"arch": "hf_segformer", "config": {...}}``."""
    m = HFSegformer(config, upsample=upsample)
    if in_channels is not None and int(in_channels) != int(m.model.config.num_channels):
        raise ConfigError(f"in_channels={in_channels} but the SegFormer config has {m.model.config.num_channels}")
    if classes is not None and int(classes) != m.num_labels:
        raise ConfigError(f"classes={classes} but the SegFormer config has {m.num_labels} labels")
    return m


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not readable JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise InputError(path, "is not a JSON object")
    return obj


def _preprocessing(model_dir: Path) -> dict[str, Any]:
    """Rescale factor, mean and std of the image processor (``preprocessor_config.json`` or transformers' defaults)."""
    tf = _transformers()
    defaults = tf.SegformerImageProcessor()
    p = model_dir / "preprocessor_config.json"
    cfg = _read_json(p) if p.exists() else {}
    do_rescale = bool(cfg.get("do_rescale", getattr(defaults, "do_rescale", True)))
    do_normalize = bool(cfg.get("do_normalize", getattr(defaults, "do_normalize", True)))
    factor = float(cfg.get("rescale_factor", defaults.rescale_factor)) if do_rescale else 1.0
    mean = [float(v) for v in cfg.get("image_mean", defaults.image_mean)] if do_normalize else [0.0] * 3
    std = [float(v) for v in cfg.get("image_std", defaults.image_std)] if do_normalize else [1.0] * 3
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise InputError(p, "image_mean / image_std must hold three numbers (std > 0)")
    return {
        "rescale_factor": factor,
        "image_mean": mean,
        "image_std": std,
        "source": p.name if p.exists() else "transformers SegformerImageProcessor defaults",
    }


def import_hf_segformer(
    model_dir: str | Path,
    out: str | Path,
    *,
    tile_size: int = RESTOR_TILE_SIZE,
    overlap: int = RESTOR_OVERLAP,
) -> Path:
    """Write a terracarbon model file for a transformers SegFormer folder (``config.json`` + ``model.safetensors``).

    The weights are loaded with ``SegformerForSemanticSegmentation.from_pretrained(model_dir,
    local_files_only=True)``; the file's meta holds restor's preprocessing (see the module docstring), the class
    names and ``tile_size`` / ``overlap`` for ``trees predict``.
    """
    from terracarbon.data.oam_tcd import RGB_BANDS, TREE_CLASS_NAMES, TREE_COLORMAP
    from terracarbon.models.registry import count_parameters, save_checkpoint

    tf = _transformers()
    d = Path(model_dir)
    if not d.is_dir():
        raise InputError(d, "is not a folder (expected config.json + model.safetensors)")
    cfg_path = d / "config.json"
    if not cfg_path.exists():
        raise InputError(d, "has no config.json")
    config = _read_json(cfg_path)
    if config.get("model_type") != "segformer":
        raise InputError(cfg_path, f"model_type is {config.get('model_type')!r}, not 'segformer'")
    weights = [p for p in ("model.safetensors", "pytorch_model.bin") if (d / p).exists()]
    if not weights:
        raise InputError(d, "has no model.safetensors (or pytorch_model.bin)")
    if int(config.get("num_channels", 3)) != 3:
        raise InputError(cfg_path, f"num_channels={config.get('num_channels')}: tree-cover models read RGB")
    try:
        hf = tf.SegformerForSemanticSegmentation.from_pretrained(str(d), local_files_only=True)
    except Exception as exc:
        raise InputError(d, f"transformers could not load the SegFormer ({type(exc).__name__}: {exc})") from exc
    hf_config = hf.config.to_dict()
    for k in ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "_attn_implementation_autoset"):
        hf_config.pop(k, None)
    model = HFSegformer(hf_config)
    model.model.load_state_dict(hf.state_dict())
    model.eval()

    pre = _preprocessing(d)
    f = pre["rescale_factor"]
    id2label = {int(k): str(v) for k, v in (hf.config.id2label or {}).items()}
    labels = [id2label.get(i, f"class_{i}") for i in range(model.num_labels)]
    colormap = None
    if len(labels) == 2 and labels[1].lower() == "tree":
        class_names, colormap = list(TREE_CLASS_NAMES), {k: list(v) for k, v in TREE_COLORMAP.items()}
    else:
        class_names = labels
    trainable, total = count_parameters(model)
    meta: dict[str, Any] = {
        "task": "segmentation",
        "bands": list(RGB_BANDS),
        "in_bands": [1, 2, 3],
        "mean": [m / f for m in pre["image_mean"]],
        "std": [s / f for s in pre["image_std"]],
        "input_units": "uint8",
        "class_names": class_names,
        "colormap": colormap,
        "tile_size": int(tile_size),
        "overlap": int(overlap),
        "gsd_m": RESTOR_GSD_M,
        "total_params": total,
        "source": {
            "format": "huggingface-transformers",
            "class": "SegformerForSemanticSegmentation",
            "model_dir": str(d),
            "weights": weights[0],
            "id2label": {str(k): v for k, v in id2label.items()},
            "preprocessing": pre,
            "transformers_version": tf.__version__,
        },
    }
    spec = {"arch": "hf_segformer", "config": hf_config}
    return save_checkpoint(out, model, spec, meta)


try:  # register with the model registry (imported lazily by the registry for this arch)
    from terracarbon.models.registry import register_arch

    register_arch("hf_segformer")(build_hf_segformer)
except ImportError:  # pragma: no cover
    pass
