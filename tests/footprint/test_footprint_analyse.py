"""Research-question analysis: tables, Spearman correlations, plots, summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from terracarbon.errors import ConfigError, InputError
from terracarbon.footprint.analyse import analyse, spearman

PNG = b"\x89PNG\r\n\x1a\n"


def _study_csv(path, n=60, seed=0):
    """A small CSV in the study's HFCO2 layout, emissions growing with model size."""
    rng = np.random.default_rng(seed)
    size = np.sort(rng.uniform(1e6, 1e9, n))
    co2 = size / 1e6 * rng.uniform(0.9, 1.1, n)
    co2 = np.sort(co2)  # perfectly monotone in size
    domains = np.array(["NLP", "Computer Vision", "Audio"])[np.arange(n) % 3]
    df = pd.DataFrame(
        {
            "modelId": [f"u/m{i}" for i in range(n)],
            "datasets": ["['d']"] * n,
            "datasets_size": np.where(np.arange(n) % 2 == 0, size * 10, np.nan),
            "co2_eq_emissions": co2,
            "co2_reported": 1,
            "source": np.where(np.arange(n) % 4 == 0, "Code Carbon", "AutoTrain"),
            "training_type": np.where(np.arange(n) % 5 == 0, "fine-tuning", "Not Specified"),
            "geographical_location": "Not Specified",
            "environment": "Not Specified",
            "performance_metrics": ["{'accuracy': 0.9, 'f1': nan, 'rouge1': nan, 'rougeL': nan}"] * n,
            "performance_score": rng.uniform(0.5, 1, n),
            "downloads": rng.integers(0, 1000, n),
            "likes": rng.integers(0, 5, n),
            "library_name": ["['transformers', 'pytorch']"] * n,
            "domain": domains,
            "size": size,
            "created_at": pd.date_range("2021-01-01", periods=n, freq="20D").strftime("%Y-%m-%d"),
            "auto": np.arange(n) % 4 != 0,
        }
    )
    df.to_csv(path, index=False)
    return df


def test_analyse_synthetic_csv(tmp_path):
    src = _study_csv(tmp_path / "study.csv")
    res = analyse(csv=tmp_path / "study.csv", out=tmp_path / "out")
    f = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert f["models"] == len(src) == f["usable_emissions"]
    assert f["spearman"]["model size"]["rho"] == pytest.approx(1.0)
    assert f["spearman"]["dataset size"]["n"] == int(src["datasets_size"].notna().sum())
    assert f["trend_time_vs_emissions"]["rho"] == pytest.approx(1.0)  # created in size order
    assert f["sources"] == {"AutoTrain": 45, "Code Carbon": 15}
    assert sum(f["efficiency_labels"].values()) == len(src)
    classes = pd.read_csv(res.classes)
    assert len(classes) == len(src) and set(classes.columns) >= {"reporting_class", "efficiency_label"}
    text = res.summary.read_text()
    for heading in (
        "## RQ1",
        "## RQ2",
        "Spearman correlations",
        "Carbon-efficiency labels",
        "By application domain",
    ):
        assert heading in text
    assert "cannot be computed" in text  # only reporting models in the study CSV
    assert "## Reproduced vs published" in text
    rep = pd.read_csv(res.replication)
    assert list(rep.columns) == ["quantity", "reproduced", "published", "source"]
    assert rep["source"].str.contains("ipynb cell").all()
    share = rep[rep["quantity"].str.startswith("monthly share reporting")]
    assert len(share) == 4 and share["reproduced"].isna().all()  # needs non-reporting models
    names = {p.name for p in res.plots}
    assert {"emissions_vs_size.png", "emissions_by_domain.png", "classes.png"} <= names
    for p in res.plots:
        assert p.read_bytes()[:8] == PNG


def test_analyse_miner_db_reporting_share(tmp_path, make_items):
    from terracarbon.footprint.hub import _upsert, open_db, parse_model_item

    items = make_items(36)
    con = open_db(tmp_path / "m.sqlite")
    with con:
        _upsert(con, [parse_model_item(it) for it in items])
    con.close()
    res = analyse(db=tmp_path / "m.sqlite", out=tmp_path / "out", plots=False)
    per_year = {r["year"]: r for r in res.figures["per_year"]}
    # expected share per creation year from the items themselves
    for year in ("2021", "2022", "2023"):
        ids = [it for it in items if it["createdAt"].startswith(year)]
        # "CO2e reported" as HFPreprocessing defines it: a number (the two malformed cards have none)
        unusable = ("org0/model-0000", "org4/model-0004")
        rep = [
            it
            for it in ids
            if isinstance(it["cardData"], dict) and "co2_eq_emissions" in it["cardData"] and it["id"] not in unusable
        ]
        assert per_year[year]["models"] == len(ids)
        assert per_year[year]["share reporting %"] == pytest.approx(100 * len(rep) / len(ids))
    assert res.figures["malformed"] == 2
    assert res.figures["context_completeness"]["not reported"] == 12 + 1  # every third + the broken card
    rc = res.figures["reporting_classes"]
    assert sum(rc.values()) == 36 and rc["Energy Optimization"] == rc["Certified Energy Efficiency"] == 0
    assert rc["Unknown Energy Efficiency"] + rc["Context Reporting"] == 12 + 1 + 2  # + the 2 malformed
    assert res.plots == []
    # with non-reporting models the monthly share and its OLS trend are reproduced
    rep = pd.read_csv(res.replication).set_index("quantity")
    assert rep.loc["monthly share reporting CO2e: overall (%)", "reproduced"] > 0


@pytest.mark.shared_data
def test_analyse_real_hfco2_reproduces_study_findings(shared_data, tmp_path):
    res = analyse(csv=shared_data / "footprint" / "HFCO2.csv", out=tmp_path / "out", plots=False)
    f = res.figures
    assert f["clean"].endswith("HFClean.csv")  # found next to HFCO2.csv
    classes = pd.read_csv(res.classes)
    assert len(classes) == 1419
    assert classes["efficiency_label"].value_counts().to_dict() == {"C": 826, "B": 486, "D": 55, "A": 37, "E": 15}
    rep = pd.read_csv(res.replication).set_index("quantity")
    pub = pd.to_numeric(rep["published"], errors="coerce")
    got = pd.to_numeric(rep["reproduced"], errors="coerce")

    def close(q, rel):
        assert got[q] == pytest.approx(pub[q], rel=rel), q

    for lab in "ABCDE":
        close(f"efficiency label {lab}", 0)
    # RQ2 correlations on the 48 curated models (HFEmissionsAnalysis cell 21): exact
    close("curated: Pearson log CO2e vs log model size r (n=48)", 1e-9)
    close("curated: Pearson log CO2e vs log model size p (raw)", 1e-6)
    close("curated: Pearson log CO2e vs log dataset size r (n=47)", 1e-9)
    close("curated: Pearson log CO2e vs log dataset size p (raw)", 1e-6)
    close("curated: Mann-Whitney U pretraining vs fine-tuning p (raw)", 1e-6)
    close("log(co2e) - log(model size): p (Holm)", 1e-6)
    # RQ1 trend of the monthly median CO2e (HFReportingAnalysis cells 17-20): same to 1 %
    close("monthly median CO2e: maximum (g)", 1e-3)
    close("monthly median CO2e: OLS slope p (raw)", 0.01)
    close("monthly median CO2e: OLS slope p (Holm)", 0.01)
    close("Spearman CO2e vs f1, AutoTrain models: p", 1e-6)
    close("reporting models, domain Computer Vision", 0)
    assert "## Reproduced vs published" in res.summary.read_text()
    assert f["models"] > 1400
    # emissions correlate positively with model size and dataset size (study RQ2)
    assert f["spearman"]["model size"]["rho"] > 0.2 and f["spearman"]["model size"]["p"] < 1e-6
    assert f["spearman"]["dataset size"]["rho"] > 0.3
    # reported emissions decreased over time (study RQ1: "slight decrease")
    assert f["trend_time_vs_emissions"]["rho"] < 0
    # NLP dominates; AutoTrain is the main measurement source
    assert f["by_domain"][0]["domain"] == "NLP"
    assert max(f["sources"], key=f["sources"].get) == "AutoTrain"


def test_spearman_and_input_errors(tmp_path):
    r = spearman(pd.Series([1, 2, 3, np.nan, 5]), pd.Series([2, 4, 6, 8, np.inf]))
    assert r["n"] == 3 and r["rho"] == pytest.approx(1.0)
    assert np.isnan(spearman(pd.Series([1, 1, 1]), pd.Series([1, 2, 3]))["rho"])
    with pytest.raises(ConfigError, match="exactly one"):
        analyse(out=tmp_path, csv=tmp_path / "a.csv", db=tmp_path / "b.sqlite")
    with pytest.raises(InputError, match="not found"):
        analyse(out=tmp_path, csv=tmp_path / "missing.csv")
    (tmp_path / "wrong.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="missing column"):
        analyse(out=tmp_path, csv=tmp_path / "wrong.csv")
    with pytest.raises(InputError, match="not found"):
        analyse(out=tmp_path, db=tmp_path / "missing.sqlite")
