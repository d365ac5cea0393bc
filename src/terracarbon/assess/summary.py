"""The zonal summary of an assessment: class areas and tree cover inside the AOI (total and per polygon), key figures.

:func:`_class_areas` computes the class areas of a land-cover or tree-cover layer
(:func:`terracarbon.raster.zonal.class_areas`) over the whole AOI and, when the AOI holds several polygons, per
polygon (labelled by :func:`_polygon_label`); :func:`_tree_summary` reduces the tree-cover areas to the tree class;
:func:`summary_rows` gives the key figures of an ``assessment.json`` dict for a table (CLI, report).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from terracarbon.errors import InputError

__all__ = ["summary_rows"]


def summary_rows(data: Mapping[str, Any]) -> dict[str, Any]:
    """Key figures of an assessment dict, for a rich table."""
    rows: dict[str, Any] = {}
    st = data.get("stock")
    if st:
        rows["AOI area (ha)"] = st.get("aoi_area_ha") or st.get("area_ha")
        rows["mean AGB (Mg/ha)"] = st["agb_mean_mg_per_ha"]
        rows["carbon (Mg C)"] = st["carbon_total_mg"]
        co2 = st["co2e_total_t"]
        sd = st.get("co2e_total_std_t_correlated")
        rows["CO2e (t)"] = f"{co2:,.1f} ± {sd:,.1f}" if sd is not None else co2
    tc = data.get("tree_cover")
    if tc:
        rows["tree cover (%)"] = tc["percent"]
    lc = (data.get("class_areas") or {}).get("landcover")
    if lc:
        for name, v in lc["total"]["classes"].items():
            if v["area_ha"] > 0:
                rows[f"land cover: {name} (ha)"] = v["area_ha"]
    fp = (data.get("footprint") or {}).get("assessment") or {}
    if fp.get("energy_kwh") is not None:
        rows["this run: energy (Wh)"] = fp["energy_kwh"] * 1000.0
        rows["this run: CO2e (g)"] = fp["emissions_g"]
    for s in data.get("skipped", []):
        rows[f"skipped: {s['layer']}"] = s["reason"]
    return rows


def _class_areas(path: Path, aoi_path: Path, gdf, entry: Mapping[str, Any]) -> dict[str, Any]:
    from terracarbon.raster.zonal import class_areas

    names = {int(k): v for k, v in (entry.get("class_names") or {}).items()} or None
    total = class_areas(path, aoi_path, class_names=names).to_dict()
    polygons = []
    if len(gdf) > 1:
        with tempfile.TemporaryDirectory(prefix="terracarbon-assess-") as tmp:
            for i in range(len(gdf)):
                row = gdf.iloc[i]
                one = Path(tmp) / f"zone{i}.geojson"
                one.write_text(gdf.iloc[[i]].to_crs("EPSG:4326").to_json(drop_id=True))
                try:
                    ca = class_areas(path, one, class_names=names).to_dict()
                except InputError as exc:  # polygon outside the layer
                    ca = {"error": exc.problem}
                polygons.append({"zone": int(row.get("zone", i)), "label": _polygon_label(row, i), **ca})
    return {"total": total, "polygons": polygons}


def _polygon_label(row: Mapping[str, Any], zone: int) -> str:
    for key in ("name", "label", "parcel_id", "id"):
        v = row.get(key)
        if v is not None and str(v) not in ("", "nan", "None"):
            return str(v)
    return f"polygon {zone + 1}"


def _tree_class(entry: Mapping[str, Any]) -> tuple[int, str]:
    names = {int(k): str(v) for k, v in (entry.get("class_names") or {}).items()}
    for k, n in sorted(names.items()):
        low = n.lower()
        if ("tree" in low or "canopy" in low) and not low.startswith(("no", "non")):
            return k, n
    return 1, names.get(1, "1")


def _tree_summary(entry: Mapping[str, Any] | None, areas: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if entry is None or areas is None:
        return None
    _, name = _tree_class(entry)

    def pick(ca: Mapping[str, Any]) -> dict[str, Any] | None:
        if "classes" not in ca:
            return None
        c = ca["classes"].get(name) or {"area_ha": 0.0, "percent": 0.0}
        return {"area_ha": c["area_ha"], "percent": c["percent"], "classified_area_ha": ca["total_area_ha"]}

    tot = pick(areas["total"]) or {"area_ha": 0.0, "percent": 0.0, "classified_area_ha": 0.0}
    return {
        "tree_class": name,
        "source": entry.get("source"),
        **tot,
        "polygons": [{"zone": p["zone"], "label": p["label"], **(pick(p) or {})} for p in areas["polygons"]],
    }
