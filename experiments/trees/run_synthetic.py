"""Full synthetic OAM-TCD experiment (too slow for CI): 5-fold CV of both models + a large-orthomosaic prediction.

Run from the repository root:

    .venv/bin/python experiments/trees/run_synthetic.py --out /tmp/trees_exp

Writes ``results.json`` in ``--out`` and prints a Markdown summary (pasted into experiments/trees/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from terracarbon.trees.cv import cross_validate
from terracarbon.trees.metrics import format_mean_std
from terracarbon.trees.predict import predict_trees
from terracarbon.data.synthetic.trees import make_orthomosaic, make_synthetic_tcd

SEMANTIC_SPEC = {
    "arch": "unet",
    "in_channels": 3,
    "classes": 2,
    "encoder_name": "resnet18",
    "encoder_depth": 3,
    "decoder_channels": [64, 32, 16],
}
INSTANCE_SPEC = {
    "arch": "maskrcnn",
    "backbone": "resnet18",
    "fpn_channels": 32,
    "min_size": 128,
    "max_size": 128,
    "rpn_batch_size_per_image": 64,
    "box_batch_size_per_image": 64,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("/tmp/trees_exp"))
    ap.add_argument("--n-images", type=int, default=30)
    ap.add_argument("--sem-epochs", type=int, default=8)
    ap.add_argument("--inst-epochs", type=int, default=8)
    ap.add_argument("--ortho-size", type=int, default=1024)
    ap.add_argument(
        "--predict-only", action="store_true", help="reuse the fold-0 checkpoints of an earlier run"
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    root = make_synthetic_tcd(
        out / "tcd", n_images=args.n_images, size=128, seed=0, n_trees=(5, 9), n_groups=(0, 1)
    )
    res: dict = {"n_images": args.n_images, "tile_px": 128}
    if args.predict_only:
        res = json.loads((out / "results.json").read_text())
        sem_ckpt = res["cv_semantic"]["checkpoints"][0]
        ins_ckpt = res["cv_instance"]["checkpoints"][0]
    else:
        t = time.perf_counter()
        sem = cross_validate(
            root,
            out / "cv_semantic",
            mode="semantic",
            model_spec=SEMANTIC_SPEC,
            epochs=args.sem_epochs,
            batch_size=4,
            lr=3e-3,
            patch_size=None,
            seed=0,
            accelerator="cpu",
            progress=False,
        )
        res["cv_semantic"] = {**sem.to_dict(), "wall_s": time.perf_counter() - t, "epochs": args.sem_epochs}
        print("semantic CV", format_mean_std(sem.summary), flush=True)

        t = time.perf_counter()
        ins = cross_validate(
            root,
            out / "cv_instance",
            mode="instance",
            model_spec=INSTANCE_SPEC,
            epochs=args.inst_epochs,
            batch_size=2,
            lr=4e-3,
            patch_size=None,
            seed=0,
            accelerator="cpu",
            progress=False,
        )
        res["cv_instance"] = {**ins.to_dict(), "wall_s": time.perf_counter() - t, "epochs": args.inst_epochs}
        print("instance CV", format_mean_std(ins.summary), flush=True)

        sem_ckpt, ins_ckpt = sem.checkpoints[0], ins.checkpoints[0]
        (out / "results.json").write_text(json.dumps(res, indent=1, default=str))

    # large orthomosaic with the fold-0 models: tree cover through the engine, crowns merged across tiles
    ortho = make_orthomosaic(out / "ortho.tif", height=args.ortho_size, n_groups=2, seed=21)
    t = time.perf_counter()
    summary = predict_trees(
        ortho.path,
        out / "predict",
        semantic_checkpoint=sem_ckpt,
        instance_checkpoint=ins_ckpt,
        tile_size=256,
        overlap=64,
        progress=False,
    )
    wall = time.perf_counter() - t
    import geopandas as gpd
    import rasterio

    with rasterio.open(summary["canopy"]) as src:
        cover = src.read(1) == 1
    truth = ortho.cover
    crowns = gpd.read_file(summary["crowns"])
    gt = ortho.crowns_gdf()
    gt_trees = gt[gt["category"] == "tree"]
    matched = 0
    for g in gt_trees.geometry:
        best = max(
            (c.intersection(g).area / c.union(g).area for c in crowns.geometry if c.intersects(g)), default=0
        )
        matched += best >= 0.5
    pred_matched = 0
    for c in crowns.geometry:
        best = max(
            (c.intersection(g).area / c.union(g).area for g in gt.geometry if c.intersects(g)), default=0
        )
        pred_matched += best >= 0.5
    res["ortho"] = {
        "pred_crowns_matching_a_true_crown_iou50": int(pred_matched),
        "size_px": args.ortho_size,
        "tree_cover_iou": float((cover & truth).sum() / (cover | truth).sum()),
        "tree_cover_percent_pred": summary["tree_cover_percent"],
        "tree_cover_percent_true": float(100 * truth.mean()),
        "crowns_pred": int(len(crowns)),
        "trees_true": int(len(gt_trees)),
        "canopy_groups_true": int((gt["category"] == "canopy").sum()),
        "true_trees_matched_iou50": int(matched),
        "predict_wall_s": wall,
        "crowns_merged_from_several_tiles": int((crowns["n_tiles"] > 1).sum()),
    }
    print(json.dumps(res["ortho"], indent=1), flush=True)
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str))


if __name__ == "__main__":
    main()
