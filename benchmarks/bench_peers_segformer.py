"""Peer benchmark: terracarbon's engine vs a transformers tile loop for an imported restor-style SegFormer.

restor's own predict loop (``tcd_pipeline``) is not installable here (the PyPI ``tcd-pipeline`` 0.2.6 is a 2022
release with detectron2-era dependencies), so the peer is its SegFormer step reproduced with transformers directly
(Restor-Foundation/tcd ``src/tcd_pipeline/models/segformer.py``): the whole image read, 1,024 px tiles every 768 px
(``tile_size`` 1024, ``tile_overlap`` 256), ``SegformerImageProcessor(do_resize=False)``, the forward, bilinear
resize of the logits to the tile, softmax, probabilities averaged where tiles overlap, argmax, one GeoTIFF written.
terracarbon: ``trees predict --mode semantic`` (``predict_tree_cover``) with the imported model at its recorded tile
size and overlap (1024/256). Model: MiT-b0 geometry (restor/tcd-segformer-mit-b0's config), random seeded weights,
two classes. Raster: RGB uint8 GeoTIFF. Each run in its own process (peak RSS = its ``ru_maxrss``)::

    .venv-peers/bin/python benchmarks/bench_peers_segformer.py --size 2048 --work /tmp/bench_seg
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

RUNS = ("transformers-loop", "engine-eager", "engine-channels-last")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def prepare(work: Path, size: int) -> None:
    """A MiT-b0 SegFormer folder (config.json + model.safetensors + preprocessor), its import, an RGB raster."""
    import numpy as np
    import rasterio
    import torch
    from affine import Affine
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    from terracarbon.models.hf_segformer import import_hf_segformer

    work.mkdir(parents=True, exist_ok=True)
    d = work / "segformer-mit-b0"
    if not (work / "seg.pt").exists():
        torch.manual_seed(0)
        cfg = SegformerConfig(num_labels=2, id2label={0: "__background__", 1: "tree"}, label2id={"__background__": 0, "tree": 1})
        SegformerForSemanticSegmentation(cfg).save_pretrained(d)
        SegformerImageProcessor(do_resize=False).save_pretrained(d)
        import_hf_segformer(d, work / "seg.pt")
    p = work / f"rgb_{size}.tif"
    if not p.exists():
        rng = np.random.default_rng(0)
        prof = {"driver": "GTiff", "height": size, "width": size, "count": 3, "dtype": "uint8", "crs": "EPSG:32633",
                "transform": Affine(0.1, 0, 400000, 0, -0.1, 5000000), "tiled": True, "blockxsize": 512,
                "blockysize": 512, "compress": "DEFLATE"}
        with rasterio.open(p, "w", **prof) as ds:
            ds.write(rng.integers(0, 256, (3, size, size), dtype=np.uint8))


def run_one(work: Path, run: str, size: int, threads: int) -> dict:
    """One measurement in this process."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    src = work / f"rgb_{size}.tif"
    out: dict = {"run": run, "size": size, "threads": threads}
    if run == "transformers-loop":
        import rasterio
        from transformers import SegformerForSemanticSegmentation, SegformerImageProcessor

        d = work / "segformer-mit-b0"
        model = SegformerForSemanticSegmentation.from_pretrained(str(d), local_files_only=True).eval()
        proc = SegformerImageProcessor.from_pretrained(str(d), do_resize=False)
        out["rss_loaded_mb"] = _rss_mb()
        t0 = time.perf_counter()
        with rasterio.open(src) as ds:
            img, profile = ds.read(), ds.profile | {"count": 1}
        tile, stride = 1024, 768
        h, w = img.shape[1:]
        prob = np.zeros((2, h, w), np.float32)
        cnt = np.zeros((h, w), np.float32)
        starts = lambda n: sorted({*range(0, max(n - tile, 0) + 1, stride), max(n - tile, 0)})  # noqa: E731
        with torch.inference_mode():
            for r in starts(h):
                for c in starts(w):
                    chip = torch.from_numpy(img[:, r : r + tile, c : c + tile].copy())
                    pix = proc(images=chip, return_tensors="pt").pixel_values
                    lg = model(pixel_values=pix).logits
                    pr = torch.nn.functional.interpolate(lg, size=pix.shape[-2:], mode="bilinear", align_corners=False)
                    prob[:, r : r + tile, c : c + tile] += pr.softmax(1)[0].numpy()
                    cnt[r : r + tile, c : c + tile] += 1
        cls = np.argmax(prob / cnt, 0).astype(np.uint8)
        with rasterio.open(work / f"hf_{size}.tif", "w", **profile) as ds:
            ds.write(cls, 1)
        dt = time.perf_counter() - t0
    else:
        from terracarbon.models.registry import load_checkpoint
        from terracarbon.raster.checkpoint import predictor_from_loaded
        from terracarbon.raster.predict import predict_raster

        # the model is loaded before the clock, as the transformers loop's is: what `trees predict --mode semantic`
        # runs after loading it (predict_checkpoint -> predict_raster at the checkpoint's tiling)
        model, _, meta = load_checkpoint(work / "seg.pt")
        predictor = predictor_from_loaded(model, meta, source=work / "seg.pt", stack=src)
        tile = int(meta.get("tile_size", 1024))
        overlap = min(int(meta.get("overlap", 256)), tile // 2)
        out["rss_loaded_mb"] = _rss_mb()
        t0 = time.perf_counter()
        predict_raster(
            predictor, src, work / f"tc_{run}_{size}.tif", tile_size=tile, overlap=overlap, batch_size=1,
            backend="channels-last" if run.endswith("channels-last") else "eager", resume=False, progress_bar=False,
        )
        dt = time.perf_counter() - t0
    out.update(seconds=dt, px_per_s=size * size / dt, peak_rss_mb=_rss_mb())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_seg"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", nargs=1, metavar="RUN", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print("RESULT " + json.dumps(run_one(a.work, a.child[0], a.size, a.threads)), flush=True)
        return
    prepare(a.work, a.size)
    env = os.environ | {"OMP_NUM_THREADS": str(a.threads)}
    rows = []
    for run in a.runs:
        load_before = os.getloadavg()[0]
        p = subprocess.run(
            [sys.executable, __file__, "--child", run, "--size", str(a.size), "--work", str(a.work), "--threads",
             str(a.threads)], capture_output=True, text=True, env=env,
        )
        line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{run}: failed\n{p.stderr[-3000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[7:]) | {"load_before": load_before, "load_avg": os.getloadavg()[0]})
        print(json.dumps(rows[-1]), flush=True)
    base = next((r["px_per_s"] for r in rows if r["run"] == "transformers-loop"), None)
    print("\n| run | raster | time (s) | output px/s | vs transformers tile loop | RSS loaded → peak (MB) "
          "| load before/after |\n|---|---|---|---|---|---|---|")
    for r in rows:
        vs = f"{r['px_per_s'] / base:.2f}×" if base else ""
        print(f"| {r['run']} | {r['size']:,}² | {r['seconds']:.1f} | {r['px_per_s']:,.0f} | {vs} "
              f"| {r['rss_loaded_mb']:,.0f} → {r['peak_rss_mb']:,.0f} | {r['load_before']:.2f} / {r['load_avg']:.2f} |")


if __name__ == "__main__":
    main()
