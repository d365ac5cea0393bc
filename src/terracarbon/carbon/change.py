"""Carbon stock change between two biomass maps (IPCC stock-difference method), per parcel and in total.

:func:`carbon_change` compares an AGB map at T0 with one at T1 (Mg/ha) over the parcels of an AOI:

* **Grids**: T1 (and its uncertainty) is read on T0's grid through a GDAL warped VRT (bilinear resampling by default)
  when the two grids differ (CRS, transform or size), window by window, so memory stays bounded.
* **Nodata**: a pixel that is nodata in either map is excluded from both (``nodata_pixels``; the parcels' warnings
  say how much area that leaves out).
* **Weights**: coverage fractions (default) or the pixel-centre rule, as for stocks (:mod:`terracarbon.raster.zonal`).
* **Terms**: AGB only, or AGB + BGB with IPCC root-to-shoot ratios applied per pixel and per date (the ratio depends on
  each date's AGB class), see :mod:`terracarbon.carbon.bgb`.
* **Time**: ``years`` given, or from the maps' acquisition dates (:func:`read_date`: tags ``ACQUISITION_DATE``,
  ``DATE``/``date``, ``datetime`` (ISO 8601, e.g. ``2020-06-30``) or ``TIFFTAG_DATETIME`` (``YYYY:MM:DD HH:MM:SS``)),
  ``years = days / 365.25``. No date and no ``years``, a zero or negative span: a clear error.

Sign convention (every output says it, ``sign_convention``):

* ``d_agb_mg``, ``d_biomass_mg``, ``d_carbon_mg``: **stock change** T1 − T0, positive = the stock grew.
* ``d_co2e_t``, ``d_co2e_t_per_year``: **net emission** = −ΔC × 44/12: **positive = emission** (stock loss),
  **negative = removal** (stock gain), as in a greenhouse-gas inventory.

Uncertainty of the difference: per pixel ``var(Δ) = σ0² + σ1² − 2ρ·σ0·σ1`` with ρ = ``correlation`` between the two
maps' errors (0: independent maps, 1: the same model with the same bias, so the bias cancels), σ from each map's
std band or std raster (scaled by (1 + R) and the carbon fraction), then aggregated over pixels like the stocks:
``sd_d_co2e_t`` with per-pixel errors of Δ fully correlated in space (Σ σΔ·w·A; conservative upper bound, the headline)
and ``sd_d_co2e_t_independent`` (√Σ(σΔ·w·A)²; lower bound).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.carbon.convert import CO2_PER_C, DEFAULT_CARBON_FRACTION
from terracarbon.carbon.stock import JsonResult
from terracarbon.errors import ConfigError, InputError

PathLike = str | os.PathLike

SIGN_CONVENTION = (
    "d_agb_mg, d_biomass_mg and d_carbon_mg are stock changes T1 - T0 (positive = stock gain); d_co2e_t and "
    "d_co2e_t_per_year are net emissions = -dC x 44/12 (positive = emission to the atmosphere / stock loss, "
    "negative = removal / stock gain)"
)
CHANGE_UNCERTAINTY = (
    "per pixel var(d) = s0^2 + s1^2 - 2*rho*s0*s1 (rho = correlation between the two maps' errors); sd_d_* sums "
    "sigma_d*area over pixels (errors fully correlated in space: conservative upper bound, headline) and "
    "sd_d_*_independent takes the root of the sum of squares (independent pixels: lower bound)"
)
DATE_TAGS = ("ACQUISITION_DATE", "acquisition_date", "DATE", "date", "datetime", "DATETIME", "TIFFTAG_DATETIME")

__all__ = ["CarbonChange", "carbon_change", "read_date", "SIGN_CONVENTION", "DATE_TAGS"]


def read_date(path: PathLike) -> tuple[_dt.date, str] | None:
    """The acquisition date of a raster from its tags, with the tag it came from; None when it has none.

    Looks at ``ACQUISITION_DATE``, ``DATE``/``date``, ``datetime`` (ISO 8601 date or datetime, e.g. ``2020-06-30`` or
    ``2020-06-30T10:00:00Z``) and GDAL's ``TIFFTAG_DATETIME`` (``YYYY:MM:DD HH:MM:SS``), in that order. A tag that is
    present but unparseable raises :class:`InputError` naming the file and the tag.
    """
    import rasterio

    path = Path(path)
    with rasterio.open(path) as ds:
        tags = ds.tags()
    for key in DATE_TAGS:
        if key not in tags or not str(tags[key]).strip():
            continue
        raw = str(tags[key]).strip().strip('"')
        m = re.match(r"^(\d{4}):(\d{2}):(\d{2})", raw)  # TIFFTAG_DATETIME
        try:
            if m:
                return _dt.date(int(m[1]), int(m[2]), int(m[3])), key
            return _dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).date(), key
        except ValueError as exc:
            raise InputError(path, f"tag {key}={raw!r} is not a date (use ISO 8601, e.g. 2020-06-30)") from exc
    return None


_UNIT_ALIASES = {"mg/ha": "mg/ha", "t/ha": "mg/ha", "mgha-1": "mg/ha", "tha-1": "mg/ha", "mg ha-1": "mg/ha"}


def _norm_units(u: str | None) -> str | None:
    if u is None:
        return None
    k = str(u).strip().lower().replace("^", "").replace("−", "-")
    return _UNIT_ALIASES.get(k, _UNIT_ALIASES.get(k.replace(" ", ""), k))


@dataclass
class CarbonChange(JsonResult):
    """Stock change between two AGB maps over an AOI. Masses in Mg (= t); areas in ha; see the module for signs."""

    t0: str
    t1: str
    aoi: str | None
    crs: str
    method: str
    terms: str
    years: float
    years_source: str
    date_t0: str | None
    date_t1: str | None
    correlation: float
    units: str | None
    aligned: str
    n_pixels: int
    valid_pixels: int
    nodata_pixels: int
    area_ha: float
    valid_area_ha: float
    agb_t0_mg: float
    agb_t1_mg: float
    d_agb_mg: float
    d_biomass_mg: float
    d_carbon_mg: float
    d_co2e_t: float
    d_co2e_t_per_year: float
    sd_d_agb_mg: float | None = None
    sd_d_carbon_mg: float | None = None
    sd_d_co2e_t: float | None = None
    sd_d_co2e_t_independent: float | None = None
    sd_d_co2e_t_per_year: float | None = None
    uncertainty_source: str | None = None
    uncertainty_assumption: str | None = None
    sign_convention: str = SIGN_CONVENTION
    carbon_model: dict[str, Any] | None = None
    delta_raster: str | None = None
    per_polygon: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary_rows(self) -> dict[str, Any]:
        """Key figures for a table, signs labelled."""
        rows: dict[str, Any] = {
            "area (ha)": self.area_ha,
            "mapped in both (ha)": self.valid_area_ha,
            "years": f"{self.years:.3f} ({self.years_source})",
            "weights / terms": f"{self.method} / {self.terms}",
            "AGB T0 (Mg)": self.agb_t0_mg,
            "AGB T1 (Mg)": self.agb_t1_mg,
            "ΔAGB, T1−T0 (Mg; + = gain)": self.d_agb_mg,
            f"Δbiomass {self.terms} (Mg; + = gain)": self.d_biomass_mg,
            "ΔC (Mg C; + = gain)": self.d_carbon_mg,
            "ΔCO2e (t; + = emission, − = removal)": self.d_co2e_t,
            "ΔCO2e per year (t/yr; + = emission)": self.d_co2e_t_per_year,
        }
        if self.sd_d_co2e_t is not None:
            rows[f"sd ΔCO2e, correlated (t; ρ={self.correlation:g})"] = self.sd_d_co2e_t
            rows["sd ΔCO2e, independent (t)"] = self.sd_d_co2e_t_independent
        return rows


def _grid_same(a, b) -> bool:
    return (
        a.crs == b.crs and (a.width, a.height) == (b.width, b.height) and a.transform.almost_equals(b.transform)
    )


def _aligned(src, ref, resampling):
    """``src`` itself when on ``ref``'s grid, else a WarpedVRT of it on ``ref``'s grid."""
    if _grid_same(src, ref):
        return src
    from rasterio.vrt import WarpedVRT

    return WarpedVRT(
        src, crs=ref.crs, transform=ref.transform, width=ref.width, height=ref.height, resampling=resampling
    )


def _valid_of(ds, arr, band, win):
    from terracarbon.raster.zonal import _valid

    return _valid(ds, arr, band, win)


def carbon_change(
    t0: PathLike,
    t1: PathLike,
    aoi_path: PathLike | None,
    *,
    years: float | None = None,
    correlation: float = 0.0,
    band: int = 1,
    std0: PathLike | str | None = "auto",
    std1: PathLike | str | None = "auto",
    std_band: int | None = None,
    method: str = "coverage",
    carbon_fraction: float | dict[str, float] = DEFAULT_CARBON_FRACTION,
    bgb: bool = False,
    zone: str | None = None,
    zone_raster: PathLike | None = None,
    zone_names: dict[int, str] | None = None,
    root_shoot: float | None = None,
    resampling: str = "bilinear",
    delta_raster: PathLike | None = None,
    layer: str | int | None = None,
    tile: int = 1024,
    progress: bool = False,
) -> CarbonChange:
    """Per-parcel and total ΔAGB, Δbiomass, ΔC and ΔCO2e (net emission) between AGB maps ``t0`` and ``t1``.

    ``years``: the time between the maps (default: from their date tags, :func:`read_date`). ``correlation``: ρ in
    [0, 1] between the two maps' per-pixel errors. ``std0``/``std1``: each map's uncertainty as for
    :func:`~terracarbon.carbon.carbon_stock` (``"auto"``: a std band or ``<stem>_std.tif``; ``"none"``; a path);
    ``std_band``: the std band number in both maps. ``method``, ``carbon_fraction``, ``bgb``, ``zone``,
    ``zone_raster``, ``zone_names``, ``root_shoot``: as for stocks. ``resampling``: how T1 is read on T0's grid when
    the grids differ (a rasterio ``Resampling`` name). ``delta_raster``: also write the per-pixel ΔCO2e (t CO2e/ha,
    emission convention) over the AOI's bounding box of T0's grid (GeoTIFF, written atomically), for the report map.

    Errors (:class:`InputError`/:class:`ConfigError`, naming the file): unreadable maps/AOIs, maps whose units differ,
    a missing date when ``years`` is not given, a zero or negative time span, ρ outside [0, 1]. Parcel problems are
    warnings naming the parcel (``warnings``, and per polygon).
    """
    from rasterio.enums import Resampling

    from terracarbon.carbon.bgb import CarbonModel
    from terracarbon.carbon.stock import resolve_std
    from terracarbon.raster.io import open_raster
    from terracarbon.raster.zonal import _aoi_window, check_method, raster_units, read_aoi, zonal_stats

    t0, t1 = Path(t0), Path(t1)
    method = check_method(method)
    if not 0.0 <= float(correlation) <= 1.0:
        raise ConfigError(f"correlation between the two maps must be in [0, 1], got {correlation!r}")
    rho = float(correlation)
    try:
        resamp = Resampling[resampling]
    except KeyError as exc:
        raise ConfigError(f"unknown resampling {resampling!r}") from exc
    model = CarbonModel(
        bgb=bgb,
        zone=zone,
        zone_raster=zone_raster,
        zone_names=zone_names,
        carbon_fraction=carbon_fraction,
        root_shoot=root_shoot,
    )
    warnings: list[str] = []
    ds0 = open_raster(t0, require_crs=True)
    ds1 = open_raster(t1, require_crs=True)
    opened = [ds1, ds0]
    try:
        for p, ds in ((t0, ds0), (t1, ds1)):
            if not 1 <= band <= ds.count:
                raise InputError(p, f"has {ds.count} band(s); band {band} does not exist")
        u0, u1 = raster_units(ds0, band), raster_units(ds1, band)
        if u0 and u1 and _norm_units(u0) != _norm_units(u1):
            raise InputError(t1, f"units {u1!r} differ from {t0.name}'s {u0!r}; convert one map first")
        for p, u in ((t0, u0), (t1, u1)):
            if not u:
                warnings.append(f"{p.name} has no units tag; assumed Mg/ha")
        # time between the maps
        d0, d1 = read_date(t0), read_date(t1)
        if years is None:
            missing = [p for p, d in ((t0, d0), (t1, d1)) if d is None]
            if missing:
                raise InputError(
                    missing[0],
                    "has no acquisition date tag (" + ", ".join(DATE_TAGS[:3]) + ", TIFFTAG_DATETIME); "
                    "give the time between the maps with --years",
                )
            yrs = (d1[0] - d0[0]).days / 365.25
            y_src = f"dates {d0[0].isoformat()} ({d0[1]}) -> {d1[0].isoformat()} ({d1[1]}), days/365.25"
        else:
            yrs, y_src = float(years), "given"
        if not math.isfinite(yrs) or yrs == 0:
            raise ConfigError(
                f"the change spans zero years ({t0.name} -> {t1.name}); a rate per year is undefined"
            )
        if yrs < 0:
            raise ConfigError(f"{t1.name} is earlier than {t0.name} ({yrs:.3f} years); swap the maps")
        # uncertainty sources
        sb0, sp0 = resolve_std(t0, band, std0, std_band)
        sb1, sp1 = resolve_std(t1, band, std1, std_band)
        has0, has1 = (sb0 is not None or sp0 is not None), (sb1 is not None or sp1 is not None)
        if has0 != has1:
            which = t1.name if has0 else t0.name
            warnings.append(f"{which} has no uncertainty band/raster: its sigma is taken as 0 in sd_d_*")
        # T1 (and its std) on T0's grid
        v1 = _aligned(ds1, ds0, resamp)
        aligned = "same grid" if v1 is ds1 else f"T1 warped onto T0's grid ({resampling})"
        if v1 is not ds1:
            opened.append(v1)
        s1_src = None
        if sp1 is not None:
            sds = open_raster(sp1, require_crs=True)
            opened.append(sds)
            s1_src = _aligned(sds, ds0, resamp)
            if s1_src is not sds:
                opened.append(s1_src)
        if model.zone_raster is not None:
            model.open(ds0)
        gdf = None
        if aoi_path is not None:
            gdf = read_aoi(aoi_path, ds0.crs, bounds=tuple(ds0.bounds), layer=layer)
        # optional ΔCO2e raster over the AOI's bounding window
        out_ds = None
        out_ctx = None
        out_win = None
        if delta_raster is not None:
            import rasterio
            from rasterio.windows import Window
            from rasterio.windows import transform as wtransform

            from terracarbon.utils import atomic_path

            if gdf is not None:
                out_win = _aoi_window(ds0, tuple(gdf.total_bounds))
            if out_win is None:
                out_win = Window(0, 0, ds0.width, ds0.height)
            out_ctx = atomic_path(delta_raster, suffix=".tif")
            tmp = out_ctx.__enter__()
            prof = {
                "driver": "GTiff",
                "width": int(out_win.width),
                "height": int(out_win.height),
                "count": 1,
                "dtype": "float32",
                "crs": ds0.crs,
                "transform": wtransform(out_win, ds0.transform),
                "nodata": float("nan"),
                "compress": "DEFLATE",
            }
            if out_win.width >= 256 and out_win.height >= 256:
                prof.update(tiled=True, blockxsize=256, blockysize=256)
            out_ds = rasterio.open(tmp, "w", **prof)
            out_ds.set_band_description(1, "dCO2e_t_per_ha (net emission: + = emission, - = removal)")
            out_ds.update_tags(units="t CO2e/ha", sign_convention=SIGN_CONVENTION, years=str(yrs))

        def value_fn(win, v0, valid, s0):
            a0 = v0.astype(np.float64)
            b1 = v1.read(band, window=win)
            valid = valid & _valid_of(v1, b1, band, win)
            a1 = np.where(valid, b1.astype(np.float64), 0.0)
            a0 = np.where(valid, a0, 0.0)
            z0, r0, cf0 = model.factors(win, a0)
            z1, r1, cf1 = model.factors(win, a1)
            if z0 is not None:
                valid = valid & z0
            sig0 = sig1 = None
            if has0 or has1:
                sig0 = np.zeros(a0.shape) if s0 is None else np.nan_to_num(s0.astype(np.float64))
                if s1_src is not None:
                    sig1 = np.nan_to_num(s1_src.read(1, window=win).astype(np.float64))
                elif sb1 is not None:
                    sig1 = np.nan_to_num(v1.read(sb1, window=win).astype(np.float64))
                else:
                    sig1 = np.zeros(a0.shape)
            bio0, bio1 = a0 * (1 + r0), a1 * (1 + r1)
            c0, c1 = bio0 * cf0, bio1 * cf1

            def sd(x0, x1):
                if sig0 is None:
                    return None
                return np.sqrt(np.maximum(x0 * x0 + x1 * x1 - 2 * rho * x0 * x1, 0.0))

            ch = {
                "agb1": (a1, None),
                "d_agb": (a1 - a0, sd(sig0, sig1)),
                "d_biomass": (bio1 - bio0, sd(sig0 * (1 + r0), sig1 * (1 + r1)) if sig0 is not None else None),
                "d_carbon": (c1 - c0, sd(sig0 * (1 + r0) * cf0, sig1 * (1 + r1) * cf1) if sig0 is not None else None),
            }
            if out_ds is not None:
                from rasterio.windows import Window

                r = int(win.row_off) - int(out_win.row_off)
                c = int(win.col_off) - int(out_win.col_off)
                rr0, cc0 = max(r, 0), max(c, 0)
                rr1 = min(r + int(win.height), int(out_win.height))
                cc1 = min(c + int(win.width), int(out_win.width))
                if rr1 > rr0 and cc1 > cc0:
                    e = np.where(valid, -(c1 - c0) * CO2_PER_C, np.nan).astype(np.float32)
                    out_ds.write(
                        e[rr0 - r : rr1 - r, cc0 - c : cc1 - c], 1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0)
                    )
            return valid, ch

        try:
            stats = zonal_stats(
                t0,
                None,
                band=band,
                std_band=sb0,
                std_path=sp0,
                tile=tile,
                progress=progress,
                method=method,
                value_fn=value_fn,
                gdf=gdf,
            )
            if out_ds is not None:
                out_ds.close()
                out_ds = None
                out_ctx.__exit__(None, None, None)
                out_ctx = None
        except BaseException as exc:
            if out_ds is not None:
                out_ds.close()
            if out_ctx is not None:
                out_ctx.__exit__(type(exc), exc, exc.__traceback__)
            raise
    finally:
        model.close()
        for d in opened:
            d.close()

    def figures(z: dict[str, Any]) -> dict[str, Any]:
        ch = z["channels"]
        to_mg = 1e-4
        dc = ch["d_carbon"]["total"] * to_mg
        f = {
            "n_pixels": z["n_pixels"],
            "valid_pixels": z["valid_pixels"],
            "nodata_pixels": z["nodata_pixels"],
            "area_ha": z["area_ha"],
            "valid_area_ha": z["valid_area_ha"],
            "agb_t0_mg": z["total"] * to_mg,
            "agb_t1_mg": ch["agb1"]["total"] * to_mg,
            "d_agb_mg": ch["d_agb"]["total"] * to_mg,
            "d_biomass_mg": ch["d_biomass"]["total"] * to_mg,
            "d_carbon_mg": dc,
            "d_co2e_t": -dc * CO2_PER_C,
            "d_co2e_t_per_year": -dc * CO2_PER_C / yrs,
        }
        if "std_correlated" in ch["d_carbon"]:
            f["sd_d_agb_mg"] = ch["d_agb"]["std_correlated"] * to_mg
            f["sd_d_carbon_mg"] = ch["d_carbon"]["std_correlated"] * to_mg
            f["sd_d_co2e_t"] = ch["d_carbon"]["std_correlated"] * to_mg * CO2_PER_C
            f["sd_d_co2e_t_independent"] = ch["d_carbon"]["std_independent"] * to_mg * CO2_PER_C
            f["sd_d_co2e_t_per_year"] = f["sd_d_co2e_t"] / yrs
        return f

    skip = {"total", "total_std_correlated", "total_std_independent", "mean", "std", "min", "max", "channels"}
    per = []
    for z in stats["zones"] if aoi_path is not None else []:
        attrs = {k: v for k, v in z.items() if k not in skip and k not in ("warnings",)}
        per.append({**attrs, **figures(z), "warnings": z.get("warnings", [])})
    tot = figures(stats["total"])
    src = None
    if has0 or has1:
        n0 = f"band {sb0}" if sb0 else str(sp0)
        n1 = f"band {sb1}" if sb1 else str(sp1)
        src = f"T0: {n0}; T1: {n1}; correlation {rho:g}"
    return CarbonChange(
        t0=str(t0),
        t1=str(t1),
        aoi=None if aoi_path is None else str(aoi_path),
        crs=stats["crs"],
        method=method,
        terms=model.terms,
        years=yrs,
        years_source=y_src,
        date_t0=None if d0 is None else d0[0].isoformat(),
        date_t1=None if d1 is None else d1[0].isoformat(),
        correlation=rho,
        units=u0 or u1,
        aligned=aligned,
        uncertainty_source=src,
        uncertainty_assumption=CHANGE_UNCERTAINTY if src else None,
        carbon_model=model.describe(),
        delta_raster=None if delta_raster is None else str(delta_raster),
        per_polygon=per,
        warnings=warnings + list(stats.get("warnings", [])),
        **{k: v for k, v in tot.items()},
    )
