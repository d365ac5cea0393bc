"""Evaluate land-cover models: per-class IoU, mIoU, F1/precision/recall and the confusion matrix (torchmetrics).

* :func:`evaluate_landcover` runs a checkpoint over the official tiles of one split.
* :func:`evaluate_map` compares a predicted map GeoTIFF with a reference mask (e.g. a LandCover.ai ``masks/*.tif``)
  window by window, so whole orthophotos predicted by the tiled engine can be scored too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from terracarbon.data.landcover_ai import CLASS_NAMES, LandCoverAIDataset
from terracarbon.errors import InputError

__all__ = ["evaluate_landcover", "evaluate_map"]


def evaluate_landcover(
    checkpoint: str | os.PathLike,
    root: str | os.PathLike,
    split: str = "test",
    *,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``checkpoint`` on the LandCover.ai tiles of ``split`` under ``root``.

    Returns ``{"split", "n_tiles", "iou": {class: IoU}, "miou", "f1", "precision", "recall",
    "confusion_matrix" (rows = reference, columns = prediction), "class_names"}``.
    """
    from torch.utils.data import DataLoader

    from terracarbon.landcover.train import TileTransform
    from terracarbon.models.registry import load_checkpoint
    from terracarbon.tasks.segmentation import segmentation_metrics, summarise_metrics
    from terracarbon.utils import progress as make_progress

    checkpoint = Path(checkpoint)
    model, _, meta = load_checkpoint(checkpoint)
    if meta.get("task") != "segmentation":
        raise InputError(checkpoint, f"is a {meta.get('task')!r} model, not a segmentation model")
    names = list(meta.get("class_names") or CLASS_NAMES)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(dev).eval()
    mean = meta.get("mean") or [0.0, 0.0, 0.0]
    std = meta.get("std") or [1.0, 1.0, 1.0]
    ds = LandCoverAIDataset(root, split, transforms=TileTransform(mean, std))
    loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers)
    metrics = segmentation_metrics(len(names)).to(dev)
    with make_progress(disable=not progress) as bar, torch.inference_mode():
        task = bar.add_task(f"evaluating {split}", total=len(loader))
        for batch in loader:
            logits = model(batch["image"].to(dev))
            metrics.update(logits.argmax(1), batch["mask"].to(dev))
            bar.advance(task)
    out = summarise_metrics(metrics.compute(), names)
    return {"split": split, "n_tiles": len(ds), "class_names": names, **out}


def evaluate_map(
    map_path: str | os.PathLike,
    reference_path: str | os.PathLike,
    *,
    class_names: list[str] | None = None,
    nodata: int | None = 255,
    block: int = 1024,
) -> dict[str, Any]:
    """Compare a predicted class map with a reference mask on the same grid, window by window.

    Pixels where the map equals ``nodata`` are left out. Returns the same keys as :func:`evaluate_landcover`.
    """
    from terracarbon.raster.io import open_raster
    from terracarbon.tasks.segmentation import segmentation_metrics, summarise_metrics

    names = list(class_names or CLASS_NAMES)
    k = len(names)
    metrics = segmentation_metrics(k, ignore_index=None)
    with open_raster(map_path, expected_bands=1) as pm, open_raster(reference_path, expected_bands=1) as rm:
        if (pm.height, pm.width) != (rm.height, rm.width) or pm.transform != rm.transform:
            raise InputError(
                map_path,
                f"grid {pm.height}x{pm.width} {tuple(pm.transform)[:6]} differs from the reference "
                f"{Path(reference_path).name} {rm.height}x{rm.width} {tuple(rm.transform)[:6]}",
            )
        from rasterio.windows import Window

        for r in range(0, pm.height, block):
            for c in range(0, pm.width, block):
                w = Window(c, r, min(block, pm.width - c), min(block, pm.height - r))
                p = pm.read(1, window=w).astype(np.int64)
                t = rm.read(1, window=w).astype(np.int64)
                keep = (t >= 0) & (t < k)
                if nodata is not None:
                    keep &= p != nodata
                if (p[keep] >= k).any():
                    raise InputError(map_path, f"holds class values >= {k} ({', '.join(names)})")
                if keep.any():
                    metrics.update(torch.from_numpy(p[keep]), torch.from_numpy(t[keep]))
    out = summarise_metrics(metrics.compute(), names)
    return {"map": str(map_path), "reference": str(reference_path), "class_names": names, **out}
