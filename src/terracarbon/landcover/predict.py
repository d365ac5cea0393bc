"""Land-cover maps of whole orthophotos through the shared tiled engine.

:func:`predict_landcover` is one call of :func:`terracarbon.raster.predict.predict_raster` with the predictor of a
land-cover checkpoint: overlapping tiles blended without seams, bounded memory, atomic output, resume after a kill.
The output is a paletted uint8 GeoTIFF (cloud-optimised) with a colour table, band description ``class`` and the
class names in the ``class_names`` tag (JSON); nodata 255 where the input has nodata.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from terracarbon.errors import InputError

__all__ = ["predict_landcover"]


def predict_landcover(
    checkpoint: str | os.PathLike,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    tile_size: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    backend: str = "eager",
    resume: bool = True,
    progress: bool = True,
    scheduler: Any = None,
    device: str | None = None,
    on_strip: Callable[[int, int], None] | None = None,
    track: bool = True,
    run_dir: str | os.PathLike | None = None,
) -> Path:
    """Write the land-cover map of the RGB orthophoto ``src`` predicted by ``checkpoint`` to ``dst``.

    ``src`` needs at least 3 bands (red, green, blue read as bands 1-3, like LandCover.ai's orthophotos) and a CRS.
    ``tile_size`` must suit the model (a multiple of 32 for the smp models); ``overlap`` pixels on each side are
    blended. ``backend``: ``"eager"``, ``"channels-last"`` or ``"onnx"``; ``scheduler``: None, a Dask client or
    address, or ``"local:N"``. With ``track`` the run's energy and CO2e go to ``run_dir`` (default
    ``<dst folder>/<dst stem>.run/``). Returns ``dst``.
    """
    from terracarbon.raster.checkpoint import predict_checkpoint
    from terracarbon.raster.io import open_raster

    checkpoint, src, dst = Path(checkpoint), Path(src), Path(dst)

    def validate(spec: dict, meta: dict) -> dict:
        if meta.get("task") != "segmentation" or not meta.get("class_names"):
            raise InputError(
                checkpoint, f"is a {meta.get('task')!r} model, not a land-cover segmentation model"
            )
        in_bands = list(meta.get("in_bands") or [1, 2, 3])
        with open_raster(src) as ds:
            count = ds.count
        if count < max(in_bands):
            raise InputError(
                src,
                f"has {count} band(s) but the model reads bands {in_bands} ({', '.join(meta.get('bands') or [])})",
            )
        if tile_size % 32:
            raise InputError(
                checkpoint, f"tile_size {tile_size} is not a multiple of 32 (needed by {spec.get('arch')})"
            )
        return {"dataset": str(meta.get("dataset", ""))}

    return predict_checkpoint(
        checkpoint,
        src,
        dst,
        validate=validate,
        tags={"product": "land cover (LandCover.ai classes)"},
        track=track,
        run_dir=run_dir,
        run_name="landcover-predict",
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        backend=backend,
        resume=resume,
        progress_bar=progress,
        scheduler=scheduler,
        device=device,
        on_strip=on_strip,
    )
