"""Evaluation: top-1 / top-k accuracy per NAICS level, emission MAPE, and labelled sets built from the taxonomy."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from terracarbon.emissions.naics import LEVELS, NaicsTaxonomy, normalize_code
from terracarbon.errors import ConfigError

__all__ = [
    "emission_mape",
    "evaluate_classifier",
    "labelled_from_taxonomy",
    "retrieval_baseline",
    "topk_accuracy",
]


def topk_accuracy(ranked_codes: np.ndarray, true_codes: Sequence[str], ks: Sequence[int] = (1, 10)) -> dict:
    """Share of rows whose true code is among the first k ranked codes, for each k."""
    out = {}
    truth = np.asarray(true_codes, dtype=object)
    for k in ks:
        hits = [t in set(r[:k]) for r, t in zip(ranked_codes, truth)]
        out[f"top{k}"] = float(np.mean(hits)) if len(hits) else float("nan")
    return out


def evaluate_classifier(
    classifier,
    texts: Sequence[str],
    codes: Sequence[str],
    *,
    ks: Sequence[int] = (1, 10),
    batch_size: int = 256,
    beam: int | None | str = "default",
    factors=None,
    progress: bool = False,
    embeddings: np.ndarray | None = None,
) -> dict:
    """Accuracy at every NAICS level (``level2_top1`` ... ``level6_top10``) of a :class:`NaicsClassifier`.

    Level-L rankings are the classifier's own level-L decisions (beam-restricted joint probabilities). Rows whose code
    is shorter than L digits do not count at level L. With ``factors`` (a :class:`~.factors.FactorTable`) the
    emission MAPE of the top-1 code (and of the probability-weighted factor) against the true code is added.
    ``embeddings`` (one row per text, from ``classifier.embed``) skips encoding the texts.
    """
    from terracarbon.utils import progress as make_progress

    tax = classifier.taxonomy
    codes = [normalize_code(c) for c in codes]
    kmax = max(ks)
    ranked: dict[int, list] = {lv: [] for lv in LEVELS}
    probs6: list = []
    with make_progress(disable=not progress) as bar:
        task = bar.add_task("evaluating", total=len(texts))
        for s in range(0, len(texts), batch_size):
            kw = {} if embeddings is None else {"embeddings": embeddings[s : s + batch_size]}
            r = classifier.rank(texts[s : s + batch_size], top_k=kmax, beam=beam, **kw)
            for lv in LEVELS:
                ranked[lv].extend(list(r[lv][0]))
            probs6.extend(list(r[6][1]))
            bar.update(task, advance=min(batch_size, len(texts) - s))
    out: dict = {"n": len(texts)}
    for lv in LEVELS:
        rows = [i for i, c in enumerate(codes) if c in tax.nodes and tax[c].level >= lv]
        truth = [tax.ancestor(codes[i], lv) for i in rows]
        acc = topk_accuracy([ranked[lv][i] for i in rows], truth, ks)
        for k, v in acc.items():
            out[f"level{lv}_{k}"] = v
    # calibration: mean confidence vs accuracy of the top-1 6-digit code
    conf = np.array([p[0] for p in probs6])
    hit = np.array([r[0] == c for r, c in zip(ranked[6], codes)])
    out["mean_confidence"] = float(conf.mean()) if len(conf) else float("nan")
    out["ece"] = _ece(conf, hit)
    if factors is not None:
        out.update(emission_mape(ranked[6], probs6, codes, factors))
    return out


def _ece(conf: np.ndarray, hit: np.ndarray, bins: int = 10) -> float:
    if len(conf) == 0:
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    e = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        m = (conf > a) & (conf <= b)
        if m.any():
            e += m.mean() * abs(conf[m].mean() - hit[m].mean())
    return float(e)


def emission_mape(ranked6, probs6, true_codes: Sequence[str], factors, *, margins: bool = True) -> dict:
    """MAPE of emissions (revenue cancels: factor of the prediction vs factor of the true code).

    ``mape_top1`` uses the best code's factor, ``mape_weighted`` the probability-weighted factor of the ranked codes.
    """
    ape1, apew = [], []
    cache: dict[str, float] = {}

    def f(code: str) -> float:
        if code not in cache:
            cache[code] = factors.lookup(code, margins=margins).kg_per_usd
        return cache[code]

    def g(code: str) -> float:
        try:
            return f(code)
        except ConfigError:  # e.g. public administration (92) has no EPA factor at all
            return float("nan")

    for r, p, t in zip(ranked6, probs6, true_codes):
        ft = g(t)
        if not ft == ft or ft <= 0:
            continue
        fr = np.array([g(c) for c in r])
        w = np.asarray(p, dtype=float)
        ok = ~np.isnan(fr) & (w > 0)
        if not ok.any() or np.isnan(fr[0]):
            continue
        ape1.append(abs(fr[0] - ft) / ft)
        w = w[ok] / w[ok].sum()
        apew.append(abs(float(np.dot(w, fr[ok])) - ft) / ft)
    return {
        "mape_top1": float(np.mean(ape1) * 100) if ape1 else float("nan"),
        "mape_weighted": float(np.mean(apew) * 100) if apew else float("nan"),
        "median_ape_top1": float(np.median(ape1) * 100) if ape1 else float("nan"),
    }


def retrieval_baseline(
    model,
    taxonomy: NaicsTaxonomy,
    texts: Sequence[str],
    codes: Sequence[str],
    *,
    ks=(1, 10),
    field: str = "document",
    doc_embeddings: np.ndarray | None = None,
) -> dict:
    """The zero-shot floor: flat cosine retrieval over the 6-digit codes' title + description (no hierarchy).

    Level-L accuracy counts the level-L ancestor of each retrieved 6-digit code (first occurrences, in order).
    ``doc_embeddings`` (rows in :meth:`NaicsTaxonomy.leaves` order) skips embedding the documents again.
    """
    from terracarbon.emissions.models import encode

    leaves = taxonomy.leaves()
    docs = [taxonomy.document(c) if field == "document" else taxonomy[c].title for c in leaves]
    e = encode(model, docs) if doc_embeddings is None else np.asarray(doc_embeddings)
    q = encode(model, list(texts))
    order = np.argsort(-(q @ e.T), axis=1)
    codes = [normalize_code(c) for c in codes]
    out: dict = {"n": len(texts)}
    leaves_arr = np.asarray(leaves, dtype=object)
    for lv in LEVELS:
        ranked = []
        for row in order:
            seen: dict[str, None] = {}
            for c in leaves_arr[row]:
                seen.setdefault(taxonomy.ancestor(c, lv), None)
                if len(seen) >= max(ks):
                    break
            ranked.append(list(seen))
        rows = [i for i, c in enumerate(codes) if c in taxonomy.nodes and taxonomy[c].level >= lv]
        acc = topk_accuracy([ranked[i] for i in rows], [taxonomy.ancestor(codes[i], lv) for i in rows], ks)
        for k, v in acc.items():
            out[f"level{lv}_{k}"] = v
    return out


_FIRST_SENTENCE = re.compile(r"^(.+?[.;])(\s|$)")


def labelled_from_taxonomy(
    taxonomy: NaicsTaxonomy, *, seed: int = 0, max_rows: int | None = None
) -> pd.DataFrame:
    """A labelled set built from the taxonomy itself: the first sentence of each 6-digit description.

    Useful where no index file is at hand. Pair it with a classifier whose ``description`` member is switched
    off (``members=["title"]``) to keep the evaluation text out of the retrieval documents.
    """
    rows = []
    for code in taxonomy.leaves():
        d = taxonomy[code].description
        if not d:
            continue
        m = _FIRST_SENTENCE.match(d)
        rows.append({"text": (m.group(1) if m else d)[:300].rstrip(".;"), "code": code})
    df = pd.DataFrame(rows, columns=["text", "code"])
    if max_rows is not None and len(df) > max_rows:
        df = df.sample(max_rows, random_state=seed).reset_index(drop=True)
    return df
