"""Lazy, failure-tolerant run tracking (energy / CO2e) and model cards for biomass runs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class _Holder:
    result: dict[str, Any] | None = None


@contextlib.contextmanager
def tracked(out_dir: str | Path, task_name: str, enabled: bool = True) -> Iterator[_Holder]:
    """Wrap a block in :func:`terracarbon.footprint.track_emissions`; a tracker failure never breaks the run.

    Yields an object whose ``result`` is the tracking result dict (or None) after the block.
    """
    holder = _Holder()
    tracker = None
    if enabled:
        try:
            from terracarbon.footprint import track_emissions

            tracker = track_emissions(out_dir, task_name)
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
