"""The fast NAICS path: int8 ONNX encoder vs torch, cached vs cold start-up, vectorised members vs reference."""

from __future__ import annotations

import random

import numpy as np
import pytest

from terracarbon.emissions.classify import NaicsClassifier, _Groups, _topk_idx, reference_member_scores
from terracarbon.emissions.naics import load_labelled

SAMPLES = [
    "We grow soybeans on 2,000 acres of farmland",
    "Our plant produces Portland cement for construction",
    "We write custom software for our clients",
    "Soybean farming, field and seed production",
    "Ready-mix concrete manufacturing and delivery",
    "law firm handling contracts",
    "Dairy farm milking cows",
    "Passenger car manufacturing",
]


@pytest.fixture(scope="module")
def onnx_dir(emb_cache):
    """Where the CLI tests' classifier (``TERRACARBON_CACHE=emb_cache``) caches its export: one export per session."""
    d = emb_cache / "emissions" / "onnx"
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="module")
def int8_encoder(onnx_dir):
    """The shipped MiniLM exported to int8 ONNX once for this module (offline, from the local folder)."""
    from terracarbon.emissions.models import load_encoder

    return load_encoder(None, backend="onnx-int8", cache_dir=onnx_dir, threads=1)


def test_int8_onnx_encoder_agrees_with_torch(st_model, int8_encoder, onnx_dir):
    from terracarbon.emissions.models import encode, load_encoder, model_fingerprint

    a = encode(st_model, SAMPLES)
    b = encode(int8_encoder, SAMPLES)
    assert b.shape == a.shape and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    cos = (a * b).sum(1)
    assert cos.min() >= 0.99, cos
    # length-sorted batching returns rows in input order, whatever the batch size (int8 activations are quantised
    # per batch (padding included), so other batch compositions differ by about the int8-vs-fp32 gap)
    c = int8_encoder.encode(SAMPLES, batch_size=3)
    assert ((c * b).sum(1)).min() >= 0.985
    assert ((c @ b.T).argmax(1) == np.arange(len(SAMPLES))).all()
    # the export is cached: a second load reuses the file; int8 and torch embeddings never share a cache key
    files = sorted(onnx_dir.glob("*.onnx"))
    again = load_encoder(None, backend="onnx-int8", cache_dir=onnx_dir)
    assert sorted(onnx_dir.glob("*.onnx")) == files and len(files) == 1
    assert model_fingerprint(again) == model_fingerprint(int8_encoder) != model_fingerprint(st_model)


def test_int8_classifier_same_top1_as_torch(small_tax, small_dir, st_model, int8_encoder, tmp_path):
    df = load_labelled(small_dir / "index.csv", taxonomy=small_tax)
    texts = SAMPLES + df.text.tolist()
    torch_clf = NaicsClassifier(small_tax, st_model, examples=df, cache_dir=tmp_path)
    int8_clf = NaicsClassifier(small_tax, int8_encoder, examples=df, cache_dir=tmp_path)
    a = [p.code for p in torch_clf.predict(texts, top_k=3)]
    b = [p.code for p in int8_clf.predict(texts, top_k=3)]
    agree = np.mean([x == y for x, y in zip(a, b)])
    assert agree >= 0.95, list(zip(texts, a, b))


def test_cached_startup_gives_same_topk_as_cold(small_tax, small_dir, int8_encoder, tmp_path, monkeypatch):
    import terracarbon.emissions.models as models

    df = load_labelled(small_dir / "index.csv", taxonomy=small_tax)
    cold = NaicsClassifier(small_tax, int8_encoder, examples=df, cache_dir=tmp_path)
    calls = []
    real = models.encode

    def counting(model, texts, **kw):
        calls.append(len(texts))
        return real(model, texts, **kw)

    monkeypatch.setattr(models, "encode", counting)
    warm = NaicsClassifier(small_tax, int8_encoder, examples=df, cache_dir=tmp_path)
    assert calls == []  # titles, documents and examples all come from the cache
    assert isinstance(warm.e_doc[6], np.memmap) or isinstance(getattr(warm.e_doc[6], "base", None), np.memmap)
    r_cold = cold.rank(SAMPLES, top_k=10)
    r_warm = warm.rank(SAMPLES, top_k=10)
    for lv in r_cold:
        assert (r_cold[lv][0] == r_warm[lv][0]).all()
        np.testing.assert_allclose(r_cold[lv][1], r_warm[lv][1], rtol=1e-6, atol=1e-7)


def test_vectorised_members_match_reference(small_tax, small_dir, st_model, emb_cache):
    df = load_labelled(small_dir / "index.csv", taxonomy=small_tax)
    clf = NaicsClassifier(small_tax, st_model, examples=df.iloc[::2], cache_dir=emb_cache)
    q = clf.embed(SAMPLES[:4])
    s_ex = q @ clf.x.T
    for lv in (2, 3, 4, 5, 6):
        fast = clf._member_scores(q, lv, s_ex)
        ref = reference_member_scores(clf, q, lv)
        assert set(fast) == set(ref) == set(clf.members)
        for m in fast:
            np.testing.assert_allclose(fast[m], ref[m], atol=2e-5, err_msg=f"{m} level {lv}")


def test_group_reductions_and_topk():
    rng = np.random.default_rng(0)
    keys = np.array([2, 0, -1, 2, 0, 3])  # unsorted, a column outside every group, group 1 empty
    g = _Groups(keys, 4)
    mat = rng.normal(size=(3, 6)).astype(np.float32)
    mx = g.max(mat, fill=-9.0)
    sm = g.sum(mat)
    for k in range(4):
        cols = np.flatnonzero(keys == k)
        np.testing.assert_allclose(mx[:, k], mat[:, cols].max(1) if len(cols) else -9.0)
        np.testing.assert_allclose(sm[:, k], mat[:, cols].sum(1) if len(cols) else 0.0, rtol=1e-6)
    rows = rng.normal(size=(6, 2)).astype(np.float32)
    np.testing.assert_allclose(g.sum_rows(rows)[2], rows[[0, 3]].sum(0), rtol=1e-6)
    a = rng.normal(size=(4, 50))
    np.testing.assert_array_equal(_topk_idx(a, 7), np.argsort(-a, axis=1)[:, :7])


def test_cross_reference_pairs_and_sibling_batches(small_tax, tmp_path):
    from terracarbon.emissions.train import _sibling_batches, cross_reference_pairs
    from terracarbon.errors import InputError

    f = tmp_path / "xref.csv"
    f.write_text(
        "Code,Cross-Reference\n"
        '111110,"Growing sweet corn--are classified in U.S. Industry 111150, Corn Farming;"\n'
        '327310,"Mixing concrete on site--are classified in Industry 327320, Ready-Mix Concrete Manufacturing."\n'
        '327310,"Establishments primarily engaged in something else are classified elsewhere."\n'
        '327310,"Unknown things--are classified in Industry 999999, Nothing."\n'
    )
    pairs = cross_reference_pairs(f, small_tax)
    assert pairs.values.tolist() == [["Growing sweet corn", "111150"], ["Mixing concrete on site", "327320"]]
    with pytest.raises(InputError):
        cross_reference_pairs(tmp_path / "missing.csv", small_tax)
    rnd = random.Random(0)
    codes = [rnd.choice(["a1", "a2", "a3", "b1", "b2"]) for _ in range(200)]
    groups = [c[0] for c in codes]
    batches = _sibling_batches(codes, groups, 3, random.Random(1))
    assert all(len({codes[i] for i in b}) == len(b) for b in batches)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))
    same_group = np.mean([len({groups[i] for i in b}) == 1 for b in batches])
    assert same_group > 0.5  # most batches hold siblings only (hard in-batch negatives)


def test_head_member(small_tax, small_dir, st_model, emb_cache, tmp_path):
    from terracarbon.emissions.train import fit_head

    df = load_labelled(small_dir / "index.csv", taxonomy=small_tax)
    clf = NaicsClassifier(small_tax, st_model, examples=df, cache_dir=emb_cache)
    head = fit_head(clf.x, list(df.code), clf.codes[6], init=clf.centroids[6], epochs=20)
    h = clf.x @ head["weight"].T * head["scale"] + head["bias"]
    assert np.mean(np.asarray(clf.codes[6])[h.argmax(1)] == df.code.values) >= 0.9
    with_head = NaicsClassifier(small_tax, st_model, examples=df, cache_dir=emb_cache, head=head)
    assert "head" in with_head.members
    # the head member is the log of a probability mass: at the sector level it sums to one over sectors
    s = with_head._member_scores(clf.x[:3], 2, clf.x[:3] @ clf.x.T)["head"]
    np.testing.assert_allclose(np.exp(s).sum(1), 1.0, rtol=1e-4)
    with_head.save(tmp_path / "m")
    assert (tmp_path / "m" / "naics_head.npz").exists()


def test_taxonomy_records_cached(small_dir, tmp_path, monkeypatch):
    from terracarbon.emissions.naics import load_naics

    monkeypatch.setenv("TERRACARBON_CACHE", str(tmp_path))
    a = load_naics(small_dir / "2017_NAICS_Descriptions.csv")
    files = list((tmp_path / "emissions" / "taxonomy").glob("records-*.json"))
    assert len(files) == 1
    b = load_naics(small_dir / "2017_NAICS_Descriptions.csv")  # from the cached records
    assert b.fingerprint() == a.fingerprint() and b.codes(6) == a.codes(6)
