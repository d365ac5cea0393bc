"""Scale-out of the tiled prediction engine on Dask: one large raster, single process vs 1 and 2 Dask workers.

    .venv/bin/python benchmarks/bench_dask_scaling.py --size 4096 --json /tmp/dask_scaling.json

Writes a ``size × size`` 12-band float32 GeoTIFF (smooth synthetic fields, Sentinel-2-like stack layout), builds the
biomass demo's U-Net (smp, ResNet-18 encoder at depth 4, random weights: the cost of a forward does not depend on the
weights) and predicts the raster with :func:`terracarbon.raster.predict.predict_raster` (256 px tiles, 32 px overlap,
batch 8, eager backend, blending and COG writing included):

* ``single, 1 thread``  — ``scheduler=None`` with ``torch.set_num_threads(1)`` (the per-core baseline);
* ``single, N threads`` — ``scheduler=None`` with torch's default threads (all cores of this machine);
* ``dask local:1`` / ``dask local:2`` — a LocalCluster of 1 or 2 single-threaded worker processes (Dask sets
  ``OMP_NUM_THREADS=1`` in workers, checked below); the cluster is started before the clock starts (its start-up is
  reported separately) and the model is scattered inside the timed call.

Reported: wall time, tiles/s, output Mpx/s, seconds per tile per worker, speed-up and scaling efficiency
``t(local:1) / (2 · t(local:2))``, and the load average (other jobs on the machine distort the figures).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def make_raster(path: Path, size: int, seed: int = 0) -> None:
    """A ``size²`` 12-band float32 tiled GeoTIFF of smooth random fields, written strip by strip."""
    import rasterio
    from affine import Affine
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    profile = {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": 12,
        "dtype": "float32",
        "crs": "EPSG:32722",
        "transform": Affine(10.0, 0, 350000.0, 0, -10.0, 9650000.0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "DEFLATE",
        "predictor": 3,
        "BIGTIFF": "IF_SAFER",
    }
    base = ndimage.gaussian_filter(
        rng.standard_normal((12, 512, 512)).astype("float32"), (0, 12, 12), mode="wrap"
    )
    with rasterio.open(path, "w", **profile) as dst:
        for r0 in range(0, size, 512):
            h = min(512, size - r0)
            for c0 in range(0, size, 512):
                w = min(512, size - c0)
                block = base[:, :h, :w] + 0.05 * rng.standard_normal((12, h, w)).astype("float32")
                dst.write(block, window=rasterio.windows.Window(c0, r0, w, h))


def build_model():
    import torch

    from terracarbon.models.registry import build_model as bm

    torch.manual_seed(0)
    spec = {
        "arch": "unet",
        "in_channels": 12,
        "classes": 1,
        "encoder_name": "resnet18",
        "encoder_depth": 4,
        "decoder_channels": [128, 64, 32, 16],
    }
    return bm(spec).eval()


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--skip-single", action="store_true", help="skip the single-process runs")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repetitions (min is reported)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    import torch
    from distributed import Client, LocalCluster

    from terracarbon.raster.predict import TileGrid, TilePredictor, predict_raster

    work = args.workdir or Path(tempfile.mkdtemp(prefix="tc-dask-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"stack_{args.size}.tif"
    t0 = time.perf_counter()
    if not src.exists():
        make_raster(src, args.size)
    print(f"input {src} ({src.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.1f} s")
    grid = TileGrid(args.size, args.size, args.tile, args.overlap)
    n_tiles = len(grid)
    predictor = TilePredictor.for_regression(build_model(), mean=[0.0] * 12, std=[1.0] * 12, clip_min=None)
    opts = dict(
        tile_size=args.tile, overlap=args.overlap, batch_size=args.batch, progress_bar=False, resume=False
    )
    default_threads = torch.get_num_threads()
    runs: list[dict] = []
    ref = None

    def check_same(path: Path) -> float | None:
        import rasterio

        nonlocal ref
        with rasterio.open(path) as ds:
            a = ds.read(1)
        if ref is None:
            ref = a
            return None
        return float(np.max(np.abs(a - ref)))

    def cpu_self() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def cpu_workers(client) -> float:
        def f():
            import resource as res

            r = res.getrusage(res.RUSAGE_SELF)
            return r.ru_utime + r.ru_stime

        return sum(client.run(f).values())

    clusters = {}
    for n in args.workers:
        t = time.perf_counter()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        startup = time.perf_counter() - t
        wthreads = sorted(client.run(lambda: __import__("torch").get_num_threads()).values())
        print(f"dask local:{n}: cluster up in {startup:.1f} s, torch threads per worker {wthreads}")
        clusters[n] = (cluster, client, startup, wthreads)

    configs = []
    if not args.skip_single:
        configs += [("single", t) for t in ((1, default_threads) if default_threads > 1 else (1,))]
    configs += [("dask", n) for n in args.workers]
    try:
        for rep in range(args.repeats):
            for kind, n in configs:
                la = loadavg()
                if kind == "single":
                    torch.set_num_threads(n)
                    name, workers, threads = f"single, {n} thread(s)", 1, n
                    c0, t = cpu_self(), time.perf_counter()
                    out = predict_raster(predictor, src, work / f"single_{n}.tif", scheduler=None, **opts)
                    wall, cpu = time.perf_counter() - t, cpu_self() - c0
                    torch.set_num_threads(default_threads)
                    extra = {}
                else:
                    cluster, client, startup, wthreads = clusters[n]
                    name, workers, threads = f"dask local:{n}", n, 1
                    c0, w0, t = cpu_self(), cpu_workers(client), time.perf_counter()
                    out = predict_raster(
                        predictor, src, work / f"dask_{n}.tif", scheduler=client, worker_threads=1, **opts
                    )
                    wall = time.perf_counter() - t
                    c_client, c_workers = cpu_self() - c0, cpu_workers(client) - w0
                    cpu = c_client + c_workers
                    extra = {
                        "cluster_startup_s": round(startup, 2),
                        "worker_torch_threads": wthreads,
                        "cpu_client_s": round(c_client, 2),
                        "cpu_workers_s": round(c_workers, 2),
                    }
                row = {
                    "config": name,
                    "repeat": rep,
                    "wall_s": round(wall, 2),
                    "cpu_s": round(cpu, 2),
                    "workers": workers,
                    "threads_per_worker": threads,
                    "tiles": n_tiles,
                    "tiles_per_s": round(n_tiles / wall, 3),
                    "mpx_per_s": round(args.size**2 / wall / 1e6, 4),
                    "cpu_s_per_tile": round(cpu / n_tiles, 4),
                    "loadavg_before": la,
                    "max_abs_diff_vs_first": check_same(out),
                    **extra,
                }
                runs.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for cluster, client, *_ in clusters.values():
            client.close()
            cluster.close()

    results = []
    for kind, n in configs:
        name = f"single, {n} thread(s)" if kind == "single" else f"dask local:{n}"
        rows = [r for r in runs if r["config"] == name]
        best = min(rows, key=lambda r: r["wall_s"])
        results.append(
            {
                **best,
                "wall_s_min": best["wall_s"],
                "wall_s_median": float(np.median([r["wall_s"] for r in rows])),
                "cpu_s_per_tile_median": float(np.median([r["cpu_s_per_tile"] for r in rows])),
                "repeats": len(rows),
            }
        )

    by = {r["config"]: r for r in results}
    summary = {}
    d1, d2 = by.get("dask local:1"), by.get("dask local:2")
    if d1 and d2:
        summary["speedup_2_vs_1_workers"] = round(d1["wall_s"] / d2["wall_s"], 3)
        summary["efficiency_2_workers"] = round(d1["wall_s"] / (2 * d2["wall_s"]), 3)
    s1 = by.get("single, 1 thread(s)")
    if s1 and d1:
        summary["dask_1_worker_overhead_vs_single_1_thread"] = round(d1["wall_s"] / s1["wall_s"] - 1, 3)
    if s1 and d2:
        summary["speedup_dask2_vs_single_1_thread"] = round(s1["wall_s"] / d2["wall_s"], 3)
    # CPU-time efficiency: CPU seconds of the single-threaded single process / CPU seconds of the Dask run (all
    # processes). Unlike wall time it is not distorted by other jobs competing for the cores.
    if s1:
        for n in args.workers:
            dn = by.get(f"dask local:{n}")
            if dn:
                summary[f"cpu_efficiency_local_{n}"] = round(s1["cpu_s"] / dn["cpu_s"], 3)
    # extrapolation from the measured per-tile CPU cost (single process, 1 thread: no Dask overhead)
    base = s1 or d1
    if base:
        per_tile = base["cpu_s_per_tile_median"]
        eff = min(1.0, summary.get("efficiency_2_workers", 1.0))
        plan = []
        for label, km2 in (
            ("1,000 km2 AOI", 1e3),
            ("Germany, 357,000 km2", 3.57e5),
            ("Brazil, 8.5 M km2", 8.5e6),
        ):
            side = int(np.ceil(np.sqrt(km2 * 1e6) / 10.0))  # 10 m Sentinel-2 pixels, as one square raster
            tiles = len(TileGrid(side, side, args.tile, args.overlap))
            cpu_h = tiles * per_tile / 3600
            plan.append(
                {
                    "area": label,
                    "pixels": side * side,
                    "tiles": tiles,
                    "cpu_hours": round(cpu_h, 3),
                    "hours_on_workers_ideal": {n: round(cpu_h / n, 3) for n in (1, 2, 16, 64, 256)},
                    "hours_on_workers_at_measured_efficiency": {
                        n: round(cpu_h / (n * eff), 3) for n in (2, 16, 64)
                    },
                }
            )
        summary["cpu_s_per_tile"] = per_tile
        summary["plan"] = plan
    report = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/bench_dask_scaling.py "
        + " ".join(
            f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in vars(args).items()
            if v not in (None, False) and k not in ("json", "workdir")
        ),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "raster": {
            "size": args.size,
            "bands": 12,
            "tiles": n_tiles,
            "tile": args.tile,
            "overlap": args.overlap,
            "batch": args.batch,
            "model": "smp U-Net resnet18 depth 4, decoder 128-64-32-16 (eager)",
        },
        "results": results,
        "runs": runs,
        "summary": summary,
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
