from __future__ import annotations

import pandas as pd
import pytest

from terracarbon.emissions.estimate import estimate_csv, estimate_emissions, weighted_quantile
from terracarbon.emissions.factors import CPI_U
from terracarbon.errors import ConfigError, InputError


def test_known_code_arithmetic_and_provenance(small_factors):
    e = estimate_emissions(revenue=2_000_000, code="327310", factors=small_factors)
    assert e.factor_kg_per_usd == pytest.approx(3.768)  # default: without margins (producer price)
    assert e.tco2e == pytest.approx(2_000_000 * 3.768 / 1000)
    assert e.interval == (pytest.approx(e.tco2e), pytest.approx(e.tco2e))
    assert e.confidence is None
    assert set(e.provenance) >= {"revenue_usd", "code", "factor_kg_per_usd", "tco2e", "interval"}
    assert "EPA" in e.provenance["factor_kg_per_usd"] and "user" in e.provenance["code"]
    m = estimate_emissions(revenue=2_000_000, code="327310", factors=small_factors, margins=True)
    assert m.tco2e == pytest.approx(2_000_000 * 3.858 / 1000)


def test_dollar_year_and_currency(small_factors):
    e = estimate_emissions(revenue=1_000_000, code="541511", year=2019, factors=small_factors)
    assert e.revenue_usd == pytest.approx(1_000_000 * CPI_U[2021] / CPI_U[2019])
    assert "CPI-U" in e.provenance["revenue_usd"]
    eur = estimate_emissions(
        revenue=1_000_000, code="541511", currency="eur", fx_rate=1.18, factors=small_factors
    )
    assert eur.revenue_usd == pytest.approx(1_180_000) and "EUR" in eur.provenance["revenue_usd"]
    with pytest.raises(ConfigError, match="fx_rate"):
        estimate_emissions(revenue=1.0, code="541511", currency="EUR", factors=small_factors)
    with pytest.raises(ConfigError, match="non-negative"):
        estimate_emissions(revenue=-5, code="541511", factors=small_factors)
    with pytest.raises(ConfigError, match="description or a NAICS code"):
        estimate_emissions(revenue=5, factors=small_factors)


def test_fallback_code_is_reported(small_factors):
    e = estimate_emissions(revenue=1e6, code="336112", factors=small_factors)
    assert e.candidates[0]["fallback"] and "has no factor of its own" in e.provenance["factor_kg_per_usd"]


def test_weighted_quantile():
    assert weighted_quantile([1, 2, 3], [0.1, 0.8, 0.1], 0.5) == 2
    assert weighted_quantile([1, 2, 3], [0.1, 0.8, 0.1], 0.05) == 1
    assert weighted_quantile([1, 2, 3], [0.1, 0.8, 0.1], 0.95) == 3
    assert weighted_quantile([5.0], [1.0], 0.1) == 5.0


def test_description_estimate_has_interval(small_clf, small_factors):
    e = estimate_emissions(
        "We make ready-mix concrete and cement",
        10_000_000,
        classifier=small_clf,
        factors=small_factors,
        top_k=5,
    )
    assert e.code in ("327310", "327320")
    lo, hi = e.interval
    values = [c["tco2e"] for c in e.candidates]
    assert min(values) <= lo <= e.tco2e_expected <= hi <= max(values) or lo <= hi
    assert lo <= hi and 0 < e.confidence <= 1
    assert len(e.candidates) == 5 and sum(c["probability"] for c in e.candidates) <= 1 + 1e-6
    assert "group reasoning" in e.provenance["code"]


def test_batch_estimate_csv(small_clf, small_factors, tmp_path):
    src = tmp_path / "c.csv"
    pd.DataFrame(
        {
            "name": ["a", "b", "c"],
            "description": ["cement plant", "law firm", "soybean farm"],
            "revenue": ["1,000,000", "500000", "250000"],
            "fy": ["2021", "2020", "2022"],
        }
    ).to_csv(src, index=False)
    out = tmp_path / "o.csv"
    df = estimate_csv(
        src,
        out,
        description_column="description",
        revenue_column="revenue",
        year_column="fy",
        classifier=small_clf,
        factors=small_factors,
        progress=False,
    )
    back = pd.read_csv(out, dtype={"naics_code": str})
    assert list(back.naics_code) == ["327310", "541110", "111110"]
    assert back.tco2e.iloc[0] == pytest.approx(1_000_000 * 3.768 / 1000, rel=1e-4)
    assert (back.tco2e_low <= back.tco2e_high).all()
    assert len(df) == 3
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"description": ["x"], "revenue": ["lots"]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="not amounts"):
        estimate_csv(
            bad,
            out,
            description_column="description",
            revenue_column="revenue",
            classifier=small_clf,
            factors=small_factors,
            progress=False,
        )
