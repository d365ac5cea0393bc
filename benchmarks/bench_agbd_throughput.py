"""AGBD patch throughput: patches/s through :class:`terracarbon.data.agbd.AGBDDataset` + a torch DataLoader.

Look-alike files in the real layout (:func:`terracarbon.data.agbd.write_agbd_sample`: gzip-compressed datasets,
one 25×25 patch per chunk), read shuffled as training does, with 0 (main process), 1 and 2 DataLoader workers
(each worker opens its own h5py handles), for the paper's ``all`` configuration (24 features, 25×25) and ``S2``
at 15×15. The index is built once before timing (and cached), as in training.

    .venv/bin/python benchmarks/bench_agbd_throughput.py [--tiles 9 --per-tile 400 --batches 20 --repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def run(root: Path, features: str, patch: int, workers: int, batch: int, batches: int) -> float:
    import torch
    from torch.utils.data import DataLoader

    from terracarbon.biomass.agbd import resolve_features
    from terracarbon.data.agbd import AGBDDataset

    ds = AGBDDataset(root, "train", bands=resolve_features(features), patch_size=patch)
    dl = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
        persistent_workers=False,
    )
    it = iter(dl)
    next(it)  # worker start-up and first handle opens are not timed
    n = 0
    t0 = time.perf_counter()
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            break
        n += b["image"].shape[0]
    dt = time.perf_counter() - t0
    del it, dl
    ds.close()
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tiles", type=int, default=9)
    ap.add_argument("--per-tile", type=int, default=400)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    import torch

    from terracarbon.data.agbd import write_agbd_sample

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="tc-agbd-bench-") as tmp:
        root = Path(tmp)
        write_agbd_sample(root, n_tiles=args.tiles, patches_per_tile=args.per_tile, seed=0, n_files=3)
        rows = []
        for features, patch in (("all", 25), ("S2", 15)):
            for workers in (0, 1, 2):
                vals = [run(root, features, patch, workers, args.batch, args.batches) for _ in range(args.repeats)]
                rows.append(
                    {"features": features, "patch": patch, "workers": workers, "patches_per_s": max(vals), "runs": vals}
                )
                print(f"{features:>4} {patch}x{patch} workers={workers}: {max(vals):8.1f} patches/s (best of {vals})")
    info = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }
    print(json.dumps({k: v for k, v in info.items() if k != "rows"}))
    if args.json:
        args.json.write_text(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
