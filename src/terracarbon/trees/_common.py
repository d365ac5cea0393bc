"""Shared pieces of the tree-cover / crown pipelines: normalisation, results, lazy run tracking, model cards."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from terracarbon.data.oam_tcd import RGB_BANDS, TREE_CLASS_NAMES, TREE_COLORMAP  # noqa: F401 (format facts)
from terracarbon.footprint.track import tracked  # noqa: F401 (re-exported for this domain)

log = logging.getLogger(__name__)

# ImageNet statistics in 8-bit units: what the tiled engine subtracts from raw pixel values
RGB_MEAN_8BIT = [0.485 * 255, 0.456 * 255, 0.406 * 255]
RGB_STD_8BIT = [0.229 * 255, 0.224 * 255, 0.225 * 255]
DATASET_ID = "restor/tcd"


@dataclass
class TreesTrainResult:
    """What a tree-cover or crown training run produced."""

    checkpoint: Path
    mode: str
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    wall_time_s: float = 0.0
    trainable_params: int = 0
    total_params: int = 0
    footprint: dict[str, Any] | None = None
    out_dir: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)
        d["checkpoint"] = str(self.checkpoint)
        d["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        return d


def write_card(
    out_dir: Path, *, model_id: str, footprint: dict | None, metrics: dict, extra: str, tags: tuple[str, ...]
) -> Path | None:
    """Model card (README.md with ``co2_eq_emissions``) next to an exported checkpoint; None if unavailable."""
    try:
        from terracarbon.footprint import write_model_card

        fp = footprint or {}
        return write_model_card(
            out_dir,
            model_id=model_id,
            emissions_g=fp.get("emissions_g"),
            training_type="pre-training",
            location=fp.get("country_iso_code"),
            hardware=fp.get("hardware"),
            datasets=[DATASET_ID],
            metrics=metrics,
            pipeline_tag="image-segmentation",
            tags=("trees", "tree-cover", "oam-tcd", "remote-sensing", *tags),
            extra_text=extra,
            footprint=fp or None,
        )
    except Exception as exc:  # pragma: no cover
        log.warning("model card not written: %s", exc)
        return None


def trainer_kwargs(
    *, epochs: int, devices: Any, strategy: str, accelerator: str, max_minutes: float | None, progress: bool
) -> dict[str, Any]:
    """Common Lightning ``Trainer`` arguments of the tree pipelines."""
    kw: dict[str, Any] = {
        "max_epochs": epochs,
        "accelerator": accelerator,
        "devices": devices,
        "strategy": strategy,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": progress,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "deterministic": False,
    }
    if max_minutes:
        kw["max_time"] = {"minutes": float(max_minutes)}
    return kw
