"""Area per land-cover class (hectares and percent) over an area of interest; woodland area for site assessment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from terracarbon.data.landcover_ai import CLASS_NAMES

__all__ = ["landcover_areas", "woodland_area_ha"]


def _names(map_path: Path) -> list[str]:
    from terracarbon.raster.io import read_class_names

    try:
        names = read_class_names(map_path)
    except Exception:
        names = None
    return list(names) if names else list(CLASS_NAMES)


def landcover_areas(map_path: str | os.PathLike, aoi: str | os.PathLike | None = None) -> dict[str, Any]:
    """Hectares and percent of each class of a land-cover map, inside ``aoi`` (GeoJSON/GPKG) or over the whole map.

    Class names come from the map's ``class_names`` tag (LandCover.ai names if absent). Returns
    ``{"map", "aoi", "classes": {name: {"class_id", "pixels", "area_ha", "percent"}}, "total_area_ha",
    "nodata_pixels", "nodata_area_ha", "aoi_area_ha"}``; class areas sum to ``total_area_ha`` (true pixel areas,
    computed window by window by :func:`terracarbon.raster.zonal.class_areas`).
    """
    from terracarbon.raster.zonal import class_areas

    map_path = Path(map_path)
    res = class_areas(map_path, aoi, class_names=_names(map_path))
    return {"map": str(map_path), "aoi": None if aoi is None else str(aoi), **res.to_dict()}


def woodland_area_ha(map_path: str | os.PathLike, aoi: str | os.PathLike | None = None) -> float:
    """Woodland area (ha) of a land-cover map inside ``aoi`` (or the whole map): the figure the site assessment uses."""
    classes = landcover_areas(map_path, aoi)["classes"]
    return float(classes.get("woodland", {}).get("area_ha", 0.0))
