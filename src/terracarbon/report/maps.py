"""The layers as a reader of the report sees them: decimated reads, colours, and the Leaflet map (folium).

:func:`_read_layer` reads a layer of the run from its overviews (at most ``max_px`` on a side), colours it (viridis
for continuous maps, the layer's colour table or tab10 for classes) and reprojects it to Web Mercator, the plane in
which Leaflet stretches image overlays; the :class:`_Layer` it returns also keeps the native-CRS image for the
matplotlib figures. :func:`_map_html` renders the folium map (one overlay shown at a time, the AOI on top, no
base-map tiles) and :func:`_inline_assets` the vendored Leaflet JS/CSS (``assets/``, BSD-2-Clause) with its images
as data URLs, so the page loads nothing from the network.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import InputError

ASSETS = Path(__file__).with_name("assets")


_LAYER_TITLES = {"biomass": "Aboveground biomass", "landcover": "Land cover", "tree_cover": "Tree cover"}


_ORDER = ("biomass", "landcover", "tree_cover")


_CMAP = "viridis"


def _ordered(layers: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return sorted(layers.items(), key=lambda kv: (_ORDER.index(kv[0]) if kv[0] in _ORDER else 99, kv[0]))


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


def _inline_assets() -> tuple[str, str]:
    js = (ASSETS / "leaflet.js").read_text(encoding="utf-8")
    css = (ASSETS / "leaflet.css").read_text(encoding="utf-8")
    for img in ("layers-2x.png", "layers.png"):
        url = _data_url((ASSETS / img).read_bytes())
        css = css.replace(f"url(images/{img})", f"url({url})")
    css = css.replace("url(images/marker-icon.png)", "none")
    js = js.replace("</script", "<\\/script")
    return js, css
