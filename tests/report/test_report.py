"""The HTML report: offline, figures, stock figures equal the JSON; rendered in headless Chromium (Playwright)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from PIL import Image
from pyproj import Transformer

from terracarbon.assess.assess import FORMAT
from terracarbon.carbon import carbon_stock
from terracarbon.errors import InputError
from terracarbon.raster.io import write_geotiff
from terracarbon.raster.zonal import class_areas
from terracarbon.report import build_report
from terracarbon.utils import atomic_write_json

CHROMIUM = Path("/usr/bin/chromium")
CRS = "EPSG:32722"
T = Affine(10.0, 0, 350000.0, 0, -10.0, 9650000.0)
LC = {"1": "forest", "2": "grass", "3": "water"}
LC_COLOURS = {"1": [30, 110, 30, 255], "2": [200, 215, 110, 255], "3": [50, 110, 200, 255]}


def _square(x0, y0, size):
    tr = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    pts = [(x0, y0), (x0 + size, y0), (x0 + size, y0 - size), (x0, y0 - size), (x0, y0)]
    return [list(tr.transform(x, y)) for x, y in pts]


def make_run(run: Path) -> dict:
    """A small assessment run written directly: 64 px layers, two parcels, no model, no training."""
    rng = np.random.default_rng(0)
    (run / "layers").mkdir(parents=True)
    yy, xx = np.mgrid[0:64, 0:64]
    agb = (50 + 3 * xx + rng.normal(0, 5, (64, 64))).astype("float32")
    agb[:4, :4] = -9999.0  # nodata corner
    write_geotiff(
        run / "layers/biomass.tif", agb, crs=CRS, transform=T, nodata=-9999.0, band_descriptions=["agb"]
    )
    std = np.where(agb == -9999.0, -9999.0, 20.0).astype("float32")
    write_geotiff(run / "layers/biomass_std.tif", std, crs=CRS, transform=T, nodata=-9999.0)
    lc = np.where(yy < 20, 3, np.where(xx < 32, 1, 2)).astype("uint8")
    write_geotiff(
        run / "layers/landcover.tif",
        lc,
        crs=CRS,
        transform=T,
        nodata=255,
        colormap={int(k): v for k, v in LC_COLOURS.items()},
    )
    trees = (lc == 1).astype("uint8")
    write_geotiff(run / "layers/tree_cover.tif", trees, crs=CRS, transform=T, nodata=255)
    feats = [
        {
            "type": "Feature",
            "properties": {"name": "north parcel"},
            "geometry": {"type": "Polygon", "coordinates": [_square(350050.0, 9649950.0, 200.0)]},
        },
        {
            "type": "Feature",
            "properties": {"name": "south parcel"},
            "geometry": {"type": "Polygon", "coordinates": [_square(350300.0, 9649700.0, 250.0)]},
        },
    ]
    (run / "aoi.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    aoi = run / "aoi.geojson"
    stock = carbon_stock(run / "layers/biomass.tif", aoi).to_dict()

    def areas(path, names):
        total = class_areas(path, aoi, names).to_dict()
        return {"total": total, "polygons": []}

    lc_areas = areas(run / "layers/landcover.tif", {int(k): v for k, v in LC.items()})
    tc_areas = areas(run / "layers/tree_cover.tif", {0: "no tree", 1: "tree"})
    tree = tc_areas["total"]["classes"]["tree"]
    layer = {"crs": CRS, "shape": [64, 64], "pixel_size": [10.0, 10.0], "wall_s": 0.1}
    data = {
        "format": FORMAT,
        "created": "2026-01-01T00:00:00+00:00",
        "wall_time_s": 1.0,
        "scene_dir": str(run),
        "aoi": str(aoi),
        "aoi_polygons": 2,
        "aoi_geojson": "aoi.geojson",
        "options": {"scheduler": None, "tile_size": 256},
        "models": {
            "biomass": {
                "checkpoint": "/models/biomass.pt",
                "sha256": "ab" * 32,
                "arch": "unet",
                "task": "regression",
                "metrics": {"rmse": 20.0, "r2": 0.8},
            }
        },
        "layers": {
            "biomass": {
                "path": "layers/biomass.tif",
                "kind": "continuous",
                "units": "Mg/ha",
                "source": "model",
                "description": "AGB",
                **layer,
            },
            "landcover": {
                "path": "layers/landcover.tif",
                "kind": "classes",
                "class_names": LC,
                "colormap": LC_COLOURS,
                "source": "derived",
                "description": "LC band",
                **layer,
            },
            "tree_cover": {
                "path": "layers/tree_cover.tif",
                "kind": "classes",
                "class_names": {"0": "no tree", "1": "tree"},
                "source": "derived",
                "description": "CH >= 5 m",
                **layer,
            },
        },
        "skipped": [],
        "stock": stock,
        "class_areas": {"landcover": lc_areas, "tree_cover": tc_areas},
        "tree_cover": {
            "tree_class": "tree",
            "source": "derived",
            "area_ha": tree["area_ha"],
            "percent": tree["percent"],
            "classified_area_ha": tc_areas["total"]["total_area_ha"],
            "polygons": [],
        },
        "footprint": {
            "assessment": {
                "energy_kwh": 0.0001,
                "emissions_g": 0.04,
                "duration_s": 3.0,
                "method": "estimated from CPU load (TDP)",
                "country_iso_code": "USA",
            },
            "training": {
                "biomass": {"energy_kwh": 0.01, "emissions_g": 4.0, "duration_s": 100.0, "method": "RAPL"}
            },
        },
        "provenance": {
            "inputs": [{"role": "stack", "path": "/x/stack.tif", "sha256": "cd" * 32, "size_bytes": 10}],
            "software": {"python": "3.11"},
        },
    }
    atomic_write_json(run / "assessment.json", data)
    return data


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    data = make_run(run)
    html = build_report(run)
    return run, data, html


def test_report_is_self_contained(report):
    run, data, html = report
    doc = html.read_text(encoding="utf-8")
    # nothing is loaded from the network: no remote script/link/img, no CSS url() to http
    assert not re.search(r"""<(script|img|link|iframe)[^>]*\s(src|href)=["']?(https?:)?//""", doc)
    assert not re.search(r"""url\(["']?(https?:)?//""", doc)
    assert "cdn.jsdelivr" not in doc and "code.jquery.com" not in doc
    assert '"use strict"' in doc or "Leaflet" in doc  # Leaflet inlined
    assert doc.count('class="legend"') == 3
    # the stock figures on the page are the JSON's
    st = data["stock"]
    for key, field in (
        ("co2e", "co2e_total_t"),
        ("carbon", "carbon_total_mg"),
        ("co2e-sd", "co2e_total_std_t_correlated"),
    ):
        m = re.search(rf'id="stock-{key}-total" data-value="([^"]+)">([^<]+)<', doc)
        assert m, key
        assert float(m.group(1)) == st[field]
        assert m.group(2) == f"{st[field]:,.1f}"
    for i in range(2):
        assert f'id="stock-co2e-zone-{i}"' in doc
    assert "north parcel" in doc and "south parcel" in doc


def test_report_figures_are_pngs(report):
    run, data, _ = report
    names = {p.stem for p in (run / "figures").glob("*.png")}
    assert names >= {
        "map_biomass",
        "map_landcover",
        "map_tree_cover",
        "stock",
        "class_areas_landcover",
        "class_areas_tree_cover",
        "footprint",
    }
    for p in (run / "figures").glob("*.png"):
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width > 100 and im.height > 100


def test_report_errors(tmp_path):
    with pytest.raises(InputError, match="no assessment record"):
        build_report(tmp_path)
    run = tmp_path / "run"
    make_run(run)
    (run / "layers/landcover.tif").unlink()
    with pytest.raises(InputError, match="landcover"):
        build_report(run)


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="/usr/bin/chromium is absent; run scripts/install-browser.sh"
)
def test_report_in_headless_chromium(report, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    run, data, html = report
    errors: list[str] = []
    remote: list[str] = []
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=args,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = ctx.new_page()
            page.on(
                "console",
                lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url[:100]}"))
            page.on(
                "request",
                lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None,
            )
            page.goto(html.as_uri())
            page.wait_for_selector(".leaflet-overlay-pane img.tc-layer-biomass")

            def overlay_ok(name: str) -> bool:
                return page.evaluate(
                    """n => { const im = document.querySelector('.leaflet-overlay-pane img.tc-layer-' + n);
                              return !!im && im.complete && im.naturalWidth > 0 && im.naturalHeight > 0; }""",
                    name,
                )

            page.wait_for_function(
                "() => { const im = document.querySelector('.leaflet-overlay-pane img.tc-layer-biomass');"
                " return im && im.complete && im.naturalWidth > 0; }"
            )
            assert overlay_ok("biomass")
            # the AOI polygons are drawn (SVG paths in the overlay pane)
            assert page.locator(".leaflet-overlay-pane path.leaflet-interactive").count() == 2
            # switch layers through the layer control: each overlay renders
            radios = page.locator(".leaflet-control-layers-base input[type=radio]")
            assert radios.count() == 3
            for i, name in ((1, "landcover"), (2, "tree_cover"), (0, "biomass")):
                radios.nth(i).check()
                page.wait_for_function(
                    "n => { const im = document.querySelector('.leaflet-overlay-pane img.tc-layer-' + n);"
                    " return im && im.complete && im.naturalWidth > 0; }",
                    arg=name,
                )
                assert overlay_ok(name)
                assert page.locator(".leaflet-overlay-pane img.leaflet-image-layer").count() == 1
            # the overlay sits where the layer is: its box overlaps the AOI outline's box
            img_box = page.locator(".leaflet-overlay-pane img.tc-layer-biomass").bounding_box()
            aoi_box = page.locator(".leaflet-overlay-pane path.leaflet-interactive").first.bounding_box()
            assert (
                img_box["x"] < aoi_box["x"] + aoi_box["width"]
                and aoi_box["x"] < img_box["x"] + img_box["width"]
            )
            # the stock figure on the page equals the JSON
            cell = page.locator("#stock-co2e-total")
            assert float(cell.get_attribute("data-value")) == data["stock"]["co2e_total_t"]
            assert cell.inner_text() == f"{data['stock']['co2e_total_t']:,.1f}"
            assert (
                float(page.locator("#headline-co2e").get_attribute("data-value"))
                == data["stock"]["co2e_total_t"]
            )
            assert page.locator(".legend").count() == 3
            # all chart images decoded
            assert page.evaluate(
                "() => Array.from(document.querySelectorAll('img.figure'))"
                ".every(i => i.complete && i.naturalWidth > 0)"
            )
            if shutil.which("true"):
                page.screenshot(path=str(tmp_path / "report.png"))
        finally:
            ctx.close()
    assert errors == []
    assert remote == []
