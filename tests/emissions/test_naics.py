from __future__ import annotations

import http.server
import threading
from functools import partial

import pandas as pd
import pytest

from terracarbon.emissions.naics import (
    concordance,
    download_naics,
    load_labelled,
    load_naics,
    normalize_code,
    sector_of,
)
from terracarbon.errors import InputError


def test_small_tree_structure(small_tax, fx):
    t = small_tax
    assert t.codes(2) == ["11", "31-33", "54"]
    assert t["327310"].parent == "32731"
    assert t["327"].parent == "31-33"  # 3-digit children of a ranged sector
    assert t["32"].code == "31-33"  # a 2-digit prefix inside a range resolves to the range
    assert t.path("336111") == ["31-33", "336", "3361", "33611", "336111"]
    assert set(t.children("5415")) == {"54151"}
    assert set(t.children("54151")) == {"541511", "541512"}
    assert t.leaves() == sorted(c for c, *_ in fx.NAICS_ROWS if len(c) == 6)
    assert t.ancestor("541511", 3) == "541" and t.ancestor("336111", 2) == "31-33"


def test_titles_and_descriptions_are_cleaned(small_tax):
    t = small_tax
    assert t["11"].title == "Agriculture, Forestry, Fishing and Hunting"  # trilateral T removed
    assert t["111"].title == "Crop Production"
    # "See industry description for 111110." is resolved to the 6-digit text, boilerplate removed
    assert t["11111"].description == "growing soybeans."
    # cross-references are dropped
    assert "Cross-References" not in t["111150"].description
    assert t.document("541511").startswith("Custom Computer Programming Services: writing, modifying")
    assert "The Sector as a Whole" not in t["11"].description


def test_fingerprint_changes_with_content(small_dir, tmp_path, fx):
    NAICS_ROWS, write_descriptions_csv = fx.NAICS_ROWS, fx.write_descriptions_csv
    a = load_naics(small_dir / "2017_NAICS_Descriptions.csv")
    b = load_naics(small_dir / "2017_NAICS_Descriptions.csv")
    assert a.fingerprint() == b.fingerprint()
    rows = [r if r[0] != "541110" else (r[0], "Offices of Attorneys", r[2]) for r in NAICS_ROWS]
    c = load_naics(write_descriptions_csv(tmp_path / "x.csv", rows))
    assert c.fingerprint() != a.fingerprint()


def test_code_tree_xlsx_with_sequence_column(tmp_path):
    # the official "2-6 digit_2017_Codes.xlsx" layout: Seq. No., code, title, blank columns, a blank first row
    df = pd.DataFrame(
        {
            "Seq. No.": [None, 1, 2, 3, 4, 5],
            "2017 NAICS US   Code": [None, "11", "111", "1111", "11111", "111110"],
            "2017 NAICS US Title": [
                None,
                "Agriculture, Forestry, Fishing and HuntingT",
                "Crop ProductionT",
                "Oilseed",
                "Soy",
                "Soybean Farming",
            ],
            "Unnamed: 3": [None] * 6,
        }
    )
    p = tmp_path / "2-6 digit_2017_Codes.xlsx"
    df.to_excel(p, index=False)
    t = load_naics(p)
    assert t.leaves() == ["111110"]
    assert t["11"].title == "Agriculture, Forestry, Fishing and Hunting"
    assert t["111110"].description == ""


def test_missing_and_bad_files_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_naics(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="bad.csv"):
        load_naics(bad)
    with pytest.raises(InputError, match="no NAICS"):
        load_naics(tmp_path)  # a folder without NAICS files


def test_load_labelled_index_format(small_dir, small_tax, tmp_path):
    df = load_labelled(small_dir / "index.csv", taxonomy=small_tax)
    assert list(df.columns) == ["text", "code"] and len(df) == 22
    p = tmp_path / "l.csv"
    p.write_text("desc,naics\nfoo,999999\n")
    with pytest.raises(InputError, match="no usable labelled rows"):
        load_labelled(p, taxonomy=small_tax)
    with pytest.raises(InputError, match="no text column"):
        load_labelled(p, text_column="missing")


def test_code_helpers():
    assert normalize_code(111110.0) == "111110"
    assert normalize_code(" 31–33 ") == "31-33"
    assert sector_of("336111") == "31-33" and sector_of("541511") == "54" and sector_of("48-49") == "48-49"


def test_download_once_from_local_server(small_dir, tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "2017_NAICS_Descriptions.csv").write_bytes(
        (small_dir / "2017_NAICS_Descriptions.csv").read_bytes()
    )
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            hits.append(a)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(served)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/2017_NAICS_Descriptions.csv"
        cache = tmp_path / "cache"
        p1 = download_naics(2017, cache, url=url)
        p2 = download_naics(2017, cache, url=url)
        assert p1 == p2 == cache / "2017_NAICS_Descriptions.csv"
        assert len(hits) == 1  # cached after the first download
        assert load_naics(p1).leaves() == load_naics(small_dir / "2017_NAICS_Descriptions.csv").leaves()
        with pytest.raises(InputError, match="download failed"):
            download_naics(2017, cache, url=url.replace("2017_NAICS", "missing"))
    finally:
        srv.shutdown()


# ----------------------------------------------------------------------------------------------------------------
# the real Census files
# ----------------------------------------------------------------------------------------------------------------
def test_real_naics_2017_and_2022(shared_data):
    d = shared_data / "emissions"
    t17 = load_naics(d)
    assert len(t17.codes(2)) == 20 and len(t17.leaves()) == 1057
    assert t17["31-33"].title == "Manufacturing"
    assert t17["541511"].title == "Custom Computer Programming Services"
    assert "software" in t17["541511"].description
    # every node except sectors has a parent in the tree
    assert all(n.parent in t17.nodes for n in t17.nodes.values() if n.level > 2)
    # the code-tree CSV (2-6 digit) gives the same codes
    tree = load_naics(d / "2-6 digit_2017_Codes.csv")
    assert tree.codes() == t17.codes()
    t22 = load_naics(d / "2022_NAICS_Descriptions.xlsx", year=2022)
    assert len(t22.leaves()) == 1012
    conc = concordance(t17, t22)
    counts = conc.status.value_counts()
    assert counts["unchanged"] > 850 and counts.get("dropped", 0) + counts.get("matched", 0) >= 45
    # 2017 -> 2022: the coal mining industries were merged
    row = conc[conc.code_2017 == "212111"].iloc[0]
    assert row.status in ("matched", "dropped")


def test_real_index_file(shared_data):
    d = shared_data / "emissions"
    t = load_naics(d)
    df = load_labelled(d / "2017_NAICS_Index_File.train.csv", taxonomy=t)
    assert len(df) > 16000 and df.code.str.len().eq(6).all()
    assert df.code.nunique() > 1000
