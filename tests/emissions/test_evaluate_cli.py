from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from terracarbon.cli.emissions import app
from terracarbon.emissions.evaluate import (
    emission_mape,
    evaluate_classifier,
    labelled_from_taxonomy,
    retrieval_baseline,
    topk_accuracy,
)

runner = CliRunner()


def test_topk_accuracy():
    ranked = [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]
    acc = topk_accuracy(ranked, ["a", "a", "a"], ks=(1, 2, 3))
    assert acc == {"top1": pytest.approx(1 / 3), "top2": pytest.approx(2 / 3), "top3": 1.0}


def test_emission_mape(small_factors):
    ranked = np.array([["327310", "327320"], ["541511", "541512"]], dtype=object)
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    m = emission_mape(ranked, probs, ["327320", "541511"], small_factors, margins=False)
    ape_cement = abs(3.768 - 0.8) / 0.8
    assert m["mape_top1"] == pytest.approx(ape_cement / 2 * 100)
    assert m["mape_weighted"] == pytest.approx(abs((3.768 + 0.8) / 2 - 0.8) / 0.8 / 2 * 100)


def test_evaluate_levels_and_baseline(small_clf, small_dir, small_tax, small_factors):
    from terracarbon.emissions.naics import load_labelled

    df = load_labelled(small_dir / "index.csv", taxonomy=small_tax)
    m = evaluate_classifier(small_clf, df.text.tolist(), df.code.tolist(), factors=small_factors)
    for lv in (2, 3, 4, 5, 6):
        assert 0 <= m[f"level{lv}_top1"] <= m[f"level{lv}_top10"] <= 1
    # coarser levels are easier
    assert m["level2_top1"] >= m["level6_top1"] and m["level2_top1"] >= 0.8
    assert m["level6_top10"] == 1.0  # only 11 leaves in the small tree
    assert 0 <= m["ece"] <= 1 and "mape_top1" in m
    b = retrieval_baseline(small_clf.model, small_tax, df.text.tolist(), df.code.tolist())
    assert 0 < b["level6_top1"] <= b["level6_top10"] == 1.0
    lab = labelled_from_taxonomy(small_tax)
    assert len(lab) == 11 and lab.code.str.len().eq(6).all()
    assert "soybeans" in lab[lab.code == "111110"].text.iloc[0]


def _env(small_dir, emb_cache, monkeypatch):
    monkeypatch.setenv("TERRACARBON_EMISSIONS_DATA", str(small_dir))
    monkeypatch.setenv("TERRACARBON_CACHE", str(emb_cache))


def test_cli_classify_and_estimate(small_dir, emb_cache, monkeypatch, tmp_path):
    _env(small_dir, emb_cache, monkeypatch)
    r = runner.invoke(app, ["classify", "We write custom software for our clients", "--json", "--top-k", "3"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["code"] == "541511" and len(d["candidates"]) == 3
    r = runner.invoke(app, ["estimate", "--code", "327310", "--revenue", "1000000", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tco2e"] == pytest.approx(3768.0)
    r = runner.invoke(
        app, ["estimate", "--description", "cement plant", "--revenue", "1000000", "--year", "2020"]
    )
    assert r.exit_code == 0, r.output
    assert "327310" in r.output and "CPI-U" in r.output
    src = tmp_path / "in.csv"
    src.write_text("id,about\n1,law firm\n2,dairy farm\n")
    fp = tmp_path / "fp"
    args = ["classify", "--batch", str(src), "--column", "about", "--out", str(tmp_path / "o.csv")]
    r = runner.invoke(app, [*args, "--footprint", str(fp)])
    assert r.exit_code == 0, r.output
    assert "classified 2 rows" in r.output
    assert (fp / "emissions.json").exists()  # the run's own footprint
    r = runner.invoke(app, ["factor", "336112"])
    assert r.exit_code == 0 and "has no factor" in r.output.replace("\n", " ")


def test_cli_errors_exit_2(small_dir, emb_cache, monkeypatch, tmp_path):
    _env(small_dir, emb_cache, monkeypatch)
    r = runner.invoke(
        app, ["classify", "--batch", str(tmp_path / "missing.csv"), "--column", "x", "--out", "o.csv"]
    )
    assert r.exit_code == 2 and "missing.csv" in r.output
    r = runner.invoke(app, ["estimate", "--code", "541511", "--revenue", "5", "--currency", "EUR"])
    assert r.exit_code == 2 and "fx_rate" in r.output
    r = runner.invoke(app, ["classify", "x", "--model", str(tmp_path)])
    assert r.exit_code == 2 and "model" in r.output
