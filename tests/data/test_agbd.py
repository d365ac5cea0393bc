"""AGBD reader/writer: real layout (names, dtypes), normalisation, band selection, splits, errors."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import torch

from terracarbon.data.agbd import (
    ALL_BANDS,
    GEDI_ATTRS,
    S2_ORDER,
    AGBDDataset,
    alos_dn,
    alos_gamma0_db,
    decode_lat_lon,
    write_agbd_sample,
)
from terracarbon.errors import ConfigError, InputError


@pytest.fixture(scope="module")
def agbd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("agbd")
    info = write_agbd_sample(root, n_tiles=4, patches_per_tile=6, seed=3, n_files=2)
    return root, info


def test_layout_names_and_dtypes(agbd_root):
    root, info = agbd_root
    names = sorted(p.name for p in root.iterdir())
    assert names == [
        "biomes_splits_to_name.pkl",
        "data_subset-2019-v4_0-20.h5",
        "data_subset-2019-v4_1-20.h5",
        "statistics_subset_2019-2020-v4_new.pkl",
    ]
    with h5py.File(root / "data_subset-2019-v4_0-20.h5", "r") as f:
        tile = sorted(f.keys())[0]
        g = f[tile]
        assert g["S2_bands"].shape == (6, 25, 25, 12) and g["S2_bands"].dtype == np.uint16
        assert [str(b) for b in g["S2_bands"].attrs["order"]] == S2_ORDER
        assert g["S2_SCL"].dtype == np.uint8
        assert g["ALOS_bands"].shape == (6, 25, 25, 2) and g["ALOS_bands"].dtype == np.uint16
        assert [str(b) for b in g["ALOS_bands"].attrs["order"]] == ["HH", "HV"]
        assert g["CH"]["ch"].dtype == np.uint8 and g["CH"]["std"].dtype == np.uint8
        assert g["LC"].shape == (6, 25, 25, 2) and g["LC"].dtype == np.uint8
        assert g["DEM"].dtype == np.int16
        assert set(g["Sentinel_metadata"].keys()) == {
            "S2_vegetation_score",
            "S2_date",
            "S2_pbn",
            "S2_ron",
            "S2_boa_offset",
        }
        for k, dt in GEDI_ATTRS.items():
            assert g["GEDI"][k].dtype == np.dtype(dt), k
            assert g["GEDI"][k].shape == (6,)
    stats = pickle.loads((root / "statistics_subset_2019-2020-v4_new.pkl").read_bytes())
    assert set(stats["S2_bands"]) == set(S2_ORDER)
    assert set(stats["S2_bands"]["B04"]) >= {"mean", "std", "min", "max", "p1", "p99"}
    assert 0 < stats["S2_bands"]["B08"]["mean"] < 1  # surface reflectance
    assert -35 < stats["ALOS_bands"]["HV"]["mean"] < 0  # dB
    splits = pickle.loads((root / "biomes_splits_to_name.pkl").read_bytes())
    assert set(splits) >= {"train", "val", "test"}


def test_splits_membership_and_lengths(agbd_root):
    root, info = agbd_root
    seen = set()
    for split in ("train", "val", "test"):
        ds = AGBDDataset(root, split)
        assert ds.tiles == sorted(info["split_tiles"][split])
        assert len(ds) == 6 * len(info["split_tiles"][split])
        tiles = {ds[i]["tile"] for i in range(len(ds))}
        assert tiles == set(info["split_tiles"][split])
        assert not (tiles & seen)
        seen |= tiles
    assert len(seen) == 4


def test_item_contract_and_normalisation_by_hand(agbd_root):
    root, _ = agbd_root
    ds = AGBDDataset(root, "train")
    item = ds[4]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (len(ALL_BANDS), 25, 25)
    stats = pickle.loads((root / "statistics_subset_2019-2020-v4_new.pkl").read_bytes())
    with h5py.File(root / item["file"], "r") as f:
        g = f[item["tile"]]
        i = item["index"]
        raw_agbd = float(g["GEDI"]["agbd"][i])
        dn = g["S2_bands"][i, :, :, S2_ORDER.index("B08")].astype(float)
        boa = int(g["Sentinel_metadata"]["S2_boa_offset"][i])
        hv_dn = g["ALOS_bands"][i, :, :, 1].astype(float)
        ch = g["CH"]["ch"][i].astype(float)
        lc = g["LC"][i]
        lat_off, lat_dec = g["GEDI"]["lat_offset"][i], g["GEDI"]["lat_decimal"][i]
    assert float(item["agbd"]) == pytest.approx(raw_agbd)  # label not normalised, Mg/ha
    # S2: (DN - 1000*offset)/10000 then pct normalisation, clipped to [0, 1]
    s = stats["S2_bands"]["B08"]
    sr = (dn[12, 12] - 1000 * boa) / 10000
    exp = np.clip((sr - s["p1"]) / (s["p99"] - s["p1"]), 0, 1)
    assert float(item["image"][ALL_BANDS.index("B08"), 12, 12]) == pytest.approx(exp, abs=1e-6)
    # ALOS: 10 log10(DN^2) - 83 dB
    s = stats["ALOS_bands"]["HV"]
    db = 10 * np.log10(hv_dn[5, 7] ** 2) - 83
    exp = np.clip((db - s["p1"]) / (s["p99"] - s["p1"]), 0, 1)
    assert float(item["image"][ALL_BANDS.index("HV"), 5, 7]) == pytest.approx(exp, abs=1e-6)
    s = stats["CH"]["ch"]
    assert float(item["image"][ALL_BANDS.index("CH"), 12, 12]) == pytest.approx(
        np.clip((ch[12, 12] - s["p1"]) / (s["p99"] - s["p1"]), 0, 1), abs=1e-6
    )
    # land cover encoding
    assert float(item["image"][ALL_BANDS.index("LC_COS"), 12, 12]) == pytest.approx(
        (np.cos(2 * np.pi * lc[12, 12, 0] / 100) + 1) / 2, abs=1e-6
    )
    assert float(item["image"][ALL_BANDS.index("LC_PROB"), 12, 12]) == pytest.approx(
        lc[12, 12, 1] / 100, abs=1e-6
    )
    # latitude: sign(decimal) * (|decimal| + offset), WRAP-encoded
    lat = float(np.sign(lat_dec) * (abs(lat_dec) + lat_off))
    assert item["lat"] == pytest.approx(lat)
    assert float(item["image"][ALL_BANDS.index("LAT_SIN"), 12, 12]) == pytest.approx(
        (np.sin(np.pi * lat / 90) + 1) / 2, abs=1e-6
    )
    # mean_std strategy
    ms = AGBDDataset(root, "train", bands=["DEM"], norm_strat="mean_std")[4]["image"]
    with h5py.File(root / item["file"], "r") as f:
        dem = float(f[item["tile"]]["DEM"][item["index"], 12, 12])
    assert float(ms[0, 12, 12]) == pytest.approx((dem - stats["DEM"]["mean"]) / stats["DEM"]["std"], rel=1e-5)


def test_band_selection_patch_size_nodata_and_raw(agbd_root):
    root, _ = agbd_root
    full = AGBDDataset(root, "train")
    sel = AGBDDataset(root, "train", bands=["HV", "B04", "CH"], patch_size=15)
    a, b = full[0]["image"], sel[0]["image"]
    assert b.shape == (3, 15, 15)
    assert torch.allclose(b[0], a[ALL_BANDS.index("HV"), 5:20, 5:20])
    assert torch.allclose(b[1], a[ALL_BANDS.index("B04"), 5:20, 5:20])
    # patch 0 of each tile has nodata corners: normalised to 0
    assert torch.all(a[ALL_BANDS.index("B04"), :3, :3] == 0)
    assert torch.all(a[ALL_BANDS.index("DEM"), -3:, -3:] == 0)
    raw = AGBDDataset(root, "train", bands=["B04", "HV", "CH", "DEM"], normalize=False)[0]["image"]
    assert torch.isnan(raw[0, 0, 0]) and torch.isnan(raw[3, -1, -1]) and torch.isnan(raw[2, 0, -1])
    assert 0 < float(raw[0, 12, 12]) < 1 and -35 < float(raw[1, 12, 12]) < 0
    # DataLoader batches
    loader = torch.utils.data.DataLoader(sel, batch_size=4)
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 15, 15) and batch["agbd"].shape == (4,)
    assert np.allclose(sel.labels()[:4], batch["agbd"].numpy())


def test_helpers_round_trip():
    db = np.array([-25.0, -12.5, -8.0])
    assert np.allclose(alos_gamma0_db(alos_dn(db)), db, atol=0.01)
    assert alos_gamma0_db(np.array([0]))[0] == -9999.0
    assert decode_lat_lon(2, np.float32(-0.25), 70, np.float32(-0.5)) == pytest.approx((-2.25, -70.5))


def test_errors(tmp_path, agbd_root):
    root, _ = agbd_root
    with pytest.raises(ConfigError, match="unknown AGBD band"):
        AGBDDataset(root, "train", bands=["B99"])
    with pytest.raises(ConfigError, match="split"):
        AGBDDataset(root, "training")
    with pytest.raises(ConfigError, match="patch_size"):
        AGBDDataset(root, "train", patch_size=24)
    bad = tmp_path / "bad"
    write_agbd_sample(bad, n_tiles=3, patches_per_tile=2, seed=1)
    (bad / "statistics_subset_2019-2020-v4_new.pkl").unlink()
    with pytest.raises(InputError, match="statistics_subset_2019-2020-v4_new.pkl.*missing"):
        AGBDDataset(bad, "train")
    trunc = tmp_path / "trunc"
    write_agbd_sample(trunc, n_tiles=3, patches_per_tile=2, seed=1)
    h5 = trunc / "data_subset-2019-v4_0-20.h5"
    h5.write_bytes(h5.read_bytes()[:2000])
    with pytest.raises(InputError, match="data_subset-2019-v4_0-20.h5.*HDF5"):
        AGBDDataset(trunc, "train")
    (trunc / "biomes_splits_to_name.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="biomes_splits_to_name.pkl"):
        AGBDDataset(trunc, "train")
    with pytest.raises(InputError, match="does not exist"):
        AGBDDataset(tmp_path / "nowhere", "train")
