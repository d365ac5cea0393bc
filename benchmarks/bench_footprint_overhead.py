"""Overhead of terracarbon's emissions tracking (codecarbon offline tracker) on a tracked run.

Measures, on a CPU-bound workload of about ``--seconds`` seconds:

1. the fixed cost of starting + stopping a tracker (``track_emissions`` around an empty block);
2. the tracker's own CPU cost per second: process CPU time of a tracked ``sleep`` of ``--idle``
   seconds (codecarbon samples the CPU load every second and measures every 15 s in a thread);
   this is the overhead it adds to a run that keeps every core busy, and it does not depend on
   the noise of other processes;
3. wall-clock and process CPU time of the workload with and without ``track_emissions``
   (alternating, ``--pairs`` times; the tracker's sampling thread runs every 15 s);
4. the ``terracarbon footprint track -- python workload.py`` wrapper against running the same
   command directly (includes the CLI's start-up).

Usage::

    .venv/bin/python benchmarks/bench_footprint_overhead.py --seconds 60 --pairs 3 --json out.json

Other processes on the machine add noise to the wall-clock pairs; the fixed cost and the CPU-time
difference are the stable figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

WORKLOAD = """
import sys, time
def work(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
n = int(sys.argv[1])
work(n)
"""


def work(n: int) -> int:
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def calibrate(seconds: float) -> int:
    n = 2_000_000
    t0 = time.perf_counter()
    work(n)
    dt = time.perf_counter() - t0
    return int(n * seconds / dt)


def timed(fn) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--fixed-reps", type=int, default=10)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI wrapper measurement")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from terracarbon.footprint import track_emissions

    tmp = Path(tempfile.mkdtemp(prefix="tc-bench-"))
    # warm imports (codecarbon) so they do not count as tracking overhead
    with track_emissions(tmp / "warm", "warm"):
        pass

    fixed = []
    for i in range(args.fixed_reps):
        t0 = time.perf_counter()
        with track_emissions(tmp / f"fixed{i}", "fixed"):
            pass
        fixed.append(time.perf_counter() - t0)

    c0, w0 = time.process_time(), time.perf_counter()
    with track_emissions(tmp / "idle", "idle"):
        time.sleep(args.idle)
    idle_cpu, idle_wall = time.process_time() - c0, time.perf_counter() - w0
    print(json.dumps({"idle_cpu_s": idle_cpu, "idle_wall_s": idle_wall}), flush=True)

    n = calibrate(args.seconds)
    pairs = []
    method = None
    for i in range(args.pairs):
        holder = {}

        def tracked(i=i, holder=holder):
            with track_emissions(tmp / f"run{i}", "bench") as t:
                work(n)
            holder["r"] = t.result

        if i % 2 == 0:  # alternate the order against drifts in machine load
            base_w, base_c = timed(lambda: work(n))
            tr_w, tr_c = timed(tracked)
        else:
            tr_w, tr_c = timed(tracked)
            base_w, base_c = timed(lambda: work(n))
        method = holder["r"]["method"]
        pairs.append(
            {
                "base_wall_s": base_w,
                "tracked_wall_s": tr_w,
                "base_cpu_s": base_c,
                "tracked_cpu_s": tr_c,
                "wall_overhead_pct": 100 * (tr_w - base_w) / base_w,
                "cpu_overhead_pct": 100 * (tr_c - base_c) / base_c,
                "energy_kwh": holder["r"]["energy_kwh"],
                "emissions_g": holder["r"]["emissions_g"],
            }
        )
        print(json.dumps(pairs[-1]), flush=True)

    cli = None
    if not args.no_cli:
        script = tmp / "workload.py"
        script.write_text(WORKLOAD)
        cmd = [sys.executable, str(script), str(n)]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        direct = time.perf_counter() - t0
        tc = str(Path(sys.executable).with_name("terracarbon"))
        t0 = time.perf_counter()
        subprocess.run(
            [tc, "footprint", "track", "--out", str(tmp / "cli"), "--", *cmd],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        wrapped = time.perf_counter() - t0
        cli = {"direct_s": direct, "wrapped_s": wrapped, "overhead_pct": 100 * (wrapped - direct) / direct}
        print(json.dumps({"cli": cli}), flush=True)

    fixed_med = statistics.median(fixed)
    base_med = statistics.median(p["base_wall_s"] for p in pairs)
    report = {
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{__import__('os').cpu_count()} CPUs, Python {platform.python_version()}",
        "command": " ".join(sys.argv),
        "method": method,
        "workload_s": base_med,
        "fixed_cost_s_median": fixed_med,
        "fixed_cost_s_max": max(fixed),
        "fixed_cost_pct_of_workload": 100 * fixed_med / base_med,
        "tracker_cpu_pct_of_one_core": 100 * idle_cpu / idle_wall,
        "tracker_overhead_pct_of_workload": 100 * (fixed_med + idle_cpu / idle_wall * base_med) / base_med,
        "wall_overhead_pct_median": statistics.median(p["wall_overhead_pct"] for p in pairs),
        "cpu_overhead_pct_median": statistics.median(p["cpu_overhead_pct"] for p in pairs),
        "pairs": pairs,
        "cli": cli,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "pairs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
