"""The stack builder: real 29RKH bands, PC-style item with offset + clouds, SAFE, median, layers, VRT = COG, HLS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

from terracarbon.data.sentinel2 import write_hls_lookalike, write_s2_lookalike
from terracarbon.data.stack import Grid, build_stack
from terracarbon.errors import ConfigError, InputError
from terracarbon.raster.io import write_geotiff

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "s2" / "S2A_29RKH_20200219_0_L2A"
X0, Y0 = 300000.0, 3300000.0


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), list(ds.descriptions), ds.tags()


@pytest.fixture(scope="module")
def real_item() -> Path:
    item = REAL / "S2A_29RKH_20200219_0_L2A.json"
    if not item.exists():
        pytest.skip(f"../shared/data/real absent: {item} (the real 29RKH Earth Search item)")
    return item


def _dn(path, window):
    with rasterio.open(path) as ds:
        return ds.read(1, window=window).astype(np.float64)


def test_real_29rkh_bands_equal_dn_over_10000(real_item, tmp_path):
    """Baseline 02.14 (offset 0): stacked values equal DN / 10000 on each band's own grid; SCL clouds are NaN."""
    from rasterio.windows import Window

    with rasterio.open(REAL / "B02.tif") as ds:
        t = ds.transform  # 100 m (the decimated 10 m grid)
    # a 160x160 px piece of the 100 m grid (columns 800-960, rows 80-240), aligned with B02's pixels, partly cloudy
    c0, r0 = 800, 80
    crs = rasterio.crs.CRS.from_epsg(32629)
    grid = Grid(crs, from_origin(t.c + c0 * 100, t.f - r0 * 100, 100, 100), 160, 160)
    out = build_stack([real_item], out=tmp_path / "s10.vrt", grid=grid,
                      bands=["B02", "B03", "B04", "B08"], progress_bar=False)
    arr, names, tags = _read(out)
    assert names == ["B02", "B03", "B04", "B08"] and tags["TERRACARBON_UNITS"] == "reflectance"
    win = Window(c0, r0, 160, 160)
    win20 = Window(c0 // 2, r0 // 2, 80, 80)
    with rasterio.open(REAL / "SCL.tif") as ds:
        scl = ds.read(1, window=win20).repeat(2, 0).repeat(2, 1)
    cloud = np.isin(scl, [0, 1, 3, 8, 9, 10])
    assert 0 < cloud.sum() < cloud.size  # the piece holds cirrus / cloud pixels
    for i, b in enumerate(names):
        dn = _dn(REAL / f"{b}.tif", win)
        expect = ((dn + 0) / 10000).astype(np.float32)
        expect[cloud | (dn == 0)] = np.nan
        np.testing.assert_array_equal(arr[i], expect)
    # the 20 m bands on their own (200 m) grid, 60 m bands on theirs
    grid20 = Grid(crs, from_origin(t.c + c0 * 100, t.f - r0 * 100, 200, 200), 80, 80)
    out20 = build_stack([real_item], out=tmp_path / "s20.vrt", grid=grid20,
                        bands=["B05", "B8A", "B11", "B12"], scl_classes=[], progress_bar=False)
    arr20, _, _ = _read(out20)
    for i, b in enumerate(["B05", "B8A", "B11", "B12"]):
        np.testing.assert_array_equal(arr20[i], (_dn(REAL / f"{b}.tif", win20) / 10000).astype(np.float32))
    out60 = build_stack([real_item], out=tmp_path / "s60.vrt", grid=Grid(crs, from_origin(t.c, t.f, 600, 600), 30, 30),
                        bands=["B01", "B09"], scl_classes=[], progress_bar=False)
    arr60, _, _ = _read(out60)
    np.testing.assert_array_equal(arr60[1], (_dn(REAL / "B09.tif", Window(0, 0, 30, 30)) / 10000).astype(np.float32))


def test_planetary_computer_item_offset_and_clouds(tmp_path):
    scl = np.full((20, 20), 4, np.uint8)
    scl[2:5, 3:6] = 9  # cloud high probability
    scl[10, 10] = 3  # shadow
    scl[15, 15] = 8
    scl[0, 19] = 10
    scl[19, 0] = 7  # unclassified: kept
    item = write_s2_lookalike(tmp_path, layout="planetary-computer", size=40, baseline="04.00", scl=scl)
    grid = Grid(rasterio.crs.CRS.from_epsg(32629), from_origin(X0, Y0, 10, 10), 40, 40)
    out = build_stack([item], out=tmp_path / "pc.tif", grid=grid, bands=["B04", "B8A", "B02"], progress_bar=False)
    arr, names, tags = _read(out)
    assert names == ["B04", "B8A", "B02"]
    cloud = np.isin(scl, [3, 8, 9, 10]).repeat(2, 0).repeat(2, 1)
    dn = _dn(item.parent / "B04.tif", None)
    expect = ((dn - 1000) / 10000).astype(np.float32)
    expect[cloud] = np.nan
    np.testing.assert_array_equal(arr[0], expect)
    assert np.isnan(arr[:, cloud]).all() and np.isfinite(arr[:, ~cloud]).all()
    # no masking on request: the cloud pixels come back as reflectance
    out2 = build_stack([item], out=tmp_path / "pc2.vrt", grid=grid, bands=["B04"], scl_classes=[], progress_bar=False)
    np.testing.assert_array_equal(_read(out2)[0][0], ((dn - 1000) / 10000).astype(np.float32))


def test_safe_folder_stack(tmp_path):
    safe = write_s2_lookalike(tmp_path, layout="safe", size=40, baseline="04.00")
    grid = Grid(rasterio.crs.CRS.from_epsg(32629), from_origin(X0, Y0, 10, 10), 40, 40)
    out = build_stack([safe], out=tmp_path / "safe.tif", grid=grid, bands=["B02", "B08"], progress_bar=False)
    arr, names, _ = _read(out)
    for i, b in enumerate(names):
        (jp2,) = safe.glob(f"GRANULE/*/IMG_DATA/R10m/*_{b}_10m.jp2")
        np.testing.assert_array_equal(arr[i], ((_dn(jp2, None) - 1000) / 10000).astype(np.float32))


def test_median_of_clear_observations(tmp_path):
    size = 20
    n20 = size // 2
    base = np.full((size, size), 2000, np.uint16)
    scls = [np.full((n20, n20), 4, np.uint8) for _ in range(3)]
    scls[2][:5] = 9  # the third scene is cloudy in the top half
    items = []
    for k, add in enumerate((0, 300, 1000)):
        items.append(write_s2_lookalike(tmp_path / f"i{k}", layout="earth-search", size=size, baseline="02.14",
                                        bands=["B04"], dn={"B04": base + add}, scl=scls[k], scene_id=f"S2A_29RKH_2020010{k + 1}_0_L2A"))
    grid = Grid(rasterio.crs.CRS.from_epsg(32629), from_origin(X0, Y0, 10, 10), size, size)
    out = build_stack(items, out=tmp_path / "med.tif", grid=grid, bands=["B04"], progress_bar=False)
    arr = _read(out)[0][0]
    np.testing.assert_allclose(arr[10:], 0.23, rtol=1e-6)  # median(0.20, 0.23, 0.30)
    np.testing.assert_allclose(arr[:10], 0.215, rtol=1e-6)  # clear ones only: median(0.20, 0.23)
    with pytest.raises(ConfigError, match="median"):
        build_stack(items, out=tmp_path / "med.vrt", grid=grid, bands=["B04"])


def test_layers_reprojected_nearest_for_classes(tmp_path):
    item = write_s2_lookalike(tmp_path, layout="earth-search", size=40, baseline="02.14", bands=["B02"])
    lc = np.arange(400, dtype=np.uint8).reshape(20, 20) % 7 + 1
    ch = np.linspace(0, 30, 400, dtype=np.float32).reshape(20, 20)
    write_geotiff(tmp_path / "lc.tif", lc, crs="EPSG:32629", transform=from_origin(X0, Y0, 20, 20), nodata=0)
    write_geotiff(tmp_path / "ch.tif", ch, crs="EPSG:32629", transform=from_origin(X0, Y0, 20, 20))
    # a DEM in geographic coordinates covering the grid
    from rasterio.warp import transform_bounds

    w, s, e, n = transform_bounds("EPSG:32629", "EPSG:4326", X0 - 100, Y0 - 500, X0 + 500, Y0 + 100)
    dem = np.linspace(100, 200, 50 * 50, dtype=np.float32).reshape(50, 50)
    write_geotiff(tmp_path / "dem.tif", dem, crs="EPSG:4326", transform=from_origin(w, n, (e - w) / 50, (n - s) / 50))
    grid = Grid(rasterio.crs.CRS.from_epsg(32629), from_origin(X0, Y0, 10, 10), 40, 40)
    out = build_stack([item], out=tmp_path / "lay.tif", grid=grid, bands=["B02"],
                      layers=[f"LC={tmp_path / 'lc.tif'}", f"CH={tmp_path / 'ch.tif'}", f"DEM={tmp_path / 'dem.tif'}"],
                      progress_bar=False)
    arr, names, _ = _read(out)
    assert names == ["B02", "LC", "CH", "DEM"]
    np.testing.assert_array_equal(arr[1], lc.repeat(2, 0).repeat(2, 1).astype(np.float32))  # nearest: classes kept
    assert not np.array_equal(arr[2], ch.repeat(2, 0).repeat(2, 1))  # bilinear: interpolated
    assert np.nanmin(arr[2]) >= 0 and np.nanmax(arr[2]) <= 30
    assert np.isfinite(arr[3]).all() and 100 <= arr[3].min() and arr[3].max() <= 200  # reprojected from EPSG:4326
    from rasterio.warp import Resampling, reproject

    ref = np.full((40, 40), np.nan, np.float32)
    reproject(dem, ref, src_crs="EPSG:4326", src_transform=from_origin(w, n, (e - w) / 50, (n - s) / 50),
              dst_crs="EPSG:32629", dst_transform=grid.transform, resampling=Resampling.bilinear)
    np.testing.assert_allclose(arr[3], ref, atol=0.05)  # the same warp as rasterio's reproject
    assert arr[3][0, 0] < arr[3][-1, 0]  # values rise southwards, as in the source


def test_vrt_equals_cog_and_engine_streams_it(tmp_path):
    scl = np.full((15, 15), 4, np.uint8)
    scl[3:6, 3:6] = 8
    item = write_s2_lookalike(tmp_path, layout="earth-search", size=30, baseline="04.00", scl=scl)
    grid = Grid.from_bounds((X0 + 5, Y0 - 295, X0 + 285, Y0 - 5), "EPSG:32629", 10)  # snapped outwards
    assert (grid.width, grid.height) == (29, 30)
    cog = build_stack([item], out=tmp_path / "s.tif", grid=grid, progress_bar=False)
    vrt = build_stack([item], out=tmp_path / "s.vrt", grid=grid, progress_bar=False)
    a, na, ta = _read(cog)
    b, nb, tb = _read(vrt)
    assert na == nb and len(na) == 12
    np.testing.assert_array_equal(a, b)
    assert ta["TERRACARBON_UNITS"] == tb["TERRACARBON_UNITS"] == "reflectance"
    assert (tmp_path / "s.parts").is_dir()
    with rasterio.open(cog) as ds:
        assert ds.profile["driver"] == "GTiff" and np.isnan(ds.nodata)


def test_hls_stack_with_fmask_and_s2_under_hls_names(tmp_path):
    fm = np.zeros((20, 20), np.uint8)
    fm[0, 0] = 1 << 1  # cloud
    fm[1, 1] = 1 << 2  # adjacent
    fm[2, 2] = 1 << 3  # shadow
    fm[3, 3] = 1 << 5  # water: kept
    fm[4, 4] = 1 << 0  # cirrus bit (reserved): kept
    hls = write_hls_lookalike(tmp_path, product="S30", size=20, fmask=fm)
    grid = Grid(rasterio.crs.CRS.from_epsg(32629), from_origin(X0, Y0, 30, 30), 20, 20)
    out = build_stack(hls=[hls], out=tmp_path / "hls.tif", grid=grid, units="reflectance_x10000", progress_bar=False)
    arr, names, tags = _read(out)
    assert names == ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    assert tags["TERRACARBON_UNITS"] == "reflectance_x10000"
    (b8a,) = hls.glob("*.B8A.tif")
    dn = _dn(b8a, None).astype(np.float32)
    bad = np.zeros_like(fm, bool)
    bad[0, 0] = bad[1, 1] = bad[2, 2] = True
    np.testing.assert_allclose(arr[3][~bad], dn[~bad], rtol=1e-6)
    assert np.isnan(arr[:, bad]).all()
    # Sentinel-2 L2A written under HLS names, in reflectance x 10000
    item = write_s2_lookalike(tmp_path / "s2", layout="earth-search", size=60, baseline="04.00")
    out2 = build_stack([item], out=tmp_path / "s2hls.vrt", grid=grid,
                       bands=["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"], units="reflectance_x10000",
                       resampling="average", progress_bar=False)
    arr2, names2, tags2 = _read(out2)
    assert names2[3] == "NIR_NARROW" and tags2["TERRACARBON_UNITS"] == "reflectance_x10000"
    b8a_dn = _dn(item.parent / "B8A.tif", None)  # 20 m -> 30 m grid: an average of DN - 1000
    assert abs(np.nanmean(arr2[3]) - (b8a_dn.mean() - 1000)) < 30


def test_errors_and_cli(tmp_path):
    item = write_s2_lookalike(tmp_path, layout="earth-search", size=20, baseline="02.14", bands=["B02", "B03"])
    with pytest.raises(InputError, match="no band B8A"):
        build_stack([item], out=tmp_path / "x.tif", bounds=(X0, Y0 - 100, X0 + 100, Y0), crs="EPSG:32629",
                    resolution=10, bands=["B02", "B8A"])
    with pytest.raises(ConfigError, match="exactly one target grid"):
        build_stack([item], out=tmp_path / "x.tif")
    with pytest.raises(ConfigError, match="units"):
        build_stack([item], out=tmp_path / "x.tif", like=item.parent / "B02.tif", units="dn")
    from terracarbon.cli import app

    res = CliRunner().invoke(app, ["data", "stack", "--s2", str(item), "--bands", "B03,B02", "--like",
                                   str(item.parent / "B02.tif"), "--out", str(tmp_path / "cli.tif")])
    assert res.exit_code == 0, res.output
    assert _read(tmp_path / "cli.tif")[1] == ["B03", "B02"]
    res = CliRunner().invoke(app, ["data", "stack", "--s2", str(item), "--bands", "B11", "--like",
                                   str(item.parent / "B02.tif"), "--out", str(tmp_path / "bad.tif")])
    assert res.exit_code == 2 and "B11" in res.output


def test_grid_from_aoi_snaps_outwards(tmp_path):
    import geopandas as gpd
    from rasterio.warp import transform_bounds
    from shapely.geometry import box

    w, s, e, n = transform_bounds("EPSG:32629", "EPSG:4326", X0 + 3, Y0 - 997, X0 + 1234, Y0 - 5)
    gpd.GeoDataFrame(geometry=[box(w, s, e, n)], crs="EPSG:4326").to_file(tmp_path / "aoi.geojson")
    g = Grid.from_aoi(tmp_path / "aoi.geojson", "EPSG:32629", 20)
    left, bottom, right, top = g.bounds
    assert g.crs.to_epsg() == 32629 and g.transform.a == 20
    assert all(v % 20 == 0 for v in (left, bottom, right, top))
    assert left <= X0 + 3 and right >= X0 + 1234 and top >= Y0 - 5 and bottom <= Y0 - 997
    with pytest.raises(InputError, match="does not exist"):
        Grid.from_aoi(tmp_path / "none.gpkg", "EPSG:32629", 20)
