"""Zonal statistics over areas of interest, with true pixel areas, window by window (bounded memory).

* :func:`read_aoi` reads a GeoJSON / GeoPackage / any OGR vector file, keeps its polygons, repairs invalid ones and
  reprojects them to the raster's CRS, with clear errors for missing, unreadable, empty or CRS-less files and for AOIs
  lying outside the raster.
* :func:`pixel_areas_m2` gives the true area of every pixel: for projected CRSs ``|det(transform)|`` corrected by the
  projection's areal scale factor (exact for equal-area projections, ~0.1 % for UTM, large for Web Mercator), and for
  geographic CRSs (e.g. EPSG:4326) the exact ellipsoidal area of each latitude/longitude cell, once per pixel row.
* :func:`aoi_mask` rasterises polygons on a window (pixel-centre rule, or ``all_touched``).
* :func:`zonal_stats` computes per-polygon and whole-AOI (union, overlaps counted once) area-weighted statistics of a
  band, plus carried-through uncertainty when a standard-deviation band/raster is given.
* :func:`class_areas` gives hectares and percent per class of a class raster, inside an AOI or over the whole raster.

Everything streams over tiles of at most ``tile`` × ``tile`` pixels of the AOI's bounding window: memory does not grow
with the raster size.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import ConfigError, InputError

PathLike = str | os.PathLike

__all__ = [
    "ClassAreas",
    "ZoneAccumulator",
    "aoi_mask",
    "class_areas",
    "iter_zone_tiles",
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

    def polygonal(geom):
        if geom is None or geom.is_empty:
            return None
        if not geom.is_valid:
            geom = make_valid(geom)
        if isinstance(geom, (Polygon, MultiPolygon)):
            return geom
        parts = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
        polys = []
        for g in parts:
            polys.extend(g.geoms if isinstance(g, MultiPolygon) else [g])
        return MultiPolygon(polys) if polys else None

    gdf = gdf.copy()
    gdf["zone"] = np.arange(len(gdf))
    gdf["geometry"] = [polygonal(g) for g in gdf.geometry]
    gdf = gdf[gdf.geometry.notna()]
    if gdf.empty:
        raise InputError(path, "AOI file holds no polygons (only points/lines or empty geometries)")
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
    return gdf.reset_index(drop=True)


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
    return abs(geod.geometry_area_perimeter(geom)[0])


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
    win = win.round_offsets(op="floor").round_lengths(op="ceil")
    col0 = max(0, int(win.col_off) - 1)
    row0 = max(0, int(win.row_off) - 1)
    col1 = min(ds.width, int(win.col_off + win.width) + 1)
    row1 = min(ds.height, int(win.row_off + win.height) + 1)
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
# accumulation


@dataclass
class ZoneAccumulator:
    """Running area-weighted sums for one zone. Areas in m², values in the raster's units."""

    n_pixels: int = 0
    nodata_pixels: int = 0
    area_m2: float = 0.0
    valid_area_m2: float = 0.0
    sum_va: float = 0.0  # Σ v·A
    sum_v2a: float = 0.0  # Σ v²·A
    min: float = math.inf
    max: float = -math.inf
    has_std: bool = False
    sum_sa: float = 0.0  # Σ σ·A  (fully correlated errors)
    sum_s2a2: float = 0.0  # Σ (σ·A)²  (independent errors)

    def add(
        self, v: np.ndarray, a: np.ndarray, inside: np.ndarray, valid: np.ndarray, s: np.ndarray | None
    ) -> None:
        """Add the pixels of one tile: values ``v``, areas ``a``, zone mask ``inside``, validity ``valid``."""
        n_in = int(inside.sum())
        if not n_in:
            return
        ok = inside & valid
        self.n_pixels += n_in
        self.nodata_pixels += n_in - int(ok.sum())
        self.area_m2 += float(a[inside].sum())
        if ok.any():
            vv = v[ok].astype(np.float64)
            aa = a[ok]
            self.valid_area_m2 += float(aa.sum())
            self.sum_va += float((vv * aa).sum())
            self.sum_v2a += float((vv * vv * aa).sum())
            self.min = min(self.min, float(vv.min()))
            self.max = max(self.max, float(vv.max()))
            if s is not None:
                self.has_std = True
                ss = np.nan_to_num(s[ok].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
                ss = np.maximum(ss, 0.0)
                self.sum_sa += float((ss * aa).sum())
                self.sum_s2a2 += float(((ss * aa) ** 2).sum())

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
        """Plain statistics: pixels, areas (ha), mean/min/max/std and ``total`` = Σ v·A·scale."""
        d: dict[str, Any] = {
            "n_pixels": self.n_pixels,
            "valid_pixels": self.n_pixels - self.nodata_pixels,
            "nodata_pixels": self.nodata_pixels,
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
        return d


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
):
    """Shared streaming pass: per-zone and union accumulators plus the AOI frame and raster info."""
    from terracarbon.raster.io import open_raster

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
        if aoi_path is not None:
            gdf = read_aoi(aoi_path, ds.crs, bounds=tuple(ds.bounds), layer=layer)
            geoms = list(gdf.geometry)
        else:
            gdf = None
            geoms = None
        n_zones = 1 if geoms is None else len(geoms)
        zones = [ZoneAccumulator() for _ in range(n_zones)]
        union = ZoneAccumulator()
        n_tiles = _count_tiles(ds, geoms, tile)
        reader = _Reader(raster_path)
        std_reader = _Reader(Path(std_path)) if std_path is not None else None
        bar = None
        if progress and n_tiles > 4:
            from terracarbon.utils import progress as make_progress

            bar = make_progress(transient=True)
            bar.start()
            task = bar.add_task(f"zonal stats {raster_path.name}", total=n_tiles)
        try:
            for win, masks in iter_zone_tiles(ds, geoms, tile=tile, all_touched=all_touched):
                d = reader.at(win)
                v = d.read(band, window=win)
                valid = _valid(d, v, band, win)
                s = None
                if std_reader is not None:
                    s = std_reader.at(win).read(1, window=win)
                elif std_band is not None:
                    s = d.read(std_band, window=win)
                a = pixel_areas_m2(ds.transform, ds.crs, (ds.height, ds.width), window=win)
                any_in = np.zeros(v.shape, dtype=bool)
                for z, m in zip(zones, masks):
                    if m is not None:
                        z.add(v, a, m, valid, s)
                        any_in |= m
                if n_zones > 1:
                    union.add(v, a, any_in, valid, s)
                if bar is not None:
                    bar.advance(task)
        finally:
            reader.close()
            if std_reader is not None:
                std_reader.close()
            if bar is not None:
                bar.stop()
        if n_zones == 1:
            union = zones[0]
        info = {
            "raster": str(raster_path),
            "crs": ds.crs.to_string(),
            "band": band,
            "band_description": (ds.descriptions[band - 1] if ds.descriptions else None),
            "units": ds.units[band - 1] if ds.units and ds.units[band - 1] else ds.tags().get("units"),
        }
        if union.n_pixels == 0:
            raise InputError(
                aoi_path if aoi_path is not None else raster_path,
                f"AOI covers no pixel centre of {raster_path.name} (smaller than a pixel or outside the raster?)",
            )
        return zones, union, gdf, info
    finally:
        ds.close()
        if std_ds is not None:
            std_ds.close()


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
) -> dict[str, Any]:
    """Area-weighted statistics of ``band`` over each AOI polygon and over their union.

    Returns ``{"raster", "crs", "band", "total": {...}, "zones": [{...}, ...]}`` where each statistics dict holds
    ``n_pixels, valid_pixels, nodata_pixels, area_ha, valid_area_ha, mean, std, min, max`` and ``total`` = Σ value ×
    pixel area in m² (multiply by 1e-4 for per-hectare densities), plus, with a std band/raster,
    ``total_std_correlated`` (Σ σ·A, errors fully correlated: an upper bound) and ``total_std_independent``
    (√Σ(σ·A)², independent errors: a lower bound). Zones also carry the AOI feature's attributes and
    ``aoi_area_ha`` (the polygon's own area, geodesic for geographic CRSs). ``aoi_path=None``: the whole raster.
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
    )
    out = dict(info)
    out["total"] = union.to_dict()
    zl = []
    for i, z in enumerate(zones):
        d = {**_props(gdf, i), **z.to_dict()}
        if gdf is not None:
            d["aoi_area_ha"] = geometry_area_m2(gdf.geometry.iloc[i], gdf.crs) / 1e4
        zl.append(d)
    out["zones"] = zl
    return out


# --------------------------------------------------------------------------------------------------------------------
# class areas


class ClassAreas(dict):
    """``{class_name: {"class_id", "pixels", "area_ha", "percent"}}`` plus totals as attributes.

    ``total_area_ha`` (sum of the class areas: the classified AOI area), ``nodata_pixels`` and ``nodata_area_ha``
    (pixels inside the AOI without a class), ``aoi_area_ha`` (the AOI polygons' own area, None without AOI).
    Percentages are of ``total_area_ha`` and sum to 100.
    """

    total_area_ha: float = 0.0
    nodata_pixels: int = 0
    nodata_area_ha: float = 0.0
    aoi_area_ha: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: classes plus totals."""
        return {
            "classes": {k: dict(v) for k, v in self.items()},
            "total_area_ha": self.total_area_ha,
            "nodata_pixels": self.nodata_pixels,
            "nodata_area_ha": self.nodata_area_ha,
            "aoi_area_ha": self.aoi_area_ha,
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
) -> ClassAreas:
    """Area (ha) and percent of each class of an integer class raster, inside ``aoi_path`` or over the whole raster.

    ``class_names``: a list indexed by class value or a ``{value: name}`` mapping; defaults to the raster's
    ``class_names`` tag (JSON list), else the class values as strings. Pixels equal to the nodata value (or masked) are
    counted as ``nodata_pixels`` and left out of the classes. With ``include_empty`` named classes without pixels
    appear with zero area. Areas are true pixel areas (geographic CRSs included) and sum to ``total_area_ha``.
    """
    from terracarbon.raster.io import open_raster

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
        for win, masks in iter_zone_tiles(ds, geoms, tile=tile, all_touched=all_touched):
            m = masks[0]
            if m is None:
                continue
            d = reader.at(win)
            v = d.read(band, window=win)
            valid = _valid(d, v, band, win)
            a = pixel_areas_m2(ds.transform, ds.crs, (ds.height, ds.width), window=win)
            ok = m & valid
            nod_px += int((m & ~valid).sum())
            nod_area += float(a[m & ~valid].sum())
            vals = v[ok]
            if np.issubdtype(vals.dtype, np.floating):
                vals = np.rint(vals)
            vals = vals.astype(np.int64)
            aa = a[ok]
            if vals.size:
                u, inv = np.unique(vals, return_inverse=True)
                cnt = np.bincount(inv)
                ar = np.bincount(inv, weights=aa)
                for k, c, s in zip(u.tolist(), cnt.tolist(), ar.tolist()):
                    pixels[k] = pixels.get(k, 0) + c
                    areas[k] = areas.get(k, 0.0) + s
        reader.close()
    if aoi_path is not None and not pixels and not nod_px:
        raise InputError(aoi_path, f"AOI covers no pixel centre of {raster_path.name}")
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
    return out
