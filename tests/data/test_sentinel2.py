"""Sentinel-2 L2A / HLS readers: real Earth Search item, Planetary-Computer-style item, SAFE folder, HLS granule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from terracarbon.data.sentinel2 import (
    DEFAULT_SCL_MASK,
    band_id_of,
    fmask_mask,
    open_scene,
    read_hls,
    read_mtd_msil2a,
    read_safe,
    read_stac_item,
    write_hls_lookalike,
    write_s2_lookalike,
)
from terracarbon.errors import InputError

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "s2" / "S2A_29RKH_20200219_0_L2A"


@pytest.fixture(scope="module")
def real_item() -> Path:
    item = REAL / "S2A_29RKH_20200219_0_L2A.json"
    if not item.exists():
        pytest.skip(f"../shared/data/real absent: {item} (the real 29RKH Earth Search item)")
    return item


def test_band_ids_from_keys_names_and_files():
    assert band_id_of("nir08") == "B8A" and band_id_of("swir16") == "B11" and band_id_of("scl") == "SCL"
    assert band_id_of("B8A") == "B8A" and band_id_of("B1") == "B01"
    assert band_id_of("T29RKH_20230115T112111_B05_20m.jp2") == "B05"
    assert band_id_of("HLS.S30.T29RKH.2023015T112111.v2.0.B8A.tif") == "B8A"
    assert band_id_of("TCI.tif") is None and band_id_of("AOT.tif") is None


def test_real_earth_search_item(real_item):
    scene = read_stac_item(real_item)
    assert scene.processing_baseline == "02.14"
    assert set(scene.bands) == {"B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"}
    for b in scene.bands.values():  # baseline 02.14, raster:bands offset 0: reflectance = DN / 10000
        assert b.scale == pytest.approx(1e-4) and b.offset == 0.0 and b.nodata == 0
        assert b.path.parent == real_item.parent  # the bucket hrefs resolve to the files beside the JSON
    assert scene.bands["B8A"].path.name == "B8A.tif" and scene.bands["B11"].path.name == "B11.tif"
    assert scene.mask.path.name == "SCL.tif" and scene.mask.invalid_values == DEFAULT_SCL_MASK
    assert scene.resolve("NIR_NARROW") is scene.bands["B8A"]


def test_real_item_with_assets_dir_elsewhere(real_item, tmp_path):
    item = tmp_path / "item.json"
    item.write_text(real_item.read_text())
    with pytest.raises(InputError, match="not a local file"):
        read_stac_item(item)
    scene = read_stac_item(item, assets_dir=real_item.parent)
    assert scene.bands["B02"].path == real_item.parent / "B02.tif"


def test_planetary_computer_item_offset(tmp_path):
    item = write_s2_lookalike(tmp_path, layout="planetary-computer", size=40, baseline="04.00")
    d = json.loads(item.read_text())
    assert "B02" in d["assets"] and "raster:bands" not in d["assets"]["B02"]
    scene = open_scene(item)
    assert scene.bands["B02"].offset == pytest.approx(-0.1) and scene.bands["B02"].scale == pytest.approx(1e-4)
    old = read_stac_item(write_s2_lookalike(tmp_path / "old", layout="planetary-computer", size=40, baseline="03.01"))
    assert old.bands["B02"].offset == 0.0
    forced = read_stac_item(item, boa_offset=0)
    assert forced.bands["B02"].offset == 0.0


def test_earth_search_offset_applied_flag_wins(tmp_path):
    raw = read_stac_item(write_s2_lookalike(tmp_path / "a", layout="earth-search", size=40, baseline="04.00"))
    assert raw.bands["B04"].offset == pytest.approx(-0.1)  # raster:bands offset
    applied = read_stac_item(
        write_s2_lookalike(tmp_path / "b", layout="earth-search", size=40, baseline="04.00", offset_applied=True)
    )
    assert applied.bands["B04"].offset == 0.0


def test_safe_folder_metadata_and_finest_resolution(tmp_path):
    safe = write_s2_lookalike(tmp_path, layout="safe", size=60, baseline="04.00")
    meta = read_mtd_msil2a(safe / "MTD_MSIL2A.xml")
    assert meta.quantification == 10000 and meta.baseline == "04.00"
    assert meta.offsets["B8A"] == -1000 and meta.offsets["B12"] == -1000 and len(meta.offsets) == 13
    scene = read_safe(safe)
    assert scene.bands["B02"].path.parent.name == "R10m"  # not the R20m copy
    assert scene.bands["B05"].path.parent.name == "R20m" and scene.bands["B01"].path.parent.name == "R60m"
    assert scene.bands["B02"].offset == pytest.approx(-0.1)
    with rasterio.open(scene.bands["B02"].path) as ds:  # real JP2, read by GDAL's JP2OpenJPEG driver
        assert ds.driver == "JP2OpenJPEG" and ds.width == 60
    assert open_scene(safe).id == safe.name
    old = read_safe(write_s2_lookalike(tmp_path / "old", layout="safe", size=60, baseline="02.14"))
    assert old.bands["B02"].offset == 0.0


def test_bad_inputs_name_the_file(tmp_path):
    (tmp_path / "x.SAFE").mkdir()
    with pytest.raises(InputError, match="no Sentinel-2 band files"):
        open_scene(tmp_path / "x.SAFE")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        open_scene(bad)
    safe = tmp_path / "y.SAFE"
    (safe / "GRANULE").mkdir(parents=True)
    (safe / "MTD_MSIL2A.xml").write_text("<a/>")
    with pytest.raises(InputError, match="IMG_DATA"):
        read_safe(safe)


def test_hls_granules(tmp_path):
    s30 = read_hls(write_hls_lookalike(tmp_path, product="S30", size=20))
    assert s30.kind == "hls-s30" and s30.resolve("NIR_NARROW").path.name.endswith(".B8A.tif")
    assert s30.bands["B02"].scale == pytest.approx(1e-4) and s30.bands["B02"].nodata == -9999
    l30 = read_hls(write_hls_lookalike(tmp_path, product="L30", size=20))
    assert l30.resolve("NIR_NARROW").path.name.endswith(".B05.tif")
    assert l30.resolve("SWIR_2").path.name.endswith(".B07.tif")
    with pytest.raises(InputError, match="B8A"):
        l30.resolve("B8A")
    m = fmask_mask("x.tif")
    assert m.invalid(0b10) and m.invalid(0b100) and m.invalid(0b1000) and m.invalid(255)
    assert not m.invalid(0) and not m.invalid(0b10000) and not m.invalid(0b100000) and not m.invalid(0b1000000)
    assert np.array_equal(sorted({v & 0b1110 for v in m.invalid_values if v != 255}), sorted({0b10, 0b100, 0b110, 0b1000, 0b1010, 0b1100, 0b1110}))
