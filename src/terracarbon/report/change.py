"""The stock-change part of the report: the ΔCO2e map, the "Carbon stock change" section, a stand-alone page.

:func:`change_figure` draws a ΔCO2e raster (red = emission, blue = removal) with the parcel outlines;
:func:`change_section_html` renders a :func:`terracarbon.carbon.carbon_change` result as tables with the sign
convention and uncertainties; :func:`build_change_report` writes them as one self-contained page. :func:`build_report`
(:mod:`terracarbon.report.report`) adds the section when the run holds a change result.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import InputError
from terracarbon.report.figures import _poly_label
from terracarbon.report.sections import _CSS, _cell, _esc, _img, _num, _table, _td
from terracarbon.utils import atomic_path, atomic_write_text

__all__ = ["build_change_report", "change_figure", "change_section_html"]


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
