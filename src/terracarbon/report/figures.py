"""The report's matplotlib figures, written as PNGs into ``RUN_DIR/figures``: :func:`render_figures`.

Layer quick-looks with the AOI outline (from the decimated reads of :mod:`terracarbon.report.maps`), CO2e stock per
polygon with its uncertainty, class areas (total and per polygon), and the energy / CO2e of the assessment and of the
models' training (:func:`_footprint_rows`, shared with the footprint table of the page).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.report.maps import _CMAP, _LAYER_TITLES, _Layer, _ordered, _read_layer
from terracarbon.utils import atomic_path

__all__ = ["render_figures"]


def render_figures(
    run_dir: str | os.PathLike,
    data: Mapping[str, Any] | None = None,
    *,
    max_px: int = 1024,
    layers: Mapping[str, _Layer] | None = None,
) -> dict[str, Path]:
    """Write the report's figures as PNGs into ``run_dir/figures`` and return ``{figure name: path}``.

    Figures: ``map_<layer>`` (each layer with the AOI outline), ``stock`` (CO2e per polygon with the uncertainty),
    ``class_areas_<layer>`` (hectares per class, and per polygon), ``footprint`` (energy / CO2e of the assessment and
    of the models' training).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from terracarbon.assess import load_assessment

    run_dir = Path(run_dir)
    data = data if data is not None else load_assessment(run_dir)
    figdir = run_dir / "figures"
    figdir.mkdir(exist_ok=True)
    out: dict[str, Path] = {}

    def save(fig, name: str) -> None:
        path = figdir / f"{name}.png"
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
        plt.close(fig)
        out[name] = path

    if layers is None:
        layers = {n: _read_layer(run_dir, n, e, max_px) for n, e in _ordered(data.get("layers") or {})}
    aoi = _aoi_frame(run_dir, data)
    for name, lay in layers.items():
        fig, ax = plt.subplots(figsize=(6.4, 5.4))
        ax.imshow(lay.native_rgba, extent=lay.native_extent, interpolation="nearest")
        if aoi is not None:
            aoi.to_crs(lay.native_crs).boundary.plot(ax=ax, color="black", linewidth=1.2)
        ax.set_title(lay.title + (f" ({lay.units})" if lay.units else ""))
        ax.set_xlabel(f"x ({lay.native_crs})")
        ax.set_ylabel("y")
        ax.ticklabel_format(style="plain", useOffset=False)
        ax.tick_params(labelsize=7)
        if lay.legend is not None:
            ax.legend(
                handles=[Patch(color=np.array(c[:3]) / 255, label=lbl) for lbl, c in lay.legend],
                loc="center left",
                bbox_to_anchor=(1.01, 0.5),
                fontsize=8,
                frameon=False,
            )
        else:
            sm = plt.cm.ScalarMappable(cmap=_CMAP, norm=plt.Normalize(lay.vmin, lay.vmax))
            fig.colorbar(sm, ax=ax, shrink=0.8, label=lay.units or "")
        save(fig, f"map_{name}")

    st = data.get("stock")
    if st:
        polys = st.get("polygons") or []
        rows = [(_poly_label(p, i), p) for i, p in enumerate(polys)] if len(polys) > 1 else [("AOI", st)]
        labels = [r[0] for r in rows]
        vals = [r[1]["co2e_total_t"] for r in rows]
        err = [r[1].get("co2e_total_std_t_correlated") or 0.0 for r in rows]
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        ax.bar(labels, vals, yerr=err, capsize=4, color="#2e7d32")
        sd = st.get("co2e_total_std_t_correlated")
        total = f"{st['co2e_total_t']:,.0f}" + (f" ± {sd:,.0f}" if sd is not None else "")
        ax.set_title(f"CO2e stock (t), total {total} t")
        ax.set_ylabel("t CO2e")
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        save(fig, "stock")

    for name, ca in (data.get("class_areas") or {}).items():
        entry = (data.get("layers") or {}).get(name, {})
        classes = ca["total"]["classes"]
        names = list(classes)
        lay = layers.get(name)
        colours = {lbl: np.array(c[:3]) / 255 for lbl, c in (lay.legend or [])} if lay else {}
        polys = [p for p in ca.get("polygons") or [] if "classes" in p]
        ncols = 2 if polys else 1
        fig, axes = plt.subplots(1, ncols, figsize=(6.4 * ncols * 0.85, 3.6), squeeze=False)
        ax = axes[0][0]
        ax.barh(names, [classes[n]["area_ha"] for n in names], color=[colours.get(n, "#777") for n in names])
        ax.invert_yaxis()
        ax.set_xlabel("ha")
        ax.set_title(f"{_LAYER_TITLES.get(name, name)}: area per class")
        if polys:
            ax2 = axes[0][1]
            left = np.zeros(len(polys))
            for n in names:
                v = np.array([p["classes"].get(n, {}).get("percent", 0.0) for p in polys])
                ax2.barh(
                    [_poly_label(p, i) for i, p in enumerate(polys)],
                    v,
                    left=left,
                    color=colours.get(n, "#777"),
                    label=n,
                )
                left += v
            ax2.invert_yaxis()
            ax2.set_xlim(0, 100)
            ax2.set_xlabel("% of classified area")
            ax2.set_title("per polygon")
        _ = entry
        save(fig, f"class_areas_{name}")

    fp_rows = _footprint_rows(data)
    if fp_rows:
        fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.2))
        labels = [r["run"] for r in fp_rows]
        axes[0].barh(labels, [(r["energy_kwh"] or 0) * 1000 for r in fp_rows], color="#f9a825")
        axes[0].set_xlabel("energy (Wh)")
        axes[1].barh(labels, [r["emissions_g"] or 0 for r in fp_rows], color="#6d4c41")
        axes[1].set_xlabel("g CO2e")
        axes[1].set_yticklabels([])
        for a in axes:
            a.invert_yaxis()
        fig.suptitle("Footprint: training and this assessment")
        save(fig, "footprint")
    return out


def _aoi_frame(run_dir: Path, data: Mapping[str, Any]):
    import geopandas as gpd

    p = run_dir / (data.get("aoi_geojson") or "aoi.geojson")
    if not p.exists():
        return None
    return gpd.read_file(p)


def _poly_label(p: Mapping[str, Any], i: int) -> str:
    for k in ("label", "name", "parcel_id"):
        if p.get(k) not in (None, ""):
            return str(p[k])
    return f"polygon {i + 1}"


def _footprint_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    fp = data.get("footprint") or {}
    rows = []
    for layer, rec in (fp.get("training") or {}).items():
        if rec:
            rows.append({"run": f"training: {layer}", **_fp(rec)})
    if fp.get("assessment"):
        rows.append({"run": "this assessment", **_fp(fp["assessment"])})
    return rows


def _fp(rec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "energy_kwh": rec.get("energy_kwh"),
        "emissions_g": rec.get("emissions_g"),
        "duration_s": rec.get("duration_s"),
        "method": rec.get("method"),
        "grid": "/".join(str(x) for x in (rec.get("country_iso_code"), rec.get("region")) if x),
        "hardware": rec.get("hardware"),
    }
