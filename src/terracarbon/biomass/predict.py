"""Predict an AGB map from a stack with a trained checkpoint: one call of the shared tiled engine."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terracarbon.errors import InputError

__all__ = ["predict_biomass", "check_bands"]


def check_bands(checkpoint_meta: dict[str, Any], src: Path) -> list[int] | None:
    """Fail clearly when ``src`` lacks a band the model was trained on; returns the 1-based bands read, by name.

    Bands are selected by name from the stack's band descriptions (any order, extra bands ignored); a stack without
    descriptions must hold exactly the model's bands in its order
    (:func:`terracarbon.raster.checkpoint.resolve_in_bands`).
    """
    from terracarbon.raster.checkpoint import resolve_in_bands

    return resolve_in_bands(checkpoint_meta, src)


def predict_biomass(
    checkpoint: str | Path,
    src: str | Path,
    dst: str | Path,
    *,
    tile_size: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    backend: str = "eager",
    resume: bool = True,
    progress: bool = True,
    scheduler: Any = None,
    on_strip: Callable[[int, int], None] | None = None,
    track: bool = True,
    run_dir: str | Path | None = None,
    gdal_cache_mb: int | None = 256,
) -> Path:
    """Write an AGB map (Mg/ha, float32, nodata -9999, cloud-optimised GeoTIFF) for ``src`` with ``checkpoint``.

    Uses :func:`terracarbon.raster.checkpoint.predictor_from_checkpoint` and
    :func:`terracarbon.raster.predict.predict_raster` (overlapping tiles blended without seams, bounded memory,
    atomic output, resume after a kill). ``backend`` is ``"eager"``, ``"channels-last"`` or ``"onnx"``.
    ``on_strip(rows_done, n_rows)`` is called after each finished strip of tiles. With ``track`` the run's energy
    and CO2e are recorded in ``run_dir`` (default ``<dst folder>/<dst stem>.run/``). ``gdal_cache_mb`` caps GDAL's
    block cache (default 5 % of RAM) so memory stays flat in the raster size; it takes effect when this is the
    process's first raster I/O (as in the CLI); None leaves GDAL's setting alone.
    """
    import rasterio

    opts = (
        {}
        if gdal_cache_mb is None or "GDAL_CACHEMAX" in os.environ
        else {"GDAL_CACHEMAX": int(gdal_cache_mb)}
    )
    with rasterio.Env(**opts):
        return _predict(
            checkpoint,
            src,
            dst,
            tile_size,
            overlap,
            batch_size,
            backend,
            resume,
            progress,
            scheduler,
            on_strip,
            track,
            run_dir,
        )


def _predict(
    checkpoint,
    src,
    dst,
    tile_size,
    overlap,
    batch_size,
    backend,
    resume,
    progress,
    scheduler,
    on_strip,
    track,
    run_dir,
) -> Path:
    from terracarbon.raster.checkpoint import predict_checkpoint

    src, dst, checkpoint = Path(src), Path(dst), Path(checkpoint)

    def validate(spec: dict, meta: dict) -> None:
        if meta.get("task", "regression") != "regression":
            raise InputError(checkpoint, f"is a {meta.get('task')!r} model, not a biomass regression model")
        check_bands(meta, src)

    return predict_checkpoint(
        checkpoint,
        src,
        dst,
        validate=validate,
        tags={"units": "Mg/ha"},
        track=track,
        run_dir=run_dir,
        run_name="predict",
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        backend=backend,
        resume=resume,
        progress_bar=progress,
        scheduler=scheduler,
        on_strip=on_strip,
    )
