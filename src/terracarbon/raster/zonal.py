"""Zonal statistics over areas of interest, with true pixel areas and exact coverage fractions, in bounded memory.

* :func:`read_aoi` reads a GeoJSON / GeoPackage / any OGR vector file, keeps its polygons, repairs invalid ones and
  reprojects them to the raster's CRS, with clear errors for missing, unreadable, empty or CRS-less files and for AOIs
  lying outside the raster; skipped or repaired parcels are listed, by name, in ``gdf.attrs["warnings"]``.
* :func:`pixel_areas_m2` gives the true area of every pixel: for projected CRSs ``|det(transform)|`` corrected by the
  projection's areal scale factor (exact for equal-area projections, ~0.1 % for UTM, large for Web Mercator), and for
  geographic CRSs (e.g. EPSG:4326) the exact ellipsoidal area of each latitude/longitude cell, once per pixel row.
* :func:`iter_cell_weights` is the engine: tile by tile, the cells of each polygon with their weights.
  ``method="coverage"`` (the default) weights every pixel by the fraction of its area inside the polygon, computed
  exactly by exactextract's C++ coverage-fraction algorithm (https://isciences.github.io/exactextract/, Python API
  ``exact_extract(NumPyRasterSource(...), features, ["coverage", "cell_id"])``); ``method="centre"`` keeps the
  pixel-centre rule (weight 1 when the centre is inside; or every touched pixel with ``all_touched``).
* :func:`zonal_stats` computes per-polygon and whole-AOI (union, overlaps counted once) weighted statistics of a band
  (area = Σ w·A, mean = Σ w·A·v / Σ w·A, total = Σ w·A·v), derived value channels, and carried-through uncertainty
  when a standard-deviation band/raster is given.
* :func:`class_areas` gives hectares and percent per class of a class raster, inside an AOI or over the whole raster,
  with the same weights.

With coverage weights the reported ``area_ha`` of a polygon the raster covers equals its geodesic area (to float32
coverage precision, ~1e-7), and a constant raster gives the exact total for any polygon; with the pixel-centre rule
border pixels shift both by several percent on parcels of ~100 pixels.

Everything streams over tiles of at most ``tile`` × ``tile`` pixels of the AOI's bounding window; polygons are found
per tile with an STR-tree, so 10,000 parcels over a 10,000² raster stay within a few tiles' memory.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import ConfigError, InputError

PathLike = str | os.PathLike

METHODS = ("coverage", "centre")

__all__ = [
    "METHODS",
    "ClassAreas",
    "TileCells",
    "ZoneAccumulator",
    "aoi_mask",
    "class_areas",
    "geometry_area_m2",
    "geometry_areas_m2",
    "iter_cell_weights",
    "iter_zone_tiles",
    "parcel_label",
    "pixel_areas_m2",
    "read_aoi",
    "zonal_stats",
]


# --------------------------------------------------------------------------------------------------------------------
# AOI reading


def read_aoi(
    path: PathLike, crs=None, *, bounds: Sequence[float] | None = None, layer: str | int | None = None
):
    """Read the polygons of a vector file as a GeoDataFrame, reprojected to ``crs``.

    ``path``: GeoJSON, GeoPackage, shapefile, ... (anything pyogrio/GDAL reads). GeoJSON without a ``crs`` member is
    EPSG:4326 (RFC 7946). Non-polygon features are dropped; invalid polygons are repaired (``make_valid``).
    ``crs``: target CRS (anything pyproj understands, e.g. a rasterio ``CRS``); ``None`` keeps the file's CRS.
    ``bounds``: ``(left, bottom, right, top)`` in the target CRS; when given, an AOI that does not intersect them
    raises :class:`InputError` ("outside the raster").
    The returned frame has a column ``zone`` (0-based feature number) and keeps the file's attribute columns.
    """
    import geopandas as gpd
    from shapely import make_valid
    from shapely.geometry import MultiPolygon, Polygon, box

    path = Path(path)
    if not path.exists():
        raise InputError(path, "AOI file does not exist")
    try:
        kwargs = {} if layer is None else {"layer": layer}
        gdf = gpd.read_file(path, **kwargs)
    except Exception as exc:  # pyogrio raises DataSourceError/DataLayerError, fiona DriverError, ...
        raise InputError(
            path, f"AOI file is not a readable vector file ({type(exc).__name__}: {exc})"
        ) from exc
    if gdf.empty or "geometry" not in gdf or gdf.geometry.isna().all():
        raise InputError(path, "AOI file holds no features")
    if gdf.crs is None:
        raise InputError(path, "AOI file has no CRS; save it with one (e.g. EPSG:4326)")

    warnings: list[str] = []
    gdf = gdf.copy()
    gdf["zone"] = np.arange(len(gdf))

    def polygonal(geom, i):
        if geom is None or geom.is_empty:
            label = parcel_label(gdf.iloc[i], i)
            warnings.append(f"parcel {label}: empty geometry, skipped")
            return None
        if not geom.is_valid:
            from shapely.validation import explain_validity

            why = explain_validity(geom)
            geom = make_valid(geom)
            label = parcel_label(gdf.iloc[i], i)
            warnings.append(f"parcel {label}: invalid geometry ({why}) repaired with make_valid")
        if isinstance(geom, (Polygon, MultiPolygon)):
            return geom
        parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
        polys = []
        for g in parts:
            polys.extend(g.geoms if isinstance(g, MultiPolygon) else [g])
        if polys:
            return MultiPolygon(polys)
        label = parcel_label(gdf.iloc[i], i)
        warnings.append(f"parcel {label}: not a polygon ({geom.geom_type}), skipped")
        return None

    gdf["geometry"] = [polygonal(g, i) for i, g in enumerate(gdf.geometry)]
    gdf = gdf[gdf.geometry.notna()]
    if gdf.empty:
        raise InputError(
            path, "AOI file holds no polygons (only points/lines or empty geometries): " + "; ".join(warnings)
        )
    gdf = gdf.set_geometry("geometry")
    if crs is not None:
        try:
            gdf = gdf.to_crs(crs)
        except Exception as exc:
            raise InputError(path, f"cannot reproject AOI to {crs} ({exc})") from exc
        if not np.isfinite(gdf.total_bounds).all():
            raise InputError(
                path, f"AOI cannot be represented in {crs} (non-finite coordinates after reprojection)"
            )
    if bounds is not None:
        frame = box(*bounds)
        if not gdf.geometry.intersects(frame).any():
            b = ", ".join(f"{v:.6g}" for v in gdf.total_bounds)
            r = ", ".join(f"{v:.6g}" for v in bounds)
            raise InputError(path, f"AOI lies outside the raster (AOI bounds {b}; raster bounds {r})")
    gdf = gdf.reset_index(drop=True)
    gdf.attrs["warnings"] = warnings
    return gdf


LABEL_COLUMNS = ("name", "id", "parcel_id", "parcel", "plot_id", "fid")


def parcel_label(row, zone: int) -> str:
    """How warnings and tables name a parcel: ``#<feature number, 1-based> (<name/id column>)``."""
    for k in LABEL_COLUMNS:
        try:
            v = row[k]
        except (KeyError, IndexError, TypeError):
            continue
        if v is not None and not (isinstance(v, float) and math.isnan(v)):
            return f"#{zone + 1} ({v})"
    return f"#{zone + 1}"


# --------------------------------------------------------------------------------------------------------------------
# pixel areas


def _ellipsoid(crs) -> tuple[float, float]:
    """(semi-major axis a, eccentricity e) of the CRS's ellipsoid."""
    from pyproj import CRS

    ell = CRS.from_user_input(crs).ellipsoid
    a = ell.semi_major_metre
    inv_f = ell.inverse_flattening
    f = 0.0 if not inv_f or math.isinf(inv_f) else 1.0 / inv_f
    e2 = f * (2.0 - f)
    return a, math.sqrt(e2)


def _band_area_m2_per_rad(lat_deg: np.ndarray, a: float, e: float) -> np.ndarray:
    """Area between the equator and latitude ``lat`` per radian of longitude on the ellipsoid (authalic formula)."""
    phi = np.radians(lat_deg)
    s = np.sin(phi)
    if e < 1e-12:
        return a * a * s
    b2 = a * a * (1.0 - e * e)
    return 0.5 * b2 * (s / (1.0 - e * e * s * s) + np.log((1.0 + e * s) / (1.0 - e * s)) / (2.0 * e))


def pixel_areas_m2(transform, crs, shape: tuple[int, int], window=None) -> np.ndarray:
    """True area (m²) of every pixel of a raster, or of ``window`` of it, as a float64 array of the window's shape.

    ``transform``: the raster's affine transform (not the window's). ``shape``: the raster's ``(height, width)``
    (used when ``window`` is None). Projected CRSs: the nominal ``|a·e − b·d|`` times the true ellipsoidal area of one
    CRS unit² at the pixel (from the inverse projection's Jacobian: 1 m² for equal-area projections, 1/0.9992 m² on a
    UTM central meridian, ≈cos²(lat) m² for Web Mercator). Geographic CRSs: the exact ellipsoidal area of each pixel row's lat/lon
    cell (north-up rasters only).
    """
    from pyproj import CRS

    if crs is None:
        raise ConfigError("pixel areas need a CRS")
    crs = CRS.from_user_input(crs)
    if window is not None:
        row_off = int(window.row_off)
        h, w = int(window.height), int(window.width)
    else:
        row_off = 0
        h, w = int(shape[0]), int(shape[1])
    if crs.is_geographic:
        if abs(transform.b) > 1e-15 or abs(transform.d) > 1e-15:
            raise ConfigError(
                "pixel areas of rotated geographic rasters are not supported; warp to north-up first"
            )
        a_ax, e = _ellipsoid(crs)
        unit = 1.0
        axis = crs.axis_info[0] if crs.axis_info else None
        if axis is not None and axis.unit_conversion_factor:
            unit = math.degrees(axis.unit_conversion_factor)  # degrees per CRS unit (1 for degrees)
        rows = np.arange(row_off, row_off + h + 1, dtype=np.float64)
        lat_edges = np.clip((transform.f + rows * transform.e) * unit, -90.0, 90.0)
        band = _band_area_m2_per_rad(lat_edges, a_ax, e)
        dlon = math.radians(abs(transform.a) * unit)
        row_area = np.abs(np.diff(band)) * dlon
        return np.broadcast_to(row_area[:, None], (h, w)).astype(np.float64)
    nominal = abs(transform.a * transform.e - transform.b * transform.d)  # CRS units²
    col_off = int(window.col_off) if window is not None else 0
    return nominal * _true_m2_per_unit2(transform, crs, row_off, col_off, h, w)


@functools.lru_cache(maxsize=16)
def _to_geographic(wkt: str):
    from pyproj import CRS, Transformer

    crs = CRS.from_wkt(wkt)
    geo = crs.geodetic_crs
    return Transformer.from_crs(crs, geo, always_xy=True), _ellipsoid(geo)


def _true_m2_per_unit2(transform, crs, row_off: int, col_off: int, h: int, w: int) -> np.ndarray:
    """True ellipsoidal area (m²) of one CRS unit² at every pixel centre of a window, for a projected CRS.

    From the Jacobian of the inverse projection (central differences of ±½ pixel) times the ellipsoid's area element
    ``M·N·cos φ``, on the CRS's own geodetic datum: exact to O(pixel²) for any projection (1/k² on UTM, 1 for
    equal-area projections, ≈cos²φ for Web Mercator). Sampled every 64 pixels and interpolated bilinearly.
    """
    to_geo, (a, e) = _to_geographic(crs.to_wkt())
    step = 64
    rows = np.unique(np.r_[np.arange(0.5, h, step), h - 0.5])
    cols = np.unique(np.r_[np.arange(0.5, w, step), w - 0.5])
    cc, rr = np.meshgrid(cols + col_off, rows + row_off)
    xs = transform.c + cc * transform.a + rr * transform.b
    ys = transform.f + cc * transform.d + rr * transform.e
    d = 0.5 * max(abs(transform.a), abs(transform.e), 1e-9)
    lon_e, lat_e = to_geo.transform(xs + d, ys)
    lon_w, lat_w = to_geo.transform(xs - d, ys)
    lon_n, lat_n = to_geo.transform(xs, ys + d)
    lon_s, lat_s = to_geo.transform(xs, ys - d)
    rad = np.pi / 180.0
    dlon_dx = (np.asarray(lon_e) - lon_w) * rad / (2 * d)
    dlat_dx = (np.asarray(lat_e) - lat_w) * rad / (2 * d)
    dlon_dy = (np.asarray(lon_n) - lon_s) * rad / (2 * d)
    dlat_dy = (np.asarray(lat_n) - lat_s) * rad / (2 * d)
    det = np.abs(dlon_dx * dlat_dy - dlon_dy * dlat_dx)
    phi = (np.asarray(lat_e) + lat_w + lat_n + lat_s) * rad / 4.0
    s2 = np.sin(phi) ** 2
    m_rad = a * (1 - e * e) / (1 - e * e * s2) ** 1.5
    n_rad = a / np.sqrt(1 - e * e * s2)
    g = det * m_rad * n_rad * np.cos(phi)
    bad = ~np.isfinite(g) | (g <= 0)
    if bad.any():  # outside the projection's domain: fall back to the CRS's nominal unit
        unit = crs.axis_info[0].unit_conversion_factor if crs.axis_info else 1.0
        g = np.where(bad, unit * unit, g)
    if g.size == 1:
        return np.full((h, w), float(g.ravel()[0]))
    # bilinear interpolation to all pixel centres
    fr = np.interp(np.arange(h) + 0.5, rows, np.arange(rows.size, dtype=np.float64))
    fc = np.interp(np.arange(w) + 0.5, cols, np.arange(cols.size, dtype=np.float64))
    r0 = np.minimum(np.floor(fr).astype(int), rows.size - 1)
    r1 = np.minimum(r0 + 1, rows.size - 1)
    c0 = np.minimum(np.floor(fc).astype(int), cols.size - 1)
    c1 = np.minimum(c0 + 1, cols.size - 1)
    t = (fr - r0)[:, None]
    u = fc - c0
    by_row = (1 - t) * g[r0] + t * g[r1]  # h × n_cols
    return (1 - u) * by_row[:, c0] + u * by_row[:, c1]


def geometry_area_m2(geom, crs) -> float:
    """True (geodesic, ellipsoidal) area of a (multi)polygon in m², whatever the CRS it is expressed in.

    Geometries in projected CRSs are densified (edges ≤ 1/64 of their extent) and transformed to the CRS's geographic
    CRS first, so projection distortion (UTM, Web Mercator, ...) does not bias the area.
    """
    import shapely
    from pyproj import CRS, Geod, Transformer
    from shapely.ops import transform as shp_transform

    crs = CRS.from_user_input(crs)
    geo = crs if crs.is_geographic else crs.geodetic_crs
    if not crs.is_geographic:
        minx, miny, maxx, maxy = geom.bounds
        seg = max(maxx - minx, maxy - miny) / 64.0
        if seg > 0:
            geom = shapely.segmentize(geom, seg)
        tr = Transformer.from_crs(crs, geo, always_xy=True)
        geom = shp_transform(tr.transform, geom)
    a, e = _ellipsoid(geo)
    geod = Geod(a=a, es=e * e)
    # pyproj sums signed ring areas: exteriors counter-clockwise, holes clockwise, or holes would add area
    return abs(geod.geometry_area_perimeter(shapely.orient_polygons(geom))[0])


def geometry_areas_m2(geoms: Sequence, crs) -> np.ndarray:
    """Geodesic areas (m²) of many (multi)polygons at once, as :func:`geometry_area_m2` computes them one by one.

    Vectorised for projected CRSs (one segmentize and one coordinate transform for all geometries), so 10,000 parcels
    take well under a second.
    """
    import shapely
    from pyproj import CRS, Geod, Transformer

    crs = CRS.from_user_input(crs)
    geo = crs if crs.is_geographic else crs.geodetic_crs
    arr = np.asarray(list(geoms), dtype=object)
    if arr.size == 0:
        return np.zeros(0)
    if not crs.is_geographic:
        b = shapely.bounds(arr)
        seg = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 64.0
        seg = np.where(seg > 0, seg, 1.0)
        arr = shapely.segmentize(arr, seg)
        tr = Transformer.from_crs(crs, geo, always_xy=True)

        def _tr(xy):
            x, y = tr.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        arr = shapely.transform(arr, _tr)
    a, e = _ellipsoid(geo)
    geod = Geod(a=a, es=e * e)
    arr = shapely.orient_polygons(arr)  # exteriors counter-clockwise, holes clockwise (signed ring areas)
    return np.array([abs(geod.geometry_area_perimeter(g)[0]) for g in arr], dtype=np.float64)


# --------------------------------------------------------------------------------------------------------------------
# masks and tiles


def aoi_mask(
    geometries, transform, shape: tuple[int, int] | None = None, window=None, *, all_touched: bool = False
):
    """Boolean mask (True inside any of ``geometries``) on the raster grid, or on ``window`` of it.

    Pixel-centre rule by default (a pixel belongs to the polygon when its centre does), ``all_touched`` otherwise.
    """
    from rasterio.features import geometry_mask
    from rasterio.windows import transform as window_transform

    if window is not None:
        out_shape = (int(window.height), int(window.width))
        tr = window_transform(window, transform)
    else:
        if shape is None:
            raise ConfigError("aoi_mask needs a shape or a window")
        out_shape = (int(shape[0]), int(shape[1]))
        tr = transform
    geoms = [g for g in geometries if g is not None and not g.is_empty]
    if not geoms:
        return np.zeros(out_shape, dtype=bool)
    return geometry_mask(geoms, out_shape=out_shape, transform=tr, invert=True, all_touched=all_touched)


def _aoi_window(ds, bounds):
    from rasterio.windows import Window, from_bounds

    win = from_bounds(*bounds, transform=ds.transform)
    # floor the start and ceil the end separately (rounding offsets then lengths can cut the last column), pad 1 px
    col0 = max(0, math.floor(win.col_off) - 1)
    row0 = max(0, math.floor(win.row_off) - 1)
    col1 = min(ds.width, math.ceil(win.col_off + win.width) + 1)
    row1 = min(ds.height, math.ceil(win.row_off + win.height) + 1)
    if col1 <= col0 or row1 <= row0:
        return None
    return Window(col0, row0, col1 - col0, row1 - row0)


def iter_zone_tiles(
    ds, geometries: Sequence | None, *, tile: int = 1024, all_touched: bool = False
) -> Iterator:
    """Yield ``(window, masks)`` over the raster tiles covering ``geometries``.

    ``masks`` is a list with one boolean array per geometry (None where the geometry misses the tile); with
    ``geometries=None`` the whole raster is one zone (mask all True). Tiles hold at most ``tile``×``tile`` pixels.
    """
    from rasterio.windows import Window
    from rasterio.windows import bounds as window_bounds
    from shapely.geometry import box

    if geometries is None:
        full = Window(0, 0, ds.width, ds.height)
        geoms = None
    else:
        geoms = list(geometries)
        from shapely import union_all

        full = _aoi_window(ds, union_all(geoms).bounds)
        if full is None:
            return
    r0, c0 = int(full.row_off), int(full.col_off)
    for r in range(r0, r0 + int(full.height), tile):
        for c in range(c0, c0 + int(full.width), tile):
            win = Window(c, r, min(tile, c0 + int(full.width) - c), min(tile, r0 + int(full.height) - r))
            if geoms is None:
                yield win, [np.ones((int(win.height), int(win.width)), dtype=bool)]
                continue
            frame = box(*window_bounds(win, ds.transform))
            masks = []
            for g in geoms:
                if g.intersects(frame):
                    m = aoi_mask([g], ds.transform, window=win, all_touched=all_touched)
                    masks.append(m if m.any() else None)
                else:
                    masks.append(None)
            if any(m is not None for m in masks):
                yield win, masks


class _Reader:
    """Reads windows of a raster, reopening it at every new row of tiles.

    Closing the dataset drops its blocks from GDAL's block cache, so memory stays at a few tiles instead of growing
    up to ``GDAL_CACHEMAX`` (5 % of RAM by default) on large rasters; every block is read once anyway.
    """

    def __init__(self, path: Path):
        import rasterio

        self._open = rasterio.open
        self.path = path
        self.ds = rasterio.open(path)
        self.row: int | None = None

    def at(self, win):
        row = int(win.row_off)
        if self.row is not None and row != self.row:
            self.ds.close()
            self.ds = self._open(self.path)
        self.row = row
        return self.ds

    def close(self) -> None:
        self.ds.close()


def _count_tiles(ds, geoms, tile: int) -> int:
    """Number of tiles of the AOI's bounding window (an upper bound of what :func:`iter_zone_tiles` yields)."""
    if geoms is None:
        h, w = ds.height, ds.width
    else:
        from shapely import union_all

        win = _aoi_window(ds, union_all(geoms).bounds)
        if win is None:
            return 0
        h, w = int(win.height), int(win.width)
    return math.ceil(h / tile) * math.ceil(w / tile)


def _valid(ds, arr: np.ndarray, band_index: int, win) -> np.ndarray:
    """Valid-data mask of one band's window (nodata value, NaN/inf and the dataset's mask all honoured)."""
    valid = np.isfinite(arr) if np.issubdtype(arr.dtype, np.floating) else np.ones(arr.shape, dtype=bool)
    nod = ds.nodatavals[band_index - 1] if ds.nodatavals else None
    if nod is not None and not (isinstance(nod, float) and math.isnan(nod)):
        valid &= arr != nod
    elif nod is None:
        from rasterio.enums import MaskFlags

        flags = ds.mask_flag_enums[band_index - 1]
        if MaskFlags.all_valid not in flags and MaskFlags.nodata not in flags:
            valid &= ds.read_masks(band_index, window=win) > 0
    return valid


# --------------------------------------------------------------------------------------------------------------------
# cell weights: the engine every zonal computation uses


def check_method(method: str, all_touched: bool = False) -> str:
    """Validate a zonal ``method`` (``"coverage"`` or ``"centre"``; ``"center"`` accepted) against ``all_touched``."""
    m = str(method).lower()
    if m == "center":
        m = "centre"
    if m not in METHODS:
        raise ConfigError(f"zonal method must be one of {', '.join(METHODS)}, got {method!r}")
    if all_touched and m == "coverage":
        raise ConfigError(
            "all_touched applies to method='centre' only (coverage weights already count every touched pixel "
            "by its covered fraction)"
        )
    return m


@dataclass
class TileCells:
    """The cells of one raster tile that belong to the zones, with their weights.

    ``window``: the tile (rasterio ``Window`` of the raster). ``zones``: ``(zone index, flat cell indices into the
    tile's row-major pixels or None for all of them, weights in [0, 1] or None for all 1)`` for every zone touching
    the tile. ``union``: the same for the union of the zones (overlaps counted once), ``None`` with a single zone.
    """

    window: Any
    zones: list[tuple[int, np.ndarray | None, np.ndarray | None]]
    union: tuple[np.ndarray | None, np.ndarray | None] | None


def _exactextract():
    try:
        from exactextract import exact_extract
        from exactextract.raster import NumPyRasterSource
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ConfigError(
            "coverage-weighted zonal statistics need exactextract: pip install 'exactextract>=0.3,<0.4' "
            "(or use method='centre')"
        ) from exc
    return exact_extract, NumPyRasterSource


def _coverage_cells(geoms: Sequence, win, transform) -> list[tuple[np.ndarray, np.ndarray]]:
    """Exact coverage fractions of ``geoms`` on the cells of tile ``win`` (exactextract, one call per tile).

    The tile is handed to exactextract as a zero-valued :class:`NumPyRasterSource` with the tile's extent, so
    exactextract only computes geometry (coverage fraction and ``cell_id`` = row·width + col of each touched cell);
    values, nodata and true pixel areas are handled here. Geometries reaching beyond the tile are clipped to it first
    (coverage outside the tile belongs to the neighbouring tile).
    """
    import shapely
    from rasterio.windows import bounds as window_bounds
    from shapely.geometry import box

    exact_extract, NumPyRasterSource = _exactextract()
    h, w = int(win.height), int(win.width)
    left, bottom, right, top = window_bounds(win, transform)
    pad = 2.0 * max(abs(transform.a), abs(transform.e))
    frame = box(left - pad, bottom - pad, right + pad, top + pad)
    arr = np.asarray(list(geoms), dtype=object)
    inside = shapely.contains_properly(frame, arr)
    if not inside.all():
        arr = arr.copy()
        arr[~inside] = shapely.intersection(arr[~inside], frame)
    src = NumPyRasterSource(np.zeros((h, w), dtype=np.uint8), left, bottom, right, top)
    feats = []
    keep = []
    for k, g in enumerate(arr):
        if g is None or g.is_empty:
            continue
        keep.append(k)
        feats.append({"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(g)})
    out: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros(0))] * len(arr)
    if not feats:
        return out
    res = exact_extract(src, feats, ["coverage", "cell_id"])
    for k, f in zip(keep, res):
        p = f["properties"]
        cov = np.asarray(p["coverage"], dtype=np.float64)
        cid = np.asarray(p["cell_id"], dtype=np.int64)
        ok = cov > 0
        out[k] = (cid[ok], cov[ok])
    return out


def _centre_cells(geoms: Sequence, win, transform, all_touched: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pixel-centre (or all-touched) cells of ``geoms`` in tile ``win``, weight 1, each on its own sub-window."""
    from rasterio.features import geometry_mask
    from rasterio.windows import Window, from_bounds
    from rasterio.windows import transform as window_transform

    W = int(win.width)
    r0, c0 = int(win.row_off), int(win.col_off)
    out = []
    for g in geoms:
        sub = from_bounds(*g.bounds, transform=transform).round_offsets(op="floor").round_lengths(op="ceil")
        sc0 = max(c0, int(sub.col_off) - 1)
        sr0 = max(r0, int(sub.row_off) - 1)
        sc1 = min(c0 + W, int(sub.col_off + sub.width) + 1)
        sr1 = min(r0 + int(win.height), int(sub.row_off + sub.height) + 1)
        if sc1 <= sc0 or sr1 <= sr0:
            out.append((np.zeros(0, np.int64), np.zeros(0)))
            continue
        sw = Window(sc0, sr0, sc1 - sc0, sr1 - sr0)
        m = geometry_mask(
            [g],
            out_shape=(sr1 - sr0, sc1 - sc0),
            transform=window_transform(sw, transform),
            invert=True,
            all_touched=all_touched,
        )
        rr, cc = np.nonzero(m)
        idx = (rr + (sr0 - r0)).astype(np.int64) * W + (cc + (sc0 - c0))
        out.append((idx, np.ones(idx.size)))
    return out


def _check_grid(transform, method: str) -> None:
    if method == "coverage" and (
        abs(transform.b) > 1e-15 or abs(transform.d) > 1e-15 or transform.a <= 0 or transform.e >= 0
    ):
        raise ConfigError(
            "coverage weights need a north-up raster (no rotation, rows from north to south); "
            "warp it first or use method='centre'"
        )


def iter_cell_weights(
    transform,
    shape: tuple[int, int],
    geometries: Sequence | None,
    *,
    method: str = "coverage",
    all_touched: bool = False,
    tile: int = 1024,
    progress: bool | str = False,
) -> Iterator[TileCells]:
    """Yield :class:`TileCells` over the tiles of a raster grid that the ``geometries`` touch.

    ``transform``/``shape``: the raster's affine transform and ``(height, width)``; ``geometries`` in the raster's CRS,
    ``None`` for the whole raster as one zone. Tiles hold at most ``tile`` × ``tile`` pixels and are visited row by
    row; polygons are looked up per tile with a shapely STR-tree, so the cost grows with the parcels actually in each
    tile. ``progress``: a rich progress bar (``True`` or its label) over the tiles.
    """
    import shapely
    from rasterio.windows import Window
    from rasterio.windows import bounds as window_bounds
    from shapely.geometry import box

    method = check_method(method, all_touched)
    _check_grid(transform, method)
    height, width = int(shape[0]), int(shape[1])
    if geometries is None:
        full = Window(0, 0, width, height)
        geoms = None
        tree = None
    else:
        geoms = np.asarray(list(geometries), dtype=object)
        if geoms.size == 0:
            return
        b = shapely.bounds(geoms)
        total = (np.nanmin(b[:, 0]), np.nanmin(b[:, 1]), np.nanmax(b[:, 2]), np.nanmax(b[:, 3]))

        class _DS:  # the minimum _aoi_window needs
            pass

        ds = _DS()
        ds.transform, ds.width, ds.height = transform, width, height
        full = _aoi_window(ds, total)
        if full is None:
            return
        tree = shapely.STRtree(geoms)
    r0, c0 = int(full.row_off), int(full.col_off)
    fh, fw = int(full.height), int(full.width)
    n_tiles = math.ceil(fh / tile) * math.ceil(fw / tile)
    bar = None
    if progress and n_tiles > 1:
        from terracarbon.utils import progress as make_progress

        bar = make_progress(transient=True)
        bar.start()
        label = progress if isinstance(progress, str) else "zonal statistics"
        n_geoms = "whole raster" if geoms is None else f"{len(geoms):,} polygon(s)"
        task = bar.add_task(f"{label} ({method}, {n_geoms})", total=n_tiles)
    try:
        for r in range(r0, r0 + fh, tile):
            for c in range(c0, c0 + fw, tile):
                win = Window(c, r, min(tile, c0 + fw - c), min(tile, r0 + fh - r))
                if bar is not None:
                    bar.advance(task)
                if geoms is None:
                    yield TileCells(win, [(0, None, None)], None)
                    continue
                frame = box(*window_bounds(win, transform))
                hits = np.sort(tree.query(frame, predicate="intersects"))
                if hits.size == 0:
                    continue
                sel = geoms[hits]
                if method == "coverage":
                    cells = _coverage_cells(sel, win, transform)
                else:
                    cells = _centre_cells(sel, win, transform, all_touched)
                zones = [(int(z), idx, w) for z, (idx, w) in zip(hits, cells) if idx.size]
                if not zones:
                    continue
                union = None
                if len(geoms) > 1:
                    if method == "coverage":
                        ug = shapely.union_all(sel) if len(sel) > 1 else sel[0]
                        union = _coverage_cells([ug], win, transform)[0]
                    else:
                        idx = np.unique(np.concatenate([z[1] for z in zones]))
                        union = (idx, np.ones(idx.size))
                yield TileCells(win, zones, union)
    finally:
        if bar is not None:
            bar.stop()


# --------------------------------------------------------------------------------------------------------------------
# accumulation


@dataclass
class ZoneAccumulator:
    """Running weighted sums for one zone. Areas in m², values in the raster's units; weights w ∈ [0, 1].

    ``n_pixels`` counts cells with a weight > 0 (touched cells with coverage weights), ``pixel_weight`` their summed
    weights (the polygon's area in pixels). Channels are derived per-pixel quantities (e.g. total biomass, carbon, a
    difference of two maps) summed as Σ w·A·x, with their own standard deviations.
    """

    n_pixels: int = 0
    nodata_pixels: int = 0
    pixel_weight: float = 0.0
    area_m2: float = 0.0
    valid_area_m2: float = 0.0
    sum_va: float = 0.0  # Σ v·w·A
    sum_v2a: float = 0.0  # Σ v²·w·A
    min: float = math.inf
    max: float = -math.inf
    has_std: bool = False
    sum_sa: float = 0.0  # Σ σ·w·A  (fully correlated errors)
    sum_s2a2: float = 0.0  # Σ (σ·w·A)²  (independent errors)
    channels: dict[str, list[float]] = field(default_factory=dict)  # name -> [Σ x·wA, Σ σ·wA, Σ (σ·wA)², has σ]

    def add(
        self, v: np.ndarray, a: np.ndarray, inside: np.ndarray, valid: np.ndarray, s: np.ndarray | None
    ) -> None:
        """Add the pixels of one tile under a boolean zone mask ``inside`` (weight 1)."""
        idx = np.flatnonzero(inside.ravel())
        self.add_cells(idx, None, v.ravel(), a.ravel(), valid.ravel(), None if s is None else s.ravel())

    def add_cells(
        self,
        idx: np.ndarray | None,
        w: np.ndarray | None,
        v: np.ndarray,
        a: np.ndarray,
        valid: np.ndarray,
        s: np.ndarray | None = None,
        channels: Mapping[str, tuple[np.ndarray, np.ndarray | None]] | None = None,
    ) -> None:
        """Add cells ``idx`` (None: all) with weights ``w`` (None: 1) of one tile's flattened arrays.

        ``v`` values, ``a`` true pixel areas (m²), ``valid`` validity, ``s`` per-pixel standard deviations,
        ``channels`` ``{name: (values, std or None)}``; all flattened over the tile.
        """
        if idx is not None:
            v, a, valid = v[idx], a[idx], valid[idx]
            s = None if s is None else s[idx]
        n = int(v.size)
        if not n:
            return
        w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
        wa = w * a
        self.n_pixels += n
        self.pixel_weight += float(w.sum())
        self.area_m2 += float(wa.sum())
        ok = valid
        n_ok = int(ok.sum())
        self.nodata_pixels += n - n_ok
        if not n_ok:
            for name in channels or {}:
                self.channels.setdefault(name, [0.0, 0.0, 0.0, 0.0])
            return
        vv = v[ok].astype(np.float64)
        aa = wa[ok]
        self.valid_area_m2 += float(aa.sum())
        self.sum_va += float((vv * aa).sum())
        self.sum_v2a += float((vv * vv * aa).sum())
        self.min = min(self.min, float(vv.min()))
        self.max = max(self.max, float(vv.max()))
        if s is not None:
            self.has_std = True
            ss = _clean_std(s[ok])
            self.sum_sa += float((ss * aa).sum())
            self.sum_s2a2 += float(((ss * aa) ** 2).sum())
        for name, (x, sx) in (channels or {}).items():
            acc = self.channels.setdefault(name, [0.0, 0.0, 0.0, 0.0])
            xx = (x if idx is None else x[idx])[ok].astype(np.float64)
            acc[0] += float((xx * aa).sum())
            if sx is not None:
                sxx = _clean_std((sx if idx is None else sx[idx])[ok])
                acc[1] += float((sxx * aa).sum())
                acc[2] += float(((sxx * aa) ** 2).sum())
                acc[3] = 1.0

    @property
    def mean(self) -> float:
        """Area-weighted mean of the valid pixels (NaN when none)."""
        return self.sum_va / self.valid_area_m2 if self.valid_area_m2 > 0 else float("nan")

    @property
    def std(self) -> float:
        """Area-weighted standard deviation of the valid pixel values."""
        if self.valid_area_m2 <= 0:
            return float("nan")
        var = self.sum_v2a / self.valid_area_m2 - self.mean**2
        return math.sqrt(max(var, 0.0))

    def to_dict(self, value_scale_to_total: float = 1.0) -> dict[str, Any]:
        """Plain statistics: pixels, areas (ha), mean/min/max/std, ``total`` = Σ v·w·A·scale, and the channels."""
        d: dict[str, Any] = {
            "n_pixels": self.n_pixels,
            "valid_pixels": self.n_pixels - self.nodata_pixels,
            "nodata_pixels": self.nodata_pixels,
            "pixel_weight": self.pixel_weight,
            "area_ha": self.area_m2 / 1e4,
            "valid_area_ha": self.valid_area_m2 / 1e4,
            "mean": self.mean,
            "std": self.std,
            "min": self.min if self.min != math.inf else float("nan"),
            "max": self.max if self.max != -math.inf else float("nan"),
            "total": self.sum_va * value_scale_to_total,
        }
        if self.has_std:
            d["total_std_correlated"] = self.sum_sa * value_scale_to_total
            d["total_std_independent"] = math.sqrt(self.sum_s2a2) * value_scale_to_total
        if self.channels:
            ch = {}
            for name, (tot, sc, s2, has) in self.channels.items():
                c = {
                    "total": tot * value_scale_to_total,
                    "mean": tot / self.valid_area_m2 if self.valid_area_m2 > 0 else float("nan"),
                }
                if has:
                    c["std_correlated"] = sc * value_scale_to_total
                    c["std_independent"] = math.sqrt(s2) * value_scale_to_total
                ch[name] = c
            d["channels"] = ch
        return d


def _clean_std(s: np.ndarray) -> np.ndarray:
    ss = np.nan_to_num(np.asarray(s, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    return np.maximum(ss, 0.0)


ValueFn = Any  # callable(window, values, valid, std) -> (valid, {name: (values, std|None)})


def _accumulate(
    raster_path: PathLike,
    aoi_path: PathLike | None,
    *,
    band: int = 1,
    std_band: int | None = None,
    std_path: PathLike | None = None,
    all_touched: bool = False,
    tile: int = 1024,
    layer: str | int | None = None,
    progress: bool = False,
    method: str = "coverage",
    value_fn: ValueFn | None = None,
    gdf=None,
):
    """Shared streaming pass: per-zone and union accumulators plus the AOI frame and raster info."""
    from terracarbon.raster.io import open_raster

    method = check_method(method, all_touched)
    raster_path = Path(raster_path)
    ds = open_raster(raster_path, require_crs=True)
    std_ds = None
    try:
        if not 1 <= band <= ds.count:
            raise InputError(raster_path, f"has {ds.count} band(s); band {band} does not exist")
        if std_band is not None and not 1 <= std_band <= ds.count:
            raise InputError(raster_path, f"has {ds.count} band(s); std band {std_band} does not exist")
        if std_path is not None:
            std_ds = open_raster(std_path, require_crs=False)
            same_shape = (std_ds.width, std_ds.height) == (ds.width, ds.height)
            if not same_shape or not std_ds.transform.almost_equals(ds.transform):
                raise InputError(std_path, f"std raster grid differs from {raster_path.name}'s")
        if gdf is None and aoi_path is not None:
            gdf = read_aoi(aoi_path, ds.crs, bounds=tuple(ds.bounds), layer=layer)
        geoms = None if gdf is None else list(gdf.geometry)
        n_zones = 1 if geoms is None else len(geoms)
        zones = [ZoneAccumulator() for _ in range(n_zones)]
        union = ZoneAccumulator()
        reader = _Reader(raster_path)
        std_reader = _Reader(Path(std_path)) if std_path is not None else None
        label = f"zonal statistics of {raster_path.name}" if progress else False
        try:
            for tc in iter_cell_weights(
                ds.transform,
                (ds.height, ds.width),
                geoms,
                method=method,
                all_touched=all_touched,
                tile=tile,
                progress=label,
            ):
                win = tc.window
                d = reader.at(win)
                v = d.read(band, window=win)
                valid = _valid(d, v, band, win)
                s = None
                if std_reader is not None:
                    s = std_reader.at(win).read(1, window=win)
                elif std_band is not None:
                    s = d.read(std_band, window=win)
                channels = None
                if value_fn is not None:
                    valid, channels = value_fn(win, v, valid, s)
                    channels = {k: (x.ravel(), None if sx is None else sx.ravel()) for k, (x, sx) in channels.items()}
                a = pixel_areas_m2(ds.transform, ds.crs, (ds.height, ds.width), window=win).ravel()
                vf, validf = v.ravel(), valid.ravel()
                sf = None if s is None else s.ravel()
                for z, idx, w in tc.zones:
                    zones[z].add_cells(idx, w, vf, a, validf, sf, channels)
                if tc.union is not None:
                    union.add_cells(tc.union[0], tc.union[1], vf, a, validf, sf, channels)
        finally:
            reader.close()
            if std_reader is not None:
                std_reader.close()
        if n_zones == 1:
            union = zones[0]
        info = {
            "raster": str(raster_path),
            "crs": ds.crs.to_string(),
            "band": band,
            "band_description": (ds.descriptions[band - 1] if ds.descriptions else None),
            "units": raster_units(ds, band),
            "method": method,
        }
        if union.n_pixels == 0:
            what = "pixel centre" if method == "centre" else "pixel"
            raise InputError(
                aoi_path if aoi_path is not None else raster_path,
                f"AOI covers no {what} of {raster_path.name} (smaller than a pixel or outside the raster?)",
            )
        return zones, union, gdf, info
    finally:
        ds.close()
        if std_ds is not None:
            std_ds.close()


def raster_units(ds, band: int = 1) -> str | None:
    """Units of ``band``: the band's GDAL unit type, else the dataset's ``units`` tag, else None."""
    if ds.units and ds.units[band - 1]:
        return ds.units[band - 1]
    return ds.tags().get("units") or ds.tags(band).get("units")


def _props(gdf, i: int) -> dict[str, Any]:
    if gdf is None:
        return {}
    row = gdf.iloc[i]
    out = {}
    for k, v in row.items():
        if k in ("geometry",):
            continue
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
        else:
            out[k] = str(v)
    return out


COVERAGE_WARN = 0.9999  # a parcel whose covered area falls below this fraction of its own area gets a warning


def zonal_stats(
    raster_path: PathLike,
    aoi_path: PathLike | None = None,
    *,
    band: int = 1,
    std_band: int | None = None,
    std_path: PathLike | None = None,
    all_touched: bool = False,
    tile: int = 1024,
    layer: str | int | None = None,
    progress: bool = False,
    method: str = "coverage",
    value_fn: ValueFn | None = None,
    gdf=None,
) -> dict[str, Any]:
    """Weighted statistics of ``band`` over each AOI polygon and over their union.

    ``method``: ``"coverage"`` (default; each pixel weighted by the fraction of its area inside the polygon, exact,
    via exactextract) or ``"centre"`` (pixel-centre rule, or every touched pixel with ``all_touched``).

    Returns ``{"raster", "crs", "band", "units", "method", "total": {...}, "zones": [{...}, ...], "warnings"}`` where
    each statistics dict holds ``n_pixels`` (cells with weight > 0), ``valid_pixels, nodata_pixels, pixel_weight``
    (Σ weights), ``area_ha`` (Σ w·A), ``valid_area_ha, mean, std, min, max`` and ``total`` = Σ value·w·A in
    value·m² (multiply by 1e-4 for per-hectare densities), plus, with a std band/raster, ``total_std_correlated``
    (Σ σ·w·A, errors fully correlated: an upper bound) and ``total_std_independent`` (√Σ(σ·w·A)², independent
    errors: a lower bound). Zones also carry the AOI feature's attributes, ``aoi_area_ha`` (the polygon's own
    geodesic area), ``coverage`` (area_ha / aoi_area_ha) and their ``warnings`` (outside the raster, partly covered,
    nodata excluded); all warnings, with those of :func:`read_aoi`, are gathered in ``warnings``.
    ``aoi_path=None``: the whole raster. ``gdf``: an AOI frame already in the raster's CRS (skips reading the file).

    ``value_fn(window, values, valid, std) -> (valid, {name: (values, std or None)})`` derives per-pixel channels on
    each tile (e.g. total biomass, a second map's difference); each zone then holds ``channels[name]`` with
    ``total`` (Σ x·w·A), ``mean`` and, with a std, ``std_correlated``/``std_independent``.
    """
    zones, union, gdf, info = _accumulate(
        raster_path,
        aoi_path,
        band=band,
        std_band=std_band,
        std_path=std_path,
        all_touched=all_touched,
        tile=tile,
        layer=layer,
        progress=progress,
        method=method,
        value_fn=value_fn,
        gdf=gdf,
    )
    out = dict(info)
    out["total"] = union.to_dict()
    warnings = list(gdf.attrs.get("warnings", [])) if gdf is not None else []
    zl = []
    areas = geometry_areas_m2(list(gdf.geometry), gdf.crs) / 1e4 if gdf is not None else None
    for i, z in enumerate(zones):
        d = {**_props(gdf, i), **z.to_dict()}
        if gdf is not None:
            label = parcel_label(gdf.iloc[i], int(gdf["zone"].iloc[i]) if "zone" in gdf else i)
            d["aoi_area_ha"] = float(areas[i])
            d["coverage"] = d["area_ha"] / d["aoi_area_ha"] if d["aoi_area_ha"] > 0 else None
            zw = []
            if z.n_pixels == 0:
                zw.append(f"parcel {label} lies outside the raster (or covers no pixel): no pixels, totals are 0")
            elif info["method"] == "coverage" and d["coverage"] is not None and d["coverage"] < COVERAGE_WARN:
                zw.append(
                    f"parcel {label}: the raster covers only {100 * d['coverage']:.2f} % of its area; "
                    "totals are for the covered part"
                )
            if z.nodata_pixels:
                zw.append(
                    f"parcel {label}: {z.nodata_pixels} nodata pixel(s) "
                    f"({(z.area_m2 - z.valid_area_m2) / 1e4:.4g} ha) excluded from the totals"
                )
            d["warnings"] = zw
            warnings.extend(zw)
        zl.append(d)
    out["zones"] = zl
    out["warnings"] = warnings
    return out


# --------------------------------------------------------------------------------------------------------------------
# class areas


class ClassAreas(dict):
    """``{class_name: {"class_id", "pixels", "area_ha", "percent"}}`` plus totals as attributes.

    ``total_area_ha`` (sum of the class areas: the classified AOI area), ``nodata_pixels`` and ``nodata_area_ha``
    (pixels inside the AOI without a class), ``aoi_area_ha`` (the AOI polygons' own area, None without AOI),
    ``method`` (``coverage`` or ``centre``). Percentages are of ``total_area_ha`` and sum to 100. ``pixels`` counts
    the class's pixels with a weight > 0 (touched pixels with coverage weights).
    """

    total_area_ha: float = 0.0
    nodata_pixels: int = 0
    nodata_area_ha: float = 0.0
    aoi_area_ha: float | None = None
    method: str = "coverage"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: classes plus totals."""
        return {
            "classes": {k: dict(v) for k, v in self.items()},
            "total_area_ha": self.total_area_ha,
            "nodata_pixels": self.nodata_pixels,
            "nodata_area_ha": self.nodata_area_ha,
            "aoi_area_ha": self.aoi_area_ha,
            "method": self.method,
        }


def _class_name_map(class_names, raster_path: Path) -> dict[int, str] | None:
    if class_names is None:
        try:
            from terracarbon.raster.io import read_class_names

            class_names = read_class_names(raster_path)
        except Exception:
            class_names = None
    if class_names is None:
        return None
    if isinstance(class_names, Mapping):
        return {int(k): str(v) for k, v in class_names.items()}
    return {i: str(n) for i, n in enumerate(class_names)}


def class_areas(
    raster_path: PathLike,
    aoi_path: PathLike | None = None,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    *,
    band: int = 1,
    all_touched: bool = False,
    tile: int = 1024,
    include_empty: bool = True,
    method: str = "coverage",
) -> ClassAreas:
    """Area (ha) and percent of each class of an integer class raster, inside ``aoi_path`` or over the whole raster.

    ``class_names``: a list indexed by class value or a ``{value: name}`` mapping; defaults to the raster's
    ``class_names`` tag (JSON list), else the class values as strings. Pixels equal to the nodata value (or masked) are
    counted as ``nodata_pixels`` and left out of the classes. With ``include_empty`` named classes without pixels
    appear with zero area. Areas are true pixel areas (geographic CRSs included) times the pixels' weights
    (``method="coverage"``: covered fraction, default; ``"centre"``: pixel-centre rule) and sum to ``total_area_ha``.
    """
    from terracarbon.raster.io import open_raster

    method = check_method(method, all_touched)
    raster_path = Path(raster_path)
    names = _class_name_map(class_names, raster_path)
    with open_raster(raster_path, require_crs=True) as ds:
        if not 1 <= band <= ds.count:
            raise InputError(raster_path, f"has {ds.count} band(s); band {band} does not exist")
        if aoi_path is not None:
            gdf = read_aoi(aoi_path, ds.crs, bounds=tuple(ds.bounds))
            geoms = [gdf.geometry.union_all()] if hasattr(gdf.geometry, "union_all") else [gdf.unary_union]
            aoi_area = geometry_area_m2(geoms[0], gdf.crs) / 1e4
        else:
            geoms, aoi_area = None, None
        pixels: dict[int, int] = {}
        areas: dict[int, float] = {}
        nod_px, nod_area = 0, 0.0
        reader = _Reader(raster_path)
        try:
            for tc in iter_cell_weights(
                ds.transform, (ds.height, ds.width), geoms, method=method, all_touched=all_touched, tile=tile
            ):
                win = tc.window
                _, idx, w = tc.zones[0]
                d = reader.at(win)
                v = d.read(band, window=win).ravel()
                valid = _valid(d, v.reshape(int(win.height), int(win.width)), band, win).ravel()
                a = pixel_areas_m2(ds.transform, ds.crs, (ds.height, ds.width), window=win).ravel()
                if idx is not None:
                    v, valid, a = v[idx], valid[idx], a[idx]
                wa = a if w is None else a * w
                nod_px += int((~valid).sum())
                nod_area += float(wa[~valid].sum())
                vals = v[valid]
                if np.issubdtype(vals.dtype, np.floating):
                    vals = np.rint(vals)
                vals = vals.astype(np.int64)
                aa = wa[valid]
                if vals.size:
                    u, inv = np.unique(vals, return_inverse=True)
                    cnt = np.bincount(inv)
                    ar = np.bincount(inv, weights=aa)
                    for k, c, s in zip(u.tolist(), cnt.tolist(), ar.tolist()):
                        pixels[k] = pixels.get(k, 0) + c
                        areas[k] = areas.get(k, 0.0) + s
        finally:
            reader.close()
    if aoi_path is not None and not pixels and not nod_px:
        what = "pixel centre" if method == "centre" else "pixel"
        raise InputError(aoi_path, f"AOI covers no {what} of {raster_path.name}")
    total = sum(areas.values())
    out = ClassAreas()
    keys = sorted(set(pixels) | (set(names) if (names and include_empty) else set()))
    for k in keys:
        name = names.get(k, str(k)) if names else str(k)
        if name in out:
            name = f"{name} ({k})"
        ar = areas.get(k, 0.0) / 1e4
        out[name] = {
            "class_id": int(k),
            "pixels": int(pixels.get(k, 0)),
            "area_ha": ar,
            "percent": 100.0 * areas.get(k, 0.0) / total if total > 0 else 0.0,
        }
    out.total_area_ha = total / 1e4
    out.nodata_pixels = nod_px
    out.nodata_area_ha = nod_area / 1e4
    out.aoi_area_ha = aoi_area
    out.method = method
    return out
