"""Benchmark: peak RSS of biomass training against the number of (stack, labels) tiles on disk.

For T = 1, 4, 16 tiles of N×N (default 1024²) 12-band float32 synthetic stacks (tiled 256, uncompressed, written
strip by strip) with sparse GEDI-like labels (25 m footprints, ~1.5 % of pixels), each run in its own subprocess
(so ``ru_maxrss`` is that run's own peak):

- ``stream``: :func:`terracarbon.biomass.train.train_biomass` on all T tiles (crops are windowed reads,
  :func:`terracarbon.biomass.datasets.open_scene`), a tiny U-Net, 1 epoch of 64 crops of 64 px, validation on
  tile 0 only (so the final scoring costs the same at every T).
- ``in-memory``: the pre-streaming way, :func:`terracarbon.biomass.datasets.load_scene` on all T tiles (reading
  them is all it does: the floor of what training whole scenes in memory costs).

Usage::

    python benchmarks/bench_train_memory.py --size 1024 --tiles 1,4,16 --out /tmp/bench_train_memory

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

SPEC = {"arch": "unet", "encoder_name": "resnet18", "encoder_depth": 3, "decoder_channels": [16, 16, 16]}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_tile(folder: Path, size: int, seed: int) -> tuple[Path, Path]:
    """One synthetic tile: ``stack.tif`` (12 bands, float32) and ``labels.tif`` (AGBD on footprints, NaN elsewhere)."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    folder.mkdir(parents=True, exist_ok=True)
    stack, labels = folder / "stack.tif", folder / "labels.tif"
    if stack.exists() and labels.exists():
        return stack, labels
    rng = np.random.default_rng(seed)
    tr = from_origin(500_000.0 + seed * size * 10.0, 9_000_000.0, 10.0, 10.0)
    prof = dict(driver="GTiff", width=size, height=size, dtype="float32", crs="EPSG:32722", transform=tr,
                tiled=True, blockxsize=256, blockysize=256, nodata=float("nan"))
    names = ["B02", "B03", "B04", "B08", "B11", "B12", "HH", "HV", "CH", "CH_STD", "DEM", "LC"]
    agb = np.zeros((size, size), np.float32)
    with rasterio.open(stack, "w", count=12, **prof) as dst:
        for i, n in enumerate(names, start=1):
            dst.set_band_description(i, n)
        for r0 in range(0, size, 256):
            h = min(256, size - r0)
            base = rng.random((h, size), dtype=np.float32)
            agb[r0 : r0 + h] = 400.0 * base
            block = np.stack([base * (0.5 + 0.05 * k) + 0.01 * rng.random((h, size), dtype=np.float32)
                              for k in range(12)])
            dst.write(block, window=Window(0, r0, size, h))
    lab = np.full((size, size), np.nan, np.float32)
    yy, xx = np.mgrid[0:size:6, 0:size:6]  # a footprint every 60 m on a sparse subset of lines
    keep = rng.random(yy.shape) < 0.12
    for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1)):
        r, c = np.minimum(yy[keep] + dy, size - 1), np.minimum(xx[keep] + dx, size - 1)
        lab[r, c] = agb[yy[keep], xx[keep]]
    with rasterio.open(labels, "w", count=1, **prof) as dst:
        dst.write(lab, 1)
    return stack, labels


def _child(mode: str, pairs: list[list[str]], out: str) -> dict:
    t0 = time.perf_counter()
    if mode == "in-memory":
        from terracarbon.biomass.datasets import load_scene

        scenes = [load_scene(tuple(p)) for p in pairs]
        n = sum(int(s.image.nbytes) for s in scenes)
        return {"wall_s": time.perf_counter() - t0, "peak_rss_mb": _rss_mb(), "arrays_mb": n / 2**20}
    from terracarbon.biomass.train import train_biomass

    res = train_biomass(
        [tuple(p) for p in pairs],
        val_scenes=[tuple(pairs[0])],
        model_spec=SPEC,
        epochs=1,
        samples_per_epoch=64,
        batch_size=8,
        patch_size=64,
        eval_tile_size=256,
        out_dir=out,
        progress=False,
        track=False,
    )
    return {"wall_s": time.perf_counter() - t0, "peak_rss_mb": _rss_mb(), "val_rmse": res.metrics.get("rmse")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--tiles", default="1,4,16")
    ap.add_argument("--modes", default="stream,in-memory")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_train_memory"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        mode, pairs, out = a.child
        print(json.dumps(_child(mode, json.loads(pairs), out)))
        return
    counts = [int(t) for t in a.tiles.split(",")]
    pairs = [make_tile(a.out / f"tile{k:02d}", a.size, k) for k in range(max(counts))]
    rows = []
    for mode in a.modes.split(","):
        for t in counts:
            arg = json.dumps([[str(s), str(lb)] for s, lb in pairs[:t]])
            cmd = [sys.executable, __file__, "--child", mode, arg, str(a.out / f"run-{mode}-{t}")]
            r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "CODECARBON_LOG_LEVEL": "error"})
            if r.returncode:
                sys.exit(f"{mode} T={t} failed:\n{r.stderr[-3000:]}")
            res = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append({"mode": mode, "tiles": t, "pixels": t * a.size**2, **res})
    if a.json:
        print(json.dumps(rows, indent=1))
    print(f"\nmachine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| mode | tiles | stack pixels | peak RSS (MB) | wall (s) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['tiles']} | {r['pixels']:,} | {r['peak_rss_mb']:.0f} | {r['wall_s']:.1f} |")


if __name__ == "__main__":
    main()
