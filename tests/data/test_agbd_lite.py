"""AGBD-Lite layout (flat split files, own statistics, no CH) read through the same AGBDDataset; date/one-hot bands."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from terracarbon.data.agbd import LC_ONEHOT_BANDS, AGBDDataset, encode_doy, write_agbd_sample
from terracarbon.errors import ConfigError

SCHEMA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "agbd" / "features.json"


@pytest.fixture(scope="module")
def lite_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("agbd_lite")
    info = write_agbd_sample(root, n_tiles=6, patches_per_tile=5, seed=2, lite=True)
    return root, info


def test_lite_files_follow_the_published_schema(lite_root):
    root, _ = lite_root
    names = sorted(p.name for p in root.iterdir())
    assert names == ["AGBD-Lite-statistics.pkl", "AGBD-Lite-test.h5", "AGBD-Lite-train.h5", "AGBD-Lite-val.h5"]
    if not SCHEMA.exists():
        pytest.skip("../shared/data/real absent: AGBD-Lite features.json not available")
    schema = json.loads(SCHEMA.read_text())
    with h5py.File(root / "AGBD-Lite-train.h5", "r") as f:
        for entry in schema:
            d = f["/".join(entry["keys"])]
            assert str(d.dtype) == entry["dtype"] and list(d.shape[1:]) == entry["shape"], entry
        assert len(f["GEDI/agbd"]) == 10 and "CH" not in f


def test_lite_reads_through_the_dataset(lite_root):
    root, _ = lite_root
    ds = AGBDDataset(root, "test", bands=["B04", "B08", "HV", "LC_PROB", "DEM", "LAT_COS"], patch_size=15)
    assert ds.lite and len(ds) == 10 and ds.tiles == [""]
    item = ds[3]
    assert item["image"].shape == (6, 15, 15) and np.isfinite(item["image"].numpy()).all()
    assert ds.stats_path.name == "AGBD-Lite-statistics.pkl"
    with pytest.raises(ConfigError, match="no canopy height"):
        AGBDDataset(root, "train", bands=["CH"])


def test_date_and_onehot_bands(tmp_path):
    root = tmp_path / "a"
    write_agbd_sample(root, n_tiles=3, patches_per_tile=4, seed=5)
    ds = AGBDDataset(root, "train", bands=["S2_DAY", "S2_DOY_COS", "GEDI_DOY_SIN", *LC_ONEHOT_BANDS], patch_size=5)
    raw = AGBDDataset(root, "train", bands=["S2_DAY"], patch_size=5, normalize=False)
    x, days = ds[1]["image"].numpy(), float(raw[1]["image"][0, 0, 0])
    st = ds.stats["Sentinel_metadata"]["S2_date"]
    assert x[0, 0, 0] == pytest.approx((days - st["min"]) / (st["max"] - st["min"]), abs=1e-6)  # min_max under pct
    assert x[1, 2, 2] == pytest.approx(encode_doy(days)[0], abs=1e-6)
    onehot = x[3:]
    assert onehot.shape[0] == 14 and np.allclose(onehot.sum(axis=0), 1.0)
    assert encode_doy(0) == pytest.approx(((np.cos(2 * np.pi * 106 / 365) + 1) / 2, (np.sin(2 * np.pi * 106 / 365) + 1) / 2))
