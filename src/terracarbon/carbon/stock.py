"""Carbon stocks of an AGB map over an area of interest.

:func:`carbon_stock` streams an aboveground-biomass raster (Mg/ha) window by window over the polygons of an AOI
(GeoJSON / GeoPackage / any OGR file, reprojected to the raster's CRS), multiplies each pixel's AGB density by its
*true* area (ellipsoidal cell areas for geographic CRSs such as EPSG:4326), and converts the totals to carbon
(× carbon fraction, 0.47 by default) and CO2e (× 44/12).

Weights (``method``): ``"coverage"`` (default) weights each pixel by the fraction of its area inside the polygon
(exactextract), so ``area_ha`` equals the polygon's geodesic area where the raster covers it and a constant map gives
the exact stock; ``"centre"`` counts a pixel when its centre falls inside (the rule used before; border pixels shift
the area of a 1 ha parcel on a 10 m grid by several percent).

Terms (``terms`` in the output): ``"agb"`` (aboveground biomass only, the default) or ``"agb+bgb"`` (with
belowground biomass from IPCC root-to-shoot ratios, :mod:`terracarbon.carbon.bgb`: total = AGB × (1 + R)); then
``carbon_*`` and ``co2e_*`` are of the total biomass, and ``bgb_total_mg`` / ``biomass_total_mg`` are given.

``aoi_coverage`` is the area counted divided by the AOI polygons' own area: 1 with coverage weights where the raster
covers the AOI (about 1 with the pixel-centre rule), clearly below 1 when part of the AOI lies outside the raster.

Nodata pixels inside the AOI are reported (``nodata_pixels``) and left out of the totals: totals are over the mapped
(valid) area, ``valid_area_ha``; ``agb_mean_mg_per_ha`` is the area-weighted mean of valid pixels. Multiply it by
``area_ha`` for a gap-filled estimate.

Uncertainty. When the map carries a per-pixel standard deviation — a band whose description contains ``std`` (e.g.
``AGB_STD``), a companion raster ``<name>_std.tif``, or one given explicitly — the standard deviation of each total is
reported under two assumptions that bracket the truth:

* ``*_std_correlated``: per-pixel errors fully correlated within a polygon, ``σ_T = Σ σᵢ·Aᵢ``. Model errors are
  spatially correlated (shared allometry, sensor and model biases), so this is the conservative upper bound, and the
  headline figure.
* ``*_std_independent``: independent pixel errors, ``σ_T = √Σ(σᵢ·Aᵢ)²``, a lower bound that shrinks with the
  number of pixels.

Carbon and CO2e standard deviations scale the AGB ones by the (fixed) carbon fraction and 44/12; the carbon fraction's
own uncertainty is not included.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from terracarbon.carbon.convert import CO2_PER_C, DEFAULT_CARBON_FRACTION
from terracarbon.errors import InputError

PathLike = str | os.PathLike

UNCERTAINTY_ASSUMPTION = (
    "per-pixel errors fully correlated within each polygon (sum of sigma*area; conservative upper bound) and "
    "independent (root of the sum of squares; lower bound)"
)


class JsonResult:
    """``to_dict`` / ``to_json`` of the carbon result dataclasses (NaN becomes None, so the JSON is strict)."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (NaN becomes None)."""
        return _clean(asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        """The result as one JSON object."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


@dataclass
class CarbonStock(JsonResult):
    """Carbon stock of an AGB map over an AOI. Masses in Mg (= t); areas in ha."""

    raster: str
    aoi: str | None
    crs: str
    band: int
    carbon_fraction: float | dict[str, float]
    n_pixels: int
    valid_pixels: int
    nodata_pixels: int
    area_ha: float
    valid_area_ha: float
    aoi_area_ha: float | None
    aoi_coverage: float | None
    agb_mean_mg_per_ha: float
    agb_total_mg: float
    carbon_mean_mg_per_ha: float
    carbon_total_mg: float
    co2e_mean_t_per_ha: float
    co2e_total_t: float
    uncertainty_source: str | None = None
    uncertainty_assumption: str | None = None
    agb_total_std_mg_correlated: float | None = None
    agb_total_std_mg_independent: float | None = None
    carbon_total_std_mg_correlated: float | None = None
    carbon_total_std_mg_independent: float | None = None
    co2e_total_std_t_correlated: float | None = None
    co2e_total_std_t_independent: float | None = None
    polygons: list[dict[str, Any]] = field(default_factory=list)
    method: str = "coverage"
    terms: str = "agb"
    bgb_total_mg: float | None = None
    biomass_total_mg: float | None = None
    carbon_model: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def summary_rows(self) -> dict[str, Any]:
        """Key figures for a table."""
        rows: dict[str, Any] = {
            "area (ha)": self.area_ha,
            "mapped area (ha)": self.valid_area_ha,
            "pixels (nodata)": f"{self.n_pixels:,} ({self.nodata_pixels:,})",
            "weights": self.method,
            "mean AGB (Mg/ha)": self.agb_mean_mg_per_ha,
            "AGB total (Mg)": self.agb_total_mg,
        }
        if self.bgb_total_mg is not None:
            rows["BGB total (Mg)"] = self.bgb_total_mg
            rows["AGB+BGB total (Mg)"] = self.biomass_total_mg
        cf = self.carbon_fraction
        cf_txt = f"{cf:g}" if isinstance(cf, (int, float)) else "per zone"
        rows |= {
            f"carbon total (Mg C, {self.terms}, fraction {cf_txt})": self.carbon_total_mg,
            "CO2e total (t)": self.co2e_total_t,
        }
        if self.co2e_total_std_t_correlated is not None:
            rows["CO2e std, correlated (t)"] = self.co2e_total_std_t_correlated
            rows["CO2e std, independent (t)"] = self.co2e_total_std_t_independent
        return rows


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def find_std_source(raster_path: PathLike, band: int = 1) -> tuple[int | None, Path | None]:
    """Locate a per-pixel standard deviation for ``band`` of ``raster_path``.

    Returns ``(std_band, None)`` for a band of the same raster whose description contains "std" (or "sigma"/"uncert"),
    ``(None, path)`` for a companion raster ``<stem>_std<suffix>`` next to it, or ``(None, None)``.
    """
    import rasterio

    raster_path = Path(raster_path)
    try:
        with rasterio.open(raster_path) as ds:
            desc = list(ds.descriptions or [])
    except rasterio.errors.RasterioIOError:
        desc = []
    for i, d in enumerate(desc, start=1):
        if i != band and d and any(k in d.lower() for k in ("std", "sigma", "uncert")):
            return i, None
    companion = raster_path.with_name(f"{raster_path.stem}_std{raster_path.suffix}")
    if companion.exists():
        return None, companion
    return None, None


def _figures(stats: dict[str, Any], cf: float) -> dict[str, Any]:
    """AGB/carbon/CO2e figures from one zonal statistics dict (totals in value·m²)."""
    to_mg = 1e-4  # (Mg/ha)·m² -> Mg
    agb_total = stats["total"] * to_mg
    mean = stats["mean"]
    if "channels" in stats:  # per-pixel R / CF (belowground biomass, zone raster)
        return _channel_figures(stats, agb_total, mean)
    d = {
        "n_pixels": stats["n_pixels"],
        "valid_pixels": stats["valid_pixels"],
        "nodata_pixels": stats["nodata_pixels"],
        "area_ha": stats["area_ha"],
        "valid_area_ha": stats["valid_area_ha"],
        "agb_mean_mg_per_ha": mean,
        "agb_total_mg": agb_total,
        "carbon_mean_mg_per_ha": mean * cf,
        "carbon_total_mg": agb_total * cf,
        "co2e_mean_t_per_ha": mean * cf * CO2_PER_C,
        "co2e_total_t": agb_total * cf * CO2_PER_C,
    }
    if "total_std_correlated" in stats:
        for kind in ("correlated", "independent"):
            s = stats[f"total_std_{kind}"] * to_mg
            d[f"agb_total_std_mg_{kind}"] = s
            d[f"carbon_total_std_mg_{kind}"] = s * cf
            d[f"co2e_total_std_t_{kind}"] = s * cf * CO2_PER_C
    return d


def _channel_figures(stats: dict[str, Any], agb_total: float, mean: float) -> dict[str, Any]:
    to_mg = 1e-4
    ch = stats["channels"]
    carbon_total = ch["carbon"]["total"] * to_mg
    carbon_mean = ch["carbon"]["mean"]
    d = {
        "n_pixels": stats["n_pixels"],
        "valid_pixels": stats["valid_pixels"],
        "nodata_pixels": stats["nodata_pixels"],
        "area_ha": stats["area_ha"],
        "valid_area_ha": stats["valid_area_ha"],
        "agb_mean_mg_per_ha": mean,
        "agb_total_mg": agb_total,
        "bgb_total_mg": ch["bgb"]["total"] * to_mg,
        "biomass_total_mg": ch["biomass"]["total"] * to_mg,
        "carbon_mean_mg_per_ha": carbon_mean,
        "carbon_total_mg": carbon_total,
        "co2e_mean_t_per_ha": carbon_mean * CO2_PER_C,
        "co2e_total_t": carbon_total * CO2_PER_C,
    }
    if "total_std_correlated" in stats:
        for kind in ("correlated", "independent"):
            d[f"agb_total_std_mg_{kind}"] = stats[f"total_std_{kind}"] * to_mg
            c = ch["carbon"][f"std_{kind}"] * to_mg
            d[f"carbon_total_std_mg_{kind}"] = c
            d[f"co2e_total_std_t_{kind}"] = c * CO2_PER_C
    return d


def carbon_value_fn(model):
    """A :func:`~terracarbon.raster.zonal.zonal_stats` ``value_fn`` giving the ``bgb``, ``biomass`` and ``carbon``
    channels (per-pixel R and carbon fraction of ``model``, a :class:`~terracarbon.carbon.bgb.CarbonModel`)."""
    import numpy as np

    def fn(win, v, valid, s):
        vv = v.astype(np.float64)
        zvalid, r, cf = model.factors(win, vv)
        if zvalid is not None:
            valid = valid & zvalid
        sf = None if s is None else s.astype(np.float64)
        channels = {
            "bgb": (vv * r, None if sf is None else sf * r),
            "biomass": (vv * (1 + r), None if sf is None else sf * (1 + r)),
            "carbon": (vv * (1 + r) * cf, None if sf is None else sf * (1 + r) * cf),
        }
        return valid, channels

    return fn


def resolve_std(raster_path: Path, band: int, std, std_band: int | None) -> tuple[int | None, Path | None]:
    """The std source of ``raster_path``: ``(std_band, std_path)`` from the ``std``/``std_band`` options."""
    std_path: Path | None = None
    if std_band is None:
        if isinstance(std, str) and std.lower() == "auto":
            if raster_path.exists():
                std_band, std_path = find_std_source(raster_path, band)
        elif std is not None and not (isinstance(std, str) and std.lower() == "none"):
            std_path = Path(std)
            if not std_path.exists():
                raise InputError(std_path, "std raster does not exist")
    return std_band, std_path


def carbon_stock(
    raster_path: PathLike,
    aoi_path: PathLike | None,
    *,
    carbon_fraction: float | dict[str, float] = DEFAULT_CARBON_FRACTION,
    band: int = 1,
    std: PathLike | str | None = "auto",
    std_band: int | None = None,
    all_touched: bool = False,
    layer: str | int | None = None,
    tile: int = 1024,
    progress: bool = False,
    method: str = "coverage",
    bgb: bool = False,
    zone: str | None = None,
    zone_raster: PathLike | None = None,
    zone_names: dict[int, str] | None = None,
    root_shoot: float | None = None,
) -> CarbonStock:
    """AGB, carbon and CO2e totals of an AGB map (Mg/ha) over an AOI, per polygon and for their union.

    ``aoi_path``: GeoJSON / GeoPackage (any CRS; reprojected), ``None`` for the whole raster. ``carbon_fraction``:
    carbon share of dry biomass (IPCC default 0.47), or ``{zone: fraction}``. ``std``: ``"auto"`` (a std band or
    ``<stem>_std.tif`` companion if present), ``None``/``"none"`` (ignore), or the path of a std raster on the same
    grid; ``std_band`` picks a band of the AGB raster explicitly. ``method``: ``"coverage"`` (default, exact
    coverage-fraction weights) or ``"centre"`` (pixel-centre rule; ``all_touched`` counts every touched pixel).
    ``bgb``: add belowground biomass with the root-to-shoot ratio of ``zone`` (or of each pixel's zone in
    ``zone_raster``, codes named by ``zone_names``), or a fixed ``root_shoot``; see
    :class:`~terracarbon.carbon.bgb.CarbonModel`. Raises :class:`InputError` naming the file for unreadable
    rasters/AOIs, rasters without CRS, and AOIs outside the raster or empty; per-parcel problems (outside the raster,
    partly covered, nodata, repaired or skipped geometries) are listed in ``warnings`` and per polygon.
    """
    from terracarbon.carbon.bgb import CarbonModel
    from terracarbon.raster.zonal import check_method, zonal_stats

    method = check_method(method, all_touched)
    model = CarbonModel(
        bgb=bgb,
        zone=zone,
        zone_raster=zone_raster,
        zone_names=zone_names,
        carbon_fraction=carbon_fraction,
        root_shoot=root_shoot,
    )
    cf = model.carbon_fraction_of(model.zone)
    raster_path = Path(raster_path)
    std_band, std_path = resolve_std(raster_path, band, std, std_band)
    if model.zone_raster is not None:
        from terracarbon.raster.io import open_raster

        with open_raster(raster_path, require_crs=True) as ref:
            model.open(ref)
    try:
        stats = zonal_stats(
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
            value_fn=None if model.simple else carbon_value_fn(model),
        )
    finally:
        model.close()
    total = _figures(stats["total"], cf)
    polygons = []
    for z in stats["zones"] if aoi_path is not None else []:
        attrs = {
            k: v
            for k, v in z.items()
            if k
            not in (
                "total",
                "total_std_correlated",
                "total_std_independent",
                "mean",
                "std",
                "min",
                "max",
                "channels",
                "pixel_weight",
            )
            and k not in total
        }
        polygons.append({**attrs, **_figures(z, cf), "agb_min": z["min"], "agb_max": z["max"]})
    aoi_area = sum(p["aoi_area_ha"] for p in polygons) if polygons else None
    if polygons and len(polygons) > 1:
        from terracarbon.raster.zonal import geometry_area_m2, read_aoi

        gdf = read_aoi(aoi_path, stats["crs"], layer=layer)
        union = gdf.geometry.union_all() if hasattr(gdf.geometry, "union_all") else gdf.unary_union
        aoi_area = geometry_area_m2(union, gdf.crs) / 1e4
    if total.get("bgb_total_mg") is None:
        total.setdefault("bgb_total_mg", None)
        total.setdefault("biomass_total_mg", None)
    if std_band is not None:
        source = f"band {std_band} of {raster_path.name}"
    elif std_path is not None:
        source = str(std_path)
    else:
        source = None
    return CarbonStock(
        raster=str(raster_path),
        aoi=None if aoi_path is None else str(aoi_path),
        crs=stats["crs"],
        band=band,
        carbon_fraction=model.cf_by_zone or cf,
        method=method,
        terms=model.terms,
        carbon_model=model.describe(),
        warnings=list(stats.get("warnings", [])),
        aoi_area_ha=aoi_area,
        aoi_coverage=(total["area_ha"] / aoi_area) if aoi_area else None,
        uncertainty_source=source if "agb_total_std_mg_correlated" in total else None,
        uncertainty_assumption=UNCERTAINTY_ASSUMPTION if "agb_total_std_mg_correlated" in total else None,
        polygons=polygons,
        **total,
    )
