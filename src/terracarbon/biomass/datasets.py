"""Patch datasets over scene stacks with sparse biomass labels.

A *scene* is a co-registered pair of GeoTIFFs: a multi-band predictor ``stack`` (e.g. the 12-band synthetic stack of
:mod:`terracarbon.data.synthetic.scenes`: Sentinel-2, PALSAR, canopy height, DEM, land cover) and a one-band ``labels`` raster
holding GEDI-like AGB labels in Mg/ha, NaN (or nodata) where there is no footprint. Scenes are given as
:class:`terracarbon.data.synthetic.scenes.Scene` objects, as scene folders (``stack.tif`` + ``labels.tif``), or as
``(stack_path, labels_path)`` pairs.

Two ways to hold a scene, both accepted by the datasets below:

* :func:`open_scene` → :class:`SceneSource` (what :func:`~terracarbon.biomass.train.train_biomass` uses): nothing but
  the labelled pixels' coordinates and values stays in memory; every crop is a rasterio windowed read of the stack and
  labels, with one pair of open handles per process (the main process or each DataLoader worker), so memory stays
  bounded however many (stack, labels) pairs, e.g. full 10,980² Sentinel-2 tiles, a region has.
* :func:`load_scene` → :class:`SceneArrays`: the whole scene in memory (a 2,000² 12-band stack is ~190 MB), for
  small scenes and pixel-level tools (random-forest baseline).

Pixels where any stack band is NaN or the stack's nodata value are invalid: their inputs are zeroed and their labels
set to NaN, so they never count in the loss. Patches are cut on the fly:

* :class:`RandomPatchDataset` draws random crops for training; with probability ``label_bias`` the crop is
  placed around a randomly chosen labelled pixel (so sparse labels are seen often), otherwise anywhere. Random
  flips / 90° rotations augment.
* :class:`GridPatchDataset` cuts a region into a regular grid of non-overlapping tiles for validation.

Regions are row ranges given as fractions of the scene height, e.g. ``(0.0, 0.8)`` to train on the top 80 %
and ``(0.8, 1.0)`` to validate on the rest (a spatially held-out region).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from terracarbon.errors import InputError

__all__ = [
    "SceneArrays",
    "SceneSource",
    "resolve_scene",
    "load_scene",
    "open_scene",
    "subsample_footprints",
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

    def label_values(self, region: tuple[float, float] | None = None) -> np.ndarray:
        """Label values (Mg/ha) of the labelled valid pixels inside ``region``."""
        return self.labels[self.labelled_pixels(region)]

    def read(self, top: int, left: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(image C×h×w, labels h×w, valid h×w)`` of a window (invalid inputs are already zero)."""
        return (
            self.image[:, top : top + h, left : left + w],
            self.labels[top : top + h, left : left + w],
            self.valid[top : top + h, left : left + w],
        )

    def has_label(self, top: int, left: int, h: int, w: int) -> bool:
        """Whether the window holds any label."""
        return bool(np.isfinite(self.labels[top : top + h, left : left + w]).any())


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
        with open_raster(labels_path) as ds:
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


class SceneSource:
    """One (stack, labels) pair on disk, read window by window (see :func:`open_scene`).

    Holds the grid, the band selection and the labelled *valid* pixels (``rr``, ``cc``, ``vals``: coordinates and
    Mg/ha values); everything else is read on demand with rasterio windowed reads. Open handles are per process:
    a DataLoader worker (forked or spawned) opens its own on first use, and pickling drops them.
    """

    def __init__(
        self,
        name: str,
        stack_path: Path,
        labels_path: Path,
        bands: list[str],
        band_index: list[int],
        shape: tuple[int, int],
        crs: Any,
        transform: Any,
        nodata: float | None,
        labels_nodata: float | None,
        rr: np.ndarray,
        cc: np.ndarray,
        vals: np.ndarray,
        units: str | None = None,
    ) -> None:
        self.name = name
        self.stack_path = Path(stack_path)
        self.labels_path = Path(labels_path)
        self.bands = list(bands)
        self.band_index = list(band_index)  # 1-based rasterio band indexes, in ``bands`` order
        self._shape = tuple(shape)
        self.crs = crs
        self.transform = transform
        self.nodata = nodata
        self.labels_nodata = labels_nodata
        self.rr = np.asarray(rr, np.int32)
        self.cc = np.asarray(cc, np.int32)
        self.vals = np.asarray(vals, np.float32)
        self.units = units
        self._handles: tuple[Any, Any] | None = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        return f"SceneSource({self.name!r}, {self._shape[0]}×{self._shape[1]} px, {len(self.vals)} labels)"

    @property
    def shape(self) -> tuple[int, int]:
        return self._shape  # type: ignore[return-value]

    def rows(self, region: tuple[float, float] | None) -> tuple[int, int]:
        """Row range ``[r0, r1)`` of a fractional region (whole scene when None)."""
        h = self._shape[0]
        if region is None:
            return 0, h
        r0, r1 = int(round(region[0] * h)), int(round(region[1] * h))
        return max(0, r0), min(h, r1)

    def _in(self, region: tuple[float, float] | None) -> np.ndarray:
        r0, r1 = self.rows(region)
        return (self.rr >= r0) & (self.rr < r1)

    def labelled_pixels(self, region: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of labelled valid pixels inside ``region``."""
        m = self._in(region)
        return self.rr[m].astype(np.int64), self.cc[m].astype(np.int64)

    def label_values(self, region: tuple[float, float] | None = None) -> np.ndarray:
        """Label values (Mg/ha) of the labelled valid pixels inside ``region``."""
        return self.vals[self._in(region)]

    def has_label(self, top: int, left: int, h: int, w: int) -> bool:
        """Whether the window holds any labelled valid pixel (from the kept coordinates, no read)."""
        return bool(
            ((self.rr >= top) & (self.rr < top + h) & (self.cc >= left) & (self.cc < left + w)).any()
        )

    def _open(self) -> tuple[Any, Any]:
        import rasterio

        pid = os.getpid()
        if self._handles is None or self._pid != pid:
            self._handles = (rasterio.open(self.stack_path), rasterio.open(self.labels_path))
            self._pid = pid
        return self._handles

    def close(self) -> None:
        """Close this process's handles (reopened on the next read)."""
        if self._handles is not None and self._pid == os.getpid():
            for ds in self._handles:
                ds.close()
        self._handles = None

    def __getstate__(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["_handles"] = None
        d["_pid"] = None
        return d

    def read_stack(self, top: int, left: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """``(image C×h×w float32 with invalid pixels zeroed, valid h×w)`` of a window."""
        from rasterio.windows import Window

        stack, _ = self._open()
        img = stack.read(self.band_index, window=Window(left, top, w, h), out_dtype="float32")
        valid = np.all(np.isfinite(img), axis=0)
        if self.nodata is not None and np.isfinite(self.nodata):
            valid &= np.all(img != np.float32(self.nodata), axis=0)
        return np.where(valid[None], img, np.float32(0.0)), valid

    def read(self, top: int, left: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(image C×h×w, labels h×w, valid h×w)`` of a window, read from disk."""
        from rasterio.windows import Window

        img, valid = self.read_stack(top, left, h, w)
        _, labels = self._open()
        lab = labels.read(1, window=Window(left, top, w, h), out_dtype="float32")
        if self.labels_nodata is not None and np.isfinite(self.labels_nodata):
            lab[lab == np.float32(self.labels_nodata)] = np.nan
        return img, lab, valid

    def windows(self, region: tuple[float, float] | None = None, size: int = 512):
        """``(top, left, h, w)`` of a regular grid of windows over ``region``."""
        r0, r1 = self.rows(region)
        for top in range(r0, r1, size):
            for left in range(0, self._shape[1], size):
                yield top, left, min(size, r1 - top), min(size, self._shape[1] - left)


def open_scene(
    scene: Any, bands: list[str] | None = None, need_labels: bool = True, window: int = 512
) -> SceneSource:
    """Open a scene for streaming: validate it and find its labelled pixels, one ``window``² block at a time.

    The labels raster (band 1, Mg/ha; NaN or its nodata = unlabelled; more bands such as ``AGBD_SE`` are ignored) is
    scanned block by block; only blocks holding labels read the stack, to drop labels on invalid stack pixels. Peak
    memory is one block of the stack, whatever the scene size. Same checks and errors as :func:`load_scene`.
    """
    from terracarbon.raster.io import band_names, open_raster

    stack_path, labels_path, name = resolve_scene(scene)
    with open_raster(stack_path) as ds:
        names = band_names(ds)
        crs, transform, shape, nodata = ds.crs, ds.transform, (ds.height, ds.width), ds.nodata
        units = ds.tags().get("TERRACARBON_UNITS")
    if bands is not None:
        missing = [b for b in bands if b not in names]
        if missing:
            raise InputError(stack_path, f"lacks band(s) {missing}; it has {names}")
        index = [names.index(b) + 1 for b in bands]
        names = list(bands)
    else:
        index = list(range(1, len(names) + 1))
    empty = np.zeros(0)
    src = SceneSource(
        name, stack_path, labels_path, names, index, shape, crs, transform, nodata, None, empty, empty, empty, units
    )
    if not labels_path.exists():
        if need_labels:
            raise InputError(labels_path, "label raster does not exist")
        return src
    with open_raster(labels_path) as ds:
        if (ds.height, ds.width) != shape:
            raise InputError(
                labels_path,
                f"is {ds.height}×{ds.width} pixels but the stack {stack_path.name} is {shape[0]}×{shape[1]}",
            )
        src.labels_nodata = ds.nodata
    rr, cc, vv = [], [], []
    try:
        from rasterio.windows import Window

        for top, left, h, w in src.windows(None, window):
            _, labels = src._open()
            lab = labels.read(1, window=Window(left, top, w, h), out_dtype="float32")
            if src.labels_nodata is not None and np.isfinite(src.labels_nodata):
                lab[lab == np.float32(src.labels_nodata)] = np.nan
            m = np.isfinite(lab)
            if not m.any():
                continue
            _, valid = src.read_stack(top, left, h, w)
            r, c = np.nonzero(m & valid)
            rr.append(r + top)
            cc.append(c + left)
            vv.append(lab[r, c])
    finally:
        src.close()
    if rr:
        src.rr, src.cc = np.concatenate(rr).astype(np.int32), np.concatenate(cc).astype(np.int32)
        src.vals = np.concatenate(vv).astype(np.float32)
        order = np.lexsort((src.cc, src.rr))  # raster order, as np.nonzero on the whole scene
        src.rr, src.cc, src.vals = src.rr[order], src.cc[order], src.vals[order]
    if need_labels and src.vals.size == 0:
        raise InputError(labels_path, "has no labelled pixels (all NaN / nodata, or only on stack nodata)")
    if src.vals.size and src.vals.min() < 0:
        raise InputError(labels_path, f"has negative AGB labels (min {src.vals.min():.1f} Mg/ha)")
    return src


def subsample_footprints(sc: SceneSource, fraction: float, rng: np.random.Generator) -> None:
    """Keep a random ``fraction`` of the label footprints (4-connected labelled blobs) of a source, in place.

    Components are found on the sparse labelled pixels (``scipy.sparse.csgraph``), numbered in raster order like
    ``scipy.ndimage.label``, so no full-size mask is built.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = sc.vals.size
    if n == 0:
        return
    w = sc.shape[1]
    key = sc.rr.astype(np.int64) * w + sc.cc
    order = np.argsort(key)
    skey = key[order]
    edges_a, edges_b = [], []
    for step, ok in ((1, sc.cc[order] < w - 1), (w, np.ones(n, bool))):
        pos = np.searchsorted(skey, skey + step)
        hit = ok & (pos < n)
        hit[hit] &= skey[pos[hit]] == skey[hit] + step
        edges_a.append(np.nonzero(hit)[0])
        edges_b.append(pos[hit])
    a, b = np.concatenate(edges_a), np.concatenate(edges_b)
    g = coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
    ncomp, comp_sorted = connected_components(g, directed=False)
    keep = rng.random(ncomp) < fraction
    if not keep.any():
        keep[int(rng.integers(ncomp))] = True
    kept = np.empty(n, bool)
    kept[order] = keep[comp_sorted]
    sc.rr, sc.cc, sc.vals = sc.rr[kept], sc.cc[kept], sc.vals[kept]


def band_stats(
    scenes: list[SceneArrays] | list[SceneSource],
    region: tuple[float, float] | None = None,
    *,
    max_windows: int = 256,
    window: int = 512,
    seed: int = 0,
) -> tuple[list[float], list[float]]:
    """Per-band mean and std over the valid pixels of ``scenes`` (within ``region``); std floored at 1e-6.

    In-memory scenes use every pixel. Streamed scenes (:class:`SceneSource`) are read window by window
    (``window``² px); a scene with more than ``max_windows`` windows in the region contributes a seeded random
    ``max_windows`` of them (64 M px at the defaults), so the cost stays bounded while scenes up to ~8,000² px
    are still counted exactly.
    """
    c = len(scenes[0].bands)
    s = np.zeros(c, np.float64)
    s2 = np.zeros(c, np.float64)
    n = 0
    rng = np.random.default_rng([seed, 17])
    for sc in scenes:
        if isinstance(sc, SceneSource):
            wins = list(sc.windows(region, window))
            if len(wins) > max_windows:
                wins = [wins[i] for i in np.sort(rng.choice(len(wins), max_windows, replace=False))]
            try:
                for top, left, h, w in wins:
                    img, valid = sc.read_stack(top, left, h, w)
                    v = img[:, valid].astype(np.float64)
                    s += v.sum(1)
                    s2 += (v**2).sum(1)
                    n += v.shape[1]
            finally:
                sc.close()
            continue
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
    scenes: list[SceneArrays] | list[SceneSource], region: tuple[float, float] | None = None
) -> tuple[float, float, int]:
    """Mean, std and count of labels in ``scenes`` (within ``region``)."""
    vals = np.concatenate([sc.label_values(region) for sc in scenes])
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
        scenes: list[SceneArrays] | list[SceneSource],
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
        img, lab, valid = sc.read(top, left, p, p)
        img = self.norm(img)
        lab = lab[None].copy()
        lab[~valid[None]] = np.nan
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

    Tile sides are multiples of ``multiple`` (what a U-Net needs); pixels covered by two tiles count once (the
    first tile in row-major order owns them: kept as per-tile row/column offsets, no scene-sized mask).
    Works on in-memory :class:`SceneArrays` and streamed :class:`SceneSource` alike.
    """

    def __init__(
        self,
        scenes: list[SceneArrays] | list[SceneSource],
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
        self.items: list[tuple[int, int, int, int, int]] = []  # scene, top, left, th, tw
        self._owner: list[tuple[int, int]] = []  # first owned row / column inside the tile
        for i, sc in enumerate(scenes):
            r0, r1 = sc.rows(region)
            h, w = r1 - r0, sc.shape[1]
            th, tw = min(tile, h - h % multiple), min(tile, w - w % multiple)
            if th <= 0 or tw <= 0:
                raise InputError(sc.stack_path, f"region of {h}×{w} px is smaller than {multiple} px")
            tops = sorted({min(t, h - th) for t in range(0, h, th)})
            lefts = sorted({min(t, w - tw) for t in range(0, w, tw)})
            for a, t in enumerate(tops):
                own_r = 0 if a == 0 else max(0, tops[a - 1] + th - t)
                for b, left in enumerate(lefts):
                    own_c = 0 if b == 0 else max(0, lefts[b - 1] + tw - left)
                    top = t + r0
                    if only_labelled and not sc.has_label(top, left, th, tw):
                        continue
                    self.items.append((i, top, left, th, tw))
                    self._owner.append((own_r, own_c))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, idx: int) -> dict[str, torch.Tensor]:
        i, top, left, th, tw = self.items[idx]
        sc = self.scenes[i]
        img, lab, valid = sc.read(top, left, th, tw)
        img = self.norm(img)
        lab = lab.copy()
        own_r, own_c = self._owner[idx]
        lab[~valid] = np.nan
        lab[:own_r] = np.nan
        lab[:, :own_c] = np.nan
        return {
            "image": torch.from_numpy(np.ascontiguousarray(img, np.float32)),
            "label": torch.from_numpy(lab[None].astype(np.float32)),
        }
