"""Crowns over large orthomosaics: cross-tile merging, GeoPackage / GeoTIFF outputs, AOI summaries."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import Polygon, box

from terracarbon.data.synthetic.trees import Crown, make_orthomosaic
from terracarbon.errors import ConfigError, InputError
from terracarbon.trees.predict import (
    merge_crowns,
    predict_crowns,
    rasterize_crowns,
    tree_cover_summary,
    write_crowns,
)

CRS = "EPSG:32632"
X0, Y0, RES = 500_000.0, 5_200_000.0, 0.1
# tile_size 128, overlap 48 -> tiles start every 80 px: borders at x/y = 80 and 128 (and 160, 208)
CENTRES = [(128, 40), (80, 200), (200, 128), (40, 100), (180, 215), (230, 40), (40, 230)]
R = 11.0


def _circle(cx, cy, r=R, n=48):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)


def _world(poly_px):
    return Polygon([(X0 + RES * x, Y0 - RES * y) for x, y in poly_px])


@pytest.fixture(scope="module")
def ortho(tmp_path_factory):
    crowns = [Crown(_circle(cx, cy), "tree", (cx, cy), (R, R)) for cx, cy in CENTRES]
    path = tmp_path_factory.mktemp("ortho") / "ortho.tif"
    return make_orthomosaic(path, height=256, crowns=crowns, seed=4, crs=CRS, origin=(X0, Y0), resolution=RES)


def test_merge_crowns_joins_cross_tile_pieces_only():
    full = box(0, 0, 10, 10)
    left_piece = box(0, 0, 4, 10)  # the same crown cut by a tile border
    other = box(20, 0, 30, 10)
    touching = box(10, 0, 14, 10)  # a different crown touching the first one
    g, s, n = merge_crowns([left_piece, full, other, touching], [0.6, 0.9, 0.8, 0.7], [0, 1, 1, 0])
    assert len(g) == 3
    merged = g[int(np.argmax(n))]
    assert max(n) == 2 and merged.equals(full) and s[int(np.argmax(n))] == 0.9
    # within a tile, a nested duplicate / part is dropped (not unioned); touching neighbours stay apart
    g2, s2, n2 = merge_crowns([box(1, 1, 9, 9), full, touching], [0.95, 0.9, 0.8], [3, 3, 3])
    assert len(g2) == 2 and g2[0].equals(box(1, 1, 9, 9)) and s2 == [0.95, 0.8] and n2 == [1, 1]
    g3, _, _ = merge_crowns([box(1, 1, 9, 9), full], [0.95, 0.9], [3, 3], suppress_threshold=1.0)
    assert len(g3) == 2
    assert merge_crowns([], [], []) == ([], [], [])


def test_crown_spanning_tile_borders_comes_out_once(ortho, oracle_detector, tmp_path):
    dst = tmp_path / "crowns.gpkg"
    gdf = predict_crowns(
        oracle_detector, ortho.path, dst, tile_size=128, overlap=48, progress=False, track=False
    )
    out = gpd.read_file(dst, layer="crowns")
    assert out.crs.to_epsg() == 32632
    assert list(out.columns) == ["crown_id", "score", "area_m2", "n_tiles", "geometry"]
    assert len(out) == len(CENTRES) == len(gdf)
    truth = [_world(c.polygon) for c in ortho.crowns]
    for t in truth:
        hits = [g for g in out.geometry if g.intersects(t)]
        assert len(hits) == 1
        iou = hits[0].intersection(t).area / hits[0].union(t).area
        assert iou > 0.85
    # the crowns on tile borders were seen in several tiles and merged
    straddling = _world(_circle(128, 40)).centroid
    row = out[out.geometry.contains(straddling)].iloc[0]
    assert row["n_tiles"] >= 2
    assert row["area_m2"] == pytest.approx(np.pi * (R * RES) ** 2, rel=0.15)
    # without merging, the border crowns would be counted several times
    from terracarbon.trees.predict import detect_crowns

    geoms, scores, tiles, _ = detect_crowns(
        oracle_detector, ortho.path, tile_size=128, overlap=48, progress=False
    )
    unmerged, _, _ = merge_crowns(geoms, scores, tiles, merge_threshold=1.01, suppress_threshold=1.0)
    assert len(unmerged) > len(CENTRES)


def test_canopy_geotiff_and_aoi_summary(ortho, oracle_detector, tmp_path):
    gdf = predict_crowns(
        oracle_detector,
        ortho.path,
        tmp_path / "c.gpkg",
        tile_size=128,
        overlap=48,
        progress=False,
        track=False,
    )
    canopy = rasterize_crowns(gdf, ortho.path, tmp_path / "canopy.tif")
    with rasterio.open(canopy) as src:
        assert src.crs.to_epsg() == 32632 and src.transform == ortho.transform
        cover = src.read(1)
        assert set(np.unique(cover)) <= {0, 1}
        assert "tree" in src.tags()["class_names"]
    truth = ortho.cover
    iou = (truth & (cover == 1)).sum() / (truth | (cover == 1)).sum()
    assert iou > 0.9
    whole = tree_cover_summary(canopy, crowns=tmp_path / "c.gpkg")
    assert whole["tree_cover_percent"] == pytest.approx(100 * truth.mean(), abs=1.0)
    assert whole["area_ha"] == pytest.approx(256 * 256 * RES * RES / 1e4, rel=2e-3)  # true areas
    assert whole["crown_count"] == len(CENTRES)
    # AOI: the strip x < 100 px holds the crowns centred at x = 40, 40, 80
    aoi = tmp_path / "aoi.gpkg"
    strip = box(X0, Y0 - 25.6, X0 + 10.0, Y0)
    gpd.GeoDataFrame({"name": ["west"]}, geometry=[strip], crs=CRS).to_file(aoi, driver="GPKG")
    part = tree_cover_summary(canopy, crowns=gdf, aoi=aoi)
    assert part["crown_count"] == 3
    assert part["area_ha"] == pytest.approx(100 * 256 * RES * RES / 1e4, rel=2e-3)
    in_strip = truth[:, :100]
    assert part["tree_cover_percent"] == pytest.approx(100 * in_strip.mean(), abs=1.5)


def test_output_errors(tmp_path, ortho):
    with pytest.raises(ConfigError, match="GeoPackage"):
        write_crowns(gpd.GeoDataFrame(geometry=[], crs=CRS), tmp_path / "crowns.shp")
    with pytest.raises(InputError, match="does not exist"):
        predict_crowns(tmp_path / "missing.pt", ortho.path, tmp_path / "x.gpkg", progress=False)
