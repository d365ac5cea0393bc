"""Benchmark: build the predictor stack of a full-size Sentinel-2 tile (10,980² px at 10 m, 12 bands, real layout).

Writes (once, cached under ``--work``) synthetic-valued uint16 COG band files at their native sizes (10 m bands
10,980², 20 m bands 5,490², 60 m bands 1,830², SCL at 20 m with a few cloud blocks) beside an Earth-Search-v1-style
STAC item whose hrefs point at the bucket, exactly the layout of a downloaded Earth Search item. Then times
``terracarbon data stack`` in a child process under ``/usr/bin/time -v`` (wall time and peak RSS), for the COG output
(the 12 bands read, warped onto the 10 m grid, scaled, masked and written) and for the VRT output (no pixel read).

    .venv/bin/python benchmarks/bench_stack.py --work /tmp/tc-bench-stack [--size 10980]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _write_band(path: Path, band: str, n: int, res: int, origin, seed: int) -> None:
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    from terracarbon.raster.io import to_cog

    if path.exists():
        return
    plain = path.with_suffix(".plain.tif")
    profile = dict(
        driver="GTiff", width=n, height=n, count=1, dtype="uint8" if band == "SCL" else "uint16", nodata=0,
        crs="EPSG:32629", transform=from_origin(origin[0], origin[1], res, res), tiled=True, blockxsize=512,
        blockysize=512, compress="DEFLATE",
    )
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6)
    with rasterio.open(plain, "w", **profile) as dst:
        for r in range(0, n, 1024):
            h = min(1024, n - r)
            yy, xx = np.mgrid[r : r + h, 0:n].astype(np.float32)
            if band == "SCL":
                a = np.full((h, n), 4, np.uint8)
                a[((yy // 500) % 7 == 3) & ((xx // 500) % 5 == 1)] = 9  # cloud blocks
            else:
                v = 3000 + 1500 * np.sin(xx / n * 6 + phase) * np.cos(yy / n * 5) + rng.integers(0, 64, (h, n))
                a = v.astype(np.uint16)
            dst.write(a[None], window=Window(0, r, n, h))
    to_cog(plain, path)
    plain.unlink()


def make_tile(work: Path, size: int) -> Path:
    """Write (or reuse) the synthetic full-size tile and its Earth Search item; return the item path."""
    from terracarbon.data.sentinel2 import DEFAULT_S2_BANDS, NATIVE_RESOLUTION, write_stac_item_json

    scene = "S2A_29RKH_20230115_0_L2A"
    folder = work / scene
    folder.mkdir(parents=True, exist_ok=True)
    origin = (300000.0, 3300000.0)
    bands = [*DEFAULT_S2_BANDS, "SCL"]
    for i, b in enumerate(bands):
        res = NATIVE_RESOLUTION[b]
        _write_band(folder / f"{b}.tif", b, size * 10 // res, res, origin, seed=i)
        print(f"  band {b} ready", flush=True)
    return write_stac_item_json(
        folder, layout="earth-search", bands=bands, size=size, crs="EPSG:32629", origin=origin, baseline="04.00",
        scene_id=scene,
    )


def timed(cmd: list[str]) -> dict:
    """Run ``cmd`` under /usr/bin/time -v; return wall seconds and peak RSS (MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"command failed: {' '.join(cmd)}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return {"wall_s": round(wall, 1), "peak_rss_mib": round(rss / 1024, 1), "command": " ".join(cmd)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/tc-bench-stack"))
    ap.add_argument("--size", type=int, default=10980, help="10 m width of the tile in pixels (10,980 = full S2 tile)")
    ap.add_argument("--skip-cog", action="store_true")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    item = make_tile(args.work, args.size)
    print(f"inputs ready in {time.perf_counter() - t0:.0f} s: {item}", flush=True)
    cli = str(REPO / ".venv" / "bin" / "terracarbon")
    like = str(item.parent / "B02.tif")
    res = {"size": args.size, "bands": 12, "load_before": os.getloadavg()}
    res["vrt"] = timed([cli, "data", "stack", "--s2", str(item), "--like", like, "--out", str(args.work / "stack.vrt")])
    print(json.dumps(res["vrt"]), flush=True)
    if not args.skip_cog:
        out = args.work / "stack.tif"
        res["cog"] = timed([cli, "data", "stack", "--s2", str(item), "--like", like, "--out", str(out)])
        res["cog"]["out_mib"] = round(out.stat().st_size / 2**20, 1)
        print(json.dumps(res["cog"]), flush=True)
    res["load_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    (args.work / "bench_stack.json").write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
