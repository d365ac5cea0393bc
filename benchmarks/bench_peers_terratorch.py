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
* ``bare-onnx`` / ``bare-onnx-int8``: the engine's runner (``_Runner``, onnxruntime, 2 intra-op threads) on the
  same preallocated batches; the one-off ONNX export / int8 quantisation (calibrated on the raster's tiles, as the
  engine does) is done in an untimed process before.
* ``engine-eager`` / ``engine-channels-last`` / ``engine-onnx`` / ``engine-onnx-int8``: ``terracarbon biomass
  predict`` (``predict_biomass``: windowed reads, normalisation, blending, streaming strips, COG output) with
  ``--tile-size 224`` and ``--overlap 32`` (stride 192: the same 11 × 11 tiles per 2,048² as TerraTorch) or
  ``--overlap 0`` (``-ov0`` suffix: 10 × 10); ``-b16`` suffix: ``--batch-size 16`` (else 8). The onnx export and the
  int8 quantisation are cached beside the checkpoint by an untimed warm-up process, as in normal use.

The weights are random (seeded) and perturbed as the cross-check tests do (norms and biases away from 1/0, the head's
last bias 1), so that the final ReLU passes most pixels and the maps are not all zero. After the runs the maps are
compared (``accuracy`` rows): relative RMSE (÷ the reference map's mean) and max abs difference of each engine map
against the eager map and against TerraTorch's map. ``--int8-settings JSON`` overrides the model's int8 settings
(``quantize_onnx_int8``'s ``settings``) for the ``onnx-int8`` runs.

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
BARE = ("bare-tc", "bare-tt", "bare-onnx", "bare-onnx-int8")
ENGINE = ("engine-eager", "engine-channels-last", "engine-onnx", "engine-onnx-int8")
RUNS = (
    BARE + ("terratorch",) + ENGINE + tuple(f"{e}-ov0" for e in ENGINE) + tuple(f"{e}-b16" for e in ENGINE)
)
CKPT, PT = "granite_p.ckpt", "granite_p.pt"  # perturbed weights (granite.ckpt/.pt: the earlier, all-zero-output ones)
TILE, BARE_BATCH, BARE_REPS = 224, 8, 2


def _engine_run(run: str) -> tuple[str, int, int]:
    """``(backend, overlap, batch size)`` of an ``engine-*`` run name."""
    name, overlap, batch = run[len("engine-"):], 32, 8
    if name.endswith("-b16"):
        name, batch = name[:-4], 16
    if name.endswith("-ov0"):
        name, overlap = name[:-4], 0
    return name, overlap, batch


def perturb(model, seed: int = 0):
    """Seeded non-trivial weights, exactly as the cross-check tests make them (norms/biases off 1/0, BN statistics
    set, head bias 1): ``perturb`` of tests/models/test_terratorch_import.py, imported from there (one definition)."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tests" / "models" / "test_terratorch_import.py"
    spec = importlib.util.spec_from_file_location("_tc_test_terratorch_import", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.perturb(model, seed)


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
    if not (work / PT).exists():
        torch.manual_seed(0)
        task = _terratorch_task()
        perturb(task.model)
        torch.save({"state_dict": task.state_dict()}, work / CKPT)
        import_terratorch(CONFIG, work / CKPT, work / PT)
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


def _int8_settings(raw: str | None) -> None:
    """Apply ``--int8-settings`` (JSON) as the granite network's ``onnx_int8_settings``."""
    if raw:
        from terracarbon.models.upernet import TerraTorchRegressor

        TerraTorchRegressor.onnx_int8_settings = json.loads(raw)


def warm_up(work: Path, run: str, size: int, overlap: int = 32) -> str | None:
    """The one-off work before the clock, in its own process (its peak RSS is not the run's): ONNX export, int8
    calibration on the raster's tiles and quantisation, cached beside the checkpoint where the engine finds them."""
    from terracarbon.raster.checkpoint import predictor_from_checkpoint
    from terracarbon.raster.predict import TileGrid, _onnx_export, int8_calibration, quantize_onnx_int8

    # with the stack, as ``biomass predict`` builds it (bands picked by name): the same fingerprint, so the same caches
    predictor = predictor_from_checkpoint(work / PT, stack=work / f"hls_{size}.tif")
    if run.endswith("onnx"):
        return str(_onnx_export(predictor, TILE))
    if run.endswith("onnx-int8"):
        tiles, key = int8_calibration(work / f"hls_{size}.tif", predictor, TileGrid(size, size, TILE, overlap))
        return str(quantize_onnx_int8(predictor, tiles, key, tile_size=TILE))
    return None


def run_one(work: Path, run: str, size: int, threads: int) -> dict:
    """One measurement (in this process)."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    src = work / f"hls_{size}.tif"
    out: dict = {"run": run, "size": size, "threads": threads}
    if run.startswith("bare"):
        batch, reps = BARE_BATCH, BARE_REPS
        x = torch.randn(batch, 6, TILE, TILE, generator=torch.Generator().manual_seed(0))
        if run in ("bare-onnx", "bare-onnx-int8"):
            from terracarbon.raster.checkpoint import predictor_from_checkpoint
            from terracarbon.raster.predict import TileGrid, _Runner, int8_calibration

            backend = run[len("bare-"):]
            predictor = predictor_from_checkpoint(work / PT, stack=src)
            cal, key = int8_calibration(src, predictor, TileGrid(size, size, TILE, 32))
            # the export / quantisation was cached by the warm-up process: the runner only opens it
            runner = _Runner(predictor, backend, calibration=cal, calibration_key=key, tile_size=TILE)
            xa = np.ascontiguousarray(x.numpy())

            def fwd(t):
                return runner(xa[: t.shape[0]])
        elif run == "bare-tt":
            task = _terratorch_task()
            task.load_state_dict(torch.load(work / CKPT, weights_only=True)["state_dict"])
            net = task.model.eval()

            def fwd(t):
                return net(t).output
        else:
            from terracarbon.models.registry import load_checkpoint

            net, _, _ = load_checkpoint(work / PT)
            fwd = net
        out["rss_loaded_mb"] = _rss_mb()
        with torch.inference_mode():
            fwd(x[:1])
            t0 = time.perf_counter()
            for _ in range(reps):
                fwd(x)
            dt = time.perf_counter() - t0
        out.update(seconds=dt, px_per_s=batch * reps * TILE * TILE / dt, batch_size=batch)
    elif run == "terratorch":
        import rasterio
        from terratorch.tasks.tiled_inference import tiled_inference

        from terracarbon.models.terratorch_import import read_terratorch_config

        cfg = read_terratorch_config(CONFIG)
        task = _terratorch_task()
        task.load_state_dict(torch.load(work / CKPT, weights_only=True)["state_dict"])
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

        backend, overlap, batch = _engine_run(run)
        out["rss_loaded_mb"] = _rss_mb()
        t0 = time.perf_counter()
        predict_biomass(
            work / PT, src, work / f"tc_{run}_{size}.tif", tile_size=TILE, overlap=overlap, batch_size=batch,
            backend=backend, resume=False, progress=False, track=False,
        )
        dt = time.perf_counter() - t0
        out.update(seconds=dt, px_per_s=size * size / dt, overlap=overlap, backend=backend, batch_size=batch)
    out["peak_rss_mb"] = _rss_mb()
    return out


def accuracy(work: Path, size: int) -> list[dict]:
    """Each engine map against the fp32 engine map and against TerraTorch's map (where they exist)."""
    import numpy as np
    import rasterio

    def read(name):
        p = work / name
        if not p.exists():
            return None
        with rasterio.open(p) as ds:
            return ds.read(1).astype(np.float64)

    # the fp32 engine map: eager, or channels-last (the same within float rounding) where eager was not run
    cands = [r for r in ("engine-eager", "engine-channels-last", "engine-onnx") if (work / f"tc_{r}_{size}.tif").exists()]
    fp32 = cands[0] if cands else None
    refs = {fp32: read(f"tc_{fp32}_{size}.tif") if fp32 else None, "terratorch": read(f"tt_{size}.tif")}
    rows = []
    for run in ENGINE + tuple(f"{e}-b16" for e in ENGINE):
        y = read(f"tc_{run}_{size}.tif")
        if y is None:
            continue
        for ref_name, ref in refs.items():
            if ref is None or ref_name == run:
                continue
            ok = np.isfinite(y) & np.isfinite(ref)
            d = (y - ref)[ok]
            rmse = float(np.sqrt(np.mean(d**2)))
            rows.append({
                "accuracy": run, "size": size, "reference": ref_name, "ref_mean": float(ref[ok].mean()),
                "ref_std": float(ref[ok].std()), "rmse": rmse, "rel_rmse": rmse / float(abs(ref[ok].mean())),
                "max_abs": float(np.abs(d).max()),
            })
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2048])
    ap.add_argument("--runs", nargs="+", default=list(BARE + ("terratorch",) + ENGINE), choices=RUNS)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_peers"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--int8-settings", default=None, help="JSON: quantize_onnx_int8 settings for the onnx-int8 runs")
    ap.add_argument("--out", type=Path, default=None, help="JSON lines file to append the results to")
    ap.add_argument("--child", nargs=2, metavar=("RUN", "SIZE"), help=argparse.SUPPRESS)
    ap.add_argument("--warm-up", nargs=2, metavar=("RUN", "SIZE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child or a.warm_up:
        import torch

        torch.set_num_threads(a.threads)
        _int8_settings(a.int8_settings)
        if a.warm_up:
            run = a.warm_up[0]
            overlap = _engine_run(run)[1] if run.startswith("engine") else 32
            warm_up(a.work, run, int(a.warm_up[1]), overlap)
        else:
            print("RESULT " + json.dumps(run_one(a.work, a.child[0], int(a.child[1]), a.threads)), flush=True)
        return
    if not CONFIG.exists():
        sys.exit(f"{CONFIG} is missing (the granite config lives in ../shared/models)")
    env = os.environ | {"OMP_NUM_THREADS": str(a.threads)}
    subprocess.run([sys.executable, "-c", f"import sys; sys.argv=['x']; from pathlib import Path; "
                    f"sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_peers_terratorch as b; "
                    f"b.prepare(Path({str(a.work)!r}), {a.sizes!r})"], check=True, env=env)
    extra = ["--work", str(a.work), "--threads", str(a.threads)]
    if a.int8_settings:
        extra += ["--int8-settings", a.int8_settings]
    rows = []

    def emit(r):
        rows.append(r)
        print(json.dumps(r), flush=True)
        if a.out:
            with open(a.out, "a") as fh:
                fh.write(json.dumps(r) + "\n")

    for size in a.sizes:
        for run in a.runs:
            if run.startswith("bare") and size != a.sizes[0]:
                continue
            if "onnx" in run:  # untimed: export / calibration + quantisation, cached
                t = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--warm-up", run, str(size), *extra], check=True, env=env,
                               capture_output=True)
                print(f"warm-up {run} {size}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
            load_before = os.getloadavg()[0]
            p = subprocess.run([sys.executable, __file__, "--child", run, str(size), *extra], capture_output=True,
                               text=True, env=env)
            line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(f"{run} {size}: failed\n{p.stderr[-3000:]}", file=sys.stderr)
                continue
            emit(json.loads(line[7:]) | {"load_before": load_before, "load_avg": os.getloadavg()[0],
                                          "int8_settings": a.int8_settings if "int8" in run else None})
        for r in accuracy(a.work, size):
            emit(r)
    runs = [r for r in rows if "run" in r]
    bare = next((r["px_per_s"] for r in runs if r["run"] == "bare-tc"), None)
    tt = {r["size"]: r["px_per_s"] for r in runs if r["run"] == "terratorch"}
    print("\n| run | raster | batch | time (s) | output px/s | vs bare-tc | vs TerraTorch tiled_inference "
          "| RSS loaded → peak (MB) | load before/after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        vb = f"{r['px_per_s'] / bare:.2f}×" if bare else ""
        vt = f"{r['px_per_s'] / tt[r['size']]:.2f}×" if r["size"] in tt and not r["run"].startswith("bare") else ""
        raster = "224² tiles" if r["run"].startswith("bare") else f"{r['size']:,}²"
        print(f"| {r['run']} | {raster} | {r.get('batch_size', 16)} | {r['seconds']:.1f} | {r['px_per_s']:,.0f} | {vb} "
              f"| {vt} | {r['rss_loaded_mb']:,.0f} → {r['peak_rss_mb']:,.0f} | {r['load_before']:.2f} / "
              f"{r['load_avg']:.2f} |")
    acc = [r for r in rows if "accuracy" in r]
    if acc:
        print("\n| map | raster | vs | reference mean ± std | RMSE | relative RMSE | max abs diff |")
        print("|---|---|---|---|---|---|---|")
        for r in acc:
            print(f"| {r['accuracy']} | {r['size']:,}² | {r['reference']} | {r['ref_mean']:.3f} ± {r['ref_std']:.3f} "
                  f"| {r['rmse']:.2e} | {r['rel_rmse']:.2e} | {r['max_abs']:.2e} |")


if __name__ == "__main__":
    main()
