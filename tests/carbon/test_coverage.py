"""Coverage-weighted zonal statistics: areas equal geodesic polygon areas; a constant map gives the exact stock."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import Geod, Transformer
from shapely import affinity
from shapely.geometry import Point, Polygon, box, mapping

from terracarbon.carbon import carbon_stock
from terracarbon.errors import ConfigError, InputError
from terracarbon.raster.io import write_geotiff
from terracarbon.raster.zonal import class_areas, read_aoi, zonal_stats

UTM = "EPSG:32633"
X0, Y0, PX = 498000.0, 6001000.0, 10.0  # raster straddles the central meridian (500 000 m)
GEOD = Geod(ellps="WGS84")


def _geodesic_ha(geom_lonlat) -> float:
    # pyproj Geod sums signed ring areas: orient exteriors counter-clockwise and holes clockwise first
    return abs(GEOD.geometry_area_perimeter(shapely.orient_polygons(geom_lonlat))[0]) / 1e4


def _to_lonlat(geom, crs=UTM):
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    dense = shapely.segmentize(geom, 1.0)  # 1 m edges: the reprojected ring follows the true (curved) edges
    return shapely.transform(dense, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))


def _write_aoi(path, geoms, crs, names=None):
    import geopandas as gpd

    gdf = gpd.GeoDataFrame({"name": names or [f"p{i}" for i in range(len(geoms))]}, geometry=geoms, crs=crs)
    gdf.to_file(path, driver="GPKG")
    return path


def _small_polygons_utm(cx, cy):
    """1 ha (rotated square), 0.1 ha (disc), a polygon with a hole, and a thin strip crossing a pixel row."""
    sq = affinity.rotate(box(cx - 50, cy - 50, cx + 50, cy + 50), 17.0, origin=(cx, cy))
    sq = affinity.translate(sq, 3.7, -1.3)
    disc = Point(cx + 250.3, cy + 80.9).buffer(math.sqrt(1000 / math.pi), 64)
    holed = Polygon(
        box(cx - 300.4, cy + 150.2, cx - 180.6, cy + 270.1).exterior.coords,
        [box(cx - 260.0, cy + 190.0, cx - 220.5, cy + 230.5).exterior.coords],
    )
    y_row = Y0 - 37 * PX  # a pixel-row boundary; the strip crosses it
    strip = Polygon([(cx + 100.2, y_row - 3.3), (cx + 260.7, y_row - 1.1), (cx + 259.9, y_row + 4.4), (cx + 99.8, y_row + 2.9)])
    return [sq, disc, holed, strip]


@pytest.fixture(scope="module")
def utm_const(tmp_path_factory):
    d = tmp_path_factory.mktemp("cov")
    agb = np.full((120, 120), 100.0, dtype=np.float32)
    path = d / "const.tif"
    write_geotiff(path, agb, crs=UTM, transform=Affine(PX, 0, X0, 0, -PX, Y0), nodata=float("nan"))
    return d, path


def test_utm_areas_equal_geodesic_and_exact_stock(utm_const):
    d, path = utm_const
    polys = _small_polygons_utm(X0 + 600.0, Y0 - 600.0)
    aoi = _write_aoi(d / "small.gpkg", polys, UTM)
    res = carbon_stock(path, aoi, std=None)
    assert res.method == "coverage" and res.terms == "agb"
    expected = [1.0, 0.1]
    for i, (p, poly) in enumerate(zip(res.polygons, polys)):
        ref = _geodesic_ha(_to_lonlat(poly))
        if i < 2:
            assert ref == pytest.approx(expected[i] / 0.9996**2 * 0.9996**2, rel=2e-3)  # ~1 ha, ~0.1 ha
        assert p["area_ha"] == pytest.approx(ref, rel=1e-4), p["name"]  # within 0.01 %
        assert p["aoi_area_ha"] == pytest.approx(ref, rel=1e-6)
        assert p["agb_total_mg"] == pytest.approx(100.0 * p["area_ha"], rel=1e-9)  # exact stock, constant map
        assert p["agb_total_mg"] == pytest.approx(100.0 * ref, rel=1e-4)
        assert p["agb_mean_mg_per_ha"] == pytest.approx(100.0, rel=1e-9)
        assert p["warnings"] == []
    assert res.aoi_coverage == pytest.approx(1.0, rel=1e-4)
    # the pixel-centre rule stays available, and is off by more on these small parcels
    centre = carbon_stock(path, aoi, std=None, method="centre")
    assert centre.method == "centre"
    err_cov = abs(res.polygons[1]["area_ha"] / res.polygons[1]["aoi_area_ha"] - 1)
    err_cen = abs(centre.polygons[1]["area_ha"] / centre.polygons[1]["aoi_area_ha"] - 1)
    assert err_cen > 10 * err_cov


def test_geographic_areas_equal_geodesic(tmp_path):
    tr = Affine(0.0001, 0, 10.0, 0, -0.0001, 5.01)  # ~11 m pixels near 5 N
    write_geotiff(tmp_path / "geo.tif", np.full((100, 100), 100.0, dtype=np.float32), crs="EPSG:4326",
                  transform=tr, nodata=float("nan"))
    to_utm = Transformer.from_crs("EPSG:4326", UTM, always_xy=True)
    cx, cy = to_utm.transform(10.005, 5.005)
    polys_utm = [affinity.translate(p, cx - (X0 + 600.0), cy - (Y0 - 600.0)) for p in _small_polygons_utm(X0 + 600.0, Y0 - 600.0)]
    polys = [_to_lonlat(p) for p in polys_utm]
    aoi = _write_aoi(tmp_path / "geo.gpkg", polys, "EPSG:4326")
    res = carbon_stock(tmp_path / "geo.tif", aoi, std=None)
    for p, poly in zip(res.polygons, polys):
        ref = _geodesic_ha(poly)
        assert p["area_ha"] == pytest.approx(ref, rel=1e-4), p["name"]
        assert p["agb_total_mg"] == pytest.approx(100.0 * ref, rel=1e-4)
    assert res.polygons[0]["area_ha"] == pytest.approx(1.0, rel=1e-2)  # ~1 ha (UTM 33 is 5 deg away)


def test_tiles_union_and_class_areas(tmp_path):
    rng = np.random.default_rng(3)
    agb = rng.uniform(0, 300, (150, 140)).astype(np.float32)
    tr = Affine(PX, 0, X0, 0, -PX, Y0)
    write_geotiff(tmp_path / "r.tif", agb, crs=UTM, transform=tr, nodata=float("nan"))
    a = box(X0 + 103.3, Y0 - 901.7, X0 + 777.7, Y0 - 88.8)
    b = affinity.translate(a, 211.1, -105.5)  # overlaps a
    aoi = _write_aoi(tmp_path / "o.gpkg", [a, b], UTM)
    small = zonal_stats(tmp_path / "r.tif", aoi, tile=32)
    whole = zonal_stats(tmp_path / "r.tif", aoi, tile=4096)
    assert small["total"]["total"] == pytest.approx(whole["total"]["total"], rel=1e-7)
    for zs, zw in zip(small["zones"], whole["zones"]):
        assert zs["area_ha"] == pytest.approx(zw["area_ha"], rel=1e-7)  # float32 coverage, area sampling
    u = a.union(b)
    assert whole["total"]["area_ha"] == pytest.approx(_geodesic_ha(_to_lonlat(u)), rel=1e-4)  # overlap once
    # class areas follow the same weights: a class boundary at column 50
    lc = np.where(np.arange(140)[None, :] < 50, 1, 2).astype(np.uint8).repeat(150, 0)
    write_geotiff(tmp_path / "lc.tif", lc, crs=UTM, transform=tr, nodata=255)
    one = _write_aoi(tmp_path / "a.gpkg", [a], UTM)
    ca = class_areas(tmp_path / "lc.tif", one, {1: "forest", 2: "crop"})
    area = _geodesic_ha(_to_lonlat(a))
    assert ca.method == "coverage"
    assert ca.total_area_ha == pytest.approx(area, rel=1e-4)
    part = box(X0 + 103.3, Y0 - 901.7, X0 + 500.0, Y0 - 88.8)
    assert ca["forest"]["area_ha"] == pytest.approx(_geodesic_ha(_to_lonlat(part)), rel=1e-4)


def test_bad_parcels_are_named(tmp_path, utm_const):
    d, path = utm_const
    inside = box(X0 + 100, Y0 - 200, X0 + 200, Y0 - 100)
    outside = box(X0 + 5000, Y0 - 200, X0 + 5100, Y0 - 100)
    half = box(X0 + 1150, Y0 - 200, X0 + 1250, Y0 - 100)  # raster ends at X0 + 1200
    bowtie = Polygon([(X0 + 300, Y0 - 300), (X0 + 400, Y0 - 400), (X0 + 400, Y0 - 300), (X0 + 300, Y0 - 400)])
    feats = [
        {"type": "Feature", "properties": {"name": n}, "geometry": None if g is None else mapping(g)}
        for n, g in [("ok", inside), ("far", outside), ("half", half), ("bowtie", bowtie), ("empty", None)]
    ]
    aoi = tmp_path / "bad.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": UTM}},
                               "features": feats}))
    res = carbon_stock(path, aoi, std=None)
    text = "\n".join(res.warnings)
    assert "#2 (far)" in text and "outside the raster" in text
    assert "#3 (half)" in text and "covers only 50.00 %" in text
    assert "#4 (bowtie)" in text and "Self-intersection" in text
    assert "#5 (empty)" in text and "empty geometry" in text
    names = [p["name"] for p in res.polygons]
    assert names == ["ok", "far", "half", "bowtie"]
    assert res.polygons[1]["n_pixels"] == 0 and res.polygons[1]["agb_total_mg"] == 0
    assert res.polygons[2]["area_ha"] == pytest.approx(0.5 * res.polygons[2]["aoi_area_ha"], rel=1e-4)
    gdf = read_aoi(aoi, UTM)
    assert len(gdf.attrs["warnings"]) == 2
    with pytest.raises(ConfigError, match="all_touched"):
        carbon_stock(path, aoi, method="coverage", all_touched=True)
    with pytest.raises(ConfigError, match="method"):
        zonal_stats(path, aoi, method="median")
    tiny = _write_aoi(tmp_path / "far.gpkg", [outside], UTM)
    with pytest.raises(InputError, match="far.gpkg.*outside the raster"):
        carbon_stock(path, tiny)
