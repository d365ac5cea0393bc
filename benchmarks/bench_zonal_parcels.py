"""Benchmark zonal statistics for many small parcels: time and peak RSS, ours against the old code and rasterstats.

Inputs (synthetic, seeded, written once under ``--out``): an N × N float32 AGB raster (UTM 33N, 10 m pixels, tiled
DEFLATE GeoTIFF written window by window) and P parcels (rotated squares and discs of 0.1-2 ha, spread uniformly)
in a GeoPackage.

Runs, each in its own Python process so that the peak RSS (``ru_maxrss`` from ``os.wait4``) is its own:

- ``coverage``: :func:`terracarbon.raster.zonal.zonal_stats` with the default exact coverage weights (exactextract).
- ``centre``: the same function with ``method="centre"`` (pixel-centre rule on per-parcel sub-windows).
- ``head_centre``: the pixel-centre code as it was before issue 17 (``git show <rev>:src/terracarbon/raster/zonal.py``,
  ``--head-rev``, default ``99d9781^``), loaded as a module: a full-tile mask per parcel per tile.
- ``rasterstats``: ``rasterstats.zonal_stats(parcels, raster, stats=["count", "mean", "sum"])`` (the ``peers`` extra;
  pixel-centre rule, no pixel areas).
- ``exactextract``: ``exactextract.exact_extract(raster, parcels, ["count", "mean", "sum"])`` on its own
  (coverage-weighted, nominal pixel areas), as the speed reference of the C++ library.

Each run reports wall time, CPU time, peak RSS and the summed parcel area / mean so the methods can be compared.
Usage::

    python benchmarks/bench_zonal_parcels.py --size 10000 --parcels 10000 --out /tmp/zonal-bench
    python benchmarks/bench_zonal_parcels.py --size 2000 --parcels 1000 --runs coverage centre   # quick

Prints a Markdown table (``--json`` for JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

UTM = "EPSG:32633"
X0, Y0, PX = 400000.0, 6100000.0, 10.0
RUNS = ("coverage", "centre", "head_centre", "rasterstats", "exactextract")


def make_inputs(out: Path, size: int, n_parcels: int, seed: int = 0) -> tuple[Path, Path]:
    """Write the raster and the parcels (once; reused when present)."""
    import numpy as np
    import rasterio
    from affine import Affine
    from rasterio.windows import Window

    out.mkdir(parents=True, exist_ok=True)
    raster = out / f"agb_{size}.tif"
    parcels = out / f"parcels_{size}_{n_parcels}.gpkg"
    if not raster.exists():
        rng = np.random.default_rng(seed)
        prof = {
            "driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32", "crs": UTM,
            "transform": Affine(PX, 0, X0, 0, -PX, Y0), "nodata": float("nan"), "tiled": True,
            "blockxsize": 512, "blockysize": 512, "compress": "DEFLATE", "BIGTIFF": "IF_SAFER",
        }  # fmt: skip
        tmp = raster.with_suffix(".tmp.tif")
        with rasterio.open(tmp, "w", **prof) as dst:
            for r in range(0, size, 1024):
                h = min(1024, size - r)
                yy = (np.arange(r, r + h, dtype=np.float32)[:, None]) / size
                xx = np.arange(size, dtype=np.float32)[None, :] / size
                v = 150 + 80 * np.sin(6 * xx) * np.cos(5 * yy) + rng.normal(0, 20, (h, size)).astype(np.float32)
                v = np.round(np.maximum(v, 0), 1).astype(np.float32)
                dst.write(v, 1, window=Window(0, r, size, h))
        os.replace(tmp, raster)
    if not parcels.exists():
        import geopandas as gpd
        from shapely import affinity
        from shapely.geometry import Point, box

        rng = np.random.default_rng(seed + 1)
        ext = size * PX
        geoms = []
        for i in range(n_parcels):
            area = rng.uniform(1000, 20000)  # 0.1-2 ha
            cx = X0 + rng.uniform(200, ext - 200)
            cy = Y0 - rng.uniform(200, ext - 200)
            if i % 2:
                s = area**0.5
                g = affinity.rotate(box(cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2), rng.uniform(0, 90))
            else:
                g = Point(cx, cy).buffer((area / np.pi) ** 0.5, 16)
            geoms.append(g)
        gdf = gpd.GeoDataFrame({"parcel_id": np.arange(n_parcels)}, geometry=geoms, crs=UTM)
        tmp = parcels.with_suffix(".tmp.gpkg")
        gdf.to_file(tmp, driver="GPKG")
        os.replace(tmp, parcels)
    return raster, parcels


def _head_module(rev: str, out: Path):
    import importlib.util

    src = subprocess.run(
        ["git", "show", f"{rev}:src/terracarbon/raster/zonal.py"], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout  # fmt: skip
    path = out / "zonal_head.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("zonal_head", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["zonal_head"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def run_one(kind: str, raster: Path, parcels: Path, out: Path, head_rev: str) -> dict:
    """Run one method in this process; returns its figures (time measured here, RSS by the parent)."""
    import numpy as np

    t0 = time.perf_counter()
    c0 = os.times()
    if kind in ("coverage", "centre"):
        from terracarbon.raster.zonal import zonal_stats

        res = zonal_stats(raster, parcels, method=kind)
        zones = res["zones"]
        area = sum(z["area_ha"] for z in zones)
        mean = float(np.nanmean([z["mean"] for z in zones]))
        n = len(zones)
    elif kind == "head_centre":
        mod = _head_module(head_rev, out)
        res = mod.zonal_stats(raster, parcels)
        zones = res["zones"]
        area = sum(z["area_ha"] for z in zones)
        mean = float(np.nanmean([z["mean"] for z in zones]))
        n = len(zones)
    elif kind == "rasterstats":
        from rasterstats import zonal_stats as rs_zonal

        zs = rs_zonal(str(parcels), str(raster), stats=["count", "mean", "sum"])
        area = sum(z["count"] for z in zs) * PX * PX / 1e4  # nominal pixel areas
        mean = float(np.nanmean([z["mean"] if z["mean"] is not None else np.nan for z in zs]))
        n = len(zs)
    elif kind == "exactextract":
        import geopandas as gpd
        from exactextract import exact_extract

        # without GDAL's Python bindings or fiona exactextract takes parcels as a GeoDataFrame (read time included)
        df = exact_extract(str(raster), gpd.read_file(parcels), ["count", "mean", "sum"], output="pandas")
        area = float(df["count"].sum()) * PX * PX / 1e4  # count = Σ coverage fractions, nominal areas
        mean = float(df["mean"].mean())
        n = len(df)
    else:
        raise SystemExit(f"unknown run {kind}")
    c1 = os.times()
    return {
        "run": kind,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": (c1.user - c0.user) + (c1.system - c0.system),
        "parcels": n,
        "sum_area_ha": area,
        "mean_of_means": mean,
    }


def spawn(kind: str, raster: Path, parcels: Path, out: Path, head_rev: str) -> dict:
    """Run ``kind`` in a child process; add its peak RSS."""
    cmd = [sys.executable, __file__, "--child", kind, "--raster", str(raster), "--aoi", str(parcels),
           "--out", str(out), "--head-rev", head_rev]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    stdout = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"run": kind, "error": f"exit {proc.returncode}"}
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_rss_mb"] = ru.ru_maxrss / 1024
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=10000)
    ap.add_argument("--parcels", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=Path("/tmp/zonal-bench"))
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    ap.add_argument("--head-rev", default="99d9781^")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child")
    ap.add_argument("--raster", type=Path)
    ap.add_argument("--aoi", type=Path)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_one(a.child, a.raster, a.aoi, a.out, a.head_rev)))
        return
    t = time.perf_counter()
    raster, parcels = make_inputs(a.out, a.size, a.parcels)
    prep = time.perf_counter() - t
    load = os.getloadavg()
    results = [spawn(k, raster, parcels, a.out, a.head_rev) for k in a.runs]
    report = {
        "size": a.size,
        "parcels": a.parcels,
        "inputs_s": prep,
        "load_avg_before": load,
        "load_avg_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    if a.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{a.size}² raster, {a.parcels:,} parcels; load average before {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}, "
          f"after {report['load_avg_after'][0]:.2f}; {os.cpu_count()} CPUs\n")  # fmt: skip
    print("| run | wall (s) | CPU (s) | peak RSS (MB) | Σ parcel area (ha) | mean of parcel means |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['run']} | {r['error']} | | | | |")
            continue
        print(f"| {r['run']} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | "
              f"{r['sum_area_ha']:.2f} | {r['mean_of_means']:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
