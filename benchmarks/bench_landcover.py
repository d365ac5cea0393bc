"""Benchmark the land-cover pipeline on synthetic LandCover.ai look-alikes (CPU).

Measures:

- ``train``: :func:`terracarbon.landcover.train.train_landcover` with the CI recipe (``unet-tiny``, 14 epochs,
  lr 1e-2, batch 8, inverse-frequency weights capped at 10, one torch thread) on 8 synthetic 256 x 256 scenes cut
  into 64 px tiles, for several seeds: test mIoU, per-class IoU, wall and CPU time.
- ``map``: whole-orthophoto prediction of an unseen synthetic scene with the trained model through the tiled engine,
  scored against its reference mask (:func:`terracarbon.landcover.evaluate.evaluate_map`).
- ``tiling``: :func:`terracarbon.data.landcover_ai.split_orthophotos` (the official 512 px tiling) throughput.
- ``predict``: engine throughput (output pixels/s) for an N x N orthophoto with the tiny model and with DeepLabv3+
  (ResNet-50, random weights: speed does not depend on the weights), 512 px tiles, 64 px overlap.

Usage::

    python benchmarks/bench_landcover.py --seeds 0 1 2 --size 2048 --out /tmp/lcbench

Prints a Markdown report (``--json`` for JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bench_train(out: Path, seed: int) -> dict:
    import torch

    from terracarbon.data.synthetic.landcover import make_synthetic_release
    from terracarbon.landcover.train import train_landcover

    root = make_synthetic_release(out / f"synth-{seed}", n_images=8, size=(256, 256), tile_size=64, seed=seed)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    t0, c0 = time.perf_counter(), _cpu()
    try:
        res = train_landcover(
            root, out_dir=out / f"run-{seed}", model="unet-tiny", epochs=14, lr=1e-2, batch_size=8, seed=seed,
            accelerator="cpu", progress=False, track=True,
        )  # fmt: skip
    finally:
        torch.set_num_threads(n)
    return {
        "seed": seed,
        "miou": res.metrics["miou"],
        "iou": res.metrics["iou"],
        "wall_s": time.perf_counter() - t0,
        "cpu_s": _cpu() - c0,
        "energy_kwh": (res.footprint or {}).get("energy_kwh"),
        "checkpoint": str(res.checkpoint),
    }


def bench_map(out: Path, checkpoint: str) -> dict:
    from terracarbon.data.landcover_ai import write_mask, write_orthophoto
    from terracarbon.data.synthetic.landcover import render_scene
    from terracarbon.landcover.evaluate import evaluate_map
    from terracarbon.landcover.predict import predict_landcover

    rgb, mask = render_scene(512, 512, seed=777)
    img = write_orthophoto(out / "holdout" / "images" / "h.tif", rgb)
    ref = write_mask(out / "holdout" / "masks" / "h.tif", mask)
    dst = out / "holdout" / "map.tif"
    predict_landcover(
        checkpoint, img, dst, tile_size=128, overlap=16, progress=False, track=False, resume=False
    )
    m = evaluate_map(dst, ref)
    return {"miou": m["miou"], "iou": m["iou"]}


def bench_tiling(out: Path, size: int) -> dict:
    import numpy as np

    from terracarbon.data.landcover_ai import split_orthophotos, write_mask, write_orthophoto
    from terracarbon.data.synthetic.landcover import render_scene

    root = out / "tiling"
    rgb, mask = render_scene(size, size, seed=5)
    write_orthophoto(root / "images" / "M-33-20-D-c-4-2.tif", rgb)
    write_mask(root / "masks" / "M-33-20-D-c-4-2.tif", mask.astype(np.uint8))
    t0 = time.perf_counter()
    stems = split_orthophotos(root)
    dt = time.perf_counter() - t0
    return {"size": size, "tiles": len(stems), "wall_s": dt, "tiles_per_s": len(stems) / dt}


def bench_predict(out: Path, size: int, spec: dict, name: str) -> dict:
    from terracarbon.data.landcover_ai import CLASS_NAMES, COLORMAP, write_orthophoto
    from terracarbon.data.synthetic.landcover import render_scene
    from terracarbon.landcover.predict import predict_landcover
    from terracarbon.models.registry import build_model, save_checkpoint

    src = out / f"ortho-{size}.tif"
    if not src.exists():
        rgb, _ = render_scene(size, size, seed=9)
        write_orthophoto(src, rgb)
    ckpt = save_checkpoint(
        out / f"{name}.pt", build_model(spec), spec,
        {"task": "segmentation", "class_names": list(CLASS_NAMES), "colormap": COLORMAP, "in_bands": [1, 2, 3],
         "bands": ["red", "green", "blue"], "mean": [128.0] * 3, "std": [50.0] * 3},
    )  # fmt: skip
    dst = out / f"map-{name}-{size}.tif"
    t0, c0 = time.perf_counter(), _cpu()
    predict_landcover(
        ckpt, src, dst, tile_size=512, overlap=64, batch_size=4, progress=False, track=False, resume=False
    )
    dt = time.perf_counter() - t0
    return {"model": name, "size": size, "wall_s": dt, "cpu_s": _cpu() - c0, "px_per_s": size * size / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--size", type=int, default=2048, help="orthophoto size for tiling/predict throughput")
    ap.add_argument("--deeplab-size", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=Path("/tmp/lcbench"))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    report: dict = {"train": [bench_train(a.out, s) for s in a.seeds]}
    report["map"] = bench_map(a.out, report["train"][0]["checkpoint"])
    report["tiling"] = bench_tiling(a.out, a.size)
    from terracarbon.landcover._common import MODEL_PRESETS

    tiny = {**MODEL_PRESETS["unet-tiny"], "in_channels": 3, "classes": 5}
    deeplab = {**MODEL_PRESETS["deeplabv3plus"], "in_channels": 3, "classes": 5}
    report["predict"] = [
        bench_predict(a.out, a.size, tiny, "unet-tiny"),
        bench_predict(a.out, a.deeplab_size, deeplab, "deeplabv3plus-resnet50"),
    ]
    report["loadavg"] = [load0, os.getloadavg()[0]]
    report["cpus"] = os.cpu_count()
    if a.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"CPU cores: {report['cpus']}, load average at start/end: {load0:.1f} / {report['loadavg'][1]:.1f}\n"
    )
    print("| seed | test mIoU | background | building | woodland | water | road | wall (s) | CPU (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in report["train"]:
        i = r["iou"]
        print(f"| {r['seed']} | {r['miou']:.3f} | {i['background']:.3f} | {i['building']:.3f} | {i['woodland']:.3f} | "
              f"{i['water']:.3f} | {i['road']:.3f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} |")  # fmt: skip
    m = report["map"]
    print(f"\nwhole-orthophoto map (512 x 512, unseen scene, seed-0 model): mIoU {m['miou']:.3f} "
          + ", ".join(f"{k} {v:.3f}" for k, v in m["iou"].items()))  # fmt: skip
    t = report["tiling"]
    print(f"\nofficial tiling: {t['size']} x {t['size']} px -> {t['tiles']} tiles in {t['wall_s']:.2f} s "
          f"({t['tiles_per_s']:.1f} tiles/s)\n")  # fmt: skip
    print("| model | orthophoto | wall (s) | CPU (s) | output px/s |")
    print("|---|---|---|---|---|")
    for p in report["predict"]:
        print(
            f"| {p['model']} | {p['size']} x {p['size']} | {p['wall_s']:.1f} | {p['cpu_s']:.1f} | {p['px_per_s']:,.0f} |"
        )


if __name__ == "__main__":
    main()
