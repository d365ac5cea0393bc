"""Biomass label rasters from GEDI footprints: rasterise shot points onto a reference grid.

Band 1 (``AGBD``, Mg/ha, float32, NaN elsewhere) holds a shot's ``agbd`` on every pixel whose *centre* lies within
``radius`` metres of the shot (12.5 m: the 25 m GEDI footprint), or with ``center_only`` just on the pixel holding the
shot (how AGBD's patches carry the label, Sialelli et al. 2024). Where footprints overlap a pixel holds the mean of
their values. Band 2 (``AGBD_SE``) holds the mean ``agbd_se`` on the same pixels.

Shots in any CRS are reprojected into the grid's CRS (pyproj). On a projected grid distances are Euclidean in the
grid's linear unit (converted from metres); on a geographic grid they are geodesic metres on the grid's ellipsoid
(``pyproj.Geod.inv``), so a 12.5 m radius is 12.5 m at any latitude.

>>> from terracarbon.data.labels import rasterize_shots
>>> rasterize_shots("shots.gpkg", like="stack.tif", out="labels.tif")
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import ConfigError, InputError

__all__ = ["LabelsResult", "footprint_pixels", "rasterize_shots", "LABEL_BANDS", "GEDI_FOOTPRINT_RADIUS_M"]

GEDI_FOOTPRINT_RADIUS_M = 12.5
"""Half the nominal 25 m GEDI footprint diameter."""
LABEL_BANDS = ["AGBD", "AGBD_SE"]


@dataclass
class LabelsResult:
    """What :func:`rasterize_shots` returns."""

    path: Path
    n_shots: int
    n_shots_on_grid: int
    n_labelled_pixels: int
    n_overlap_pixels: int
    tags: dict[str, Any] = field(default_factory=dict)


def _metre_factor(crs) -> float:
    """Metres per unit of a projected CRS's first axis."""
    from pyproj import CRS

    c = CRS.from_user_input(crs)
    try:
        return float(c.axis_info[0].unit_conversion_factor)
    except (IndexError, AttributeError):  # pragma: no cover
        return 1.0


def _apply(t, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply an affine transform to coordinate arrays."""
    return t.a * u + t.b * v + t.c, t.d * u + t.e * v + t.f


def footprint_pixels(
    x: np.ndarray,
    y: np.ndarray,
    transform,
    shape: tuple[int, int],
    crs,
    *,
    radius: float = GEDI_FOOTPRINT_RADIUS_M,
    center_only: bool = False,
    chunk: int = 1 << 20,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixels covered by each shot: ``(shot_index, row, col)`` arrays.

    ``x``, ``y`` are shot coordinates in the grid's CRS. A pixel is covered when its centre is within ``radius``
    metres of the shot (geodesic on a geographic CRS), or, with ``center_only``, when it holds the shot.
    """
    from pyproj import CRS

    h, w = shape
    fc, fr = _apply(~transform, np.asarray(x, np.float64), np.asarray(y, np.float64))
    n = len(fc)
    if center_only:
        c, r = np.floor(fc).astype(np.int64), np.floor(fr).astype(np.int64)
        ok = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        return np.nonzero(ok)[0], r[ok], c[ok]
    if radius <= 0:
        raise ConfigError(f"radius must be > 0 m, got {radius}")
    c = CRS.from_user_input(crs)
    geographic = c.is_geographic
    # pixel size along columns / rows in CRS units (handles rotation-free and rotated affines)
    px = math.hypot(transform.a, transform.d)
    py = math.hypot(transform.b, transform.e)
    if geographic:
        lat_max = float(np.nanmax(np.abs(y))) if n else 0.0
        deg_lat = radius / 110_574.0
        deg_lon = radius / (111_320.0 * max(math.cos(math.radians(min(lat_max, 89.0))), 1e-6))
        kx, ky = int(math.ceil(deg_lon / px)) + 1, int(math.ceil(deg_lat / py)) + 1
        geod = c.get_geod()
    else:
        r_units = radius / _metre_factor(c)
        kx, ky = int(math.ceil(r_units / px)) + 1, int(math.ceil(r_units / py)) + 1
    dy, dx = np.mgrid[-ky : ky + 1, -kx : kx + 1]
    dy, dx = dy.ravel(), dx.ravel()
    out_i, out_r, out_c = [], [], []
    step = max(1, chunk // dx.size)  # shots per chunk: about ``chunk`` candidate pixels at a time
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        c0 = np.floor(fc[sl]).astype(np.int64)[:, None] + dx[None]
        r0 = np.floor(fr[sl]).astype(np.int64)[:, None] + dy[None]
        inside = (r0 >= 0) & (r0 < h) & (c0 >= 0) & (c0 < w)
        if not inside.any():
            continue
        idx = np.broadcast_to(np.arange(sl.start, sl.stop)[:, None], c0.shape)[inside]
        rr, cc = r0[inside], c0[inside]
        xc, yc = _apply(transform, cc + 0.5, rr + 0.5)
        if geographic:
            _, _, dist = geod.inv(np.asarray(x)[idx], np.asarray(y)[idx], xc, yc)
            ok = np.abs(dist) <= radius
        else:
            d2 = (xc - np.asarray(x)[idx]) ** 2 + (yc - np.asarray(y)[idx]) ** 2
            ok = d2 <= r_units**2
        out_i.append(idx[ok])
        out_r.append(rr[ok])
        out_c.append(cc[ok])
    if not out_i:
        e = np.zeros(0, np.int64)
        return e, e, e
    return np.concatenate(out_i), np.concatenate(out_r), np.concatenate(out_c)


def rasterize_shots(
    shots,
    like: str | Path,
    out: str | Path,
    *,
    radius: float = GEDI_FOOTPRINT_RADIUS_M,
    center_only: bool = False,
    value: str = "agbd",
    se: str = "agbd_se",
) -> LabelsResult:
    """Rasterise GEDI shots onto the grid of ``like`` and write a 2-band label COG (``AGBD``, ``AGBD_SE``) atomically.

    Args:
        shots: a shots file (GeoPackage / GeoParquet from :func:`terracarbon.data.gedi.gedi_to_file`, or any point
            vector file with an ``agbd`` column) or a GeoDataFrame, in any CRS.
        like: the reference grid (any raster: its CRS, transform and size are used).
        out: output GeoTIFF (COG, float32, nodata NaN).
        radius: footprint radius in metres (pixels whose centre is within it get the shot's value).
        center_only: label only the pixel holding each shot.
        value, se: the columns to rasterise into bands 1 and 2 (``se`` may be absent: band 2 is then NaN).

    Raises:
        InputError: no shots, no ``value`` column, non-point geometries, or no shot on the grid (names the file).
    """
    import geopandas as gpd

    from terracarbon.data.gedi import read_shots
    from terracarbon.raster.io import open_raster, write_geotiff

    src_name = str(shots) if not isinstance(shots, gpd.GeoDataFrame) else "<GeoDataFrame>"
    gdf = shots if isinstance(shots, gpd.GeoDataFrame) else read_shots(shots)
    where = None if isinstance(shots, gpd.GeoDataFrame) else Path(shots)
    if len(gdf) == 0:
        raise InputError(where, "has no shots to rasterise (were the filters too strict?)")
    if value not in gdf.columns:
        raise InputError(where, f"has no {value!r} column (columns: {list(gdf.columns)})")
    if gdf.crs is None:
        raise InputError(where, "shots have no CRS")
    if not (gdf.geom_type == "Point").all():
        raise InputError(where, f"holds {sorted(set(gdf.geom_type))} geometries; shots must be points")
    with open_raster(like) as ds:
        crs, transform, shape = ds.crs, ds.transform, (ds.height, ds.width)
    pts = gdf.to_crs(crs)
    x, y = pts.geometry.x.to_numpy(), pts.geometry.y.to_numpy()
    vals = gdf[value].to_numpy(np.float64)
    ses = gdf[se].to_numpy(np.float64) if se in gdf.columns else np.full(len(gdf), np.nan)
    good = np.isfinite(x) & np.isfinite(y) & np.isfinite(vals)
    idx, rr, cc = footprint_pixels(
        x[good], y[good], transform, shape, crs, radius=radius, center_only=center_only
    )
    idx = np.nonzero(good)[0][idx]
    if idx.size == 0:
        raise InputError(
            where,
            f"none of its {len(gdf)} shots falls on the grid of {like} "
            f"({shape[1]}×{shape[0]} px, {crs.to_string()}); check the AOI / reference grid",
        )
    h, w = shape
    flat = rr * w + cc
    cnt = np.bincount(flat, minlength=h * w).reshape(shape)
    agb = np.bincount(flat, weights=vals[idx], minlength=h * w).reshape(shape)
    se_ok = np.isfinite(ses[idx])
    se_cnt = np.bincount(flat[se_ok], minlength=h * w).reshape(shape)
    se_sum = np.bincount(flat[se_ok], weights=ses[idx][se_ok], minlength=h * w).reshape(shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        band1 = np.where(cnt > 0, agb / cnt, np.nan).astype(np.float32)
        band2 = np.where(se_cnt > 0, se_sum / se_cnt, np.nan).astype(np.float32)
    n_on = int(np.unique(idx).size)
    tags = {
        "units": "Mg/ha",
        "TERRACARBON_LABELS": "gedi-footprints",
        "source": src_name,
        "value_column": value,
        "se_column": se,
        "footprint": "center-only" if center_only else f"pixel centres within {radius} m of the shot",
        "radius_m": None if center_only else radius,
        "overlap": "mean of the shots covering a pixel",
        "n_shots": len(gdf),
        "n_shots_on_grid": n_on,
        "n_labelled_pixels": int((cnt > 0).sum()),
        "n_overlap_pixels": int((cnt > 1).sum()),
    }
    gedi = gdf.attrs.get("gedi") or {}
    if gedi.get("filter"):
        tags["gedi_filter"] = json.dumps(gedi["filter"]["rules"] if "rules" in gedi["filter"] else gedi["filter"])
    write_geotiff(
        out,
        np.stack([band1, band2]),
        crs=crs,
        transform=transform,
        nodata=float("nan"),
        band_descriptions=LABEL_BANDS,
        tags={k: v for k, v in tags.items() if v is not None},
    )
    return LabelsResult(
        Path(out), len(gdf), n_on, tags["n_labelled_pixels"], tags["n_overlap_pixels"], tags
    )
