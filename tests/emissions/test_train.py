from __future__ import annotations

import json
import random

import pandas as pd
import pytest

from terracarbon.emissions.train import _batches, finetune, split_labelled, train_classifier
from terracarbon.errors import ConfigError


def test_batches_never_repeat_a_code():
    rng = random.Random(0)
    codes = [rng.choice("ABCDEFGH") for _ in range(200)]
    batches = _batches(codes, 8, random.Random(1))
    for b in batches:
        assert len({codes[i] for i in b}) == len(b) <= 8
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used)) and len(used) >= 190


def test_split_is_seeded_and_disjoint():
    df = pd.DataFrame({"text": [f"t{i}" for i in range(100)], "code": ["111110"] * 100})
    a = split_labelled(df, (0.8, 0.1, 0.1), seed=3)
    b = split_labelled(df, (0.8, 0.1, 0.1), seed=3)
    assert [len(x) for x in a] == [80, 10, 10]
    assert all(x.text.tolist() == y.text.tolist() for x, y in zip(a, b))
    assert len(set().union(*[set(x.text) for x in a])) == 100
    with pytest.raises(ConfigError):
        split_labelled(df, (0.5, 0.1))


def _pairs(labelled, n=64, seed=0):
    rng = random.Random(seed)
    rows = [rng.choice(labelled) for _ in range(n)]
    return pd.DataFrame(
        {"text": [f"{t} ({i})" for i, (t, _) in enumerate(rows)], "code": [c for _, c in rows]}
    )


def test_tiny_finetune_saves_a_loadable_model(small_tax, tmp_path, fx):
    from terracarbon.emissions.models import load_model

    res = finetune(
        _pairs(fx.LABELLED, 64),
        small_tax,
        tmp_path / "m",
        epochs=0.25,
        batch_size=8,
        max_seq_length=32,
        progress=False,
    )
    assert res.steps >= 1 and res.steps == res.planned_steps and not res.stopped_early
    assert all(x == x for x in res.loss_history)  # finite
    m = load_model(tmp_path / "m")
    v = m.encode(["cement plant"], normalize_embeddings=True)
    assert v.shape == (1, 384)
    with pytest.raises(ConfigError, match="one device"):
        finetune(_pairs(fx.LABELLED, 8), small_tax, tmp_path / "x", devices=2)


def test_train_classifier_end_to_end(small_tax, small_dir, tmp_path, emb_cache, fx, monkeypatch):
    monkeypatch.setenv("TERRACARBON_CACHE", str(tmp_path / "cache"))  # keep the user's cache untouched
    from terracarbon.emissions.classify import NaicsClassifier

    write_labelled_csv = fx.write_labelled_csv
    p = _pairs(fx.LABELLED, 80, seed=1)
    csv_path = write_labelled_csv(tmp_path / "pairs.csv", list(zip(p.text, p.code)))
    out = tmp_path / "model"
    xref = tmp_path / "xref.csv"
    xref.write_text(
        "Code,Cross-Reference\n"
        '111110,"Growing sweet corn--are classified in U.S. Industry 111150, Corn Farming;"\n'
        '327310,"Mixing concrete on site--are classified in Industry 327320, Ready-Mix Concrete Manufacturing."\n'
    )
    res = train_classifier(
        csv_path,
        out,
        taxonomy=small_tax,
        cross_references=xref,  # extra fine-tuning pairs and head rows
        epochs=0.1,
        batch_size=8,
        holdout_fraction=0.2,
        calibration_fraction=0.2,
        progress=False,
        backend="torch",  # the ONNX backends have their own tests (test_fast_classify.py)
    )
    assert list((tmp_path / "cache").rglob("*.npy"))  # embeddings went to the configured cache
    meta = json.loads((out / "terracarbon_naics.json").read_text())
    assert meta["split"] == {
        "seed": 0,
        "train": 48,
        "calibration": 16,
        "holdout": 16,
        "source": str(csv_path),
    }
    assert meta["calibration"]["levels"]["6"]["weights"]
    assert meta["calibration_fast"]["members"] == ["lexical"]  # the fast mode's own calibration
    assert (out / "examples.csv").exists() and (out / "holdout.csv").exists()
    assert 0 <= res.metrics["level6_top1"] <= res.metrics["level6_top10"] <= 1
    assert res.metrics["level2_top1"] >= 0.8
    assert (out / "naics_head.npz").exists() and (out / "naics_lexical.npz").exists()
    clf = NaicsClassifier(small_tax, out, cache_dir=emb_cache, backend="torch")
    assert clf.members == ["title", "description", "leaves", "centroid", "knn", "head", "lexical"]
    assert clf.examples is not None and clf.head is not None and clf.lexical is not None
    assert clf.predict(["Portland cement manufacturing"])[0].code == "327310"
    # the encoder-free fast mode: the lexical member alone never loads the encoder
    fast = NaicsClassifier(small_tax, out, cache_dir=emb_cache, backend="torch", members=["lexical"])
    assert fast._model is None and not fast.uses_encoder
    assert fast.predict(["Portland cement manufacturing"])[0].code == "327310"
    assert fast._model is None
