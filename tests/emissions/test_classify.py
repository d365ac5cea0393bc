from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from terracarbon.emissions.classify import NaicsClassifier, classify_csv
from terracarbon.emissions.naics import load_labelled
from terracarbon.errors import ConfigError, InputError

OBVIOUS = {
    "We grow soybeans on 2,000 acres of farmland": "11",
    "Our plant produces Portland cement for construction": "31-33",
    "We write custom software for our clients": "54",
}


def test_obvious_descriptions_small_tree(small_clf):
    preds = small_clf.predict(list(OBVIOUS), top_k=5)
    assert [p.candidates[0].path[0] for p in preds] == list(OBVIOUS.values())
    assert preds[0].code == "111110" and preds[1].code == "327310"
    for p in preds:
        probs = [c.probability for c in p.candidates]
        assert probs == sorted(probs, reverse=True)
        assert 0 < p.confidence <= 1 and sum(probs) <= 1 + 1e-5
        assert set(p.levels) == {2, 3, 4, 5, 6}


def test_exact_probabilities_sum_to_one(small_clf):
    ranked = small_clf.rank(["cement"], top_k=50, beam=None)
    for lv, (_, probs) in ranked.items():
        assert probs.sum() == pytest.approx(1.0, abs=1e-4), lv


def test_beam_one_restricts_to_children_of_previous_choice(small_clf):
    r = small_clf.rank(["Passenger car manufacturing"], top_k=20, beam=1)
    codes6, probs6 = r[6]
    kept = [c for c, p in zip(codes6[0], probs6[0]) if p > 0]
    best5 = r[5][0][0][0]
    assert kept and all(c.startswith(best5) for c in kept)
    # every level's single kept code is the child of the previous level's choice
    chain = [r[lv][0][0][0] for lv in (2, 3, 4, 5, 6)]
    assert small_clf.taxonomy.path(chain[-1]) == chain


def test_ensemble_with_examples_and_calibration(small_tax, small_dir, st_model, emb_cache):
    df = load_labelled(small_dir / "index.csv", taxonomy=small_tax)
    train = df.iloc[::2]
    calib = df.iloc[1::2]
    clf = NaicsClassifier(small_tax, st_model, examples=train, cache_dir=emb_cache)
    assert clf.members == ["title", "description", "leaves", "centroid", "knn"]
    # raw cosine similarities (temperature 1) are badly under-confident; calibration must fix that
    clf.calibration = {
        "levels": {str(lv): {"weights": dict.fromkeys(clf.members, 1.0)} for lv in range(2, 7)}
    }
    before = _nll(clf, calib)
    cal = clf.calibrate(calib.text.tolist(), calib.code.tolist())
    after = _nll(clf, calib)
    assert after < 0.5 * before
    w6 = cal["levels"]["6"]["weights"]
    assert set(w6) == set(clf.members) and all(v >= 0 for v in w6.values())
    assert {"temperature", "nll", "acc"} <= set(cal["levels"]["2"]["members"]["knn"])
    preds = clf.predict(calib.text.tolist(), top_k=3)
    acc = np.mean([p.code == c for p, c in zip(preds, calib.code)])
    assert acc >= 0.7


def _nll(clf, df):
    ranked = clf.rank(df.text.tolist(), top_k=50, beam=None)
    codes, probs = ranked[6]
    out = []
    for cs, ps, t in zip(codes, probs, df.code):
        p = dict(zip(cs, ps)).get(t, 1e-9)
        out.append(-np.log(max(p, 1e-9)))
    return float(np.mean(out))


def test_embedding_cache_is_reused(small_tax, st_model, tmp_path, monkeypatch):
    import terracarbon.emissions.models as models

    calls = []
    real = models.encode

    def counting(model, texts, **kw):
        calls.append(len(texts))
        return real(model, texts, **kw)

    monkeypatch.setattr(models, "encode", counting)
    NaicsClassifier(small_tax, st_model, cache_dir=tmp_path)
    n_first = len(calls)
    assert n_first == 2  # titles and documents
    files = sorted(p.name for p in tmp_path.glob("*.npy"))
    assert len(files) == 2 and not list(tmp_path.glob(".*tmp*"))
    NaicsClassifier(small_tax, st_model, cache_dir=tmp_path)
    assert len(calls) == n_first  # second build reads the cache


def test_batch_csv_1000_rows(small_clf, tmp_path):
    rng = random.Random(0)
    phrases = list(OBVIOUS) + ["law firm handling contracts", "dairy farm", "ready-mix concrete trucks"]
    rows = [{"id": i, "about": rng.choice(phrases) + f" #{i}", "country": "US"} for i in range(1000)]
    src = tmp_path / "companies.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    df = classify_csv(small_clf, src, out, column="about", top_k=4, progress=False)
    back = pd.read_csv(out, dtype=str)
    assert len(back) == 1000 and list(back.columns[:3]) == ["id", "about", "country"]
    assert {"naics_code", "naics_top_k", "confidence"} <= set(back.columns)
    assert back.naics_top_k.str.split(";").map(len).max() <= 4
    assert (back.naics_code == back.naics_top_k.str.split(";").str[0]).all()
    conf = back.confidence.astype(float)
    assert conf.between(0, 1).all()
    law = df[df.about.str.startswith("law firm")]
    assert (law.naics_code == "541110").mean() > 0.9
    assert not list(tmp_path.glob(".out.csv*"))  # written atomically


def test_batch_errors(small_clf, tmp_path):
    p = tmp_path / "in.csv"
    p.write_text("name\nacme\n")
    with pytest.raises(InputError, match="no column 'about'"):
        classify_csv(small_clf, p, tmp_path / "o.csv", column="about")
    with pytest.raises(InputError, match="file not found"):
        classify_csv(small_clf, tmp_path / "none.csv", tmp_path / "o.csv", column="about")
    with pytest.raises(ConfigError, match="need labelled examples"):
        NaicsClassifier(small_clf.taxonomy, small_clf.model, members=["knn"], cache_dir=False)


def test_save_and_reload_calibration(small_tax, small_dir, st_model, emb_cache, tmp_path):
    import shutil

    from terracarbon.emissions.models import default_model_path

    df = load_labelled(small_dir / "index.csv", taxonomy=small_tax)
    clf = NaicsClassifier(small_tax, st_model, examples=df, cache_dir=emb_cache, beam=5)
    clf.calibrate(df.text.tolist(), df.code.tolist())
    model_dir = tmp_path / "m"
    shutil.copytree(default_model_path(), model_dir)
    clf.save(model_dir, extra={"note": "test"})
    meta = json.loads((model_dir / "terracarbon_naics.json").read_text())
    assert meta["beam"] == 5 and meta["note"] == "test"
    again = NaicsClassifier(small_tax, model_dir, cache_dir=emb_cache, backend="torch")
    assert again.members == clf.members and again.beam == 5
    assert len(again.examples) == len(df)
    assert again.calibration["levels"]["6"]["weights"] == clf.calibration["levels"]["6"]["weights"]
    a = clf.predict(["hydraulic cement"], top_k=3)[0]
    b = again.predict(["hydraulic cement"], top_k=3)[0]
    assert [c.code for c in a.candidates] == [c.code for c in b.candidates]


def test_real_taxonomy_obvious_sector_offline(shared_data, st_model, emb_cache, monkeypatch):
    """The shipped model, offline, puts obvious descriptions in the right 2-digit sector of the real tree."""
    from terracarbon.emissions.naics import load_naics

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tax = load_naics(shared_data / "emissions" / "2-6 digit_2017_Codes.csv")  # titles only: fast to embed
    clf = NaicsClassifier(tax, st_model, members=["title", "leaves"], cache_dir=emb_cache)
    texts = {
        "We grow soybeans and corn on our family farm": "11",
        "Cement manufacturing plant": "31-33",
        "We write custom software for our clients": "54",
        "Hospital providing inpatient medical care": "62",
        "Restaurant serving meals to customers": "72",
    }
    preds = clf.predict(list(texts), top_k=10)
    sectors = [p.candidates[0].path[0] for p in preds]
    assert sectors == list(texts.values())
