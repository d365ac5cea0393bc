"""Contrastive fine-tuning of the sentence encoder on (description, NAICS code) pairs, and the full ``train`` run.

Each pair becomes (description, NAICS title + description of the code); the loss is sentence-transformers'
``MultipleNegativesRankingLoss`` (in-batch negatives), batches never hold two pairs of the same code (no false
negatives). The loop is a plain PyTorch loop (no ``datasets``/``accelerate`` needed) with a time budget.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from terracarbon.emissions.naics import NaicsTaxonomy
from terracarbon.errors import ConfigError, InputError

__all__ = [
    "FinetuneResult",
    "TrainResult",
    "cross_reference_pairs",
    "finetune",
    "fit_head",
    "split_labelled",
    "train_classifier",
    "training_pairs",
]


@dataclass
class FinetuneResult:
    """What :func:`finetune` did."""

    model_dir: Path
    steps: int
    planned_steps: int
    epochs_done: float
    pairs: int
    batch_size: int
    wall_time_s: float
    stopped_early: bool
    loss_history: list[float] = field(default_factory=list)


def split_labelled(
    df: pd.DataFrame, fractions: tuple[float, ...] = (0.8, 0.1, 0.1), *, seed: int = 0
) -> list[pd.DataFrame]:
    """Shuffle labelled rows with a fixed seed and cut them into parts of the given fractions."""
    if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ConfigError(f"split fractions must sum to 1, got {fractions}")
    idx = np.random.default_rng(seed).permutation(len(df))
    cuts = np.cumsum([0] + [round(f * len(df)) for f in fractions[:-1]] + [len(df)])
    cuts[-1] = len(df)
    return [df.iloc[np.sort(idx[a:b])].reset_index(drop=True) for a, b in zip(cuts[:-1], cuts[1:])]


def _batches(codes: list[str], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled index batches in which no code appears twice."""
    order = list(range(len(codes)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    pending = order
    while pending:
        nxt: list[int] = []
        cur: list[int] = []
        seen: set[str] = set()
        for i in pending:
            if codes[i] in seen or len(cur) >= batch_size:
                nxt.append(i)
                continue
            cur.append(i)
            seen.add(codes[i])
            if len(cur) == batch_size:
                batches.append(cur)
                cur, seen = [], set()
        if cur:
            if len(cur) >= 2:
                batches.append(cur)
            elif nxt:
                nxt.extend(cur)
        if len(nxt) == len(pending):  # only one code left: nothing more to batch
            break
        pending = nxt
    return batches


def _sibling_batches(codes: list[str], groups: list[str], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches drawn from one NAICS subtree at a time (``groups``: e.g. each pair's 4-digit ancestor), no code twice.

    In-batch negatives then are siblings and cousins of the positive code: hard negatives from the NAICS tree at
    no extra encoding cost. Subtrees are visited in random order and concatenated, so a batch may straddle two
    neighbouring subtrees.
    """
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    keys = list(by_group)
    rng.shuffle(keys)
    order: list[int] = []
    for k in keys:
        idx = by_group[k]
        rng.shuffle(idx)
        order.extend(idx)
    batches: list[list[int]] = []
    cur: list[int] = []
    seen: set[str] = set()
    deferred: list[int] = []
    for i in order:
        if codes[i] in seen:
            deferred.append(i)
            continue
        cur.append(i)
        seen.add(codes[i])
        if len(cur) == batch_size:
            batches.append(cur)
            cur, seen = [], set()
            # re-offer deferred pairs of the same subtree to the next batch
            again, deferred = deferred, []
            for j in again:
                if codes[j] in seen or len(cur) >= batch_size - 1:
                    deferred.append(j)
                else:
                    cur.append(j)
                    seen.add(codes[j])
    if len(cur) >= 2:
        batches.append(cur)
    if deferred:  # left-overs (codes with many pairs in one subtree) go into ordinary random batches
        sub = [codes[i] for i in deferred]
        batches.extend([[deferred[j] for j in b] for b in _batches(sub, batch_size, rng)])
    return batches


_XREF = re.compile(
    r"^(?P<what>.+?)\s*--\s*(?:are|is)\s+classified\s+in\s+(?:U\.S\.\s+)?(?:Industry|Industry Group|Subsector|"
    r"Sector)\s+(?P<code>\d{2,6})",
    re.IGNORECASE,
)


def cross_reference_pairs(path: str | Path, taxonomy: NaicsTaxonomy) -> pd.DataFrame:
    """(activity, code) pairs from the Census cross-reference file (``2017_NAICS_Cross_References.csv``).

    A line such as "Growing soybeans--are classified in Industry 111110, Soybean Farming;" says where an activity
    belongs: it yields the pair ("Growing soybeans", "111110"). Lines of another form are skipped.
    """
    from terracarbon.emissions.naics import normalize_code

    path = Path(path)
    if not path.exists():
        raise InputError(path, "cross-reference file not found")
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    except Exception as exc:
        raise InputError(path, f"cannot read CSV: {exc}") from exc
    if df.shape[1] < 2:
        raise InputError(path, "expected columns Code, Cross-Reference")
    rows = []
    for text in df.iloc[:, 1].dropna():
        m = _XREF.match(text.strip())
        if not m:
            continue
        code = normalize_code(m.group("code"))
        what = m.group("what").strip(" ;,.")
        if code in taxonomy.nodes and 3 <= len(what) <= 300:
            rows.append((what, code))
    return pd.DataFrame(rows, columns=["text", "code"]).drop_duplicates().reset_index(drop=True)


def training_pairs(
    labelled: pd.DataFrame,
    taxonomy: NaicsTaxonomy,
    *,
    cross_references: str | Path | None = None,
    titles: bool = True,
) -> pd.DataFrame:
    """Training pairs for :func:`finetune`: the labelled rows, plus cross-reference activities and code titles.

    ``titles`` adds (title, code) for every 6-digit code, so codes without labelled rows are learnt too.
    Column ``source`` tells ``labelled`` / ``cross-reference`` / ``title`` apart.
    """
    parts = [labelled[["text", "code"]].assign(source="labelled")]
    if cross_references is not None:
        parts.append(cross_reference_pairs(cross_references, taxonomy).assign(source="cross-reference"))
    if titles:
        leaves = taxonomy.leaves()
        parts.append(pd.DataFrame({"text": [taxonomy[c].title for c in leaves], "code": leaves, "source": "title"}))
    return pd.concat(parts, ignore_index=True)


def fit_head(
    embeddings: np.ndarray,
    codes: list[str],
    leaf_codes: list[str],
    *,
    init: np.ndarray | None = None,
    scale: float = 20.0,
    epochs: int = 40,
    batch_size: int = 512,
    lr: float = 2e-3,
    anchor: float = 1e-3,
    seed: int = 0,
    threads: int | None = None,
) -> dict:
    """Fit a supervised linear head over the 6-digit codes on frozen sentence embeddings (softmax regression).

    ``logits = scale * q @ W.T + b``; ``W`` starts from ``init`` (e.g. the normalised example centroids of the codes,
    i.e. the nearest-centroid classifier) and is pulled back towards it with an L2 ``anchor`` penalty, so codes with
    few examples keep their prototype. Rows whose code is not in ``leaf_codes`` are ignored. Full softmax over every
    code (no sampled negatives); Adam on mini-batches. Returns ``{"codes", "weight", "bias", "scale"}`` for
    :class:`~.classify.NaicsClassifier` (``head=``) and :func:`~.classify.save_head`. Cheap: the embeddings are
    computed once, so an epoch over 16,000 rows takes about a second on one core.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    pos = {c: i for i, c in enumerate(leaf_codes)}
    keep = [i for i, c in enumerate(codes) if c in pos]
    if not keep:
        raise ConfigError("no labelled rows with a 6-digit code for the head")
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32)[keep]))
    y = torch.tensor([pos[codes[i]] for i in keep], dtype=torch.long)
    d = x.shape[1]
    w0 = (
        torch.from_numpy(np.ascontiguousarray(np.asarray(init, dtype=np.float32)))
        if init is not None
        else torch.zeros(len(leaf_codes), d)
    )
    w = torch.nn.Parameter(w0.clone())
    b = torch.nn.Parameter(torch.zeros(len(leaf_codes)))
    opt = torch.optim.Adam([w, b], lr=lr)
    n = len(y)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for s in range(0, n, batch_size):
            idx = perm[s : s + batch_size]
            logits = scale * x[idx] @ w.T + b
            loss = torch.nn.functional.cross_entropy(logits, y[idx]) + anchor * ((w - w0) ** 2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {
        "codes": list(leaf_codes),
        "weight": w.detach().numpy().astype(np.float32),
        "bias": b.detach().numpy().astype(np.float32),
        "scale": float(scale),
    }


def _save_model_atomic(model, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        model.save(str(tmp))
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def finetune(
    pairs: pd.DataFrame,
    taxonomy: NaicsTaxonomy,
    out_dir: str | Path,
    *,
    model: str | Path | None = None,
    epochs: float = 1.0,
    batch_size: int = 32,
    lr: float = 5e-5,
    warmup_fraction: float = 0.1,
    max_seq_length: int = 64,
    max_minutes: float | None = 18.0,
    freeze_layers: int = 0,
    threads: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    devices: int = 1,
    strategy: str = "auto",
    progress: bool = True,
    hard_fraction: float = 0.5,
    hard_level: int = 4,
) -> FinetuneResult:
    """Fine-tune a sentence-transformers model with MultipleNegativesRankingLoss and save it to ``out_dir``.

    ``pairs`` has columns ``text`` and ``code``; each code is turned into its NAICS document (title + cleaned
    description, :meth:`NaicsTaxonomy.document`). Training stops after ``epochs`` or ``max_minutes`` (whichever
    first; the model trained so far is saved). ``freeze_layers`` freezes the token embeddings and the first N
    transformer layers (cheaper steps). ``threads`` sets torch's intra-op threads (1 is fastest on a busy machine).
    ``devices``/``strategy`` are accepted for API uniformity; this loop runs on one device.
    ``hard_fraction`` of the batches are drawn from one ``hard_level``-digit subtree at a time
    (:func:`_sibling_batches`): their in-batch negatives are the positive code's siblings (hard negatives).
    """
    import torch
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    from terracarbon.emissions.models import load_model
    from terracarbon.utils import progress as make_progress
    from terracarbon.utils import seed_everything

    if devices != 1 or strategy not in ("auto", None, "single_device"):
        raise ConfigError("emissions fine-tuning runs on one device (devices=1, strategy='auto')")
    if not {"text", "code"} <= set(pairs.columns):
        raise ConfigError("pairs need columns 'text' and 'code'")
    pairs = pairs[pairs.code.isin(taxonomy.nodes)].reset_index(drop=True)
    if len(pairs) < 2 or pairs.code.nunique() < 2:
        raise ConfigError("fine-tuning needs at least two pairs with two different NAICS codes")
    seed_everything(seed)
    if threads:
        torch.set_num_threads(threads)
    st = load_model(model, device=device)
    st.max_seq_length = max_seq_length
    if freeze_layers:
        frozen = ("embeddings.",) + tuple(f"encoder.layer.{i}." for i in range(freeze_layers))
        for name, p in st.named_parameters():
            if any(f in name for f in frozen):
                p.requires_grad_(False)
    loss_fn = MultipleNegativesRankingLoss(st)
    docs = {c: taxonomy.document(c) for c in pairs.code.unique()}
    texts = pairs.text.tolist()
    codes = pairs.code.tolist()
    rng = random.Random(seed)
    n_epochs = max(1, math.ceil(epochs))
    groups = [taxonomy.ancestor(c, min(hard_level, taxonomy[c].level)) for c in codes]
    plan = []
    for _ in range(n_epochs):
        rand = _batches(codes, batch_size, rng)
        if hard_fraction > 0:
            hard = _sibling_batches(codes, groups, batch_size, rng)
            n_hard = round(hard_fraction * len(rand))
            rng.shuffle(hard)
            mix = hard[:n_hard] + rand[: len(rand) - n_hard]
            rng.shuffle(mix)
            rand = mix
        plan.extend(rand)
    per_epoch = len(plan) / n_epochs
    plan = plan[: max(1, round(per_epoch * epochs))]
    warmup = max(1, int(warmup_fraction * len(plan)))
    params = [p for p in st.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (len(plan) - s) / max(1, len(plan) - warmup)))
    )
    st.train()
    t0 = time.perf_counter()
    history: list[float] = []
    stopped = False
    steps = 0
    with make_progress(disable=not progress) as bar:
        task = bar.add_task("fine-tuning", total=len(plan))
        for batch in plan:
            if max_minutes is not None and time.perf_counter() - t0 > max_minutes * 60:
                stopped = True
                break
            a = st.preprocess([texts[i] for i in batch])
            b = st.preprocess([docs[codes[i]] for i in batch])
            loss = loss_fn([a, b], None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            history.append(float(loss.detach()))
            steps += 1
            bar.update(task, advance=1, description=f"fine-tuning (loss {np.mean(history[-20:]):.3f})")
    st.eval()
    st.max_seq_length = max(max_seq_length, 128)
    _save_model_atomic(st, Path(out_dir))
    return FinetuneResult(
        model_dir=Path(out_dir),
        steps=steps,
        planned_steps=len(plan),
        epochs_done=steps / per_epoch if per_epoch else 0.0,
        pairs=len(pairs),
        batch_size=batch_size,
        wall_time_s=time.perf_counter() - t0,
        stopped_early=stopped,
        loss_history=history,
    )


@dataclass
class TrainResult:
    """Outcome of :func:`train_classifier`: model folder, fine-tuning record, validation metrics, footprint."""

    model_dir: Path
    finetune: dict
    metrics: dict
    wall_time_s: float
    footprint: dict | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model_dir"] = str(self.model_dir)
        return d


def train_classifier(
    pairs_csv: str | Path,
    out_dir: str | Path,
    *,
    taxonomy: NaicsTaxonomy | None = None,
    text_column: str | None = None,
    code_column: str | None = None,
    model: str | Path | None = None,
    holdout_fraction: float = 0.1,
    calibration_fraction: float = 0.1,
    epochs: float = 1.0,
    batch_size: int = 32,
    lr: float = 5e-5,
    max_minutes: float | None = 13.0,
    freeze_layers: int = 0,
    threads: int | None = None,
    seed: int = 0,
    device: str = "cpu",
    devices: int = 1,
    strategy: str = "auto",
    progress: bool = True,
    evaluate: bool = True,
    cross_references: str | Path | None = None,
    title_pairs: bool = True,
    hard_fraction: float = 0.5,
    head: bool = True,
    head_epochs: int = 40,
    xref_examples: bool = False,
    backend: str = "onnx-int8",
    lexical: bool = True,
    lexical_c: float = 1.0,
) -> TrainResult:
    """The ``terracarbon emissions train`` run: split, fine-tune, calibrate the ensemble, evaluate, save.

    The labelled CSV is split with ``seed`` into a training part, a calibration part (fits member temperatures
    and weights of the group-reasoning ensemble) and a held-out part (``holdout.csv`` in ``out_dir``, scored at the
    end). ``out_dir`` becomes a sentence-transformers model folder that ``--model`` accepts; it also holds
    ``terracarbon_naics.json`` (calibration, training record), ``examples.csv`` (the kNN/centroid members' labelled
    examples), the footprint (``emissions.json``) and a model card (``README.md``).

    Speed/accuracy options: ``cross_references`` (the Census cross-reference CSV) and ``title_pairs`` add pairs to
    fine-tuning (:func:`training_pairs`); ``hard_fraction`` of the batches hold siblings (hard negatives);
    ``epochs=0`` (or ``max_minutes=0``) skips fine-tuning and keeps the base encoder; ``head`` fits the supervised
    linear head member (:func:`fit_head`) on the training part (plus the cross-reference activities when
    ``cross_references`` is given); ``xref_examples`` also uses the cross-reference
    activities as kNN/centroid examples; ``backend`` is the encoder that embeds, calibrates and evaluates (the
    one ``classify`` uses by default, so the calibration matches it). ``lexical`` fits the TF-IDF + linear SVM
    member (:func:`~.lexical.fit_lexical`, ``C=lexical_c``) on the training part, every code's title and
    description and the cross-reference activities; it is saved as ``naics_lexical.npz``.
    """
    from terracarbon.emissions.classify import NaicsClassifier
    from terracarbon.emissions.evaluate import evaluate_classifier
    from terracarbon.emissions.naics import load_labelled, load_naics

    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    taxonomy = taxonomy or load_naics()
    df = load_labelled(pairs_csv, text_column=text_column, code_column=code_column, taxonomy=taxonomy)
    train_frac = 1.0 - holdout_fraction - calibration_fraction
    if train_frac <= 0:
        raise ConfigError("holdout_fraction + calibration_fraction must be < 1")
    train_df, calib_df, hold_df = split_labelled(
        df, (train_frac, calibration_fraction, holdout_fraction), seed=seed
    )
    if len(calib_df) == 0:
        raise InputError(pairs_csv, "too few labelled rows to hold out a calibration split")

    tracker = None
    try:
        from terracarbon.footprint import track_emissions

        tracker = track_emissions(out_dir.with_name(out_dir.name + ".footprint"), "emissions-train")
        tracker.__enter__()
    except Exception:  # footprint tracking must never break training
        tracker = None
    try:
        pairs = training_pairs(train_df, taxonomy, cross_references=cross_references, titles=title_pairs)
        if epochs <= 0 or (max_minutes is not None and max_minutes <= 0):
            from terracarbon.emissions.models import load_model

            t_ft = time.perf_counter()
            _save_model_atomic(load_model(model, device=device), out_dir)
            ft = FinetuneResult(
                model_dir=out_dir,
                steps=0,
                planned_steps=0,
                epochs_done=0.0,
                pairs=len(pairs),
                batch_size=batch_size,
                wall_time_s=time.perf_counter() - t_ft,
                stopped_early=False,
            )
        else:
            ft = finetune(
                pairs,
                taxonomy,
                out_dir,
                model=model,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                max_minutes=max_minutes,
                freeze_layers=freeze_layers,
                threads=threads,
                seed=seed,
                device=device,
                devices=devices,
                strategy=strategy,
                progress=progress,
                hard_fraction=hard_fraction,
            )
        examples = train_df
        if xref_examples and cross_references is not None:
            examples = pd.concat(
                [train_df, cross_reference_pairs(cross_references, taxonomy)], ignore_index=True
            )
        clf = NaicsClassifier(taxonomy, model=out_dir, examples=examples, backend=backend, threads=threads)
        if head:
            ex_codes = list(clf.examples.code)
            x_head = np.asarray(clf.x)
            if cross_references is not None and not xref_examples:
                # the cross-reference activities also train the head (+0.9 point at 6 digits, RESULTS.md)
                xr = cross_reference_pairs(cross_references, taxonomy)
                if len(xr):
                    x_head = np.concatenate([x_head, clf.embed(xr.text.tolist())])
                    ex_codes = ex_codes + list(xr.code)
            fitted = fit_head(
                x_head, ex_codes, clf.codes[6], init=clf.centroids[6], epochs=head_epochs, seed=seed, threads=threads
            )
            clf = NaicsClassifier(
                taxonomy, model=clf.model, examples=examples, head=fitted, calibration={}
            )
        if lexical:
            from terracarbon.emissions.lexical import fit_lexical, lexical_documents

            t_lex = time.perf_counter()
            xr_lex = cross_reference_pairs(cross_references, taxonomy) if cross_references is not None else None
            lex_texts, lex_codes = lexical_documents(taxonomy, train_df, xr_lex)
            lex = fit_lexical(lex_texts, lex_codes, clf.codes[6], c=lexical_c, n_jobs=threads)
            lex.meta["fit_s"] = round(time.perf_counter() - t_lex, 1)
            clf = NaicsClassifier(
                taxonomy, model=clf.model, examples=examples, head=clf.head, lexical=lex, calibration={}
            )
        clf.calibrate(calib_df.text.tolist(), calib_df.code.tolist())
        calibration_fast = None
        if lexical:
            # the encoder-free fast mode (members=["lexical"], `classify --fast`) gets weights of its own
            fast = NaicsClassifier(
                taxonomy, model=clf.model, lexical=clf.lexical, members=["lexical"], calibration={}
            )
            calibration_fast = fast.calibrate(calib_df.text.tolist(), calib_df.code.tolist())
    finally:
        footprint = None
        if tracker is not None:
            try:
                tracker.__exit__(None, None, None)
                footprint = tracker.result
            except Exception:
                footprint = None
    metrics: dict = {}
    if evaluate and len(hold_df):
        metrics = evaluate_classifier(clf, hold_df.text.tolist(), hold_df.code.tolist(), progress=progress)
    ft_rec = asdict(ft)
    ft_rec["model_dir"] = str(ft.model_dir)
    ft_rec["loss_history"] = [round(x, 4) for x in ft.loss_history]
    extra = {
        "finetune": ft_rec,
        "split": {
            "seed": seed,
            "train": len(train_df),
            "calibration": len(calib_df),
            "holdout": len(hold_df),
            "source": str(pairs_csv),
        },
        "holdout_metrics": metrics,
        "footprint": footprint,
    }
    if calibration_fast is not None:
        extra["calibration_fast"] = calibration_fast
    clf.save(out_dir, extra=extra)
    from terracarbon.utils import atomic_write_text

    atomic_write_text(out_dir / "holdout.csv", hold_df.to_csv(index=False))
    atomic_write_text(out_dir / "calibration.csv", calib_df.to_csv(index=False))
    if footprint:
        for name in ("emissions.json", "emissions.csv"):
            src = out_dir.with_name(out_dir.name + ".footprint") / name
            if src.exists():
                shutil.copy(src, out_dir / name)
    try:
        from terracarbon.footprint import write_model_card

        write_model_card(
            out_dir,
            model_id=out_dir.name,
            emissions_g=(footprint or {}).get("emissions_g") or 0.0,
            training_type="fine-tuning",
            location=(footprint or {}).get("country_iso_code") or "USA",
            hardware=(footprint or {}).get("hardware") or device,
            datasets=[str(pairs_csv)],
            metrics={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            pipeline_tag="sentence-similarity",
            tags=("naics", "sentence-transformers", "terracarbon"),
            extra_text="NAICS classifier for enterprise emissions (terracarbon.emissions).",
        )
    except Exception:
        pass
    wall = time.perf_counter() - t0
    (out_dir / "train_result.json").write_text(
        json.dumps({"finetune": ft_rec, "metrics": metrics, "wall_time_s": wall}, indent=2, default=str)
    )
    return TrainResult(
        model_dir=out_dir, finetune=ft_rec, metrics=metrics, wall_time_s=wall, footprint=footprint
    )


def recalibrate(
    model_dir: str | Path,
    labelled: str | Path,
    *,
    taxonomy: NaicsTaxonomy | None = None,
    members: list[str] | None = None,
    beam: int | None = None,
    text_column: str | None = None,
    code_column: str | None = None,
) -> dict:
    """Refit the ensemble of a trained model folder on a labelled CSV (e.g. its ``calibration.csv``) and save it.

    ``members`` switches the ensemble's members (default: all available); returns the new calibration.
    """
    from terracarbon.emissions.classify import META_FILE, NaicsClassifier
    from terracarbon.emissions.naics import load_labelled, load_naics

    model_dir = Path(model_dir)
    taxonomy = taxonomy or load_naics()
    meta = json.loads((model_dir / META_FILE).read_text()) if (model_dir / META_FILE).exists() else {}
    df = load_labelled(labelled, text_column=text_column, code_column=code_column, taxonomy=taxonomy)
    clf = NaicsClassifier(taxonomy, model_dir, calibration={}, members=members)
    if beam is not None:
        clf.beam = None if beam <= 0 else beam
    cal = clf.calibrate(df.text.tolist(), df.code.tolist())
    keep = {
        k: v for k, v in meta.items() if k not in ("format", "taxonomy", "members", "beam", "calibration")
    }
    clf.save(model_dir, extra=keep)
    return cal
