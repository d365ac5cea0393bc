"""GEDI L4A reader: the real clipped granule in ../shared against an independent h5py reading, filters, bad files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from terracarbon.cli import app
from terracarbon.data.gedi import (
    POWER_BEAMS,
    read_gedi_l4a,
    read_shots,
    read_shots_metadata,
    write_l4a_granule,
    write_shots,
)
from terracarbon.errors import InputError

GRANULE = "GEDI04_A_2020036151358_O06515_02_T00198_02_002_01_V002"


@pytest.fixture(scope="module")
def granule_zip(shared_data) -> Path:
    p = shared_data / "real" / "gedi" / f"{GRANULE}.zip"
    if not p.exists():
        pytest.skip(f"../shared/data/real absent: {p} missing")
    return p


@pytest.fixture(scope="module")
def h5_bytes(granule_zip) -> bytes:
    with zipfile.ZipFile(granule_zip) as zf:
        return zf.read(f"{GRANULE}.h5")


@pytest.fixture(scope="module")
def reference(h5_bytes) -> dict[str, np.ndarray]:
    """An independent reading: every beam, l4_quality_flag == 1 and agbd != -9999, straight from h5py."""
    cols: dict[str, list] = {k: [] for k in ("shot_number", "agbd", "agbd_se", "lat", "lon", "sens", "pft", "dt", "beam")}
    with h5py.File(io.BytesIO(h5_bytes), "r") as f:
        for b in sorted(k for k in f if k.startswith("BEAM")):
            g = f[b]
            m = (g["l4_quality_flag"][:] == 1) & (g["agbd"][:] != -9999)
            cols["shot_number"].append(g["shot_number"][:][m].astype(np.int64))
            cols["agbd"].append(g["agbd"][:][m])
            cols["agbd_se"].append(g["agbd_se"][:][m])
            cols["lat"].append(g["lat_lowestmode"][:][m])
            cols["lon"].append(g["lon_lowestmode"][:][m])
            cols["sens"].append(g["sensitivity"][:][m])
            cols["pft"].append(g["land_cover_data/pft_class"][:][m])
            cols["dt"].append(g["delta_time"][:][m])
            cols["beam"].append(np.array([b] * int(m.sum())))
    return {k: np.concatenate(v) for k, v in cols.items()}


@pytest.fixture(scope="module")
def shots(granule_zip):
    return read_gedi_l4a([granule_zip], progress=False)


def test_default_filter_equals_h5py_reading(shots, reference):
    assert len(shots) == len(reference["agbd"]) == 321
    s = shots.sort_values("shot_number").reset_index(drop=True)
    order = np.argsort(reference["shot_number"])
    ref = {k: v[order] for k, v in reference.items()}
    assert s["shot_number"].dtype == np.int64
    np.testing.assert_array_equal(s["shot_number"].to_numpy(), ref["shot_number"])
    np.testing.assert_array_equal(s["agbd"].to_numpy(), ref["agbd"])
    np.testing.assert_array_equal(s["agbd_se"].to_numpy(), ref["agbd_se"])
    np.testing.assert_array_equal(s["sensitivity"].to_numpy(), ref["sens"])
    np.testing.assert_array_equal(s["pft_class"].to_numpy(), ref["pft"])
    np.testing.assert_array_equal(s["beam"].to_numpy(), ref["beam"])
    np.testing.assert_allclose(s.geometry.x.to_numpy(), ref["lon"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.geometry.y.to_numpy(), ref["lat"], rtol=0, atol=1e-12)
    assert (s["l4_quality_flag"] == 1).all()
    assert shots.crs.to_epsg() == 4326
    # delta_time is seconds since 2018-01-01 UTC: this granule is from 2020-02-05 (day 036)
    t = s["time"]
    assert str(t.dt.tz) == "UTC"
    secs = (t - np.datetime64("2018-01-01T00:00:00")).dt.total_seconds() if t.dt.tz is None else (
        t.dt.tz_convert(None) - np.datetime64("2018-01-01T00:00:00")
    ).dt.total_seconds()
    np.testing.assert_allclose(secs.to_numpy(), ref["dt"], atol=1e-5)
    assert (t.dt.strftime("%Y-%m-%d") == "2020-02-05").all()
    # far-away shots of another orbit segment (lat 13, agbd -9999 / quality 0) are gone
    assert s.geometry.y.min() > 33


def test_filters_each_recorded(granule_zip, reference):
    power = read_gedi_l4a([granule_zip], power_beams=True, progress=False)
    assert set(power["beam"]) <= set(POWER_BEAMS)
    assert len(power) == int(np.isin(reference["beam"], POWER_BEAMS).sum()) == 302
    sens = read_gedi_l4a([granule_zip], min_sensitivity=0.97, progress=False)
    assert len(sens) == int((reference["sens"] >= 0.97).sum())
    assert 0 < len(sens) < 321
    deg = read_gedi_l4a([granule_zip], drop_degraded=True, progress=False)
    assert len(deg) == 321  # this granule has no degraded shots
    bbox = (51.0, 35.0, 52.0, 37.0)  # the Alborz cluster, not the one near 34 N 54 E
    inb = read_gedi_l4a([granule_zip], bbox=bbox, progress=False)
    assert len(inb) == int(((reference["lon"] >= 51) & (reference["lon"] <= 52) & (reference["lat"] >= 35)).sum())
    none = read_gedi_l4a([granule_zip], start="2020-02-06", progress=False)
    assert len(none) == 0
    day = read_gedi_l4a([granule_zip], start="2020-02-05", end="2020-02-06T00:00Z", progress=False)
    assert len(day) == 321
    meta = power.attrs["gedi"]
    assert meta["filter"]["power_beams"] is True and meta["dropped"]["power_beams"] > 0
    assert any("full power" in r for r in meta["filter"]["rules"])
    assert "l4_quality_flag == 1" in meta["filter"]["rules"]
    assert sens.attrs["gedi"]["filter"]["min_sensitivity"] == 0.97
    assert meta["granules"][0]["shots_read"] == 461


def test_aoi_in_another_crs(granule_zip, reference, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    # a UTM 39N rectangle around the Alborz cluster
    aoi = gpd.GeoDataFrame(geometry=[box(51.0, 35.9, 51.46, 36.2)], crs=4326).to_crs(32639)
    aoi.to_file(tmp_path / "aoi.geojson")
    got = read_gedi_l4a([granule_zip], aoi=tmp_path / "aoi.geojson", progress=False)
    poly = aoi.to_crs(4326).union_all()
    import shapely

    expect = int(shapely.contains_xy(poly, reference["lon"], reference["lat"]).sum())
    assert 0 < len(got) == expect < 321


@pytest.mark.parametrize("suffix", [".gpkg", ".parquet"])
def test_write_and_read_back_with_metadata(shots, tmp_path, suffix):
    out = write_shots(shots, tmp_path / f"shots{suffix}")
    back = read_shots(out)
    assert len(back) == 321 and back.crs.to_epsg() == 4326
    assert back["shot_number"].dtype == np.int64
    np.testing.assert_array_equal(np.sort(back["shot_number"]), np.sort(shots["shot_number"]))
    np.testing.assert_array_equal(back["agbd"].to_numpy(np.float32), shots["agbd"].to_numpy())
    meta = read_shots_metadata(out)
    assert meta["n_shots"] == 321 and "l4_quality_flag == 1" in meta["filter"]["rules"]
    assert not list(tmp_path.glob(".*tmp*"))  # atomic: no temporaries left


def test_cli_many_granules_and_h5(granule_zip, h5_bytes, tmp_path):
    h5 = tmp_path / f"{GRANULE}.h5"
    h5.write_bytes(h5_bytes)
    out = tmp_path / "shots.gpkg"
    r = CliRunner().invoke(
        app, ["data", "gedi", str(granule_zip), str(h5), "--out", str(out), "--power-beams", "--no-degrade"]
    )
    assert r.exit_code == 0, r.output
    back = read_shots(out)
    assert len(back) == 2 * 302
    meta = read_shots_metadata(out)
    assert len(meta["granules"]) == 2 and meta["filter"]["drop_degraded"] is True


def test_truncated_and_non_l4a_files_are_clear_errors(h5_bytes, tmp_path):
    trunc = tmp_path / "truncated.h5"
    trunc.write_bytes(h5_bytes[: len(h5_bytes) // 2])
    with pytest.raises(InputError, match="truncated.h5.*truncated"):
        read_gedi_l4a([trunc], progress=False)
    tz = tmp_path / "truncated.zip"
    with zipfile.ZipFile(tz, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{GRANULE}.h5", h5_bytes)
    tz.write_bytes(tz.read_bytes()[:100_000])
    with pytest.raises(InputError, match="truncated.zip"):
        read_gedi_l4a([tz], progress=False)
    l2a = tmp_path / "l2a.h5"
    with h5py.File(l2a, "w") as f:
        f.attrs["short_name"] = "GEDI_L2A"
        f.create_group("BEAM0101")["rh"] = np.zeros((3, 101))
    with pytest.raises(InputError, match="l2a.h5.*GEDI_L2A.*not a GEDI L4A"):
        read_gedi_l4a([l2a], progress=False)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(InputError, match="other.h5.*no BEAMxxxx"):
        read_gedi_l4a([other], progress=False)
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(InputError, match="notes.h5.*not an HDF5"):
        read_gedi_l4a([text], progress=False)
    r = CliRunner().invoke(app, ["data", "gedi", str(l2a), "--out", str(tmp_path / "x.gpkg")])
    assert r.exit_code == 2 and "l2a.h5" in r.output
    assert not (tmp_path / "x.gpkg").exists()


def test_empty_beams_and_far_shots(tmp_path):
    p = write_l4a_granule(
        tmp_path / "g.h5",
        {
            "BEAM0000": {"agbd": [], "lat_lowestmode": [], "lon_lowestmode": []},
            "BEAM0101": {
                "agbd": [10.0, -9999.0, 30.0, 40.0],
                "lat_lowestmode": [-3.0, -3.0, 13.0, -3.001],
                "lon_lowestmode": [-60.0, -60.0, -75.0, -60.001],
                "l4_quality_flag": [1, 1, 1, 0],
            },
        },
    )
    got = read_gedi_l4a([p], progress=False)
    assert sorted(got["agbd"].tolist()) == [10.0, 30.0]  # fill and quality-0 dropped; far shot kept (no AOI)
    near = read_gedi_l4a([p], bbox=(-61, -4, -59, -2), progress=False)
    assert near["agbd"].tolist() == [10.0]
    empty = read_gedi_l4a([p], bbox=(0, 0, 1, 1), progress=False)
    assert len(empty) == 0
    out = write_shots(empty, tmp_path / "empty.gpkg")
    assert json.loads(json.dumps(read_shots_metadata(out)))["n_shots"] == 0
