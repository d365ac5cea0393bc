"""Lazy, failure-tolerant run tracking (energy / CO2e) and model cards for biomass runs."""

from __future__ import annotations

import logging
from pathlib import Path

from terracarbon.footprint.track import tracked  # noqa: F401 (re-exported for this domain)

log = logging.getLogger(__name__)


def model_card(
    out_dir: Path, *, model_id: str, footprint: dict | None, metrics: dict, datasets: list[str], extra: str
) -> Path | None:
    """Write the model card (README.md) next to an exported checkpoint; None if the footprint module is missing."""
    try:
        from terracarbon.footprint import write_model_card
    except Exception as exc:  # pragma: no cover
        log.warning("model card not written: %s", exc)
        return None
    fp = footprint or {}
    return write_model_card(
        out_dir,
        model_id=model_id,
        emissions_g=fp.get("emissions_g"),
        training_type="pre-training",
        location=fp.get("country_iso_code"),
        hardware=fp.get("hardware"),
        datasets=datasets,
        metrics=metrics,
        pipeline_tag="image-segmentation",
        tags=("biomass", "agb", "remote-sensing", "regression"),
        extra_text=extra,
        footprint=fp or None,
    )
