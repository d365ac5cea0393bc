"""k-fold cross-validation on OAM-TCD, as in the paper: train on ``kfold_k/train.json``, evaluate on
``kfold_k/val.json`` for every fold k, and report the mean ± standard deviation of the metrics over folds.

The folds are the dataset's own biome-stratified ``validation_fold`` ids (0–4), exported by the project's converter
(``tools/generate_dataset.py --folds``) or by :func:`terracarbon.data.oam_tcd.write_oam_tcd`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from terracarbon.errors import ConfigError, InputError
from terracarbon.trees.metrics import format_mean_std, summarize_folds
from terracarbon.utils import atomic_write_json, atomic_write_text

SEMANTIC_KEYS = ("iou", "f1", "precision", "recall", "accuracy")
INSTANCE_KEYS = ("map", "map_50", "map_75", "mar_100")


@dataclass
class CVResult:
    """Per-fold metrics and their mean ± std."""

    mode: str
    folds: list[int]
    per_fold: list[dict[str, Any]]
    summary: dict[str, dict[str, float]]
    checkpoints: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    def table(self) -> dict[str, str]:
        """``{metric: "mean ± std"}``."""
        return format_mean_std(self.summary)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "folds": self.folds,
            "per_fold": self.per_fold,
            "summary": self.summary,
            "table": self.table(),
            "checkpoints": self.checkpoints,
        }


def available_folds(root: str | Path) -> list[int]:
    """Fold numbers with a ``kfold_<k>/train.json`` under ``root``."""
    root = Path(root)
    out = []
    for p in sorted(root.glob("kfold_*")):
        try:
            k = int(p.name.split("_", 1)[1])
        except ValueError:
            continue
        if (p / "train.json").exists():
            out.append(k)
    return sorted(out)


def cross_validate(
    root: str | Path,
    out_dir: str | Path,
    *,
    mode: str = "semantic",
    folds: Sequence[int] | None = None,
    **train_kwargs: Any,
) -> CVResult:
    """Train and evaluate one model per fold; write ``cv_results.json`` and ``cv_results.md`` in ``out_dir``.

    Args:
        root: OAM-TCD export with ``kfold_*`` folders.
        out_dir: run folder; fold k's run goes to ``out_dir/fold_k``.
        mode: ``"semantic"`` (IoU, F1, precision, recall, accuracy) or ``"instance"`` (mAP, mAP@.5, ...).
        folds: folds to run (default: all found under ``root``).
        **train_kwargs: passed to :func:`~terracarbon.trees.semantic.train_semantic` /
            :func:`~terracarbon.trees.instance.train_instance` (epochs, model_spec, patch_size, seed, devices, ...).
    """
    if mode == "semantic":
        from terracarbon.trees.semantic import train_semantic as train

        keys = SEMANTIC_KEYS
    elif mode == "instance":
        from terracarbon.trees.instance import train_instance as train

        keys = INSTANCE_KEYS
    else:
        raise ConfigError(f"mode must be 'semantic' or 'instance', not {mode!r}")
    found = available_folds(root)
    if not found:
        raise InputError(root, "no kfold_<k>/train.json folders (export the dataset with --folds)")
    folds = list(found if folds is None else folds)
    missing = [k for k in folds if k not in found]
    if missing:
        raise InputError(root, f"fold(s) {missing} not found; available: {found}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_fold, ckpts = [], []
    for k in folds:
        res = train(root, out_dir / f"fold_{k}", fold=k, **train_kwargs)
        row = {"fold": k, **{m: res.metrics.get(m) for m in keys if m in res.metrics}}
        row["n_images"] = res.metrics.get("n_images")
        per_fold.append(row)
        ckpts.append(str(res.checkpoint))
    summary = summarize_folds([{m: r[m] for m in keys if r.get(m) is not None} for r in per_fold])
    result = CVResult(mode, folds, per_fold, summary, ckpts, out_dir)
    atomic_write_json(out_dir / "cv_results.json", result.to_dict())
    lines = [f"# {len(folds)}-fold cross-validation ({mode})", "", "| metric | mean ± std |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in result.table().items()]
    lines += ["", "| fold | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in per_fold:
        cells = [f"{r[m]:.4f}" if isinstance(r.get(m), float) else "" for m in keys]
        lines.append(f"| {r['fold']} | " + " | ".join(cells) + " |")
    atomic_write_text(out_dir / "cv_results.md", "\n".join(lines) + "\n")
    return result
