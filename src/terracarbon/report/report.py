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

This module assembles the page (:func:`build_report`); the parts live beside it: :mod:`terracarbon.report.maps`
(layer reads, reprojection to Web Mercator, the folium map), :mod:`terracarbon.report.figures` (matplotlib PNGs),
:mod:`terracarbon.report.sections` (HTML tables and sections, page style) and :mod:`terracarbon.report.change` (the
stock-change section and page).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from terracarbon.report.change import _change_parts, change_section_html
from terracarbon.report.figures import render_figures
from terracarbon.report.maps import _LAYER_TITLES, _inline_assets, _map_html, _ordered, _read_layer
from terracarbon.report.sections import (
    _CSS,
    _cards_html,
    _class_html,
    _esc,
    _footprint_html,
    _img,
    _legend_html,
    _provenance_html,
    _stock_html,
    _summary_html,
    _tree_cover_html,
)
from terracarbon.utils import atomic_write_text

__all__ = ["build_report"]


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
    tc = data.get("tree_cover")
    cards_html = _cards_html(data)

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
        ca_parts.append(_tree_cover_html(tc))
    sections.append("<h2>Class areas</h2>" + ("".join(ca_parts) or "<p>No class layers.</p>"))
    sections.append(_footprint_html(data, figs, entries))
    sections.append(_provenance_html(data))
    summary = _summary_html(data)
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
