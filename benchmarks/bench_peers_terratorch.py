"""Peer benchmark: terracarbon's tiled engine vs TerraTorch's ``tiled_inference`` on the granite architecture.

Same model (granite-geospatial-biomass: prithvi_swin_B + UperNet 32 + 2 PixelShuffle upscales, random seeded
weights built by TerraTorch 1.2.11 and imported with ``terracarbon models import terratorch``), same 6-band
float32 GeoTIFFs (reflectance × 10,000), 2 torch threads. Every measurement runs in its own process, so its peak
RSS (``ru_maxrss``) is its own; imports and model loading happen before the clock starts.

Runs (``--runs``):

* ``bare-tc`` / ``bare-tt``: the bare forward of terracarbon's / TerraTorch's network on batches of 224² tiles
  (no I/O, no blending) -> px/s; every other figure is also given as a ratio to ``bare-tc``.
* ``terratorch``: TerraTorch's way: the whole raster read into one tensor, normalised, then
  ``terratorch.tasks.tiled_inference.tiled_inference(forward, x, crop=224, stride=192, batch_size=16)``
  (defaults delta 8, cosine blending, reflect padding; the granite config's commented tiled block), the result
  written as a GeoTIFF.
* ``engine-eager`` / ``engine-channels-last``: ``terracarbon biomass predict`` (``predict_biomass``: windowed
  reads, normalisation, blending, streaming strips, COG output) with ``--tile-size 224`` and ``--overlap 32``
  (stride 192: the same 11 × 11 tiles per 2,048² as TerraTorch) or ``--overlap 0`` (``-ov0`` suffix: 10 × 10).

Run under the peers venv (TerraTorch installed)::

    .venv-peers/bin/python benchmarks/bench_peers_terratorch.py --sizes 2048 --work /tmp/bench_peers

It needs ``../shared/models/granite-geospatial-biomass/config.yaml``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "granite-geospatial-biomass" / "config.yaml"
RUNS = ("bare-tc", "bare-tt", "terratorch", "engine-eager", "engine-channels-last", "engine-channels-last-ov0")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _terratorch_task():
    import terratorch  # noqa: F401  (sets float32 matmul precision to "medium")
    import torch
    import yaml
    from terratorch.tasks import PixelwiseRegressionTask

    torch.set_float32_matmul_precision("highest")
    init = dict(yaml.safe_load(CONFIG.read_text())["model"]["init_args"])
    init.pop("tiled_inference_parameters", None)
    return PixelwiseRegressionTask(**init)


def prepare(work: Path, sizes: list[int]) -> None:
    """Random seeded granite weights (built by TerraTorch), their terracarbon import, and the rasters."""
    import numpy as np
    import rasterio
    import torch
    from affine import Affine

    from terracarbon.models.terratorch_import import import_terratorch, read_terratorch_config

    work.mkdir(parents=True, exist_ok=True)
    if not (work / "granite.pt").exists():
        torch.manual_seed(0)
        task = _terratorch_task()
        torch.save({"state_dict": task.state_dict()}, work / "granite.ckpt")
        import_terratorch(CONFIG, work / "granite.ckpt", work / "granite.pt")
    cfg = read_terratorch_config(CONFIG)
    for n in sizes:
        p = work / f"hls_{n}.tif"
        if p.exists():
            continue
        rng = np.random.default_rng(n)
        profile = {
            "driver": "GTiff", "height": n, "width": n, "count": 6, "dtype": "float32", "crs": "EPSG:32722",
            "transform": Affine(30, 0, 500000, 0, -30, 7000000), "tiled": True, "blockxsize": 512,
            "blockysize": 512, "compress": "DEFLATE",
        }
        with rasterio.open(p, "w", **profile) as ds:
            for r0 in range(0, n, 512):
                h = min(512, n - r0)
                blk = np.array(cfg.mean)[:, None, None] + np.array(cfg.std)[:, None, None] * rng.standard_normal((6, h, n))
                ds.write(np.clip(blk, 1, 9000).astype(np.float32), window=((r0, r0 + h), (0, n)))
            ds.descriptions = tuple(cfg.bands)
            ds.update_tags(TERRACARBON_UNITS="reflectance_x10000")


def run_one(work: Path, run: str, size: int, threads: int) -> dict:
    """One measurement (in this process)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    src = work / f"hls_{size}.tif"
    out: dict = {"run": run, "size": size, "threads": threads}
    if run.startswith("bare"):
        batch, reps = 4, 2
        x = torch.randn(batch, 6, 224, 224, generator=torch.Generator().manual_seed(0))
        if run == "bare-tt":
            task = _terratorch_task()
            task.load_state_dict(torch.load(work / "granite.ckpt", weights_only=True)["state_dict"])
            net = task.model.eval()

            def fwd(t):
                return net(t).output
        else:
            from terracarbon.models.registry import load_checkpoint

            net, _, _ = load_checkpoint(work / "granite.pt")
            fwd = net
        out["rss_loaded_mb"] = _rss_mb()
        with torch.inference_mode():
            fwd(x[:1])
            t0 = time.perf_counter()
            for _ in range(reps):
                fwd(x)
            dt = time.perf_counter() - t0
        out.update(seconds=dt, px_per_s=batch * reps * 224 * 224 / dt)
    elif run == "terratorch":
        import rasterio
        from terratorch.tasks.tiled_inference import tiled_inference

        from terracarbon.models.terratorch_import import read_terratorch_config

        cfg = read_terratorch_config(CONFIG)
        task = _terratorch_task()
        task.load_state_dict(torch.load(work / "granite.ckpt", weights_only=True)["state_dict"])
        net = task.model.eval()
        out["rss_loaded_mb"] = _rss_mb()
        t0 = time.perf_counter()
        with rasterio.open(src) as ds:
            arr = ds.read().astype(np.float32)
            profile = ds.profile | {"count": 1, "dtype": "float32"}
        arr -= np.asarray(cfg.mean, np.float32)[:, None, None]
        arr /= np.asarray(cfg.std, np.float32)[:, None, None]
        x = torch.from_numpy(arr)[None]
        with torch.inference_mode():
            y = tiled_inference(lambda t: net(t).output, x, crop=224, stride=192, batch_size=16)
        y = y.reshape(size, size).numpy()
        with rasterio.open(work / f"tt_{size}.tif", "w", **profile) as ds:
            ds.write(y.astype(np.float32), 1)
        dt = time.perf_counter() - t0
        out.update(seconds=dt, px_per_s=size * size / dt)
    else:
        from terracarbon.biomass.predict import predict_biomass

        backend = "channels-last" if "channels-last" in run else "eager"
        overlap = 0 if run.endswith("-ov0") else 32
        out["rss_loaded_mb"] = _rss_mb()
        t0 = time.perf_counter()
        predict_biomass(
            work / "granite.pt", src, work / f"tc_{run}_{size}.tif", tile_size=224, overlap=overlap, batch_size=8,
            backend=backend, resume=False, progress=False, track=False,
        )
        dt = time.perf_counter() - t0
        out.update(seconds=dt, px_per_s=size * size / dt, overlap=overlap, backend=backend)
    out["peak_rss_mb"] = _rss_mb()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048])
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_peers"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="JSON lines file to append the results to")
    ap.add_argument("--child", nargs=2, metavar=("RUN", "SIZE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print("RESULT " + json.dumps(run_one(a.work, a.child[0], int(a.child[1]), a.threads)), flush=True)
        return
    if not CONFIG.exists():
        sys.exit(f"{CONFIG} is missing (the granite config lives in ../shared/models)")
    env = os.environ | {"OMP_NUM_THREADS": str(a.threads)}
    subprocess.run([sys.executable, "-c", f"import sys; sys.argv=['x']; from pathlib import Path; "
                    f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_peers_terratorch as b; "
                    f"b.prepare(Path({str(a.work)!r}), {a.sizes!r})"], check=True, env=env)
    rows = []
    for size in a.sizes:
        for run in a.runs:
            if run.startswith("bare") and size != a.sizes[0]:
                continue
            p = subprocess.run(
                [sys.executable, __file__, "--child", run, str(size), "--work", str(a.work), "--threads",
                 str(a.threads)], capture_output=True, text=True, env=env,
            )
            line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(f"{run} {size}: failed\n{p.stderr[-3000:]}", file=sys.stderr)
                continue
            r = json.loads(line[7:]) | {"load_avg": os.getloadavg()[0]}
            rows.append(r)
            print(json.dumps(r), flush=True)
            if a.out:
                with open(a.out, "a") as fh:
                    fh.write(json.dumps(r) + "\n")
    bare = next((r["px_per_s"] for r in rows if r["run"] == "bare-tc"), None)
    tt = {r["size"]: r["px_per_s"] for r in rows if r["run"] == "terratorch"}
    print("\n| run | raster | time (s) | output px/s | vs bare terracarbon forward | vs TerraTorch tiled_inference | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        vb = f"{r['px_per_s'] / bare:.2f}×" if bare else ""
        vt = f"{r['px_per_s'] / tt[r['size']]:.2f}×" if r["size"] in tt and not r["run"].startswith("bare") else ""
        raster = "224² tiles" if r["run"].startswith("bare") else f"{r['size']:,}²"
        print(f"| {r['run']} | {raster} | {r['seconds']:.1f} | {r['px_per_s']:,.0f} | {vb} | {vt} | {r['peak_rss_mb']:,.0f} |")


if __name__ == "__main__":
    main()
