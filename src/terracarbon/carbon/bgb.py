"""Belowground biomass from root-to-shoot ratios, and total (above- plus belowground) biomass.

Total biomass = AGB × (1 + R), with R the ratio of belowground to aboveground biomass (root-to-shoot ratio) of the
pixel's ecological zone and AGB class, after IPCC (2019) *2019 Refinement to the 2006 IPCC Guidelines for National
Greenhouse Gas Inventories*, Vol. 4 (AFOLU), Ch. 4 (Forest Land), **Table 4.4** "Ratio of below-ground biomass to
above-ground biomass (R)". AGB classes are in tonnes dry matter per hectare (Mg/ha); a pixel is in the lower class when
its AGB is strictly below the class limit.

Values and how far they are verified here (no network access to the IPCC PDF in this project; look-ups were made
with the project's search tool):

* **verified** (``verified=True``): the rows that IPCC Table 4.4 takes from Mokany et al. (2006, *Global Change
  Biology* 12: 84-96) — tropical moist deciduous forest / subtropical humid forest 0.20 (AGB < 125) and 0.24
  (AGB ≥ 125); tropical / subtropical dry forest 0.56 (< 20) and 0.28 (≥ 20); temperate conifer forest 0.40 (< 50),
  0.29 (50-150), 0.20 (> 150); temperate oak forest 0.30 (AGB > 70); temperate eucalyptus 0.44 (< 50), 0.28
  (50-150), 0.20 (> 150); other temperate broadleaf 0.46 (< 75), 0.23 (75-150), 0.24 (> 150); boreal forest 0.39
  (< 75), 0.24 (≥ 75). They match, after rounding to two decimals, the unrounded Mokany et al. ratios (0.205/0.235,
  0.563/0.275, 0.403/0.292/0.201, 0.295, 0.437/0.275/0.200, 0.456/0.226/0.241, 0.392/0.239) used in a public
  root-to-shoot mapping script found with the search tool.
* **not verified** (``verified=False``): tropical rainforest 0.37, tropical shrubland 0.40, tropical mountain systems
  0.27, subtropical steppe 0.32 (< 20) and 0.24 (≥ 20). These are the values of the 2006 Table 4.4 as recalled; the
  2019 Refinement adds continent- and origin-specific rows for tropical zones that could not be checked here. Pass
  your own ``r_table`` (or a fixed ``root_shoot``) when your methodology needs the 2019 rows.

Carbon fraction: 0.47 by default for every zone (IPCC 2006, Vol. 4, Table 4.3); settable per zone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from terracarbon.errors import ConfigError

__all__ = ["GEZ_CODES", "R_TABLE", "RootShootRow", "root_shoot_ratio", "zone_key"]


@dataclass(frozen=True)
class RootShootRow:
    """One zone of Table 4.4: AGB class upper limits (Mg/ha; the last is ``inf``) and their ratios R."""

    zone: str
    limits: tuple[float, ...]
    ratios: tuple[float, ...]
    verified: bool
    note: str = ""

    def ratio(self, agb):
        """R for AGB density ``agb`` (scalar or array, Mg/ha): the class with ``agb < limit``."""
        a = np.asarray(agb, dtype=np.float64)
        idx = np.searchsorted(np.asarray(self.limits[:-1]), a, side="right")
        r = np.asarray(self.ratios)[np.clip(idx, 0, len(self.ratios) - 1)]
        return float(r) if r.ndim == 0 else r


INF = math.inf
R_TABLE: dict[str, RootShootRow] = {
    r.zone: r
    for r in (
        RootShootRow("tropical_rainforest", (INF,), (0.37,), False, "2006 value, not verified"),
        RootShootRow("tropical_moist_deciduous", (125.0, INF), (0.20, 0.24), True),
        RootShootRow("tropical_dry", (20.0, INF), (0.56, 0.28), True),
        RootShootRow("tropical_shrubland", (INF,), (0.40,), False, "2006 value, not verified"),
        RootShootRow("tropical_mountain", (INF,), (0.27,), False, "2006 value, not verified"),
        RootShootRow("subtropical_humid", (125.0, INF), (0.20, 0.24), True),
        RootShootRow("subtropical_dry", (20.0, INF), (0.56, 0.28), True),
        RootShootRow("subtropical_steppe", (20.0, INF), (0.32, 0.24), False, "2006 value, not verified"),
        RootShootRow("temperate_conifer", (50.0, 150.0, INF), (0.40, 0.29, 0.20), True),
        RootShootRow("temperate_oak", (INF,), (0.30,), True, "Table 4.4 gives AGB > 70 only; used for all AGB"),
        RootShootRow("temperate_eucalyptus", (50.0, 150.0, INF), (0.44, 0.28, 0.20), True),
        RootShootRow("temperate_broadleaf", (75.0, 150.0, INF), (0.46, 0.23, 0.24), True),
        RootShootRow("boreal", (75.0, INF), (0.39, 0.24), True),
    )
}

# FAO Global Ecological Zones (GEZ 2010) codes of a zone raster -> Table 4.4 zone. Temperate GEZ zones (31-35) are not
# mapped: Table 4.4 splits them by forest type (conifer / oak / eucalyptus / broadleaf), so pass ``zone_names``.
GEZ_CODES: dict[int, str] = {
    11: "tropical_rainforest",
    12: "tropical_moist_deciduous",
    13: "tropical_dry",
    14: "tropical_shrubland",
    16: "tropical_mountain",
    21: "subtropical_humid",
    22: "subtropical_dry",
    23: "subtropical_steppe",
    41: "boreal",
    42: "boreal",
    43: "boreal",
}


def zone_key(zone: str, r_table: Mapping[str, RootShootRow] | None = None) -> str:
    """Normalise a user-given zone name (case, spaces, hyphens) and check it is in the table."""
    table = R_TABLE if r_table is None else r_table
    key = str(zone).strip().lower().replace(" ", "_").replace("-", "_")
    if key not in table:
        raise ConfigError(f"unknown ecological zone {zone!r}; known zones: {', '.join(sorted(table))}")
    return key


def root_shoot_ratio(zone: str, agb, r_table: Mapping[str, RootShootRow] | None = None):
    """R (belowground / aboveground biomass) of ``zone`` for AGB density ``agb`` (Mg/ha, scalar or array)."""
    table = R_TABLE if r_table is None else r_table
    return table[zone_key(zone, table)].ratio(agb)


class CarbonModel:
    """Per-pixel root-to-shoot ratio R and carbon fraction CF of an AGB map: which terms a stock includes.

    ``bgb``: add belowground biomass (total biomass = AGB × (1 + R)); otherwise R = 0 and only AGB is counted.
    ``zone``: one ecological zone (a key of :data:`R_TABLE`) for the whole map, or ``zone_raster``: an integer raster
    of zone codes (any grid; read on the AGB grid with nearest-neighbour resampling) with ``zone_names`` mapping codes
    to zones (default :data:`GEZ_CODES`, FAO GEZ 2010). Pixels whose zone is nodata are excluded (reported as nodata).
    ``root_shoot``: a fixed R instead of the table. ``carbon_fraction``: one value (IPCC default 0.47) or
    ``{zone: fraction}`` (zones missing from the mapping get 0.47). R's and CF's own uncertainties are not
    propagated: per-pixel standard deviations scale by (1 + R) and CF.
    """

    def __init__(
        self,
        *,
        bgb: bool = False,
        zone: str | None = None,
        zone_raster=None,
        zone_names: Mapping[int, str] | None = None,
        carbon_fraction: float | Mapping[str, float] = 0.47,
        root_shoot: float | None = None,
        r_table: Mapping[str, RootShootRow] | None = None,
    ):
        from terracarbon.carbon.convert import _check_fraction

        self.table = R_TABLE if r_table is None else dict(r_table)
        self.bgb = bool(bgb)
        if zone is not None and zone_raster is not None:
            raise ConfigError("give either a zone or a zone raster, not both")
        self.zone = None if zone is None else zone_key(zone, self.table)
        self.zone_raster = zone_raster
        names = GEZ_CODES if zone_names is None else zone_names
        self.zone_names = {int(k): zone_key(v, self.table) for k, v in names.items()}
        if root_shoot is not None and not 0.0 <= float(root_shoot) < 10.0:
            raise ConfigError(f"root-to-shoot ratio must be in [0, 10), got {root_shoot!r}")
        self.root_shoot = None if root_shoot is None else float(root_shoot)
        if self.bgb and self.root_shoot is None and self.zone is None and zone_raster is None:
            raise ConfigError(
                "belowground biomass needs an ecological zone (--zone, e.g. tropical_moist_deciduous), a zone "
                "raster (--zone-raster) or a fixed root-to-shoot ratio (--root-shoot)"
            )
        if isinstance(carbon_fraction, Mapping):
            self.cf_default = 0.47
            self.cf_by_zone = {zone_key(k, self.table): _check_fraction(v) for k, v in carbon_fraction.items()}
        else:
            self.cf_default = _check_fraction(carbon_fraction)
            self.cf_by_zone = {}
        self._vrt = None
        self._src = None

    @property
    def terms(self) -> str:
        """``"agb+bgb"`` or ``"agb"``."""
        return "agb+bgb" if self.bgb else "agb"

    @property
    def simple(self) -> bool:
        """True when totals are plain AGB × one carbon fraction (no per-pixel factors needed)."""
        return not self.bgb and self.zone_raster is None and (not self.cf_by_zone or self.zone is not None)

    def carbon_fraction_of(self, zone: str | None) -> float:
        """Carbon fraction used for ``zone``."""
        return self.cf_by_zone.get(zone, self.cf_default) if zone is not None else self.cf_default

    def describe(self) -> dict:
        """JSON-ready description of the terms, zones, R source and carbon fractions."""
        if not self.bgb:
            r_src = None
        elif self.root_shoot is not None:
            r_src = f"fixed R = {self.root_shoot:g}"
        else:
            r_src = "IPCC 2019 Refinement Vol. 4 Ch. 4 Table 4.4 by ecological zone and AGB class"
        d = {
            "terms": self.terms,
            "zone": self.zone,
            "zone_raster": None if self.zone_raster is None else str(self.zone_raster),
            "root_shoot_source": r_src,
            "carbon_fraction": self.cf_by_zone or self.carbon_fraction_of(self.zone),
        }
        if self.bgb and self.zone is not None and self.root_shoot is None:
            row = self.table[self.zone]
            d["root_shoot_table_row"] = {
                "limits_mg_per_ha": [None if math.isinf(x) else x for x in row.limits],
                "ratios": list(row.ratios),
                "verified": row.verified,
            }
        return d

    def open(self, ref_ds) -> None:
        """Open the zone raster on the grid of ``ref_ds`` (the AGB raster)."""
        if self.zone_raster is None:
            return
        from rasterio.enums import Resampling
        from rasterio.vrt import WarpedVRT

        from terracarbon.raster.io import open_raster

        self._src = open_raster(self.zone_raster, require_crs=True)
        same = (
            self._src.crs == ref_ds.crs
            and (self._src.width, self._src.height) == (ref_ds.width, ref_ds.height)
            and self._src.transform.almost_equals(ref_ds.transform)
        )
        self._vrt = (
            self._src
            if same
            else WarpedVRT(
                self._src,
                crs=ref_ds.crs,
                transform=ref_ds.transform,
                width=ref_ds.width,
                height=ref_ds.height,
                resampling=Resampling.nearest,
            )
        )

    def close(self) -> None:
        """Close the zone raster."""
        if self._vrt is not None and self._vrt is not self._src:
            self._vrt.close()
        if self._src is not None:
            self._src.close()
        self._vrt = self._src = None

    def factors(self, win, agb: np.ndarray) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """``(valid or None, R, CF)`` arrays for the AGB values ``agb`` of window ``win``."""
        shape = agb.shape
        if self.zone_raster is None:
            cf = np.full(shape, self.carbon_fraction_of(self.zone))
            if not self.bgb:
                return None, np.zeros(shape), cf
            if self.root_shoot is not None:
                return None, np.full(shape, self.root_shoot), cf
            return None, np.asarray(self.table[self.zone].ratio(agb), dtype=np.float64), cf
        if self._vrt is None:
            raise ConfigError("CarbonModel.open() must be called before factors() with a zone raster")
        z = self._vrt.read(1, window=win)
        nod = self._vrt.nodata
        valid = np.ones(shape, dtype=bool) if nod is None else (z != nod)
        r = np.zeros(shape)
        cf = np.full(shape, self.cf_default)
        for code in np.unique(z[valid]).tolist():
            code = int(code)
            if code not in self.zone_names:
                raise ConfigError(
                    f"{self.zone_raster}: zone code {code} has no ecological zone; pass zone_names "
                    f"(known codes: {sorted(self.zone_names)})"
                )
            key = self.zone_names[code]
            m = valid & (z == code)
            cf[m] = self.carbon_fraction_of(key)
            if self.bgb:
                r[m] = self.root_shoot if self.root_shoot is not None else self.table[key].ratio(agb[m])
        return valid, r, cf
