"""Reporting-practice classes and the study's carbon-efficiency label."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from terracarbon.footprint.classify import (
    METRIC_WEIGHTS,
    _rate,
    classify,
    efficiency_labels,
    load_records,
    reporting_class,
)


def _rec(status="ok", **has):
    r = {"co2_status": status, "co2_reported": int(status != "absent")}
    for f in ("source", "training_type", "geographical_location", "hardware_used"):
        r[f"has_{f}"] = has.get(f, False)
    return r


def test_reporting_classes():
    assert reporting_class(_rec("absent")) == "not reported"
    assert reporting_class(_rec("malformed", source=True)) == "malformed"
    assert reporting_class(_rec()) == "emissions only"
    assert reporting_class(_rec(source=True)) == "emissions only"
    assert reporting_class(_rec(source=True, hardware_used=True)) == "partial"
    assert reporting_class(_rec(source=True, hardware_used=True, training_type=True)) == "partial"
    full = dict(source=True, hardware_used=True, training_type=True, geographical_location=True)
    assert reporting_class(_rec(**full)) == "complete"


def test_rate_follows_replication_intervals():
    bounds = np.array([8.0, 6.0, 4.0, 2.0])  # descending, as computed from percentiles
    assert _rate(9.0, bounds) == 0  # above the top boundary: A
    assert _rate(8.0, bounds) == 1  # upper bound inclusive, lower exclusive
    assert _rate(5.0, bounds) == 2
    assert _rate(2.0, bounds) == 4
    assert _rate(0.5, bounds) == 4
    assert _rate(0.0, bounds) == 4  # index 0 (division by zero) is the worst class
    assert math.isnan(_rate(float("nan"), bounds))


def _frame(co2):
    n = len(co2)
    df = pd.DataFrame({"model_id": [f"m{i}" for i in range(n)], "co2_eq_emissions": co2})
    for m in METRIC_WEIGHTS:
        if m != "co2_eq_emissions":
            df[m] = np.nan
    return df


def test_efficiency_label_quintiles_of_emissions():
    co2 = [float(c) for c in range(1, 11)] + [np.nan]
    df = _frame(co2)
    df.loc[9, "model_id"] = "distilgpt2"  # reference model: co2 = 10
    fixed = efficiency_labels(df, faithful=False)
    # only CO2 is rated: lower emissions -> better label, two models per quintile
    assert list(fixed["efficiency_label"][:10]) == list("AABBCCDDEE")
    assert pd.isna(fixed["efficiency_label"][10])  # no usable emissions, no label
    assert fixed["index_co2_eq_emissions"][0] == pytest.approx(10.0)  # ref / value
    faithful = efficiency_labels(df, faithful=True)
    # the replication compares raw indices with square-root boundaries: never worse, usually better
    order = {c: i for i, c in enumerate("ABCDE")}
    assert all(
        order[a] <= order[b]
        for a, b in zip(faithful["efficiency_label"][:10], fixed["efficiency_label"][:10])
    )
    assert (faithful["efficiency_label"][:10] == "A").sum() > 2


def test_weighted_mean_of_ratings():
    # two metrics rated: co2 (weight .35) and downloads (weight .25); weights renormalised
    df = _frame([1.0, 2.0, 3.0, 4.0, 5.0])
    df["downloads"] = [1, 10, 100, 1000, 10000]
    out = efficiency_labels(df, faithful=False)
    r_co2 = out["rating_co2_eq_emissions"].to_numpy()
    r_dl = out["rating_downloads"].to_numpy()
    expected = [round((0.35 * a + 0.25 * b) / 0.6) for a, b in zip(r_co2, r_dl)]
    assert [("ABCDE".index(x)) for x in out["efficiency_label"]] == expected
    assert r_dl[-1] == 0 and r_dl[0] == 4  # downloads: higher is better


def test_classify_real_hfco2(shared_data, tmp_path):
    csv = shared_data / "footprint" / "HFCO2.csv"
    classes = classify(csv=csv, out=tmp_path / "classes.csv")
    raw = pd.read_csv(csv)
    assert len(classes) == raw["modelId"].nunique() and classes["model_id"].is_unique
    assert set(classes["efficiency_label"]) <= set("ABCDE")
    assert set(classes["reporting_class"]) <= {"complete", "partial", "emissions only"}
    on_disk = pd.read_csv(tmp_path / "classes.csv")
    assert list(on_disk["model_id"]) == list(classes["model_id"])
    # per-metric classes follow the replication's percentile boundaries
    share = classes["rating_size_efficency"].value_counts(normalize=True)
    assert all(0.17 < share[c] < 0.23 for c in "ABCDE")
    dl = classes["rating_downloads"].value_counts(normalize=True)
    assert 0.55 < dl["E"] < 0.65 and 0.2 < dl["D"] < 0.3
    assert classes.set_index("model_id").loc["distilgpt2", "reporting_class"] == "complete"


def test_classify_miner_db(tmp_path, make_items):
    from terracarbon.footprint.hub import _upsert, open_db, parse_model_item

    con = open_db(tmp_path / "m.sqlite")
    with con:
        _upsert(con, [parse_model_item(it) for it in make_items(30)])
    con.close()
    records = load_records(db=tmp_path / "m.sqlite")
    classes = classify(records=records)
    by = classes.set_index("model_id")
    assert by.loc["org0/model-0000", "reporting_class"] == "malformed"
    assert by.loc["org2/model-0002", "reporting_class"] == "not reported"
    assert pd.isna(by.loc["org2/model-0002", "efficiency_label"])
    assert by.loc["org1/model-0001", "efficiency_label"] in set("ABCDE")
    ok = records["co2_eq_emissions"].notna()
    assert classes.loc[ok.to_numpy(), "efficiency_label"].notna().all()
    # size efficiency = size / co2
    r = records.set_index("model_id").loc["org1/model-0001"]
    assert r["size_efficency"] == pytest.approx(r["size"] / 500.0)
