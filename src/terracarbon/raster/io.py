"""Open and validate rasters; write compressed, cloud-optimised GeoTIFFs atomically."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioIOError

from terracarbon.errors import InputError
from terracarbon.utils import atomic_path

COG_OPTIONS: dict[str, Any] = {
    "compress": "DEFLATE",
    "blocksize": 256,
    "overviews": "AUTO",
    "BIGTIFF": "IF_SAFER",
}


def open_raster(path: str | Path, expected_bands: int | None = None, require_crs: bool = True):
    """Open ``path`` with rasterio after checking it is a usable raster.

    Raises :class:`InputError` naming the file when it is missing, unreadable or truncated, has the wrong number of
    bands, or has no CRS / georeferencing (when ``require_crs``). The caller closes the returned dataset.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file does not exist")
    if path.is_dir():
        raise InputError(path, "is a folder, not a raster file")
    try:
        ds = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(path, f"not a readable raster ({exc})") from exc
    try:
        if expected_bands is not None and ds.count != expected_bands:
            raise InputError(path, f"has {ds.count} band(s) but {expected_bands} are needed")
        if require_crs and ds.crs is None:
            raise InputError(path, "has no CRS (coordinate reference system); georeference it first")
        if require_crs and ds.transform == rasterio.Affine.identity():
            raise InputError(path, "has no geotransform (pixel coordinates only); georeference it first")
        check_readable(ds, path)
    except BaseException:
        ds.close()
        raise
    return ds


def check_readable(ds, path: str | Path) -> None:
    """Read the last block of every band so a truncated file fails now, not hours into a job."""
    try:
        h, w = ds.block_shapes[0] if ds.block_shapes else (1, ds.width)
        row = max(0, ds.height - 1)
        col = max(0, ds.width - 1)
        win = rasterio.windows.Window(
            col - col % w, row - row % h, min(w, ds.width - col + col % w), min(h, ds.height - row + row % h)
        )
        ds.read(window=win)
    except Exception as exc:  # GDAL raises RasterioIOError or CPLE_* here
        raise InputError(path, f"is truncated or corrupt: reading its last block failed ({exc})") from exc


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    *,
    crs,
    transform,
    nodata: float | int | None = None,
    band_descriptions: Sequence[str] | None = None,
    colormap: Mapping[int, Sequence[int]] | None = None,
    tags: Mapping[str, Any] | None = None,
    cog: bool = True,
) -> Path:
    """Write a 2-D or 3-D (bands, rows, cols) array as a compressed cloud-optimised GeoTIFF, atomically.

    ``tags`` values that are not strings are stored as JSON. ``colormap`` (band 1, uint8 rasters) maps class value to an
    RGB(A) tuple.
    """
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D array, got shape {arr.shape}")
    path = Path(path)
    profile = {
        "driver": "GTiff",
        "height": arr.shape[1],
        "width": arr.shape[2],
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "DEFLATE",
    }
    if arr.shape[1] < 256 or arr.shape[2] < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    with atomic_path(path, suffix=".tif") as tmp:
        plain = tmp.with_name(tmp.name + ".plain.tif") if cog else tmp
        with rasterio.open(plain, "w", **profile) as dst:
            dst.write(arr)
            _decorate(dst, band_descriptions, colormap, tags)
        if cog:
            to_cog(plain, tmp)
            plain.unlink()
    return path


def _decorate(dst, band_descriptions=None, colormap=None, tags=None) -> None:
    if band_descriptions:
        for i, name in enumerate(band_descriptions, start=1):
            dst.set_band_description(i, str(name))
    if colormap:
        dst.write_colormap(1, {int(k): tuple(int(c) for c in v) for k, v in colormap.items()})
    if tags:
        dst.update_tags(**{k: v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()})


def to_cog(src: str | Path, dst: str | Path) -> None:
    """Copy a GeoTIFF into cloud-optimised layout (tiled, DEFLATE, internal overviews); streams, bounded memory."""
    with rasterio.open(src) as ds:
        opts = dict(COG_OPTIONS)
        if ds.colorinterp and ds.colorinterp[0] == rasterio.enums.ColorInterp.palette:
            opts["overview_resampling"] = "nearest"
        elif np.issubdtype(np.dtype(ds.dtypes[0]), np.integer):
            opts["overview_resampling"] = "nearest"
        else:
            opts["overview_resampling"] = "average"
    rasterio.shutil.copy(str(src), str(dst), driver="COG", **opts)


def band_names(ds) -> list[str]:
    """Band names of an open dataset: its band descriptions, ``band<i>`` where a band has none."""
    return [d or f"band{i + 1}" for i, d in enumerate(ds.descriptions)]


def read_band_names(path: str | Path) -> list[str]:
    """Band names of the raster at ``path`` (validated open, see :func:`open_raster`)."""
    with open_raster(path, require_crs=False) as ds:
        return band_names(ds)


def read_class_names(path: str | Path) -> list[str] | None:
    """Class names stored in a map's ``class_names`` tag (JSON list), or None."""
    with rasterio.open(path) as ds:
        raw = ds.tags().get("class_names")
    return json.loads(raw) if raw else None
