"""The ``lexical`` ensemble member: TF-IDF n-grams and a linear SVM over the 6-digit NAICS codes.

Index items of one code share vocabulary ("... merchant wholesalers", "... manufacturing", "Sheep ..."), which a
bag of word and character n-grams captures better than a 384-d sentence embedding. The member is

- features: TF-IDF of word 1-2 grams and of character 3-5 grams inside word boundaries (``char_wb``), each block
  L2-normalised (sublinear tf, accents stripped), then the concatenation L2-normalised;
- a one-vs-rest linear SVM (scikit-learn ``LinearSVC``) over the 6-digit codes, fitted on the labelled training
  rows, every code's title and official description, and the Census cross-reference activities;
- weights under ``prune`` in magnitude dropped (sparse), so the model is a few tens of MB.

Fitting needs scikit-learn; *predicting* does not: :class:`LexicalModel` re-implements the two scikit-learn
analyzers (checked against them in the tests) and is one sparse product , so loading the member
costs no scikit-learn import (about 1.5 s) on the one-description CLI path, and predicting imports no scipy either
(the sparse product is numpy). Saved as ``naics_lexical.npz`` in the
model folder (no pickle: vocabularies, idf, weights and settings as arrays).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from terracarbon.errors import ConfigError, InputError

__all__ = ["LEXICAL_FILE", "LexicalModel", "fit_lexical", "lexical_documents"]

LEXICAL_FILE = "naics_lexical.npz"
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_WHITE = re.compile(r"\s\s+")
#: batches up to this many texts use the numpy product in :meth:`LexicalModel.decision` (no scipy import)
_NUMPY_PRODUCT_MAX = 8


def _strip_accents(s: str) -> str:
    """scikit-learn's ``strip_accents_unicode``."""
    try:
        s.encode("ASCII", errors="strict")
        return s
    except UnicodeEncodeError:
        normalized = unicodedata.normalize("NFKD", s)
        return "".join(c for c in normalized if not unicodedata.combining(c))


def _word_terms(doc: str, ngram: tuple[int, int]) -> list[str]:
    """scikit-learn's ``analyzer="word"`` (lowercase, accents stripped, default token pattern, no stop words)."""
    tokens = _TOKEN.findall(_strip_accents(doc.lower()))
    lo, hi = ngram
    out = tokens[:] if lo == 1 else []
    for n in range(max(lo, 2), hi + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out


def _char_wb_terms(doc: str, ngram: tuple[int, int]) -> list[str]:
    """scikit-learn's ``analyzer="char_wb"`` (same preprocessing; n-grams inside space-padded words)."""
    text = _WHITE.sub(" ", _strip_accents(doc.lower()))
    lo, hi = ngram
    out: list[str] = []
    for w in text.split():
        w = " " + w + " "
        wl = len(w)
        for n in range(lo, hi + 1):
            offset = 0
            out.append(w[offset : offset + n])
            while offset + n < wl:
                offset += 1
                out.append(w[offset : offset + n])
            if offset == 0:  # the word is shorter than n: one n-gram, no longer ones
                break
    return out


_ANALYZERS = {"word": _word_terms, "char_wb": _char_wb_terms}


class LexicalModel:
    """A fitted lexical member: TF-IDF blocks + sparse linear scores over ``codes`` (see module docstring).

    ``blocks``: list of ``(analyzer, (min_n, max_n), vocabulary list, idf array)``; ``weight_t``: a
    ``scipy.sparse`` matrix or CSR arrays ``(data, indices, indptr)`` (n_features × n_codes); ``bias`` (n_codes,); ``scale``: the inverse temperature
    that turns scores into a softmax over the codes.
    """

    def __init__(self, codes, blocks, weight_t, bias, *, scale: float = 10.0, meta: dict | None = None):
        self.codes = [str(c) for c in codes]
        self.blocks = []
        off = 0
        for analyzer, ngram, vocab, idf in blocks:
            if analyzer not in _ANALYZERS:
                raise ConfigError(f"unknown analyzer {analyzer!r}")
            idf = np.asarray(idf, dtype=np.float64)
            if len(idf) != len(vocab):
                raise ConfigError(f"{analyzer}: {len(vocab)} terms but {len(idf)} idf values")
            index = {t: i + off for i, t in enumerate(vocab)}
            # idf padded to the global feature index, so one lookup serves every block
            self.blocks.append((analyzer, (int(ngram[0]), int(ngram[1])), list(vocab), idf, index))
            off += len(vocab)
        self.n_features = off
        idf_all = np.concatenate([b[3] for b in self.blocks]) if self.blocks else np.zeros(0)
        self.blocks = [(a, n, v, idf_all, ix) for a, n, v, _i, ix in self.blocks]
        if isinstance(weight_t, tuple):  # (data, indices, indptr) of a features × codes CSR matrix
            wd, wi, wp = weight_t
        else:  # a scipy.sparse matrix
            w = weight_t.tocsr()
            wd, wi, wp = w.data, w.indices, w.indptr
        self._w_data = np.asarray(wd, dtype=np.float32)
        self._w_indices = np.asarray(wi, dtype=np.int64)
        self._w_indptr = np.asarray(wp, dtype=np.int64)
        if len(self._w_indptr) != self.n_features + 1:
            raise ConfigError(
                f"weights have {len(self._w_indptr) - 1} feature rows, expected {self.n_features}"
            )
        self.bias = np.asarray(bias, dtype=np.float32)
        self.scale = float(scale)
        self.meta = dict(meta or {})

    # ------------------------------------------------------------------------------------------------------------
    def transform(self, texts: Sequence[str]):
        """TF-IDF rows (``scipy.sparse.csr_matrix``, len(texts) × n_features, unit L2 norm)."""
        from scipy import sparse

        data, indices, indptr = self._transform_arrays(texts)
        return sparse.csr_matrix((data, indices, indptr), shape=(len(texts), self.n_features))

    def _transform_arrays(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR arrays (data, indices, indptr) of :meth:`transform` (numpy only)."""
        indptr = [0]
        indices: list[np.ndarray] = []
        data: list[np.ndarray] = []
        nnz = 0
        for doc in texts:
            doc = "" if doc is None else str(doc)
            parts_i, parts_v = [], []
            for analyzer, ngram, _vocab, idf, index in self.blocks:
                counts: dict[int, int] = {}
                for t in _ANALYZERS[analyzer](doc, ngram):
                    j = index.get(t)
                    if j is not None:
                        counts[j] = counts.get(j, 0) + 1
                if not counts:
                    continue
                js = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                v = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
                v *= idf[js]
                v /= max(float(np.sqrt(v @ v)), 1e-12)
                parts_i.append(js)
                parts_v.append(v)
            if parts_i:
                js = np.concatenate(parts_i)
                v = np.concatenate(parts_v)
                v /= max(float(np.sqrt(v @ v)), 1e-12)
                order = np.argsort(js)
                indices.append(js[order])
                data.append(v[order])
                nnz += len(js)
            indptr.append(nnz)
        return (
            np.concatenate(data).astype(np.float32) if data else np.zeros(0, np.float32),
            np.concatenate(indices) if indices else np.zeros(0, np.int64),
            np.asarray(indptr, dtype=np.int64),
        )

    def decision(self, texts: Sequence[str]) -> np.ndarray:
        """Raw linear scores (len(texts) × n_codes, float32), as ``LinearSVC.decision_function``.

        Up to a few texts (the one-description CLI) the sparse × sparse product runs in numpy, so that path imports
        no scipy: every non-zero feature of a query adds its weight row (``weight_t`` in CSR, features × codes)
        scaled by its TF-IDF value. Larger batches use ``scipy.sparse`` (several times faster).
        """
        data, indices, indptr = self._transform_arrays(texts)
        b, n = len(texts), len(self.codes)
        if b > _NUMPY_PRODUCT_MAX:  # batches: scipy's sparse product is several times faster
            from scipy import sparse

            x = sparse.csr_matrix((data, indices, indptr), shape=(b, self.n_features))
            return np.asarray((x @ self._weight_csr()).todense(), dtype=np.float32) + self.bias
        out = np.zeros(b * n, dtype=np.float64)
        if len(data):
            wp, wi, wd = self._w_indptr, self._w_indices, self._w_data
            lens = wp[indices + 1] - wp[indices]
            total = int(lens.sum())
            if total:
                row_of_nz = np.repeat(np.arange(b), np.diff(indptr))
                # positions of every weight entry touched: concatenated ranges wp[j] .. wp[j+1]
                starts = np.repeat(wp[indices] - np.cumsum(lens) + lens, lens)
                pos = starts + np.arange(total)
                keys = np.repeat(row_of_nz * n, lens) + wi[pos]
                vals = np.repeat(data.astype(np.float64), lens) * wd[pos]
                out = np.bincount(keys, weights=vals, minlength=b * n)
        return out.reshape(b, n).astype(np.float32) + self.bias

    def _weight_csr(self):
        if getattr(self, "_w_csr", None) is None:
            from scipy import sparse

            self._w_csr = sparse.csr_matrix(
                (self._w_data, self._w_indices, self._w_indptr), shape=(self.n_features, len(self.codes))
            )
        return self._w_csr

    # ------------------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write ``naics_lexical.npz`` (arrays only, no pickle), atomically."""
        import json

        from terracarbon.utils import atomic_path

        arrays = {
            "codes": np.asarray(self.codes, dtype=str),
            "w_data": self._w_data,
            "w_indices": self._w_indices.astype(np.int32),
            "w_indptr": self._w_indptr,
            "w_shape": np.asarray((self.n_features, len(self.codes)), dtype=np.int64),
            "bias": self.bias,
            "scale": np.float32(self.scale),
            "meta": np.frombuffer(json.dumps(self.meta).encode(), dtype=np.uint8),
        }
        spec = []
        off = 0
        for k, (analyzer, ngram, vocab, idf_all, _index) in enumerate(self.blocks):
            idf = idf_all[off : off + len(vocab)].astype(np.float32)
            off += len(vocab)
            if any("\n" in t for t in vocab):
                raise ConfigError("a vocabulary term holds a newline")
            arrays[f"b{k}_vocab"] = np.frombuffer("\n".join(vocab).encode("utf-8"), dtype=np.uint8)
            arrays[f"b{k}_idf"] = idf
            spec.append({"analyzer": analyzer, "ngram": list(ngram), "n": len(vocab)})
        arrays["blocks"] = np.frombuffer(json.dumps(spec).encode(), dtype=np.uint8)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> LexicalModel:
        """Read a member written by :meth:`save`."""
        import json

        try:
            with np.load(path, allow_pickle=False) as z:
                spec = json.loads(z["blocks"].tobytes().decode())
                blocks = []
                for k, b in enumerate(spec):
                    raw = z[f"b{k}_vocab"].tobytes().decode("utf-8")
                    vocab = raw.split("\n") if b["n"] else []
                    if len(vocab) != b["n"]:
                        raise ValueError(f"block {k}: {len(vocab)} terms, expected {b['n']}")
                    blocks.append((b["analyzer"], tuple(b["ngram"]), vocab, z[f"b{k}_idf"]))
                shape = tuple(int(x) for x in z["w_shape"])
                if shape[1] != len(z["codes"]):
                    raise ValueError(f"weights for {shape[1]} codes, {len(z['codes'])} codes listed")
                w = (z["w_data"], z["w_indices"], z["w_indptr"])
                return cls(
                    [str(c) for c in z["codes"]],
                    blocks,
                    w,
                    z["bias"],
                    scale=float(z["scale"]),
                    meta=json.loads(z["meta"].tobytes().decode()),
                )
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(path, f"cannot read the lexical NAICS member: {exc}") from exc


def lexical_documents(taxonomy, labelled=None, cross_references=None) -> tuple[list[str], list[str]]:
    """(texts, 6-digit codes) the lexical member learns from: labelled rows (6-digit codes only), each code's
    title and full official description, and the cross-reference activities (a DataFrame from
    :func:`~.train.cross_reference_pairs`, 6-digit codes only)."""
    leaves = taxonomy.leaves()
    leafset = set(leaves)
    texts: list[str] = []
    codes: list[str] = []
    for df in (labelled, cross_references):
        if df is None:
            continue
        for t, c in zip(df.text, df.code):
            if c in leafset and isinstance(t, str) and t:
                texts.append(t)
                codes.append(c)
    for c in leaves:
        texts.append(taxonomy[c].title)
        codes.append(c)
        doc = taxonomy.document(c, max_chars=None)
        if doc:
            texts.append(doc)
            codes.append(c)
    return texts, codes


def fit_lexical(
    texts: Sequence[str],
    codes: Sequence[str],
    leaf_codes: Sequence[str],
    *,
    c: float = 1.0,
    char_max_features: int | None = 40000,
    prune: float = 0.01,
    scale: float = 10.0,
    n_jobs: int | None = None,
) -> LexicalModel:
    """Fit the lexical member (needs scikit-learn): TF-IDF blocks, one-vs-rest ``LinearSVC(C=c)`` over
    ``leaf_codes`` (rows with another code are ignored), weights with ``|w| <= prune`` dropped.

    ``n_jobs`` > 1 fits the one-vs-rest problems in parallel processes (joblib). About 3 minutes on one core for
    the NAICS index file's training split (17,000 documents, 1,057 codes, 130,000 features).
    """
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize
    from sklearn.svm import LinearSVC

    pos = {code: i for i, code in enumerate(leaf_codes)}
    keep = [i for i, code in enumerate(codes) if code in pos]
    if len({codes[i] for i in keep}) < 2:
        raise ConfigError("the lexical member needs documents of at least two 6-digit codes")
    docs = [str(texts[i]) for i in keep]
    y = np.asarray([pos[codes[i]] for i in keep])
    vecs = [
        ("word", (1, 2), TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode")),
        (
            "char_wb",
            (3, 5),
            TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(3, 5),
                sublinear_tf=True,
                min_df=3,
                strip_accents="unicode",
                max_features=char_max_features,
            ),
        ),
    ]
    mats, blocks = [], []
    for analyzer, ngram, v in vecs:
        mats.append(v.fit_transform(docs))
        vocab = [t for t, _ in sorted(v.vocabulary_.items(), key=lambda kv: kv[1])]
        blocks.append((analyzer, ngram, vocab, v.idf_.astype(np.float32)))
    x = normalize(sparse.hstack(mats).tocsr())
    if n_jobs and n_jobs > 1:
        from sklearn.multiclass import OneVsRestClassifier

        svc = OneVsRestClassifier(LinearSVC(C=c, tol=1e-3), n_jobs=n_jobs).fit(x, y)
        coef = np.vstack([e.coef_ for e in svc.estimators_])
        intercept = np.concatenate([e.intercept_ for e in svc.estimators_])
        classes = svc.classes_
    else:
        svc = LinearSVC(C=c, tol=1e-3).fit(x, y)
        coef, intercept, classes = svc.coef_, svc.intercept_, svc.classes_
    # codes without any document get no weights and a very low bias
    w = np.zeros((len(leaf_codes), x.shape[1]), dtype=np.float32)
    b = np.full(len(leaf_codes), -10.0, dtype=np.float32)
    w[classes] = coef
    b[classes] = intercept
    w[np.abs(w) <= prune] = 0.0
    weight_t = sparse.csr_matrix(w.T)
    return LexicalModel(
        leaf_codes,
        blocks,
        weight_t,
        b,
        scale=scale,
        meta={"c": c, "prune": prune, "documents": len(docs), "nnz": int(weight_t.nnz)},
    )
