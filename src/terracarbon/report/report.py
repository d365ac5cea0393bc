"""A self-contained HTML report of an assessment run, plus matplotlib PNGs of the same figures.

:func:`build_report` reads ``RUN_DIR/assessment.json`` (written by :func:`terracarbon.assess.assess`) and writes

``report.html``
    one file that works offline: a Leaflet map (folium) of the layers over the AOI — biomass, land cover and tree
    cover as image overlays reprojected to Web Mercator, one shown at a time (radio buttons), the AOI polygons on top,
    no base-map tiles — with a legend per layer; the carbon-stock table with its uncertainty (total and per polygon);
    class-area charts and tables; the energy / CO2e of the assessment and of the models' training; the inputs'
    provenance (paths, SHA-256, CRS, sizes, software versions). Leaflet's JS and CSS (vendored in
    ``terracarbon/report/assets``, BSD-2-Clause) are inlined, the overlays and charts are embedded as PNG data URLs:
    the page loads nothing from the network.
``figures/*.png``
    the same figures (layer quick-looks with the AOI, stock per polygon, class areas, footprint) for a PDF or slides.

Figures are drawn from decimated reads (overviews of the cloud-optimised layers), so building the report of a large
run does not read whole rasters into memory.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import InputError
from terracarbon.utils import atomic_path, atomic_write_text

__all__ = ["build_change_report", "build_report", "change_figure", "change_section_html", "render_figures"]

ASSETS = Path(__file__).with_name("assets")
_LAYER_TITLES = {"biomass": "Aboveground biomass", "landcover": "Land cover", "tree_cover": "Tree cover"}
_ORDER = ("biomass", "landcover", "tree_cover")
_CMAP = "viridis"


# --------------------------------------------------------------------------------------------------------- rasters


@dataclass
class _Layer:
    """A layer read for display: an RGBA image of a decimated, reprojected read plus its legend."""

    name: str
    title: str
    rgba: np.ndarray  # h × w × 4 uint8
    bounds_latlon: list[list[float]]  # [[south, west], [north, east]]
    legend: list[tuple[str, tuple[int, int, int, int]]] | None  # classes: (label, colour)
    vmin: float | None = None
    vmax: float | None = None
    units: str | None = None
    native: np.ndarray | None = None  # decimated native-CRS array (for matplotlib)
    native_extent: tuple[float, float, float, float] | None = None
    native_crs: str | None = None
    native_rgba: np.ndarray | None = None


def _class_lut(entry: Mapping[str, Any], values: np.ndarray) -> dict[int, tuple[int, int, int, int]]:
    from matplotlib import colormaps

    cmap = {
        int(k): tuple(int(c) for c in v) + ((255,) if len(v) == 3 else ())
        for k, v in (entry.get("colormap") or {}).items()
    }
    names = {int(k) for k in (entry.get("class_names") or {})}
    tab = colormaps["tab10"]
    for i, k in enumerate(sorted(names | {int(v) for v in np.unique(values)})):
        if k not in cmap:
            r, g, b, _ = tab(i % 10)
            cmap[k] = (int(r * 255), int(g * 255), int(b * 255), 255)
    return cmap


def _read_layer(run_dir: Path, name: str, entry: Mapping[str, Any], max_px: int) -> _Layer:
    import rasterio
    from affine import Affine
    from matplotlib import colormaps
    from rasterio.enums import Resampling
    from rasterio.warp import calculate_default_transform, reproject, transform_bounds

    path = run_dir / entry["path"]
    if not path.exists():
        raise InputError(path, f"layer {name!r} listed in assessment.json is missing")
    classes = entry.get("kind") == "classes"
    with rasterio.open(path) as ds:
        scale = max(1.0, max(ds.width, ds.height) / (2 * max_px))
        hh, ww = max(1, round(ds.height / scale)), max(1, round(ds.width / scale))
        arr = ds.read(1, out_shape=(hh, ww), resampling=Resampling.nearest, masked=True)
        src_t = ds.transform * Affine.scale(ds.width / ww, ds.height / hh)
        crs = ds.crs
        b = ds.bounds
    valid = ~np.ma.getmaskarray(arr) & np.isfinite(np.ma.getdata(arr))
    data = np.ma.getdata(arr)
    legend = None
    vmin = vmax = None
    if classes:
        nod = 255 if data.dtype == np.uint8 else -1
        cls = np.where(valid, data, nod).astype(np.int64)
        lut = _class_lut(entry, cls[valid])
        rgba = np.zeros((*cls.shape, 4), np.uint8)
        for k, col in lut.items():
            rgba[cls == k] = col
        rgba[~valid] = 0
        names = {int(k): v for k, v in (entry.get("class_names") or {}).items()}
        present = set(np.unique(cls[valid]).tolist())
        keys = sorted(set(names) | present)
        legend = [(names.get(k, str(k)), lut[k]) for k in keys if k in lut]
        src_arr, nodata, dtype = np.where(valid, data, nod).astype(np.int32), nod, np.int32
    else:
        vals = data[valid]
        vmin = 0.0 if vals.size == 0 or float(vals.min()) >= 0 else float(vals.min())
        vmax = float(np.percentile(vals, 98)) if vals.size else 1.0
        if not vmax > vmin:
            vmax = vmin + 1.0
        norm = np.clip((np.where(valid, data, vmin) - vmin) / (vmax - vmin), 0, 1)
        rgba = (colormaps[_CMAP](norm) * 255).astype(np.uint8)
        rgba[~valid, 3] = 0
        src_arr, nodata, dtype = np.where(valid, data, np.nan).astype(np.float32), np.nan, np.float32
    native_rgba = rgba
    # reproject to Web Mercator, the plane Leaflet stretches image overlays in
    dst_crs = "EPSG:3857"
    t, w, h = calculate_default_transform(crs, dst_crs, ww, hh, *b)
    s = max(1.0, max(w, h) / max_px)
    w, h = max(1, round(w / s)), max(1, round(h / s))
    left, bottom, right, top = transform_bounds(crs, dst_crs, *b, densify_pts=21)
    dst_t = Affine((right - left) / w, 0, left, 0, -(top - bottom) / h, top)
    out = np.full((h, w), nodata, dtype)
    reproject(
        src_arr,
        out,
        src_transform=src_t,
        src_crs=crs,
        dst_transform=dst_t,
        dst_crs=dst_crs,
        src_nodata=nodata,
        dst_nodata=nodata,
        resampling=Resampling.nearest,
    )
    if classes:
        ok = out != nodata
        rgba3857 = np.zeros((h, w, 4), np.uint8)
        for k, col in lut.items():
            rgba3857[out == k] = col
        rgba3857[~ok] = 0
    else:
        ok = np.isfinite(out)
        norm = np.clip((np.where(ok, out, vmin) - vmin) / (vmax - vmin), 0, 1)
        rgba3857 = (colormaps[_CMAP](norm) * 255).astype(np.uint8)
        rgba3857[~ok, 3] = 0
    west, south, east, north = transform_bounds(dst_crs, "EPSG:4326", left, bottom, right, top)
    return _Layer(
        name=name,
        title=_LAYER_TITLES.get(name, name),
        rgba=rgba3857,
        bounds_latlon=[[south, west], [north, east]],
        legend=legend,
        vmin=vmin,
        vmax=vmax,
        units=entry.get("units"),
        native=data,
        native_extent=(b.left, b.right, b.bottom, b.top),
        native_crs=str(crs),
        native_rgba=native_rgba,
    )


def _png_bytes(rgba: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --------------------------------------------------------------------------------------------------------- figures


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


def _ordered(layers: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return sorted(layers.items(), key=lambda kv: (_ORDER.index(kv[0]) if kv[0] in _ORDER else 99, kv[0]))


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


# ------------------------------------------------------------------------------------------------------------ html


def _esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _num(v: Any, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, (int, float)):
        return f"{v:,.{nd}f}"
    return _esc(v)


def _sig(v: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (small footprints stay readable)."""
    if v is None or not math.isfinite(v):
        return "–"
    if abs(v) >= 10**digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def _cell(v: Any, nd: int = 1, ident: str | None = None) -> str:
    attrs = ""
    if ident:
        attrs += f' id="{ident}"'
    if isinstance(v, (int, float)) and v is not None:
        attrs += f' data-value="{json.dumps(v)}"'
    return f'<td class="num"{attrs}>{_num(v, nd)}</td>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _td(v: Any) -> str:
    return f"<td>{_esc(v)}</td>"


def _img(path: Path, alt: str) -> str:
    return f'<img class="figure" alt="{_esc(alt)}" src="{_data_url(path.read_bytes())}">'


def _stock_html(st: Mapping[str, Any] | None) -> str:
    if not st:
        return "<p>No biomass layer: no carbon stock was computed.</p>"
    headers = [
        "area",
        "area (ha)",
        "mean AGB (Mg/ha)",
        "AGB (Mg)",
        "carbon (Mg C)",
        "CO2e (t)",
        "± sd correlated (t)",
        "± sd independent (t)",
    ]

    def row(lbl: str, d: Mapping[str, Any], key: str) -> list[str]:
        return [
            _td(lbl),
            _cell(d.get("area_ha"), 2, f"stock-area-{key}"),
            _cell(d.get("agb_mean_mg_per_ha"), 1, f"stock-agb-mean-{key}"),
            _cell(d.get("agb_total_mg"), 1, f"stock-agb-{key}"),
            _cell(d.get("carbon_total_mg"), 1, f"stock-carbon-{key}"),
            _cell(d.get("co2e_total_t"), 1, f"stock-co2e-{key}"),
            _cell(d.get("co2e_total_std_t_correlated"), 1, f"stock-co2e-sd-{key}"),
            _cell(d.get("co2e_total_std_t_independent"), 1, f"stock-co2e-sd-ind-{key}"),
        ]

    rows = []
    polys = st.get("polygons") or []
    if len(polys) > 1:
        rows += [row(_poly_label(p, i), p, f"zone-{p.get('zone', i)}") for i, p in enumerate(polys)]
    rows.append(row("whole AOI", st, "total"))
    unc = st.get("uncertainty_model") or {}
    note = (
        f'<p class="note">Carbon fraction {_esc(st["carbon_fraction"])}; CO2e = carbon × 44/12; terms '
        f"{_esc(st.get('terms', 'agb'))}; pixel weights {_esc(st.get('method', 'centre'))}. Totals are over the "
        f"mapped area ({_num(st.get('valid_area_ha'), 2)} ha of {_num(st.get('area_ha'), 2)} ha; "
        f"{st.get('nodata_pixels', 0):,} nodata pixels). "
    )
    cov = st.get("aoi_coverage")
    if cov is not None and cov < 0.98:
        note += (
            f"<b>The layer covers only {100 * cov:.0f} % of the AOI</b>: totals are for the covered part. "
        )
    if st.get("uncertainty_source"):
        note += (
            f"Uncertainty: {_esc(unc.get('source') or st['uncertainty_source'])}; standard deviations of the totals "
            f"assume {_esc(st.get('uncertainty_assumption'))}.</p>"
        )
    else:
        note += "The model gives no uncertainty.</p>"
    return _table(headers, rows, "stock") + note


def _class_html(name: str, ca: Mapping[str, Any], fig: Path | None) -> str:
    classes = ca["total"]["classes"]
    rows = [[_td(n), _cell(v["area_ha"], 2), _cell(v["percent"], 1)] for n, v in classes.items()]
    rows.append([_td("total classified"), _cell(ca["total"]["total_area_ha"], 2), _cell(100.0, 1)])
    parts = [f"<h3>{_esc(_LAYER_TITLES.get(name, name))}</h3>"]
    if fig is not None:
        parts.append(_img(fig, f"class areas of {name}"))
    parts.append(_table(["class", "area (ha)", "%"], rows, "classes"))
    polys = [p for p in ca.get("polygons") or [] if "classes" in p]
    if polys:
        names = list(classes)
        prow = [
            [
                _td(p["label"]),
                *(_cell(p["classes"].get(n, {}).get("area_ha"), 2) for n in names),
                _cell(p["total_area_ha"], 2),
            ]
            for p in polys
        ]
        parts.append(_table(["polygon", *[f"{n} (ha)" for n in names], "total (ha)"], prow, "classes"))
    return "\n".join(parts)


def _legend_html(lay: _Layer) -> str:
    from matplotlib import colormaps

    if lay.legend is not None:
        items = "".join(
            f'<div class="swatch"><span style="background:rgba({c[0]},{c[1]},{c[2]},{c[3] / 255:.2f})"></span>'
            f"{_esc(lbl)}</div>"
            for lbl, c in lay.legend
        )
    else:
        cm = colormaps[_CMAP]
        stops = ", ".join("rgb({},{},{})".format(*(int(255 * x) for x in cm(i / 8)[:3])) for i in range(9))
        mid = (lay.vmin + lay.vmax) / 2
        items = (
            f'<div class="ramp" style="background:linear-gradient(to right, {stops})"></div>'
            f'<div class="ramp-labels"><span>{lay.vmin:,.0f}</span><span>{mid:,.0f}</span>'
            f"<span>≥ {lay.vmax:,.0f}</span></div>"
        )
    units = f" ({_esc(lay.units)})" if lay.units else ""
    return f'<div class="legend" data-layer="{lay.name}"><h4>{_esc(lay.title)}{units}</h4>{items}</div>'


def _map_html(
    layers: Mapping[str, _Layer], aoi_geojson: dict | None, entries: Mapping[str, Any]
) -> tuple[str, str]:
    """(map document rendered by folium, with the map div) -> returns (head+script document, map div id)."""
    import folium
    from branca.element import Element, Figure

    fig = Figure()
    bounds = None
    if aoi_geojson is not None:
        import geopandas as gpd

        g = gpd.GeoDataFrame.from_features(aoi_geojson["features"], crs="EPSG:4326")
        w, s, e, n = g.total_bounds
        bounds = [[s, w], [n, e]]
    elif layers:
        bounds = next(iter(layers.values())).bounds_latlon
    center = (
        [0.0, 0.0]
        if bounds is None
        else [(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
    )
    m = folium.Map(
        location=center, zoom_start=13, tiles=None, width="100%", height="100%", control_scale=True
    )
    m.default_js = []
    m.default_css = []
    fig.add_child(m)
    for i, (name, lay) in enumerate(layers.items()):
        src = entries.get(name, {}).get("source")
        label = f"{lay.title}" + (" (derived from inputs)" if src == "derived" else "")
        folium.raster_layers.ImageOverlay(
            image=_data_url(_png_bytes(lay.rgba)),
            bounds=lay.bounds_latlon,
            name=label,
            opacity=0.9,
            overlay=False,
            show=i == 0,
            class_name=f"tc-layer tc-layer-{name}",
        ).add_to(m)
    if aoi_geojson is not None:
        folium.GeoJson(
            aoi_geojson,
            name="AOI",
            style_function=lambda _f: {"color": "#111111", "weight": 2, "fill": False},
        ).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    if bounds is not None:
        m.fit_bounds(bounds)
    fig.header.add_child(Element('<link rel="icon" href="data:,">'), name="favicon")
    return fig.render(), m.get_name()


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 0; color: #1d2a1f;
       background: #fafaf7; }
main { max-width: 1180px; margin: 0 auto; padding: 18px 24px 60px; }
h1 { margin: 8px 0 2px; font-size: 1.7rem; } h2 { margin-top: 34px; border-bottom: 2px solid #2e7d32; padding-bottom: 4px; }
.sub { color: #5a665c; margin: 0 0 14px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 14px 0; }
.card { background: #fff; border: 1px solid #dde3da; border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.card .v { font-size: 1.35rem; font-weight: 600; } .card .k { color: #5a665c; font-size: .85rem; }
.mapwrap { display: flex; gap: 12px; align-items: stretch; }
#mapbox { flex: 1 1 auto; height: 560px; border: 1px solid #c9d1c6; border-radius: 6px; overflow: hidden; }
.legends { flex: 0 0 230px; display: flex; flex-direction: column; gap: 10px; }
.legend { background: #fff; border: 1px solid #dde3da; border-radius: 6px; padding: 8px 10px; font-size: .85rem; }
.legend h4 { margin: 0 0 6px; font-size: .9rem; }
.swatch { display: flex; align-items: center; gap: 6px; margin: 2px 0; }
.swatch span { width: 14px; height: 14px; border: 1px solid #888; display: inline-block; }
.ramp { height: 12px; border: 1px solid #888; } .ramp-labels { display: flex; justify-content: space-between; }
.leaflet-container { background: #eef0ea; }
table { border-collapse: collapse; margin: 10px 0; font-size: .9rem; background: #fff; }
th, td { border: 1px solid #dde3da; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #eef3ec; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #4a564c; font-size: .85rem; max-width: 1000px; }
img.figure { max-width: 100%; display: block; margin: 8px 0; border: 1px solid #e4e8e2; background: #fff; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .8rem; word-break: break-all; }
.skipped { background: #fff8e1; border: 1px solid #f0d98a; padding: 8px 12px; border-radius: 6px; }
"""


def _inline_assets() -> tuple[str, str]:
    js = (ASSETS / "leaflet.js").read_text(encoding="utf-8")
    css = (ASSETS / "leaflet.css").read_text(encoding="utf-8")
    for img in ("layers-2x.png", "layers.png"):
        url = _data_url((ASSETS / img).read_bytes())
        css = css.replace(f"url(images/{img})", f"url({url})")
    css = css.replace("url(images/marker-icon.png)", "none")
    js = js.replace("</script", "<\\/script")
    return js, css


def change_figure(delta_raster: str | os.PathLike, aoi: str | os.PathLike | None, out_png: str | os.PathLike,
                  *, max_px: int = 800) -> Path:
    """Write a PNG map of a ΔCO2e raster (t CO2e/ha; red = emission, blue = removal) with the parcel outlines.

    The raster is read decimated (at most ``max_px`` on its longest side), so large maps stay cheap.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from terracarbon.raster.io import open_raster

    with open_raster(delta_raster, require_crs=True) as ds:
        f = max(1, math.ceil(max(ds.width, ds.height) / max_px))
        arr = ds.read(1, out_shape=(max(1, ds.height // f), max(1, ds.width // f)), masked=True).astype("float64")
        arr = arr.filled(np.nan)
        b = ds.bounds
        crs = ds.crs
    finite = arr[np.isfinite(arr)]
    lim = float(np.percentile(np.abs(finite), 98)) if finite.size else 1.0
    lim = lim if lim > 0 else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    im = ax.imshow(arr, extent=(b.left, b.right, b.bottom, b.top), cmap="RdBu_r", vmin=-lim, vmax=lim,
                   interpolation="nearest")
    if aoi is not None and Path(aoi).exists():
        from terracarbon.raster.zonal import read_aoi

        read_aoi(aoi, crs).boundary.plot(ax=ax, color="black", linewidth=0.8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="ΔCO2e (t/ha): + emission, − removal")
    ax.set_title("Net CO2e emission per hectare, T0 → T1")
    ax.ticklabel_format(style="plain", useOffset=False)
    ax.tick_params(labelsize=7)
    out_png = Path(out_png)
    with atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return out_png


def change_section_html(change: Mapping[str, Any], figure: str | os.PathLike | None = None) -> str:
    """HTML section "Carbon stock change" from a :func:`terracarbon.carbon.carbon_change` result (its JSON dict).

    Tables of the total and per-parcel ΔAGB, ΔC (+ = stock gain) and ΔCO2e (+ = emission, − = removal) with the
    standard deviations, the sign convention, time span, weights, terms and warnings; ``figure``: the ΔCO2e map PNG
    (:func:`change_figure`), embedded as a data URL.
    """
    headers = ["parcel", "area (ha)", "ΔAGB (Mg)", "ΔC (Mg C)", "ΔCO2e (t, + emission)", "ΔCO2e/yr (t)",
               "± sd ΔCO2e (t)"]

    def row(lbl: str, d: Mapping[str, Any], key: str) -> list[str]:
        return [
            _td(lbl),
            _cell(d.get("area_ha"), 2, f"change-area-{key}"),
            _cell(d.get("d_agb_mg"), 1, f"change-dagb-{key}"),
            _cell(d.get("d_carbon_mg"), 1, f"change-dc-{key}"),
            _cell(d.get("d_co2e_t"), 1, f"change-dco2e-{key}"),
            _cell(d.get("d_co2e_t_per_year"), 1, f"change-dco2e-yr-{key}"),
            _cell(d.get("sd_d_co2e_t"), 1, f"change-sd-{key}"),
        ]

    polys = change.get("per_polygon") or []
    rows = [row(_poly_label(p, i), p, f"zone-{p.get('zone', i)}") for i, p in enumerate(polys[:200])]
    rows.append(row("whole AOI", change, "total"))
    note = (
        f'<p class="note">{_esc(Path(str(change.get("t0"))).name)} → {_esc(Path(str(change.get("t1"))).name)} over '
        f"{_num(change.get('years'), 2)} years ({_esc(change.get('years_source'))}); weights "
        f"{_esc(change.get('method'))}, terms {_esc(change.get('terms'))}; {_esc(change.get('aligned'))}. "
        f"Sign convention: {_esc(change.get('sign_convention'))}. "
    )
    if change.get("uncertainty_source"):
        note += f"Uncertainty: {_esc(change['uncertainty_source'])}; {_esc(change.get('uncertainty_assumption'))}."
    else:
        note += "The maps give no uncertainty."
    note += "</p>"
    warn = change.get("warnings") or []
    if warn:
        note += '<div class="skipped"><b>Warnings:</b><ul>' + "".join(f"<li>{_esc(w)}</li>" for w in warn[:50])
        note += (f"<li>… {len(warn) - 50} more</li>" if len(warn) > 50 else "") + "</ul></div>"
    img = _img(Path(figure), "ΔCO2e map") if figure is not None and Path(figure).exists() else ""
    return "<h2>Carbon stock change</h2>" + img + _table(headers, rows, "stock change") + note


def _change_parts(run_dir: Path, data: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, Path | None]:
    """The change result of a run (``data["change"]`` or ``run_dir/change.json``) and its ΔCO2e map figure."""
    change = data.get("change")
    path = run_dir / "change.json"
    if change is None and path.exists():
        change = json.loads(path.read_text())
    if not change:
        return None, None
    fig = None
    dr = change.get("delta_raster")
    if dr:
        dr = Path(dr) if Path(dr).is_absolute() else run_dir / dr
        if dr.exists():
            aoi = change.get("aoi")
            fig = change_figure(dr, aoi, run_dir / "figures" / "change_co2e.png")
    return change, fig


def build_change_report(
    change: Mapping[str, Any] | str | os.PathLike, out: str | os.PathLike, *, title: str | None = None
) -> Path:
    """A small self-contained HTML page with the stock-change section (tables, signs, ΔCO2e map), written atomically.

    ``change``: the :func:`terracarbon.carbon.carbon_change` JSON dict or the path of its JSON file; the map is drawn
    when its ``delta_raster`` exists.
    """
    if not isinstance(change, Mapping):
        p = Path(change)
        if not p.exists():
            raise InputError(p, "change JSON does not exist")
        change = json.loads(p.read_text())
    out = Path(out)
    fig = None
    dr = change.get("delta_raster")
    if dr and Path(dr).exists():
        fig = change_figure(dr, change.get("aoi"), out.with_suffix(".co2e.png"))
    title = title or "Carbon stock change"
    doc = (
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{_esc(title)}</title><style>{_CSS}</style>"
        f"</head><body><main><h1>{_esc(title)}</h1>{change_section_html(change, fig)}</main></body></html>"
    )
    return atomic_write_text(out, doc)


def build_report(
    run_dir: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    title: str | None = None,
    max_overlay_px: int = 1024,
) -> Path:
    """Write ``report.html`` (self-contained, offline) and ``figures/*.png`` for an assessment run folder.

    Args:
        run_dir: folder written by :func:`terracarbon.assess.assess` (holds ``assessment.json``).
        out: HTML path (default ``run_dir/report.html``).
        title: page title (default from the scene / AOI).
        max_overlay_px: longest side of each map overlay image.

    Returns:
        The path of the HTML file.

    Raises:
        InputError: no or invalid ``assessment.json``, or a layer it lists is missing.
    """
    from terracarbon.assess import load_assessment
    from terracarbon.assess.assess import summary_rows

    run_dir = Path(run_dir)
    data = load_assessment(run_dir)
    entries = data.get("layers") or {}
    layers = {n: _read_layer(run_dir, n, e, max_overlay_px) for n, e in _ordered(entries)}
    figs = render_figures(run_dir, data, max_px=max_overlay_px, layers=layers)
    aoi_path = run_dir / (data.get("aoi_geojson") or "aoi.geojson")
    aoi_geojson = json.loads(aoi_path.read_text()) if aoi_path.exists() else None

    doc, map_id = _map_html(layers, aoi_geojson, entries)
    js, css = _inline_assets()
    title = title or f"Site carbon assessment — {Path(data.get('aoi', 'AOI')).name}"

    st = data.get("stock")
    cards = []
    if st:
        sd = st.get("co2e_total_std_t_correlated")
        cards.append(
            (
                "CO2e stock (t)",
                f'<span id="headline-co2e" data-value="{json.dumps(st["co2e_total_t"])}">'
                f"{st['co2e_total_t']:,.1f}</span>" + (f" ± {sd:,.1f}" if sd is not None else ""),
            )
        )
        cards.append(("mean AGB (Mg/ha)", _num(st["agb_mean_mg_per_ha"])))
        cards.append(("AOI area (ha)", _num(st.get("aoi_area_ha") or st["area_ha"], 2)))
    tc = data.get("tree_cover")
    if tc:
        cards.append(("tree cover", f"{tc['percent']:.1f} %"))
    fpa = (data.get("footprint") or {}).get("assessment") or {}
    if fpa.get("energy_kwh") is not None:
        cards.append(
            (
                "energy · CO2e of this run",
                f"{_sig(fpa['energy_kwh'] * 1000)} Wh · {_sig(fpa['emissions_g'])} g",
            )
        )
    cards_html = "".join(
        f'<div class="card"><div class="v">{v}</div><div class="k">{_esc(k)}</div></div>' for k, v in cards
    )

    sections = []
    skipped = data.get("skipped") or []
    if skipped:
        sections.append(
            '<div class="skipped"><b>Not mapped:</b><ul>'
            + "".join(f"<li>{_esc(s['layer'])}: {_esc(s['reason'])}</li>" for s in skipped)
            + "</ul></div>"
        )
    legends = "".join(_legend_html(lay) for lay in layers.values())
    layer_notes = "".join(
        f"<li><b>{_esc(_LAYER_TITLES.get(n, n))}</b>: {_esc(e.get('description'))}</li>"
        for n, e in _ordered(entries)
    )
    sections.append(
        '<h2>Map</h2><p class="note">One layer at a time (switch in the map\'s layer control); the AOI outline on '
        "top. No base map: the page loads nothing from the network.</p>"
        f'<div class="mapwrap"><div id="mapbox"><!--MAP--></div><div class="legends">{legends}</div></div>'
        f'<ul class="note">{layer_notes}</ul>'
    )
    sections.append(
        "<h2>Carbon stock</h2>"
        + (_img(figs["stock"], "CO2e stock") if "stock" in figs else "")
        + _stock_html(st)
    )
    change, change_fig = _change_parts(run_dir, data)
    if change:
        sections.append(change_section_html(change, change_fig))
    ca_parts = [
        _class_html(n, ca, figs.get(f"class_areas_{n}")) for n, ca in (data.get("class_areas") or {}).items()
    ]
    if tc:
        trow = [
            [_td(p["label"]), _cell(p.get("area_ha"), 2), _cell(p.get("percent"), 1)] for p in tc["polygons"]
        ]
        trow.append(
            [
                _td("whole AOI"),
                _cell(tc["area_ha"], 2, "tree-area-total"),
                _cell(tc["percent"], 1, "tree-percent-total"),
            ]
        )
        ca_parts.append(
            f"<h3>Tree cover ({_esc(tc['tree_class'])})</h3>"
            + _table(["area", "tree area (ha)", "tree cover (%)"], trow, "classes")
        )
    sections.append("<h2>Class areas</h2>" + ("".join(ca_parts) or "<p>No class layers.</p>"))
    fp_rows = _footprint_rows(data)
    fp_tab = _table(
        ["run", "energy (Wh)", "CO2e (g)", "duration (s)", "method", "grid", "hardware"],
        [
            [
                _td(r["run"]),
                _cell(None if r["energy_kwh"] is None else r["energy_kwh"] * 1000, 3),
                _cell(r["emissions_g"], 3),
                _cell(r["duration_s"], 1),
                _td(r["method"]),
                _td(r["grid"]),
                _td(r["hardware"]),
            ]
            for r in fp_rows
        ],
    )
    lt = [
        [
            _td(n),
            _td(e.get("source")),
            _cell(e.get("wall_s"), 2),
            _td("×".join(map(str, e.get("shape", [])))),
            _td(e.get("crs")),
        ]
        for n, e in _ordered(entries)
    ]
    opts = data.get("options") or {}
    sections.append(
        "<h2>Footprint</h2>"
        + (_img(figs["footprint"], "footprint") if "footprint" in figs else "")
        + fp_tab
        + "<p class=\"note\">Energy and CO2e measured with codecarbon (offline); 'method' says whether CPU power was "
        "measured (RAPL) or estimated from CPU load and TDP.</p>"
        + _table(["layer", "source", "time (s)", "pixels", "CRS"], lt)
        + f'<p class="note">Engine options: {_esc(json.dumps(opts))}</p>'
    )
    prov = data.get("provenance") or {}
    irows = [
        [
            _td(r.get("role")),
            f'<td class="mono">{_esc(r.get("path"))}</td>',
            f'<td class="mono">{_esc((r.get("sha256") or "")[:16])}</td>',
            _cell(r.get("size_bytes"), 0),
            _td(r.get("crs")),
            _td(f"{r['width']}×{r['height']}×{r['count']}" if "width" in r else ""),
            _td(", ".join(r.get("bands") or [])),
        ]
        for r in prov.get("inputs") or []
    ]
    mrows = [
        [
            _td(n),
            f'<td class="mono">{_esc(m.get("checkpoint"))}</td>',
            f'<td class="mono">{_esc((m.get("sha256") or "")[:16])}</td>',
            _td(m.get("arch")),
            _td(m.get("task")),
            _td(
                ", ".join(
                    f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in (m.get("metrics") or {}).items()
                )
            ),
        ]
        for n, m in (data.get("models") or {}).items()
    ]
    sw = prov.get("software") or {}
    sections.append(
        "<h2>Provenance</h2><h3>Inputs</h3>"
        + _table(["role", "path", "sha256 (first 16)", "bytes", "CRS", "size", "bands"], irows)
        + "<h3>Models</h3>"
        + (
            _table(["layer", "checkpoint", "sha256 (first 16)", "arch", "task", "held-out metrics"], mrows)
            if mrows
            else "<p>No model was run.</p>"
        )
        + "<h3>Software</h3>"
        + _table(["component", "version"], [[_td(k), _td(v)] for k, v in sw.items()])
        + f'<p class="note">Assessment created {_esc(data.get("created"))} in {_num(data.get("wall_time_s"), 1)} s; '
        f"scene {_esc(data.get('scene_dir'))}.</p>"
    )
    summary = _table(
        ["quantity", "value"],
        [
            [_td(k), _cell(v, 2) if isinstance(v, (int, float)) else _td(v)]
            for k, v in summary_rows(data).items()
        ],
    )
    body = (
        f'<main><h1>{_esc(title)}</h1><p class="sub">terracarbon assessment · {_esc(data.get("created"))} · '
        f'{data.get("aoi_polygons", 1)} polygon(s)</p><div class="cards">{cards_html}</div>'
        + "".join(sections)
        + f"<h2>Summary</h2>{summary}</main>"
    )
    # move folium's map div into the page, inline Leaflet and the page style
    m = re.search(r'<div class="folium-map" id="' + re.escape(map_id) + r'"\s*>\s*</div>', doc)
    if m is None:  # pragma: no cover - folium layout change
        raise RuntimeError("folium output changed: map div not found")
    map_div = m.group(0)
    doc = doc[: m.start()] + doc[m.end() :]
    doc = doc.replace("<body>", "<body>\n" + body.replace("<!--MAP-->", map_div), 1)
    head = (
        f"<title>{_esc(title)}</title>\n<style>{css}</style>\n<script>{js}</script>\n<style>{_CSS}</style>\n"
    )
    doc = doc.replace("<head>", "<head>\n" + head, 1)
    remote = re.search(
        r"""<(?:script|img|iframe)[^>]*\ssrc=["']?(?:https?:)?//[^"'\s>]*"""
        r"""|<link[^>]*\shref=["']?(?:https?:)?//[^"'\s>]*|url\(["']?(?:https?:)?//""",
        doc,
    )
    if remote:  # pragma: no cover - guard against CDN links
        raise RuntimeError(f"report would load a remote resource: {remote.group(0)}")
    out = Path(out) if out is not None else run_dir / "report.html"
    return atomic_write_text(out, doc)
