"""HTML building blocks of the report page: escaping and number formats, tables, embedded figures, the page style
(:data:`_CSS`), and the sections built from ``assessment.json`` — headline cards, carbon stock, class areas, tree
cover, footprint, provenance, key figures, and the legend beside the map.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from terracarbon.assess.summary import summary_rows
from terracarbon.report.figures import _footprint_rows, _poly_label
from terracarbon.report.maps import _CMAP, _LAYER_TITLES, _data_url, _Layer, _ordered


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


def _cards_html(data: Mapping[str, Any]) -> str:
    """The headline cards: CO2e stock (± sd), mean AGB, AOI area, tree cover, the run's energy and CO2e."""
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
    return cards_html


def _tree_cover_html(tc: Mapping[str, Any]) -> str:
    """The tree-cover table (tree area and percent per polygon and for the whole AOI)."""
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
    return (
        f"<h3>Tree cover ({_esc(tc['tree_class'])})</h3>"
        + _table(["area", "tree area (ha)", "tree cover (%)"], trow, "classes")
    )


def _footprint_html(data: Mapping[str, Any], figs: Mapping[str, Path], entries: Mapping[str, Any]) -> str:
    """Section "Footprint": energy / CO2e of training and of this assessment, the layers' timings, engine options."""
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
    return (
        "<h2>Footprint</h2>"
        + (_img(figs["footprint"], "footprint") if "footprint" in figs else "")
        + fp_tab
        + "<p class=\"note\">Energy and CO2e measured with codecarbon (offline); 'method' says whether CPU power was "
        "measured (RAPL) or estimated from CPU load and TDP.</p>"
        + _table(["layer", "source", "time (s)", "pixels", "CRS"], lt)
        + f'<p class="note">Engine options: {_esc(json.dumps(opts))}</p>'
    )


def _provenance_html(data: Mapping[str, Any]) -> str:
    """Section "Provenance": input files (path, SHA-256, CRS, size, bands), models, software versions."""
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
    return (
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


def _summary_html(data: Mapping[str, Any]) -> str:
    """The key-figures table (:func:`terracarbon.assess.summary.summary_rows`)."""
    return _table(
        ["quantity", "value"],
        [
            [_td(k), _cell(v, 2) if isinstance(v, (int, float)) else _td(v)]
            for k, v in summary_rows(data).items()
        ],
    )
