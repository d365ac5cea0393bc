"""The lexical member: scikit-learn-identical TF-IDF without scikit-learn at predict time, persistence, ensemble."""

from __future__ import annotations

import numpy as np
import pytest

from terracarbon.emissions.classify import NaicsClassifier
from terracarbon.emissions.lexical import LexicalModel, fit_lexical, lexical_documents
from terracarbon.emissions.naics import load_labelled

TEXTS = [
    "Soybean farming, field and seed production",
    "Café  crème\tmaking, naïve   style",
    "Oilseed farming (except soybean)",
    "a b c",  # tokens shorter than two characters: no word terms
    "x",
    "",
    "Ready-mix concrete manufacturing",
    "Portland cement manufacturing",
]


@pytest.fixture(scope="module")
def small_lexical(small_tax, small_dir):
    df = load_labelled(small_dir / "index.csv", taxonomy=small_tax)
    texts, codes = lexical_documents(small_tax, df)
    return fit_lexical(texts, codes, small_tax.leaves(), prune=0.0), df


def test_transform_matches_scikit_learn(small_lexical):
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    lex, df = small_lexical
    docs = list(df.text) + TEXTS
    v1 = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode").fit(docs)
    v2 = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, strip_accents="unicode"
    ).fit(docs)
    blocks = []
    for name, ngram, v in (("word", (1, 2), v1), ("char_wb", (3, 5), v2)):
        vocab = [t for t, _ in sorted(v.vocabulary_.items(), key=lambda kv: kv[1])]
        blocks.append((name, ngram, vocab, v.idf_))
    mine = LexicalModel(["1"], blocks, sparse.csr_matrix((len(v1.idf_) + len(v2.idf_), 1)), [0.0])
    ref = normalize(sparse.hstack([v1.transform(TEXTS), v2.transform(TEXTS)]).tocsr())
    got = mine.transform(TEXTS)
    assert got.shape == ref.shape and got.nnz == ref.nnz
    np.testing.assert_allclose(got.toarray(), ref.toarray(), atol=1e-6)


def test_fit_save_load_roundtrip(small_lexical, tmp_path):
    lex, df = small_lexical
    s = lex.decision(list(df.text))
    assert np.mean(np.asarray(lex.codes)[s.argmax(1)] == df.code.values) >= 0.9  # it learns its training rows
    path = lex.save(tmp_path / "naics_lexical.npz")
    with np.load(path, allow_pickle=False) as z:  # arrays only, no pickle
        assert "w_data" in z
    again = LexicalModel.load(path)
    assert again.codes == lex.codes and again.scale == lex.scale
    np.testing.assert_array_equal(again.decision(TEXTS), lex.decision(TEXTS))


def test_lexical_member_in_the_ensemble(small_tax, small_lexical, tmp_path):
    lex, df = small_lexical
    clf = NaicsClassifier(small_tax, None, lexical=lex, members=["lexical"], cache_dir=False)
    assert not clf.uses_encoder
    # level 6: the log-softmax of scale * SVM scores; a sector: the log of its codes' summed probability
    raw = lex.decision(TEXTS[:3]) * lex.scale
    p6 = np.exp(raw - raw.max(1, keepdims=True))
    p6 /= p6.sum(1, keepdims=True)
    pre = clf._precompute(None, TEXTS[:3])
    s6 = clf._member_scores(None, 6, None, pre)["lexical"]
    np.testing.assert_allclose(s6, np.log(p6), rtol=1e-4, atol=1e-5)
    s2 = clf._member_scores(None, 2, None, pre)["lexical"]
    for j, sector in enumerate(clf.codes[2]):
        cols = [i for i, c in enumerate(clf.codes[6]) if small_tax.ancestor(c, 2) == sector]
        np.testing.assert_allclose(s2[:, j], np.log(p6[:, cols].sum(1)), rtol=1e-4, atol=1e-5)
    cal = clf.calibrate(list(df.text), list(df.code))
    assert cal["levels"]["6"]["weights"]["lexical"] > 0
    preds = clf.predict(list(df.text), top_k=3)
    assert np.mean([p.code == c for p, c in zip(preds, df.code)]) >= 0.9
    assert clf._model is None  # the encoder was never loaded


def test_lexical_member_unknown_is_refused(small_tax):
    from terracarbon.errors import ConfigError

    with pytest.raises(ConfigError, match="lexical"):
        NaicsClassifier(small_tax, None, members=["lexical"], cache_dir=False)


def test_numpy_product_matches_scipy(small_lexical):
    from scipy import sparse

    lex, _ = small_lexical
    w = sparse.csr_matrix(
        (lex._w_data, lex._w_indices, lex._w_indptr), shape=(lex.n_features, len(lex.codes))
    )
    ref = (lex.transform(TEXTS) @ w).toarray() + lex.bias
    np.testing.assert_allclose(lex.decision(TEXTS), ref, rtol=1e-5, atol=1e-6)  # 8 texts: the numpy product
    big = TEXTS * 3  # more than 8 texts: the scipy product
    np.testing.assert_allclose(lex.decision(big), np.vstack([ref] * 3), rtol=1e-5, atol=1e-6)
