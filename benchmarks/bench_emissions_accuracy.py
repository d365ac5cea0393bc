"""Per-level NAICS accuracy on a held-out split of the NAICS 2017 index file (real data, ../shared/data/emissions).

Rows: the zero-shot floor (flat cosine retrieval over 6-digit title + description, shipped MiniLM), the group
reasoning ensemble with the shipped model (calibrated on the calibration split, kNN/centroid over the training split)
and, with --model, the same for a fine-tuned model (e.g. the folder `terracarbon emissions train` wrote, whose
split uses the same seed). GREEN's published figures are printed beside them. Writes Markdown (--md) and JSON.

    .venv/bin/python benchmarks/bench_emissions_accuracy.py [--model DIR] [--md out.md] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

GREEN = {"level6_top1": 0.8368, "level6_top10": 0.9147}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/emissions")
    )
    ap.add_argument("--model", default=None, help="fine-tuned model folder (optional)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--backend", default="onnx-int8", help="encoder: onnx-int8 (default), onnx or torch")
    ap.add_argument("--md", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from terracarbon.emissions.classify import NaicsClassifier
    from terracarbon.emissions.evaluate import evaluate_classifier, retrieval_baseline
    from terracarbon.emissions.factors import load_factors
    from terracarbon.emissions.naics import load_labelled, load_naics
    from terracarbon.emissions.train import split_labelled

    data = Path(args.data)
    tax = load_naics(data)
    factors = load_factors(data)
    df = load_labelled(data / "2017_NAICS_Index_File.train.csv", taxonomy=tax)
    train, calib, hold = split_labelled(df, (0.8, 0.1, 0.1), seed=args.seed)
    rows = {}
    models = [("shipped MiniLM", None)] + ([("fine-tuned", args.model)] if args.model else [])
    for name, model in models:
        t = time.perf_counter()
        clf = NaicsClassifier(
            tax, model, examples=train, cache_dir=args.cache, beam=args.beam, calibration={}, backend=args.backend
        )
        rows[f"{name}: flat retrieval (zero-shot floor)" if model is None else f"{name}: flat retrieval"] = (
            retrieval_baseline(
                clf.model, tax, hold.text.tolist(), hold.code.tolist(), doc_embeddings=np.asarray(clf.e_doc[6])
            )
        )
        clf.calibrate(calib.text.tolist(), calib.code.tolist())
        rows[f"{name}: group reasoning ({'+'.join(clf.members)})"] = evaluate_classifier(
            clf, hold.text.tolist(), hold.code.tolist(), factors=factors
        )
        print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
    lines = [
        f"Held-out split: {len(hold)} index items (seed {args.seed}; train {len(train)}, calibration {len(calib)}).",
        "",
        "| method | 2-digit top-1 / top-10 | 3-digit | 4-digit | 5-digit | 6-digit top-1 | 6-digit top-10 | MAPE top-1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        cells = [
            f"{m[f'level{lv}_top1'] * 100:.1f} / {m[f'level{lv}_top10'] * 100:.1f}" for lv in (2, 3, 4, 5)
        ]
        mape = f"{m['mape_top1']:.0f} %" if "mape_top1" in m else "-"
        lines.append(
            f"| {name} | {' | '.join(cells)} | **{m['level6_top1'] * 100:.1f}** | {m['level6_top10'] * 100:.1f} | {mape} |"
        )
    lines.append(
        f"| GREEN (paper, 1,114 categories, company descriptions) | - | - | - | - | {GREEN['level6_top1'] * 100:.2f} "
        f"| {GREEN['level6_top10'] * 100:.2f} | 45.88 % (20 companies) |"
    )
    text = "\n".join(lines)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
