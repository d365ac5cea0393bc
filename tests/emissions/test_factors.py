from __future__ import annotations

import pytest

from terracarbon.emissions.factors import CPI_U, deflate_to, load_factors
from terracarbon.errors import ConfigError, InputError


def test_direct_lookup(small_factors):
    f = small_factors.lookup("327310")
    assert f.kg_per_usd == pytest.approx(3.858) and not f.fallback
    assert f.kg_per_usd_without_margins == pytest.approx(3.768)
    g = small_factors.lookup("327310", margins=False)
    assert g.kg_per_usd == pytest.approx(3.768)
    assert f.dollar_year == 2021 and "2021" in f.unit


def test_fallback_up_the_hierarchy_says_so(small_factors):
    # 336112 has no factor; its 5-digit parent 33611 holds 336111 only
    f = small_factors.lookup("336112")
    assert f.fallback and f.matched_code == "33611" and f.matched_level == 5
    assert f.kg_per_usd == pytest.approx(0.35)
    assert "336112 has no factor" in f.note and "33611" in f.note
    # a 4-digit code averages its 6-digit factors
    g = small_factors.lookup("3273")
    assert g.fallback and g.n_factors == 2
    assert g.kg_per_usd == pytest.approx((3.858 + 0.84) / 2)
    # unknown 6-digit code in a known subsector falls back to the 3-digit level
    h = small_factors.lookup("541999")
    assert h.matched_code == "541" and h.n_factors == 3
    # range sectors
    assert small_factors.lookup("31-33").n_factors == 3  # 336112 has none
    with pytest.raises(ConfigError, match="no EPA emission factor"):
        small_factors.lookup("921110")


def test_bad_factor_file(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("code,value\n111110,1\n")
    with pytest.raises(InputError, match="missing column"):
        load_factors(p)
    with pytest.raises(InputError, match="file not found"):
        load_factors(tmp_path / "missing.csv")


def test_cpi_deflator():
    assert deflate_to(100.0, 2021) == (100.0, 1.0)
    v, r = deflate_to(100.0, 2019)
    assert r == pytest.approx(CPI_U[2021] / CPI_U[2019]) and v == pytest.approx(100 * r)
    assert r > 1  # 2019 dollars are worth more 2021 dollars
    with pytest.raises(ConfigError, match="no CPI-U"):
        deflate_to(1.0, 1990)


def test_real_epa_file(shared_data):
    t = load_factors(shared_data / "emissions")
    assert len(t) == 1016
    cement = t.lookup("327310")
    assert cement.kg_per_usd == pytest.approx(3.858) and cement.kg_per_usd_without_margins == pytest.approx(
        3.768
    )
    assert t.lookup("562212").kg_per_usd == pytest.approx(10.989)
    # electric power generation has no 6-digit factor in v1.2: falls back and says so
    from terracarbon.emissions.naics import load_naics

    tax = load_naics(shared_data / "emissions")
    missing = [c for c in tax.leaves() if c not in t]
    assert "221112" in missing
    f = t.lookup("221112")
    assert f.fallback and "has no factor of its own" in f.note
