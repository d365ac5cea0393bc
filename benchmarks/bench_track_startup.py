"""Start-up cost of ``terracarbon footprint track -- CMD`` on a short command, cold vs cached probe.

codecarbon probes the machine (CPU model and TDP, RAM, GPUs) when a tracker starts. terracarbon
stores that probe per machine (``terracarbon.footprint.track.probe_cache_path``); this benchmark
measures what it saves on a command that does nothing (``true``):

* ``direct``: ``true`` run as a subprocess (the floor);
* ``cli_help``: ``terracarbon footprint --help`` (interpreter + CLI start-up, no tracking);
* ``cli_cold``: ``terracarbon footprint track -- true`` with the probe cache disabled
  (``TERRACARBON_PROBE_CACHE=off``: every call probes, as before the cache);
* ``cli_cached``: the same with a probe cache written by a first (untimed) call;
* ``inproc_cold`` / ``inproc_cached``: inside one fresh interpreter per repeat, the time of
  ``track_command(["true"], ...)`` alone (imports of codecarbon included, interpreter and CLI
  start-up excluded) — the overhead tracking adds around a command.

Wall and CPU (user + sys) time are both reported: on a loaded machine the wall time stretches with
the load, the CPU time much less.

Usage::

    .venv/bin/python benchmarks/bench_track_startup.py --repeats 5 --json /tmp/track_startup.json

Each configuration alternates with the others per repeat so load changes hit all alike; the load
average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sys; from terracarbon.cli import main; sys.exit(main())"]

INPROC = """
import json, sys, time
t0 = time.perf_counter()
from terracarbon.footprint.track import track_command
t1 = time.perf_counter()
c1 = time.process_time()
res = track_command(["true"], sys.argv[1])
t2 = time.perf_counter()
c2 = time.process_time()
print(json.dumps({"import_s": t1 - t0, "track_s": t2 - t1, "track_cpu_s": c2 - c1, "probe": res.result.get("probe")}))
"""


CPU: dict[str, list[float]] = {}


def _wall(cmd: list[str], env: dict[str, str], key: str | None = None) -> float:
    """Wall time of ``cmd``; its CPU time (user + sys of the child) goes to ``CPU[key]``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if key:
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        CPU.setdefault(key, []).append(cpu)
    return wall


def _inproc(env: dict[str, str], out: str) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", INPROC, out], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    """Run the benchmark and print (and optionally write) the medians."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="tc-track-bench-"))
    base = dict(os.environ, PYTHONWARNINGS="ignore")
    cold_env = dict(base, TERRACARBON_PROBE_CACHE="off")
    cached_env = dict(base, TERRACARBON_PROBE_CACHE=str(tmp / "probe.json"))
    # populate the cache once (untimed)
    _wall([*CLI, "footprint", "track", "--out", str(tmp / "warm"), "--", "true"], cached_env)

    load_before = os.getloadavg()
    times: dict[str, list[float]] = {
        k: [] for k in ("direct", "cli_help", "cli_cold", "cli_cached", "inproc_cold", "inproc_cached")
    }
    probes: dict[str, list[str]] = {"inproc_cold": [], "inproc_cached": []}
    for i in range(args.repeats):
        times["direct"].append(_wall(["true"], base, "direct"))
        times["cli_help"].append(_wall([*CLI, "footprint", "--help"], base, "cli_help"))
        track = [*CLI, "footprint", "track", "--out", str(tmp / f"run{i}"), "--"]
        times["cli_cold"].append(_wall([*track, "true"], cold_env, "cli_cold"))
        times["cli_cached"].append(_wall([*track, "true"], cached_env, "cli_cached"))
        for key, env in (("inproc_cold", cold_env), ("inproc_cached", cached_env)):
            r = _inproc(env, str(tmp / f"{key}{i}"))
            times[key].append(r["track_s"])
            CPU.setdefault(key, []).append(r["track_cpu_s"])
            probes[key].append(r["probe"])
    load_after = os.getloadavg()

    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in CPU.items()}
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{_cpu_model()}, {os.cpu_count()} logical CPUs, {platform.platform()}",
        "python": platform.python_version(),
        "repeats": args.repeats,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "median_s": med,
        "median_cpu_s": med_cpu,
        "all_s": times,
        "all_cpu_s": CPU,
        "probe_state": probes,
        "cli_overhead_cold_s": med["cli_cold"] - med["cli_help"],
        "cli_overhead_cached_s": med["cli_cached"] - med["cli_help"],
    }
    for k, v in med.items():
        print(
            f"{k:14s} wall median {v:7.3f} s, CPU median {med_cpu.get(k, float('nan')):7.3f} s "
            f"(wall all: {', '.join(f'{x:.2f}' for x in times[k])})"
        )
    print(f"tracking overhead over CLI start-up: cold {report['cli_overhead_cold_s']:.3f} s, "
          f"cached {report['cli_overhead_cached_s']:.3f} s; load {load_before[0]:.2f} -> {load_after[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
