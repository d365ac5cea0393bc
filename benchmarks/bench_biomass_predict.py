"""Benchmark ``biomass predict`` (the tiled engine end to end) against the bare model and a TorchGeo loop.

For an N×N 12-band float32 tiled GeoTIFF (generated once, strip by strip) and a U-Net/ResNet-18 (12 bands in, 1 out,
random weights: speed does not depend on the weights), 256 px tiles, 32 px overlap, batch 8, it measures, each in
its own subprocess (so peak RSS is that run's own):

- ``predict[<backend>]``: :func:`terracarbon.raster.predict.predict_raster` for backend eager / channels-last /
  onnx / onnx-int8 / bf16 — reading windows, normalising, the model, blending the overlaps, finalising and writing
  the compressed cloud-optimised GeoTIFF; output pixels per second = N² / wall time. The predictor (checkpoint
  read) and the one-off ONNX export / int8 quantisation (cached beside the checkpoint) are done before the clock.
- ``before[<backend>]`` (with ``--before-engine FILE``, e.g. ``git show HEAD~5:src/terracarbon/raster/predict.py``):
  the same with an older copy of the engine module, interleaved with the others, for a before/after ratio.
- ``bare[<backend>]``: the same model and backend runner on the same number of tiles and batches of a preallocated
  random batch (no I/O, no blending, no writing); pixels/s = N² / time for all the tiles of the grid.
  ``bare-streams[onnx…]``: the same with the batches on concurrent single-threaded onnxruntime runs, one per
  thread, as the engine runs them; the engine's ratio is taken against the faster of the two.
- ``torchgeo``: TorchGeo's ``RasterDataset`` + ``GridGeoSampler(size=256, stride=224)`` + ``DataLoader`` loop
  with the same eager model, the same overlap and linear-ramp blending into an in-memory mosaic, written at the end.

Every run records its wall time, its CPU time (user + system, all threads) and the load average before and after:
on a shared machine the wall-time ratios of runs interleaved in one invocation are the figures to quote, the CPU
times show how much work each configuration does whatever the load. Where CUDA is available the eager, bf16 (fp16
autocast on CUDA) and onnx runs are repeated on the GPU (``@cuda`` rows).

Usage::

    python benchmarks/bench_biomass_predict.py --size 2048 --repeats 2 --out /tmp/bench
    python benchmarks/bench_biomass_predict.py --size 10000 --backends onnx --skip-torchgeo

Prints a Markdown table (and JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

TILE, OVERLAP, BATCH = 256, 32, 8
SPEC = {"arch": "unet", "in_channels": 12, "classes": 1, "encoder_name": "resnet18"}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); without it, bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def _prepare(predictor, src: Path, backend: str):
    """One-off work done before the clock, as in normal use: ONNX export, int8 calibration + quantisation (cached)."""
    from terracarbon.raster.predict import TileGrid, _onnx_export, int8_calibration, quantize_onnx_int8

    if backend == "onnx":
        return _onnx_export(predictor)
    if backend == "onnx-int8":
        with __import__("rasterio").open(src) as ds:
            grid = TileGrid(ds.height, ds.width, TILE, OVERLAP)
        tiles, key = int8_calibration(src, predictor, grid)
        return quantize_onnx_int8(predictor, tiles, key)
    return None


def make_raster(path: Path, size: int, seed: int = 0) -> Path:
    """N×N 12-band float32 GeoTIFF, tiled 256, uncompressed, written strip by strip (bounded memory)."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    prof = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=12,
        dtype="float32",
        crs="EPSG:32722",
        transform=from_origin(350000, 9650000, 10, 10),
        tiled=True,
        blockxsize=256,
        blockysize=256,
        BIGTIFF="YES",
    )
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **prof) as ds:
        for r0 in range(0, size, 256):
            h = min(256, size - r0)
            ds.write(rng.standard_normal((12, h, size), dtype=np.float32), window=Window(0, r0, size, h))
    os.replace(tmp, path)
    return path


def make_checkpoint(path: Path) -> Path:
    import torch

    from terracarbon.models.registry import build_model, save_checkpoint

    if path.exists():
        return path
    torch.manual_seed(0)
    model = build_model(SPEC)
    meta = {
        "task": "regression",
        "bands": [f"b{i}" for i in range(12)],
        "mean": [0.0] * 12,
        "std": [1.0] * 12,
        "target_scale": 100.0,
        "target_offset": 150.0,
    }
    return save_checkpoint(path, model, SPEC, meta)


def n_tiles(size: int) -> int:
    from terracarbon.raster.predict import TileGrid

    return len(TileGrid(size, size, TILE, OVERLAP))


# ------------------------------------------------------------------------------------------------ workers
def worker_predict(ckpt: Path, src: Path, dst: Path, backend: str, device: str = "cpu", engine: str = "") -> dict:
    import importlib.util

    from terracarbon.raster.checkpoint import predictor_from_checkpoint

    if engine:  # an older copy of the engine module, for a before/after comparison
        spec = importlib.util.spec_from_file_location("terracarbon_engine_before", engine)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        predict_raster = mod.predict_raster
    else:
        from terracarbon.raster.predict import predict_raster
    # warm up outside the timing: imports (torch, smp, timm, rasterio: seconds, once per process), the checkpoint
    # read and, for onnx / onnx-int8, the one-off export and quantisation cached beside the checkpoint
    predictor = predictor_from_checkpoint(ckpt)
    _prepare(predictor, src, backend)
    t, c = time.perf_counter(), _cpu_s()
    predict_raster(
        predictor,
        src,
        dst,
        tile_size=TILE,
        overlap=OVERLAP,
        batch_size=BATCH,
        backend=backend,
        resume=False,
        progress_bar=False,
        device=device,
    )
    return {"seconds": time.perf_counter() - t, "cpu_s": _cpu_s() - c}


def worker_bare(
    ckpt: Path, size: int, backend: str, max_batches: int | None, src: Path, device: str = "cpu", streams: int = 1
) -> dict:
    """The backend's forward alone. ``streams`` > 1 (onnx backends): that many single-threaded onnxruntime runs at
    once on a thread pool, as the engine runs them (``raster.predict.ORT_STREAMS``); 1: one run at a time with all
    threads."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from terracarbon.raster.checkpoint import predictor_from_checkpoint
    from terracarbon.raster.predict import _Runner

    predictor = predictor_from_checkpoint(ckpt)
    path = _prepare(predictor, src, backend)
    runner = _Runner(
        predictor,
        backend,
        device,
        onnx_path=path if backend == "onnx-int8" else None,
        ort_threads=1 if streams > 1 else None,
    )
    tiles = n_tiles(size)
    batches = [BATCH] * (tiles // BATCH) + ([tiles % BATCH] if tiles % BATCH else [])
    todo = batches if not max_batches else batches[:max_batches]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 12, TILE, TILE), dtype=np.float32)
    runner(x[:1])  # warm-up
    t, c = time.perf_counter(), _cpu_s()
    if streams > 1:
        with ThreadPoolExecutor(streams) as pool:
            list(pool.map(lambda b: runner(x[:b]), todo))
    else:
        for b in todo:
            runner(x[:b])
    dt, dc = time.perf_counter() - t, _cpu_s() - c
    return {
        "seconds": dt * sum(batches) / sum(todo),
        "cpu_s": dc * sum(batches) / sum(todo),
        "measured_tiles": sum(todo),
        "extrapolated": len(todo) < len(batches),
    }


def worker_torchgeo(ckpt: Path, src: Path, dst: Path) -> dict:
    import numpy as np
    import rasterio
    import torch
    from torch.utils.data import DataLoader
    from torchgeo.datasets import RasterDataset, stack_samples
    from torchgeo.samplers import GridGeoSampler

    from terracarbon.models.registry import load_checkpoint
    from terracarbon.raster.predict import TileGrid

    model, _, meta = load_checkpoint(ckpt)

    class Stack(RasterDataset):
        filename_glob = src.name
        is_image = True

    t, cpu0 = time.perf_counter(), _cpu_s()
    ds = Stack(paths=str(src.parent))
    sampler = GridGeoSampler(ds, size=TILE, stride=TILE - OVERLAP)
    chips = list(sampler)
    dl = DataLoader(ds, sampler=chips, batch_size=BATCH, collate_fn=stack_samples, num_workers=0)
    with rasterio.open(src) as r:
        tr, h, w, crs = r.transform, r.height, r.width, r.crs
    res = tr.a
    acc = np.zeros((h, w), np.float32)
    wsum = np.zeros((h, w), np.float32)
    weights = TileGrid(h, w, TILE, OVERLAP).blend_weights()
    i = 0
    with torch.inference_mode():
        for batch in dl:
            y = model(batch["image"].float()).numpy()[:, 0]
            for k in range(y.shape[0]):
                xs, ys = chips[i][0], chips[i][1]
                c0 = int(round((xs.start - tr.c) / res))
                r0 = int(round((tr.f - ys.stop) / res))
                a0, b0 = max(r0, 0), max(c0, 0)  # chips may stick out of the raster (zero-filled)
                a1, b1 = min(h, r0 + TILE), min(w, c0 + TILE)
                ty, tx = slice(a0 - r0, a1 - r0), slice(b0 - c0, b1 - c0)
                acc[a0:a1, b0:b1] += y[k, ty, tx] * weights[ty, tx]
                wsum[a0:a1, b0:b1] += weights[ty, tx]
                i += 1
    out = np.where(wsum > 0, acc / np.maximum(wsum, 1e-12), -9999.0).astype(np.float32)
    out = out * float(meta["target_scale"]) + float(meta["target_offset"])
    with rasterio.open(
        dst,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=1,
        dtype="float32",
        crs=crs,
        transform=tr,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="DEFLATE",
        BIGTIFF="IF_SAFER",
    ) as o:
        o.write(out, 1)
    return {"seconds": time.perf_counter() - t, "cpu_s": _cpu_s() - cpu0, "tiles": len(chips)}


# ------------------------------------------------------------------------------------------------ driver
def _run(args: list[str]) -> dict:
    load0 = os.getloadavg()[0]
    p = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{p.stderr[-3000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    r["load"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10000, help="raster side in pixels (default 10000)")
    ap.add_argument("--sizes-rss", type=int, nargs="*", default=[], help="extra sizes for the peak-RSS check")
    ap.add_argument("--backends", nargs="+", default=["eager", "channels-last", "onnx", "onnx-int8", "bf16"])
    ap.add_argument(
        "--before-engine", default="", help="an older copy of raster/predict.py to time beside the current one"
    )
    ap.add_argument(
        "--before-backends", nargs="+", default=["eager", "channels-last", "onnx"], help="backends timed with it"
    )
    ap.add_argument("--no-cuda", action="store_true", help="skip the GPU rows even where CUDA is available")
    ap.add_argument("--skip-torchgeo", action="store_true")
    ap.add_argument(
        "--repeats", type=int, default=1, help="run each measurement N times, interleaved; keep the fastest"
    )
    ap.add_argument(
        "--bare-max-batches", type=int, default=0, help="time only this many batches (extrapolate)"
    )
    ap.add_argument("--out", type=Path, default=Path("bench-biomass"), help="work folder (rasters, outputs)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker:
        kind, *rest = a.worker
        if kind == "predict":
            r = worker_predict(Path(rest[0]), Path(rest[1]), Path(rest[2]), rest[3], rest[4], rest[5])
        elif kind == "bare":
            streams = int(rest[6]) if len(rest) > 6 else 1
            r = worker_bare(
                Path(rest[0]), int(rest[1]), rest[2], int(rest[3]) or None, Path(rest[4]), rest[5], streams
            )
        elif kind == "torchgeo":
            r = worker_torchgeo(Path(rest[0]), Path(rest[1]), Path(rest[2]))
        else:
            raise SystemExit(f"unknown worker {kind}")
        r["peak_rss_mb"] = _rss_mb()
        print(json.dumps(r))
        return

    import torch

    a.out.mkdir(parents=True, exist_ok=True)
    ckpt = make_checkpoint(a.out / "unet_r18_12b.pt")
    rows = []

    def record(name: str, size: int, r: dict) -> None:
        r.update(name=name, size=size, pixels_per_s=size * size / r["seconds"])
        rows.append(r)
        print(
            f"{name:24s} {size:6d}²  {r['seconds']:8.1f} s  cpu {r['cpu_s']:8.1f} s  {r['pixels_per_s']:12,.0f} px/s  "
            f"peak RSS {r['peak_rss_mb']:7.0f} MB",
            file=sys.stderr,
            flush=True,
        )

    plan = []  # (name, size, worker args)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not a.no_cuda else [])
    for size in [a.size, *a.sizes_rss]:
        t = time.perf_counter()
        src = make_raster(a.out / f"stack_{size}.tif", size)
        print(f"raster {size}² ready ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
        main_size = size == a.size
        for dev in devices:
            for be in a.backends if main_size else a.backends[-1:]:
                if dev == "cuda" and be in ("channels-last", "onnx-int8"):
                    continue  # CPU-only variants
                tag = be if dev == "cpu" else f"{be}@cuda"
                out = a.out / f"agb_{size}_{be}_{dev}.tif"
                if be == "bf16" and dev == "cpu" and not cpu_has_native_bf16():
                    # emulated bf16 is many times slower than fp32: time two batches of the bare forward only
                    if main_size:
                        plan.append((f"bare[{tag}]", size, ["bare", str(ckpt), str(size), be, "2", str(src), dev]))
                    continue
                plan.append(
                    (f"predict[{tag}]", size, ["predict", str(ckpt), str(src), str(out), be, dev, ""])
                )
                if a.before_engine and dev == "cpu" and be in a.before_backends:
                    plan.append(
                        (
                            f"before[{tag}]",
                            size,
                            ["predict", str(ckpt), str(src), str(out), be, dev, str(Path(a.before_engine).resolve())],
                        )
                    )
                if main_size:
                    plan.append(
                        (
                            f"bare[{tag}]",
                            size,
                            ["bare", str(ckpt), str(size), be, str(a.bare_max_batches), str(src), dev],
                        )
                    )
                    if dev == "cpu" and be in ("onnx", "onnx-int8") and torch.get_num_threads() > 1:
                        # the engine runs onnxruntime on one single-threaded stream per thread: its bare forward too
                        n = str(torch.get_num_threads())
                        plan.append(
                            (
                                f"bare-streams[{tag}]",
                                size,
                                ["bare", str(ckpt), str(size), be, str(a.bare_max_batches), str(src), dev, n],
                            )
                        )
        if main_size and not a.skip_torchgeo:  # first: the reference of every "vs TorchGeo" ratio
            plan.insert(0, ("torchgeo", size, ["torchgeo", str(ckpt), str(src), str(a.out / f"tg_{size}.tif")]))
    # repeats are interleaved (A B C A B C ...) so that load changes on a shared machine hit every run alike;
    # the fastest repeat is kept (and the largest peak RSS)
    best: dict[tuple[str, int], dict] = {}
    for rep in range(a.repeats):
        for name, size, args in plan:
            r = _run(["--worker", *args])
            print(
                f"  repeat {rep + 1}: {name} {size}² {r['seconds']:.1f} s (cpu {r['cpu_s']:.1f} s, load {r['load']})",
                file=sys.stderr,
                flush=True,
            )
            key = (name, size)
            if key not in best or r["seconds"] < best[key]["seconds"]:
                rss = max(r["peak_rss_mb"], best.get(key, {}).get("peak_rss_mb", 0.0))
                best[key] = {**r, "peak_rss_mb": rss}
            else:
                best[key]["peak_rss_mb"] = max(best[key]["peak_rss_mb"], r["peak_rss_mb"])
    for name, size, _ in plan:
        record(name, size, best[(name, size)])

    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_end": [round(v, 1) for v in os.getloadavg()],
        "loads_seen": [min(x for r in rows for x in r["load"]), max(x for r in rows for x in r["load"])],
        "cuda": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        "cpu_native_bf16": cpu_has_native_bf16(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "repeats": a.repeats,
        "tile": TILE,
        "overlap": OVERLAP,
        "batch": BATCH,
        "model": SPEC,
    }
    by = {(r["name"], r["size"]): r for r in rows}
    print(
        f"\n{info['date']} — {info['machine']}; load average {info['loads_seen'][0]}-{info['loads_seen'][1]} "
        f"during the runs; GPU: {info['cuda'] or 'none'}\n`{info['command']}`\n"
    )
    print(
        "| run | raster | time (s) | CPU (s) | output px/s | vs fastest bare, same backend (wall / CPU) "
        "| vs TorchGeo loop | vs before | peak RSS (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        be = r["name"].split("[")[-1].rstrip("]") if "[" in r["name"] else None
        # the faster of the backend's bare forwards (one run at a time / concurrent streams): the stricter ratio
        bares = [b for b in (by.get((f"bare[{be}]", r["size"])), by.get((f"bare-streams[{be}]", r["size"]))) if b]
        bare = max(bares, key=lambda b: b["pixels_per_s"]) if bares else None
        tg = by.get(("torchgeo", r["size"]))
        old = by.get((f"before[{be}]", r["size"]))
        vb = (
            f"{r['pixels_per_s'] / bare['pixels_per_s']:.2f}× / {bare['cpu_s'] / r['cpu_s']:.2f}×"
            if bare and r["name"].startswith(("predict", "before"))
            else ""
        )
        vt = f"{r['pixels_per_s'] / tg['pixels_per_s']:.2f}×" if tg and r["name"] != "torchgeo" else ""
        vo = f"{old['seconds'] / r['seconds']:.2f}×" if old and r["name"].startswith("predict") else ""
        print(
            f"| {r['name']} | {r['size']:,}² | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {r['pixels_per_s']:,.0f} | "
            f"{vb} | {vt} | {vo} | {r['peak_rss_mb']:,.0f} |"
        )
    if a.json:
        a.json.write_text(json.dumps({"info": info, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
