"""Labels from GEDI footprints: right pixels on a UTM grid (hand-computed), overlaps averaged, CRS handling."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Geod, Transformer
from typer.testing import CliRunner

from terracarbon.cli import app
from terracarbon.data.labels import rasterize_shots
from terracarbon.errors import InputError
from terracarbon.raster.io import write_geotiff

X0, Y0 = 500_000.0, 4_000_000.0  # UTM 33N grid origin, 10 m pixels, 20 x 20


def _grid(path, crs="EPSG:32633", transform=None, shape=(20, 20)):
    transform = transform or Affine(10.0, 0, X0, 0, -10.0, Y0)
    write_geotiff(path, np.zeros(shape, np.float32), crs=crs, transform=transform, cog=False)
    return path


def _shots(xy, agbd, crs="EPSG:32633", se=None):
    import geopandas as gpd

    return gpd.GeoDataFrame(
        {"agbd": np.asarray(agbd, np.float32), "agbd_se": np.asarray(se if se is not None else [1.0] * len(agbd))},
        geometry=gpd.points_from_xy(*zip(*xy)),
        crs=crs,
    )


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.descriptions, ds.tags()


def _labelled(band):
    return {(int(r), int(c)) for r, c in zip(*np.nonzero(np.isfinite(band)))}


def test_footprint_pixels_on_utm_grid(tmp_path):
    grid = _grid(tmp_path / "grid.tif")
    # shot A on the centre of pixel (row 5, col 5): centres within 12.5 m are the pixel and its 4 neighbours
    # (diagonal neighbours are 14.1 m away); shot B on the corner shared by pixels (10..11, 10..11): 4 pixels at 7.1 m
    shots = _shots([(X0 + 55, Y0 - 55), (X0 + 110, Y0 - 110)], [100.0, 40.0], se=[5.0, 3.0])
    res = rasterize_shots(shots, grid, tmp_path / "labels.tif")
    arr, desc, tags = _read(tmp_path / "labels.tif")
    assert desc == ("AGBD", "AGBD_SE") and arr.dtype == np.float32
    a = {(5, 5), (4, 5), (6, 5), (5, 4), (5, 6)}
    b = {(10, 10), (10, 11), (11, 10), (11, 11)}
    assert _labelled(arr[0]) == a | b
    assert all(arr[0][p] == 100.0 for p in a) and all(arr[0][p] == 40.0 for p in b)
    assert all(arr[1][p] == 5.0 for p in a) and all(arr[1][p] == 3.0 for p in b)
    assert res.n_labelled_pixels == 9 and res.n_shots_on_grid == 2 and tags["units"] == "Mg/ha"


def test_overlap_is_the_mean(tmp_path):
    grid = _grid(tmp_path / "grid.tif")
    # two shots 10 m apart, centred on pixels (5,5) and (5,6): both footprints cover (5,5) and (5,6)
    shots = _shots([(X0 + 55, Y0 - 55), (X0 + 65, Y0 - 55)], [100.0, 200.0], se=[4.0, 8.0])
    res = rasterize_shots(shots, grid, tmp_path / "labels.tif")
    arr, _, _ = _read(tmp_path / "labels.tif")
    assert arr[0][5, 5] == arr[0][5, 6] == 150.0 and arr[1][5, 5] == 6.0
    assert arr[0][5, 4] == 100.0 and arr[0][5, 7] == 200.0 and arr[0][4, 6] == 200.0
    assert res.n_overlap_pixels == 2 and res.n_labelled_pixels == 8


def test_shots_in_4326_reprojected(tmp_path):
    grid = _grid(tmp_path / "grid.tif")
    to_ll = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True)
    xy = [(X0 + 55, Y0 - 55), (X0 + 110, Y0 - 110), (X0 + 500, Y0 - 500)]  # the last one is off the grid
    ll = [to_ll.transform(x, y) for x, y in xy]
    rasterize_shots(_shots(xy, [100.0, 40.0, 7.0]), grid, tmp_path / "utm.tif")
    rasterize_shots(_shots(ll, [100.0, 40.0, 7.0], crs="EPSG:4326"), grid, tmp_path / "ll.tif")
    a, _, _ = _read(tmp_path / "utm.tif")
    b, _, _ = _read(tmp_path / "ll.tif")
    np.testing.assert_array_equal(a, b)


def test_geographic_grid_uses_metres(tmp_path):
    # 0.0001 deg pixels at 60 N: ~5.6 m wide, ~11.1 m tall; a 12.5 m footprint spans ~4.5 columns but ~2 rows
    tr = Affine(1e-4, 0, 10.0, 0, -1e-4, 60.0)
    grid = _grid(tmp_path / "grid.tif", crs="EPSG:4326", transform=tr, shape=(30, 30))
    lon, lat = 10.00123, 59.99877
    rasterize_shots(_shots([(lon, lat)], [50.0], crs="EPSG:4326"), grid, tmp_path / "labels.tif")
    arr, _, _ = _read(tmp_path / "labels.tif")
    rr, cc = np.mgrid[0:30, 0:30]
    xc, yc = tr.a * (cc + 0.5) + tr.c, tr.e * (rr + 0.5) + tr.f
    _, _, d = Geod(ellps="WGS84").inv(np.full(xc.size, lon), np.full(xc.size, lat), xc.ravel(), yc.ravel())
    expect = {(int(r), int(c)) for r, c, dd in zip(rr.ravel(), cc.ravel(), d) if dd <= 12.5}
    assert _labelled(arr[0]) == expect
    cols = {c for _, c in expect}
    rows = {r for r, _ in expect}
    assert len(cols) > len(rows)  # wider in columns: metres, not degrees


def test_center_only_and_radius(tmp_path):
    grid = _grid(tmp_path / "grid.tif")
    shots = _shots([(X0 + 52, Y0 - 58), (X0 + 110, Y0 - 110)], [100.0, 40.0])
    rasterize_shots(shots, grid, tmp_path / "c.tif", center_only=True)
    arr, _, tags = _read(tmp_path / "c.tif")
    assert _labelled(arr[0]) == {(5, 5), (11, 11)}  # the corner point (10,10)/(11,11) belongs to the lower-right pixel
    assert tags["footprint"] == "center-only"
    rasterize_shots(_shots([(X0 + 55, Y0 - 55)], [1.0]), grid, tmp_path / "r.tif", radius=15.0)
    arr, _, _ = _read(tmp_path / "r.tif")
    assert len(_labelled(arr[0])) == 9  # 15 m reaches the diagonal neighbours (14.1 m)


def test_no_shot_on_grid_is_a_clear_error(tmp_path):
    grid = _grid(tmp_path / "grid.tif")
    shots = _shots([(X0 - 5000, Y0)], [1.0])
    shots.to_file(tmp_path / "far.gpkg")
    with pytest.raises(InputError, match="far.gpkg.*none of its 1 shots"):
        rasterize_shots(tmp_path / "far.gpkg", grid, tmp_path / "labels.tif")
    assert not (tmp_path / "labels.tif").exists()


def test_real_granule_on_utm_grid_via_cli(shared_data, tmp_path):
    zp = shared_data / "real" / "gedi" / "GEDI04_A_2020036151358_O06515_02_T00198_02_002_01_V002.zip"
    if not zp.exists():
        pytest.skip(f"../shared/data/real absent: {zp} missing")
    runner = CliRunner()
    shots_path = tmp_path / "shots.gpkg"
    r = runner.invoke(app, ["data", "gedi", str(zp), "--out", str(shots_path), "--bbox", "51.3,35.9,51.6,36.2"])
    assert r.exit_code == 0, r.output
    # a 10 m UTM 39N grid over the Alborz cluster
    tr = Affine(10.0, 0, 536_000.0, 0, -10.0, 3_996_000.0)
    grid = _grid(tmp_path / "grid.tif", crs="EPSG:32639", transform=tr, shape=(600, 900))
    r = runner.invoke(
        app, ["data", "labels", str(shots_path), "--like", str(grid), "--out", str(tmp_path / "labels.tif")]
    )
    assert r.exit_code == 0, r.output
    arr, desc, tags = _read(tmp_path / "labels.tif")
    import geopandas as gpd

    shots = gpd.read_file(shots_path).to_crs(32639)
    assert int(tags["n_shots_on_grid"]) == len(shots) == 174
    # independent: brute-force distances from every shot to the centres of the pixels around it
    vals: dict[tuple[int, int], list[float]] = {}
    for x, y, v in zip(shots.geometry.x, shots.geometry.y, shots["agbd"]):
        c0, r0 = int((x - 536_000.0) // 10), int((3_996_000.0 - y) // 10)
        for r in range(r0 - 3, r0 + 4):
            for c in range(c0 - 3, c0 + 4):
                xc, yc = 536_000.0 + 10 * (c + 0.5), 3_996_000.0 - 10 * (r + 0.5)
                if (xc - x) ** 2 + (yc - y) ** 2 <= 12.5**2:
                    vals.setdefault((r, c), []).append(float(v))
    assert _labelled(arr[0]) == set(vals)
    got = np.array([arr[0][p] for p in vals])
    np.testing.assert_allclose(got, [np.mean(v) for v in vals.values()], rtol=1e-6)
