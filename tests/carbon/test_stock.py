"""Carbon stocks: hand-computed totals (projected and EPSG:4326), reprojection, polygons, uncertainty, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Geod, Transformer
from shapely.geometry import Polygon, box, mapping
from typer.testing import CliRunner

from terracarbon.carbon import CO2_PER_C, agb_to_carbon, agb_to_co2e, carbon_stock, carbon_to_co2e
from terracarbon.errors import ConfigError, InputError
from terracarbon.raster.io import write_geotiff
from terracarbon.raster.zonal import class_areas, geometry_area_m2, pixel_areas_m2, read_aoi, zonal_stats

UTM = "EPSG:32633"
X0, Y0, PX = 500000.0, 6000000.0, 10.0
TR = Affine(PX, 0, X0, 0, -PX, Y0)
# true area of a 10 m pixel on the UTM central meridian: 100 m² / k0² (k0 = 0.9996, areal scale 0.9992)
PX_HA = PX * PX / 1e4 / 0.9996**2


def _geojson(path, geoms_lonlat, props=None):
    feats = [
        {"type": "Feature", "properties": (props or [{}] * len(geoms_lonlat))[i], "geometry": mapping(g)}
        for i, g in enumerate(geoms_lonlat)
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def _utm_box_to_lonlat(c0, c1, r0, r1):
    """A box over pixel-centre columns c0..c1 and rows r0..r1 (margins 0.3 px), as an EPSG:4326 polygon."""
    x0, x1 = X0 + (c0 - 0.3) * PX, X0 + (c1 + 1.3) * PX
    y0, y1 = Y0 - (r1 + 1.3) * PX, Y0 - (r0 - 0.3) * PX
    tr = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return Polygon([tr.transform(x, y) for x, y in ring])


@pytest.fixture
def agb_utm(tmp_path):
    agb = np.arange(6 * 8, dtype=np.float32).reshape(6, 8) * 10.0  # Mg/ha
    agb[0, 0] = np.nan
    std = np.full_like(agb, 5.0)
    std[:, 4:] = 10.0
    path = tmp_path / "agb.tif"
    write_geotiff(
        path,
        np.stack([agb, std]),
        crs=UTM,
        transform=TR,
        nodata=float("nan"),
        band_descriptions=["AGB", "AGB_STD"],
    )
    return path, agb, std


def test_conversions():
    assert agb_to_carbon(100.0) == pytest.approx(47.0)
    assert agb_to_carbon(100.0, 0.5) == pytest.approx(50.0)
    assert carbon_to_co2e(12.0) == pytest.approx(44.0)
    assert agb_to_co2e(np.array([100.0]))[0] == pytest.approx(100 * 0.47 * 44 / 12)
    with pytest.raises(ConfigError):
        agb_to_carbon(1.0, 1.5)


def test_projected_hand_computation_and_aoi_reprojection(tmp_path, agb_utm):
    path, agb, std = agb_utm
    aoi = _geojson(tmp_path / "aoi.geojson", [_utm_box_to_lonlat(1, 3, 1, 2)])  # EPSG:4326 AOI
    res = carbon_stock(path, aoi, method="centre")
    sel = agb[1:3, 1:4].astype(float)
    area_ha = sel.size * PX_HA
    assert res.n_pixels == 6 and res.nodata_pixels == 0
    # the polygon has 0.3 px margins around its 3 x 2 pixels
    assert res.aoi_coverage == pytest.approx(6 / (2.6 * 3.6), rel=1e-4)
    # the default coverage weights count the 0.3 px margins too: the whole polygon, i.e. its own area
    cov = carbon_stock(path, aoi)
    assert cov.method == "coverage" and cov.aoi_coverage == pytest.approx(1.0, rel=1e-4)
    assert cov.area_ha == pytest.approx(2.6 * 3.6 * PX_HA, rel=1e-4)
    assert res.area_ha == pytest.approx(area_ha)
    assert res.agb_mean_mg_per_ha == pytest.approx(sel.mean())
    assert res.agb_total_mg == pytest.approx(sel.sum() * PX_HA)  # 0.01 ha per pixel / UTM areal scale
    assert res.carbon_total_mg == pytest.approx(sel.sum() * PX_HA * 0.47)
    assert res.co2e_total_t == pytest.approx(sel.sum() * PX_HA * 0.47 * CO2_PER_C)
    # uncertainty from the AGB_STD band: correlated = sum(sigma*A); independent = sqrt(sum((sigma*A)^2))
    s = std[1:3, 1:4].astype(float) * PX_HA
    assert res.uncertainty_source and "band 2" in res.uncertainty_source
    assert res.agb_total_std_mg_correlated == pytest.approx(s.sum())
    assert res.agb_total_std_mg_independent == pytest.approx(math.sqrt((s**2).sum()))
    assert res.co2e_total_std_t_correlated == pytest.approx(s.sum() * 0.47 * CO2_PER_C)
    d = json.loads(res.to_json())
    for k in (
        "area_ha",
        "agb_mean_mg_per_ha",
        "agb_total_mg",
        "carbon_total_mg",
        "co2e_total_t",
        "carbon_fraction",
        "n_pixels",
        "nodata_pixels",
        "polygons",
    ):
        assert k in d
    # other carbon fraction
    assert carbon_stock(path, aoi, carbon_fraction=0.5, std=None, method="centre").carbon_total_mg == pytest.approx(
        sel.sum() * PX_HA * 0.5
    )


def test_nodata_and_per_polygon_sums(tmp_path, agb_utm):
    path, agb, _ = agb_utm
    polys = [_utm_box_to_lonlat(0, 1, 0, 1), _utm_box_to_lonlat(4, 7, 2, 5), _utm_box_to_lonlat(2, 3, 0, 5)]
    aoi = _geojson(tmp_path / "p.geojson", polys, [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    res = carbon_stock(path, aoi, std="none", method="centre")
    assert [p["name"] for p in res.polygons] == ["a", "b", "c"]
    a = res.polygons[0]
    assert a["n_pixels"] == 4 and a["nodata_pixels"] == 1
    assert a["agb_total_mg"] == pytest.approx(np.nansum(agb[0:2, 0:2]) * PX_HA)
    assert res.nodata_pixels == 1
    assert res.agb_total_mg == pytest.approx(sum(p["agb_total_mg"] for p in res.polygons))
    assert res.area_ha == pytest.approx(sum(p["area_ha"] for p in res.polygons))
    assert res.valid_area_ha == pytest.approx(res.area_ha - PX_HA)
    assert res.agb_total_std_mg_correlated is None
    # overlapping polygons: the union counts each pixel once
    over = _geojson(tmp_path / "o.geojson", [_utm_box_to_lonlat(0, 3, 0, 3), _utm_box_to_lonlat(2, 5, 2, 5)])
    r2 = carbon_stock(path, over, method="centre")
    assert r2.n_pixels == 16 + 16 - 4
    assert r2.agb_total_mg < sum(p["agb_total_mg"] for p in r2.polygons)


def test_companion_std_raster_and_gpkg(tmp_path):
    agb = np.full((4, 4), 100.0, dtype=np.float32)
    write_geotiff(tmp_path / "map.tif", agb, crs=UTM, transform=TR, nodata=float("nan"))
    write_geotiff(tmp_path / "map_std.tif", agb * 0.2, crs=UTM, transform=TR, nodata=float("nan"))
    import geopandas as gpd

    gdf = gpd.GeoDataFrame({"id": [7]}, geometry=[box(X0 + 3, Y0 - 37, X0 + 37, Y0 - 3)], crs=UTM).to_crs(
        3857
    )
    gdf.to_file(tmp_path / "aoi.gpkg", driver="GPKG")
    res = carbon_stock(tmp_path / "map.tif", tmp_path / "aoi.gpkg", method="centre")
    assert res.n_pixels == 16
    assert res.agb_total_mg == pytest.approx(16 * 100 * PX_HA)
    assert res.uncertainty_source.endswith("map_std.tif")
    assert res.agb_total_std_mg_correlated == pytest.approx(16 * 20 * PX_HA)
    assert res.agb_total_std_mg_independent == pytest.approx(4 * 20 * PX_HA)


def test_geographic_raster_true_areas(tmp_path):
    # 0.01 degree pixels at 60-59.95 N: rows have different true areas
    tr = Affine(0.01, 0, 10.0, 0, -0.01, 60.0)
    agb = np.full((5, 6), 200.0, dtype=np.float32)
    write_geotiff(tmp_path / "geo.tif", agb, crs="EPSG:4326", transform=tr, nodata=float("nan"))
    areas = pixel_areas_m2(tr, "EPSG:4326", (5, 6))
    geod = Geod(ellps="WGS84")
    for r in (0, 4):
        lat1, lat0 = 60.0 - 0.01 * r, 60.0 - 0.01 * (r + 1)
        lons = np.linspace(10.0, 10.01, 50)
        ring_lon = [10.0, *lons, 10.01, *lons[::-1]]
        ring_lat = [lat0, *[lat0] * 50, lat1, *[lat1] * 50]
        ref, _ = geod.polygon_area_perimeter(ring_lon, ring_lat)
        assert areas[r, 0] == pytest.approx(abs(ref), rel=1e-5)
    assert areas[0, 0] < areas[4, 0]  # farther north, smaller
    assert areas[0, 0] == pytest.approx(
        0.01 * 111_000 * 0.01 * 111_000 * math.cos(math.radians(60)), rel=0.02
    )
    aoi = _geojson(tmp_path / "a.geojson", [box(10.003, 59.962, 10.047, 59.998)])  # cols 0..4, rows 0..3
    res = carbon_stock(tmp_path / "geo.tif", aoi, method="centre")
    assert res.n_pixels == 5 * 4
    expected_area = areas[0:4, 0:5].sum()
    assert res.area_ha == pytest.approx(expected_area / 1e4, rel=1e-9)
    assert res.agb_total_mg == pytest.approx(200 * expected_area / 1e4, rel=1e-9)
    assert res.aoi_area_ha == pytest.approx(
        abs(geod.geometry_area_perimeter(box(10.003, 59.962, 10.047, 59.998))[0]) / 1e4, rel=1e-6
    )


def test_errors(tmp_path, agb_utm):
    path, _, _ = agb_utm
    far = _geojson(tmp_path / "far.geojson", [box(100.0, 10.0, 100.1, 10.1)])
    with pytest.raises(InputError, match="far.geojson.*outside the raster"):
        carbon_stock(path, far)
    bad = tmp_path / "bad.geojson"
    bad.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(InputError, match="bad.geojson"):
        carbon_stock(path, bad)
    empty = tmp_path / "empty.geojson"
    empty.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match="empty.geojson.*no features"):
        carbon_stock(path, empty)
    with pytest.raises(InputError, match="missing.geojson"):
        carbon_stock(path, tmp_path / "missing.geojson")
    nocrs = tmp_path / "nocrs.tif"
    with rasterio.open(nocrs, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32") as ds:
        ds.write(np.ones((1, 4, 4), dtype=np.float32))
    with pytest.raises(InputError, match="nocrs.tif.*CRS"):
        carbon_stock(nocrs, None)
    trunc = tmp_path / "trunc.tif"
    trunc.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match="trunc.tif"):
        carbon_stock(trunc, None)


def test_cli_json_table_and_exit_codes(tmp_path, agb_utm):
    from terracarbon.cli import app

    path, agb, _ = agb_utm
    aoi = _geojson(tmp_path / "aoi.geojson", [_utm_box_to_lonlat(1, 3, 1, 2), _utm_box_to_lonlat(5, 6, 3, 4)])
    runner = CliRunner()
    res = runner.invoke(app, ["carbon", "stock", str(path), "--aoi", str(aoi), "--json", "--method", "centre"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)  # exactly one JSON object
    exp = (agb[1:3, 1:4].sum() + agb[3:5, 5:7].sum()) * PX_HA
    assert obj["agb_total_mg"] == pytest.approx(exp)
    assert obj["co2e_total_t"] == pytest.approx(exp * 0.47 * 44 / 12)
    assert len(obj["polygons"]) == 2
    res = runner.invoke(
        app, ["carbon", "stock", str(path), "--aoi", str(aoi), "--out", str(tmp_path / "r.json"), "--method", "centre"]
    )
    assert res.exit_code == 0 and "CO2e" in res.stdout
    assert json.loads((tmp_path / "r.json").read_text())["n_pixels"] == 10
    half = _geojson(tmp_path / "half.geojson", [_utm_box_to_lonlat(4, 11, 0, 5)])  # half outside the raster
    res = runner.invoke(app, ["carbon", "stock", str(path), "--aoi", str(half)])
    assert res.exit_code == 0 and "covers only" in res.stdout
    far = _geojson(tmp_path / "far.geojson", [box(100.0, 10.0, 100.1, 10.1)])
    res = runner.invoke(app, ["carbon", "stock", str(path), "--aoi", str(far), "--json"])
    assert res.exit_code == 2
    assert "far.geojson" in res.output


def test_zonal_and_class_areas(tmp_path):
    lc = np.array([[1, 1, 2, 2], [1, 3, 3, 2], [0, 0, 3, 3], [1, 2, 3, 255]], dtype=np.uint8)
    write_geotiff(tmp_path / "lc.tif", lc, crs=UTM, transform=TR, nodata=255)
    ca = class_areas(tmp_path / "lc.tif", None, ["bg", "forest", "grass", "water", "unused"])
    assert ca["forest"]["pixels"] == 4 and ca["forest"]["area_ha"] == pytest.approx(4 * PX_HA)
    assert ca["unused"]["pixels"] == 0
    assert ca.nodata_pixels == 1
    assert (
        sum(v["area_ha"] for v in ca.values()) == pytest.approx(ca.total_area_ha) == pytest.approx(15 * PX_HA)
    )
    assert sum(v["percent"] for v in ca.values()) == pytest.approx(100.0)
    aoi = _geojson(tmp_path / "a.geojson", [_utm_box_to_lonlat(0, 1, 0, 1)])
    ca2 = class_areas(tmp_path / "lc.tif", aoi, {1: "forest", 3: "water"}, include_empty=False, method="centre")
    assert ca2["forest"]["pixels"] == 3 and ca2["water"]["pixels"] == 1
    assert ca2.total_area_ha == pytest.approx(4 * PX_HA)
    assert ca2.aoi_area_ha == pytest.approx(2.6 * 2.6 * PX_HA, rel=1e-4)
    zs = zonal_stats(tmp_path / "lc.tif", aoi, method="centre")
    assert zs["total"]["n_pixels"] == 4 and zs["total"]["max"] == 3
    gdf = read_aoi(aoi, UTM)
    assert gdf.crs.to_epsg() == 32633 and len(gdf) == 1


def test_windowed_matches_whole(tmp_path):
    rng = np.random.default_rng(0)
    agb = rng.uniform(0, 300, (300, 280)).astype(np.float32)
    write_geotiff(tmp_path / "big.tif", agb, crs=UTM, transform=TR, nodata=float("nan"))
    aoi = _geojson(tmp_path / "a.geojson", [_utm_box_to_lonlat(10, 250, 20, 290)])
    small = carbon_stock(tmp_path / "big.tif", aoi, tile=64, method="centre")
    whole = carbon_stock(tmp_path / "big.tif", aoi, tile=4096, method="centre")
    assert small.n_pixels == whole.n_pixels == 241 * 271
    assert small.agb_total_mg == pytest.approx(whole.agb_total_mg, rel=1e-9)
    assert small.agb_total_mg == pytest.approx(agb[20:291, 10:251].astype(float).sum() * PX_HA, rel=1e-6)


def test_projected_true_areas_equal_area_and_web_mercator():
    # equal-area projection: nominal area exactly
    ea = pixel_areas_m2(Affine(10, 0, -2e6, 0, -10, 3e6), "EPSG:6933", (4, 4))
    assert ea == pytest.approx(np.full((4, 4), 100.0), rel=1e-9)
    # Web Mercator at 60 N: nominal area shrinks by ~cos^2(lat); the pixels tile the raster's geodesic footprint
    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(10.0, 60.0)
    tr = Affine(100, 0, x, 0, -100, y)
    areas = pixel_areas_m2(tr, "EPSG:3857", (300, 200))
    assert areas[0, 0] == pytest.approx(1e4 * math.cos(math.radians(60)) ** 2, rel=0.01)
    assert areas[0, 0] < areas[-1, 0]  # farther north, smaller
    footprint = box(x, y - 300 * 100, x + 200 * 100, y)
    assert areas.sum() == pytest.approx(geometry_area_m2(footprint, "EPSG:3857"), rel=1e-4)
