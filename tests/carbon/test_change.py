"""Stock change between two synthetic maps: known difference, signs, alignment, nodata, uncertainty, bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import rasterio
from affine import Affine
from shapely.geometry import box
from typer.testing import CliRunner

from terracarbon.carbon import CO2_PER_C, carbon_change, read_date
from terracarbon.errors import ConfigError, InputError
from terracarbon.raster.io import write_geotiff

UTM = "EPSG:32633"
X0, Y0, PX = 500000.0, 6000000.0, 10.0
TR = Affine(PX, 0, X0, 0, -PX, Y0)
PX_HA = PX * PX / 1e4 / 0.9996**2  # true pixel area on the UTM central meridian (areal scale 0.9992)
CF = 0.47


def _parcels(path):
    import geopandas as gpd

    a = box(X0 + 20, Y0 - 120, X0 + 120, Y0 - 20)  # pixels c 2..11, r 2..11: 100 px, gain region
    b = box(X0 + 300, Y0 - 200, X0 + 400, Y0 - 100)  # c 30..39, r 10..19: loss region
    gpd.GeoDataFrame({"name": ["gain", "loss"]}, geometry=[a, b], crs=UTM).to_file(path, driver="GPKG")
    return path


@pytest.fixture
def maps(tmp_path):
    rng = np.random.default_rng(0)
    t0 = rng.uniform(50, 250, (40, 50)).astype(np.float32)
    d = np.where(np.arange(50)[None, :] < 25, 20.0, -30.0).astype(np.float32).repeat(40, 0)
    t1 = t0 + d
    s0 = np.full_like(t0, 10.0)
    s1 = np.full_like(t0, 15.0)
    p0, p1 = tmp_path / "agb_2020.tif", tmp_path / "agb_2025.tif"
    write_geotiff(p0, np.stack([t0, s0]), crs=UTM, transform=TR, nodata=float("nan"),
                  band_descriptions=["AGB", "AGB_STD"], tags={"units": "Mg/ha", "ACQUISITION_DATE": "2020-01-01"})
    write_geotiff(p1, np.stack([t1, s1]), crs=UTM, transform=TR, nodata=float("nan"),
                  band_descriptions=["AGB", "AGB_STD"], tags={"units": "Mg/ha", "TIFFTAG_DATETIME": "2025:01:01 00:00:00"})
    return tmp_path, p0, p1, t0, t1


def test_known_difference_signs_and_years(maps):
    d, p0, p1, t0, t1 = maps
    aoi = _parcels(d / "parcels.gpkg")
    assert read_date(p0)[0].isoformat() == "2020-01-01" and read_date(p1)[1] == "TIFFTAG_DATETIME"
    res = carbon_change(p0, p1, aoi, std0="none", std1="none")
    years = (365 * 5 + 2) / 365.25  # 2020 and 2024 are leap years
    assert res.years == pytest.approx(years) and "TIFFTAG_DATETIME" in res.years_source
    gain, loss = res.per_polygon
    assert gain["name"] == "gain" and gain["area_ha"] == pytest.approx(100 * PX_HA, rel=1e-6)
    assert gain["agb_t0_mg"] == pytest.approx(t0[2:12, 2:12].astype(float).sum() * PX_HA, rel=1e-6)
    assert gain["d_agb_mg"] == pytest.approx(20.0 * 100 * PX_HA, rel=1e-6)
    assert gain["d_carbon_mg"] == pytest.approx(20.0 * 100 * PX_HA * CF, rel=1e-6)
    assert gain["d_co2e_t"] == pytest.approx(-20.0 * 100 * PX_HA * CF * CO2_PER_C, rel=1e-6)  # removal: negative
    assert loss["d_co2e_t"] == pytest.approx(30.0 * 100 * PX_HA * CF * CO2_PER_C, rel=1e-6)  # emission: positive
    assert loss["d_co2e_t_per_year"] == pytest.approx(loss["d_co2e_t"] / years)
    assert res.d_co2e_t == pytest.approx(gain["d_co2e_t"] + loss["d_co2e_t"], rel=1e-9)
    assert res.d_co2e_t_per_year == pytest.approx(res.d_co2e_t / years)
    assert "positive = emission" in res.sign_convention and res.sd_d_co2e_t is None
    assert res.terms == "agb" and res.aligned == "same grid"
    # given years override the tags; BGB adds (1 + R) per date's AGB class (boreal: R = 0.24 above 75 Mg/ha)
    r5 = carbon_change(p0, p1, aoi, years=5, std0="none", std1="none", bgb=True, zone="boreal")
    g5 = r5.per_polygon[0]
    b0 = np.where(t0[2:12, 2:12] < 75, 1.39, 1.24) * t0[2:12, 2:12]
    b1 = np.where(t1[2:12, 2:12] < 75, 1.39, 1.24) * t1[2:12, 2:12]
    assert r5.years == 5 and r5.terms == "agb+bgb"
    assert g5["d_biomass_mg"] == pytest.approx((b1 - b0).astype(float).sum() * PX_HA, rel=1e-5)
    assert g5["d_co2e_t"] == pytest.approx(-g5["d_biomass_mg"] * CF * CO2_PER_C, rel=1e-9)


def test_uncertainty_of_the_difference_by_hand(maps):
    d, p0, p1, _, _ = maps
    aoi = _parcels(d / "parcels.gpkg")
    for rho in (0.0, 0.5, 1.0):
        res = carbon_change(p0, p1, aoi, correlation=rho)
        sd_px = math.sqrt(10.0**2 + 15.0**2 - 2 * rho * 10.0 * 15.0)  # Mg/ha per pixel
        g = res.per_polygon[0]
        to_co2e = CF * CO2_PER_C
        assert g["sd_d_agb_mg"] == pytest.approx(sd_px * 100 * PX_HA, rel=1e-6)  # spatially correlated: Σ σ·A
        assert g["sd_d_co2e_t"] == pytest.approx(sd_px * 100 * PX_HA * to_co2e, rel=1e-6)
        assert g["sd_d_co2e_t_independent"] == pytest.approx(sd_px * PX_HA * math.sqrt(100) * to_co2e, rel=1e-6)
        assert res.sd_d_co2e_t == pytest.approx(sd_px * 200 * PX_HA * to_co2e, rel=1e-6)
        assert "band 2" in res.uncertainty_source
    assert res.correlation == 1.0


def test_alignment_nodata_and_delta_raster(maps):
    d, p0, p1, t0, t1 = maps
    aoi = _parcels(d / "parcels.gpkg")
    # T1 on another grid: 3 px larger on each side (same resolution) -> warped onto T0's grid
    big = np.full((46, 56), np.nan, dtype=np.float32)
    big[3:43, 3:53] = t1
    big[3 + 5, 3 + 5] = np.nan  # nodata in T1 inside the 'gain' parcel: excluded from both dates
    p1b = d / "agb_t1_othergrid.tif"
    write_geotiff(p1b, big, crs=UTM, transform=Affine(PX, 0, X0 - 3 * PX, 0, -PX, Y0 + 3 * PX),
                  nodata=float("nan"), tags={"units": "t/ha", "date": "2025-01-01"})
    res = carbon_change(p0, p1b, aoi, std0="none", std1="none", delta_raster=d / "dco2e.tif")
    g = res.per_polygon[0]
    assert "warped" in res.aligned
    assert g["nodata_pixels"] == 1 and g["valid_pixels"] == 99
    assert g["d_agb_mg"] == pytest.approx(20.0 * 99 * PX_HA, rel=1e-5)
    keep = np.ones((10, 10), bool)
    keep[3, 3] = False
    assert g["agb_t0_mg"] == pytest.approx(t0[2:12, 2:12][keep].astype(float).sum() * PX_HA, rel=1e-6)
    assert any("gain" in w and "nodata" in w for w in res.warnings)
    with rasterio.open(d / "dco2e.tif") as ds:
        arr = ds.read(1)
        r, c = ds.index(X0 + 75, Y0 - 35)  # a pixel of the gain parcel
        assert arr[r, c] == pytest.approx(-20.0 * CF * CO2_PER_C, rel=1e-5)
        r, c = ds.index(X0 + 305, Y0 - 105)
        assert arr[r, c] == pytest.approx(30.0 * CF * CO2_PER_C, rel=1e-5)
        assert "emission" in ds.descriptions[0]


def test_bad_inputs(maps, tmp_path):
    d, p0, p1, t0, t1 = maps
    aoi = _parcels(d / "parcels.gpkg")
    nodate = d / "nodate.tif"
    write_geotiff(nodate, t1, crs=UTM, transform=TR, nodata=float("nan"), tags={"units": "Mg/ha"})
    with pytest.raises(InputError, match="nodate.tif.*no acquisition date"):
        carbon_change(p0, nodate, aoi)
    assert carbon_change(p0, nodate, aoi, years=4).years == 4
    with pytest.raises(ConfigError, match="zero years"):
        carbon_change(p0, nodate, aoi, years=0)
    same = d / "same_date.tif"
    write_geotiff(same, t1, crs=UTM, transform=TR, nodata=float("nan"), tags={"units": "Mg/ha", "date": "2020-01-01"})
    with pytest.raises(ConfigError, match="zero years"):
        carbon_change(p0, same, aoi)
    with pytest.raises(ConfigError, match="earlier"):
        carbon_change(p1, p0, aoi)
    kg = d / "kg.tif"
    write_geotiff(kg, t1, crs=UTM, transform=TR, nodata=float("nan"), tags={"units": "kg/m2", "date": "2025-01-01"})
    with pytest.raises(InputError, match="kg.tif.*units"):
        carbon_change(p0, kg, aoi)
    bad = d / "bad_date.tif"
    write_geotiff(bad, t1, crs=UTM, transform=TR, nodata=float("nan"), tags={"date": "spring"})
    with pytest.raises(InputError, match="bad_date.tif.*not a date"):
        carbon_change(p0, bad, aoi)
    with pytest.raises(ConfigError, match="correlation"):
        carbon_change(p0, p1, aoi, correlation=1.5)


def test_cli_change_json_contract_and_table(maps):
    from terracarbon.cli import app

    d, p0, p1, _, _ = maps
    aoi = _parcels(d / "parcels.gpkg")
    runner = CliRunner()
    res = runner.invoke(app, ["carbon", "change", str(p0), str(p1), "--aoi", str(aoi), "--years", "5",
                              "--correlation", "1", "--json"])
    assert res.exit_code == 0, res.output
    obj = json.loads(res.stdout)
    for k in ("d_agb_mg", "d_carbon_mg", "d_co2e_t", "d_co2e_t_per_year", "sd_d_co2e_t", "per_polygon"):
        assert k in obj
    assert obj["sd_d_co2e_t"] == pytest.approx(5.0 * 200 * PX_HA * CF * CO2_PER_C, rel=1e-6)  # rho=1: |15-10|
    assert len(obj["per_polygon"]) == 2 and obj["years"] == 5
    res = runner.invoke(app, ["carbon", "change", str(p0), str(p1), "--aoi", str(aoi)])
    assert res.exit_code == 0, res.output
    assert "emission" in res.stdout and "removal" in res.stdout
    res = runner.invoke(app, ["carbon", "change", str(p0), str(p1), "--aoi", str(aoi), "--years", "0", "--json"])
    assert res.exit_code == 2 and "zero years" in res.output


def test_change_report_page_and_section(maps):
    from terracarbon.cli import app
    from terracarbon.report.change import change_section_html

    d, p0, p1, _, _ = maps
    aoi = _parcels(d / "parcels.gpkg")
    runner = CliRunner()
    res = runner.invoke(app, ["carbon", "change", str(p0), str(p1), "--aoi", str(aoi), "--delta-raster",
                              str(d / "dco2e.tif"), "--report", str(d / "change.html"), "--out", str(d / "change.json")])
    assert res.exit_code == 0, res.output
    page = (d / "change.html").read_text()
    assert "Carbon stock change" in page and "data:image/png;base64," in page
    assert "positive = emission" in page and 'id="change-dco2e-total"' in page
    assert (d / "change.co2e.png").exists()
    obj = json.loads((d / "change.json").read_text())
    html = change_section_html(obj)
    assert "loss" in html and "gain" in html
