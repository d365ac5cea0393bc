"""Patch datasets over scene stacks with sparse biomass labels.

A *scene* is a co-registered pair of GeoTIFFs: a multi-band predictor ``stack`` (e.g. the 12-band synthetic stack of
:mod:`terracarbon.data.scenes`: Sentinel-2, PALSAR, canopy height, DEM, land cover) and a one-band ``labels`` raster
holding GEDI-like AGB labels in Mg/ha, NaN (or nodata) where there is no footprint. Scenes are given as
:class:`terracarbon.data.scenes.Scene` objects, as scene folders (``stack.tif`` + ``labels.tif``), or as
``(stack_path, labels_path)`` pairs.

Scenes are read once into memory (a 2,000² 12-band stack is ~190 MB); patches are then cut on the fly:

* :class:`RandomPatchDataset` draws random crops for training; with probability ``label_bias`` the crop is
  placed around a randomly chosen labelled pixel (so sparse labels are seen often), otherwise anywhere. Random
  flips / 90° rotations augment.
* :class:`GridPatchDataset` cuts a region into a regular grid of non-overlapping tiles for validation.

Regions are row ranges given as fractions of the scene height, e.g. ``(0.0, 0.8)`` to train on the top 80 %
and ``(0.8, 1.0)`` to validate on the rest (a spatially held-out region).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from terracarbon.errors import InputError

__all__ = [
    "SceneArrays",
    "resolve_scene",
    "load_scene",
    "band_stats",
    "label_stats",
    "RandomPatchDataset",
    "GridPatchDataset",
]


@dataclass
class SceneArrays:
    """One scene in memory: ``image`` (C×H×W float32), ``labels`` (H×W float32, NaN = no label)."""

    name: str
    stack_path: Path
    labels_path: Path
    image: np.ndarray
    labels: np.ndarray
    bands: list[str]
    crs: Any
    transform: Any
    valid: np.ndarray = field(repr=False)  # H×W bool: all bands finite / not nodata

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape

    def rows(self, region: tuple[float, float] | None) -> tuple[int, int]:
        """Row range ``[r0, r1)`` of a fractional region (whole scene when None)."""
        h = self.labels.shape[0]
        if region is None:
            return 0, h
        r0, r1 = int(round(region[0] * h)), int(round(region[1] * h))
        return max(0, r0), min(h, r1)

    def labelled_pixels(self, region: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of labelled pixels inside ``region``."""
        r0, r1 = self.rows(region)
        rr, cc = np.nonzero(np.isfinite(self.labels[r0:r1]) & self.valid[r0:r1])
        return rr + r0, cc


def resolve_scene(scene: Any) -> tuple[Path, Path, str]:
    """Return ``(stack_path, labels_path, name)`` for a Scene object, a scene folder or a (stack, labels) pair."""
    if isinstance(scene, tuple | list) and len(scene) == 2:
        stack, labels = Path(scene[0]), Path(scene[1])
        return stack, labels, stack.parent.name or stack.stem
    if hasattr(scene, "stack") and hasattr(scene, "labels"):
        stack, labels = Path(scene.stack), Path(scene.labels)
        return stack, labels, stack.parent.name
    if hasattr(scene, "paths"):
        p = scene.paths
        return Path(p["stack"]), Path(p["labels"]), Path(p["stack"]).parent.name
    folder = Path(scene)
    if folder.is_file():
        raise InputError(folder, "expected a scene folder (stack.tif + labels.tif), got a file")
    if not folder.exists():
        raise InputError(folder, "scene folder does not exist")
    stack = folder / "stack.tif"
    labels = next(
        (folder / n for n in ("labels.tif", "agb_labels.tif", "gedi_labels.tif") if (folder / n).exists()),
        None,
    )
    if not stack.exists():
        raise InputError(folder, "is not a scene folder: stack.tif is missing")
    if labels is None:
        raise InputError(folder, "is not a scene folder: labels.tif (sparse AGB labels) is missing")
    return stack, labels, folder.name


def load_scene(scene: Any, bands: list[str] | None = None, need_labels: bool = True) -> SceneArrays:
    """Read a scene's stack and labels into memory, validating them (clear :class:`InputError` on bad input)."""
    from terracarbon.raster.io import band_names, open_raster

    stack_path, labels_path, name = resolve_scene(scene)
    with open_raster(stack_path) as ds:
        image = ds.read(out_dtype="float32")
        names = band_names(ds)
        crs, transform, shape = ds.crs, ds.transform, (ds.height, ds.width)
        valid = np.all(np.isfinite(image), axis=0)
        if ds.nodata is not None and np.isfinite(ds.nodata):
            valid &= np.all(image != ds.nodata, axis=0)
    if bands is not None:
        missing = [b for b in bands if b not in names]
        if missing:
            raise InputError(stack_path, f"lacks band(s) {missing}; it has {names}")
        image = image[[names.index(b) for b in bands]]
        names = list(bands)
    image = np.where(valid[None], image, 0.0).astype(np.float32)
    if not labels_path.exists():
        if need_labels:
            raise InputError(labels_path, "label raster does not exist")
        labels = np.full(shape, np.nan, np.float32)
    else:
        with open_raster(labels_path, expected_bands=1) as ds:
            if (ds.height, ds.width) != shape:
                raise InputError(
                    labels_path,
                    f"is {ds.height}×{ds.width} pixels but the stack {stack_path.name} is {shape[0]}×{shape[1]}",
                )
            labels = ds.read(1, out_dtype="float32")
            if ds.nodata is not None and np.isfinite(ds.nodata):
                labels[labels == ds.nodata] = np.nan
        if need_labels and not np.isfinite(labels).any():
            raise InputError(labels_path, "has no labelled pixels (all NaN / nodata)")
        if np.isfinite(labels).any() and np.nanmin(labels) < 0:
            raise InputError(labels_path, f"has negative AGB labels (min {np.nanmin(labels):.1f} Mg/ha)")
    return SceneArrays(name, stack_path, labels_path, image, labels, names, crs, transform, valid)


def band_stats(
    scenes: list[SceneArrays], region: tuple[float, float] | None = None
) -> tuple[list[float], list[float]]:
    """Per-band mean and std over the valid pixels of ``scenes`` (within ``region``); std floored at 1e-6."""
    c = scenes[0].image.shape[0]
    s = np.zeros(c, np.float64)
    s2 = np.zeros(c, np.float64)
    n = 0
    for sc in scenes:
        r0, r1 = sc.rows(region)
        img = sc.image[:, r0:r1][:, sc.valid[r0:r1]].astype(np.float64)
        s += img.sum(1)
        s2 += (img**2).sum(1)
        n += img.shape[1]
    if n == 0:
        raise InputError(scenes[0].stack_path, "has no valid pixels to compute normalisation statistics")
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


def label_stats(
    scenes: list[SceneArrays], region: tuple[float, float] | None = None
) -> tuple[float, float, int]:
    """Mean, std and count of labels in ``scenes`` (within ``region``)."""
    vals = np.concatenate([sc.labels[sc.labelled_pixels(region)] for sc in scenes])
    if vals.size == 0:
        raise InputError(scenes[0].labels_path, "has no labelled pixels in the training region")
    return float(vals.mean()), float(max(vals.std(), 1e-3)), int(vals.size)


class _Normaliser:
    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return (img - self.mean) / self.std


class RandomPatchDataset(Dataset):
    """Random training crops (``image`` C×p×p normalised, ``label`` 1×p×p Mg/ha with NaN holes).

    Args:
        scenes: loaded scenes. patch_size: crop side in pixels. samples_per_epoch: dataset length.
        mean, std: per-band normalisation. region: fractional row range crops must lie in.
        label_bias: probability that a crop is centred (± random jitter) on a labelled pixel.
        augment: random flips and 90° rotations. seed: base seed (the worker/epoch index is mixed in).
    """

    def __init__(
        self,
        scenes: list[SceneArrays],
        patch_size: int,
        samples_per_epoch: int,
        mean,
        std,
        *,
        region: tuple[float, float] | None = None,
        label_bias: float = 0.8,
        augment: bool = True,
        seed: int = 0,
    ) -> None:
        self.scenes = scenes
        self.p = int(patch_size)
        self.n = int(samples_per_epoch)
        self.norm = _Normaliser(mean, std)
        self.region = region
        self.label_bias = label_bias
        self.augment = augment
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self.rows = [sc.rows(region) for sc in scenes]
        for sc, (r0, r1) in zip(scenes, self.rows):
            if r1 - r0 < self.p or sc.shape[1] < self.p:
                raise InputError(
                    sc.stack_path,
                    f"training region {r1 - r0}×{sc.shape[1]} px is smaller than the patch size {self.p}",
                )
        self.labelled = [sc.labelled_pixels(region) for sc in scenes]
        if sum(len(rr) for rr, _ in self.labelled) == 0:
            raise InputError(scenes[0].labels_path, "has no labelled pixels in the training region")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        rng = self._generator()
        i = int(rng.integers(len(self.scenes)))
        sc = self.scenes[i]
        r0, r1 = self.rows[i]
        h, w = r1 - r0, sc.shape[1]
        p = self.p
        rr, cc = self.labelled[i]
        if len(rr) and rng.random() < self.label_bias:
            k = int(rng.integers(len(rr)))
            top = int(np.clip(rr[k] - r0 - rng.integers(p), 0, h - p)) + r0
            left = int(np.clip(cc[k] - rng.integers(p), 0, w - p))
        else:
            top = int(rng.integers(h - p + 1)) + r0
            left = int(rng.integers(w - p + 1))
        img = self.norm(sc.image[:, top : top + p, left : left + p])
        lab = sc.labels[top : top + p, left : left + p][None].copy()
        lab[~sc.valid[top : top + p, left : left + p][None]] = np.nan
        if self.augment:
            k = int(rng.integers(4))
            img, lab = np.rot90(img, k, (1, 2)), np.rot90(lab, k, (1, 2))
            if rng.random() < 0.5:
                img, lab = img[:, :, ::-1], lab[:, :, ::-1]
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img, np.float32)),
            "label": torch.from_numpy(np.ascontiguousarray(lab, np.float32)),
        }

    def _generator(self) -> np.random.Generator:
        # one stream per process (the main process or each DataLoader worker), seeded from ``seed``
        if self._rng is None:
            info = torch.utils.data.get_worker_info()
            self._rng = np.random.default_rng([self.seed, 0 if info is None else info.id + 1])
        return self._rng


class GridPatchDataset(Dataset):
    """Non-overlapping ``tile``-sized tiles over a region (edge tiles shifted inwards), for validation.

    Tile sides are multiples of ``multiple`` (what a U-Net needs); pixels covered by two tiles count once.
    """

    def __init__(
        self,
        scenes: list[SceneArrays],
        tile: int,
        mean,
        std,
        *,
        region: tuple[float, float] | None = None,
        only_labelled: bool = True,
        multiple: int = 32,
    ) -> None:
        self.scenes = scenes
        self.norm = _Normaliser(mean, std)
        self.items: list[tuple[int, int, int, int, int]] = []  # scene, top, left, r0, r1
        for i, sc in enumerate(scenes):
            r0, r1 = sc.rows(region)
            h, w = r1 - r0, sc.shape[1]
            th, tw = min(tile, h - h % multiple), min(tile, w - w % multiple)
            if th <= 0 or tw <= 0:
                raise InputError(sc.stack_path, f"region of {h}×{w} px is smaller than {multiple} px")
            tops = sorted({min(t, h - th) for t in range(0, h, th)})
            lefts = sorted({min(t, w - tw) for t in range(0, w, tw)})
            for t in tops:
                for left in lefts:
                    top = t + r0
                    lab = sc.labels[top : top + th, left : left + tw]
                    if only_labelled and not np.isfinite(lab).any():
                        continue
                    self.items.append((i, top, left, th, tw))
        # tiles shifted inwards overlap their neighbours: each pixel must count once
        self._owner = self._ownership()

    def _ownership(self) -> list[tuple[int, int, int, int]]:
        seen: dict[int, np.ndarray] = {}
        owned = []
        for i, top, left, th, tw in self.items:
            m = seen.setdefault(i, np.zeros(self.scenes[i].shape, bool))
            own = ~m[top : top + th, left : left + tw]
            m[top : top + th, left : left + tw] = True
            owned.append(own)
        return owned

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        i, top, left, th, tw = self.items[idx]
        sc = self.scenes[i]
        img = self.norm(sc.image[:, top : top + th, left : left + tw])
        lab = sc.labels[top : top + th, left : left + tw].copy()
        lab[~(sc.valid[top : top + th, left : left + tw] & self._owner[idx])] = np.nan
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img, np.float32)),
            "label": torch.from_numpy(lab[None].astype(np.float32)),
        }
