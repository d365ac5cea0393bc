"""Belowground biomass: the IPCC Table 4.4 ratios, total = AGB x (1 + R), zone rasters, per-zone carbon fraction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from affine import Affine
from shapely.geometry import box
from typer.testing import CliRunner

from terracarbon.carbon import R_TABLE, carbon_stock, root_shoot_ratio
from terracarbon.errors import ConfigError
from terracarbon.raster.io import write_geotiff

UTM = "EPSG:32633"
X0, Y0, PX = 500000.0, 6000000.0, 10.0
TR = Affine(PX, 0, X0, 0, -PX, Y0)
PX_HA = PX * PX / 1e4 / 0.9996**2


@pytest.mark.parametrize(
    "zone, agb, r",
    [
        ("boreal", 50, 0.39),
        ("boreal", 75, 0.24),  # a class limit belongs to the upper class
        ("boreal", 300, 0.24),
        ("tropical_dry", 10, 0.56),
        ("tropical_dry", 30, 0.28),
        ("tropical_moist_deciduous", 100, 0.20),
        ("tropical_moist_deciduous", 200, 0.24),
        ("Subtropical humid", 100, 0.20),
        ("temperate_conifer", 40, 0.40),
        ("temperate_conifer", 100, 0.29),
        ("temperate_conifer", 200, 0.20),
        ("temperate_broadleaf", 60, 0.46),
        ("temperate_broadleaf", 120, 0.23),
        ("temperate_broadleaf", 160, 0.24),
        ("temperate_eucalyptus", 40, 0.44),
        ("tropical_rainforest", 300, 0.37),
    ],
)
def test_r_table_against_ipcc_values(zone, agb, r):
    assert root_shoot_ratio(zone, agb) == pytest.approx(r)


def test_r_table_arrays_and_verification_flags():
    got = root_shoot_ratio("boreal", np.array([10.0, 74.9, 75.0, 500.0]))
    assert got.tolist() == [0.39, 0.39, 0.24, 0.24]
    assert R_TABLE["boreal"].verified and not R_TABLE["tropical_rainforest"].verified
    with pytest.raises(ConfigError, match="unknown ecological zone"):
        root_shoot_ratio("atlantis", 10)


@pytest.fixture
def const(tmp_path):
    write_geotiff(tmp_path / "agb.tif", np.full((20, 20), 100.0, dtype=np.float32), crs=UTM, transform=TR,
                  nodata=float("nan"))
    import geopandas as gpd

    gpd.GeoDataFrame({"name": ["a"]}, geometry=[box(X0 + 20, Y0 - 120, X0 + 120, Y0 - 20)], crs=UTM).to_file(
        tmp_path / "a.gpkg", driver="GPKG"
    )
    return tmp_path


def test_stock_with_bgb_and_zone_raster(const):
    d = const
    res = carbon_stock(d / "agb.tif", d / "a.gpkg", bgb=True, zone="boreal")
    area = 100 * PX_HA
    assert res.terms == "agb+bgb"
    assert res.agb_total_mg == pytest.approx(100 * area, rel=1e-6)
    assert res.bgb_total_mg == pytest.approx(24 * area, rel=1e-6)  # R = 0.24 above 75 Mg/ha
    assert res.biomass_total_mg == pytest.approx(124 * area, rel=1e-6)
    assert res.carbon_total_mg == pytest.approx(124 * area * 0.47, rel=1e-6)
    assert res.carbon_model["root_shoot_table_row"]["ratios"] == [0.39, 0.24]
    # a zone raster: columns < 7 boreal (GEZ 41, R 0.24), the rest tropical dry forest (GEZ 13, R 0.28), and a
    # per-zone carbon fraction for the dry forest
    z = np.where(np.arange(20)[None, :] < 7, 41, 13).astype(np.uint8).repeat(20, 0)
    write_geotiff(d / "gez.tif", z, crs=UTM, transform=TR, nodata=0)
    res = carbon_stock(d / "agb.tif", d / "a.gpkg", bgb=True, zone_raster=d / "gez.tif",
                       carbon_fraction={"tropical_dry": 0.5})
    n_boreal, n_dry = 10 * 5, 10 * 5  # parcel columns 2..11
    assert res.bgb_total_mg == pytest.approx((24 * n_boreal + 28 * n_dry) * PX_HA, rel=1e-6)
    assert res.carbon_total_mg == pytest.approx((124 * 0.47 * n_boreal + 128 * 0.5 * n_dry) * PX_HA, rel=1e-6)
    # AGB-only stays the default and says so
    plain = carbon_stock(d / "agb.tif", d / "a.gpkg")
    assert plain.terms == "agb" and plain.bgb_total_mg is None
    with pytest.raises(ConfigError, match="ecological zone"):
        carbon_stock(d / "agb.tif", d / "a.gpkg", bgb=True)
    z[0, 0] = 35  # a temperate GEZ code: Table 4.4 needs a forest type
    write_geotiff(d / "gez2.tif", z, crs=UTM, transform=TR, nodata=0)
    big = d / "all.gpkg"
    import geopandas as gpd

    gpd.GeoDataFrame(geometry=[box(X0, Y0 - 200, X0 + 200, Y0)], crs=UTM).to_file(big, driver="GPKG")
    with pytest.raises(ConfigError, match="zone code 35"):
        carbon_stock(d / "agb.tif", big, bgb=True, zone_raster=d / "gez2.tif")


def test_cli_stock_json_method_and_terms(const):
    from terracarbon.cli import app

    d = const
    runner = CliRunner()
    res = runner.invoke(app, ["carbon", "stock", str(d / "agb.tif"), "--aoi", str(d / "a.gpkg"), "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    assert obj["method"] == "coverage" and obj["terms"] == "agb"
    for k in ("area_ha", "agb_total_mg", "carbon_total_mg", "co2e_total_t", "polygons", "n_pixels"):
        assert k in obj
    res = runner.invoke(app, ["carbon", "stock", str(d / "agb.tif"), "--aoi", str(d / "a.gpkg"), "--json",
                              "--bgb", "--zone", "tropical_dry", "--method", "centre"])
    obj = json.loads(res.stdout)
    assert obj["method"] == "centre" and obj["terms"] == "agb+bgb"
    assert obj["biomass_total_mg"] == pytest.approx(128 * 100 * PX_HA, rel=1e-6)
