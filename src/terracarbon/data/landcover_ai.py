"""LandCover.ai (v1) reader, official tiling and look-alike writer.

The LandCover.ai v1 release (Boguszewski et al., 2021, arXiv:2005.02264) is laid out as::

    root/
      images/<stem>.tif     41 RGB orthophotos, uint8, EPSG:2180 (33 at 25 cm, 8 at 50 cm)
      masks/<stem>.tif      single-band uint8 masks, same grid (0 background, 1 building,
                            2 woodland, 3 water, 4 road)
      split.py              the official tiler (OpenCV)
      train.txt val.txt test.txt   lists of tile stems, one per line (e.g. ``M-33-20-D-c-4-2_0``)
      output/               written by split.py: ``<stem>_<k>.jpg`` (RGB tile) and
                            ``<stem>_<k>_m.png`` (mask tile) of 512 x 512 pixels

``split.py`` walks every image (sorted by path) in row-major order with a step of 512 px;
``k`` counts *every* grid position, but only full 512 x 512 tiles are written, so
partial tiles on the right and bottom edges are dropped and leave gaps in the numbering.
Tiles are written with OpenCV defaults (JPEG quality 95, 4:2:0 chroma subsampling; the
mask is read as a 3-channel image, so ``_m.png`` holds three equal channels).
:func:`split_orthophotos` reproduces that exactly (with Pillow's libjpeg encoder).

Public API: :class:`LandCoverAIDataset` (the official tiles of one split),
:class:`LandCoverAIOrthophotos` (the raw orthophotos, window reads), :func:`split_orthophotos`,
:func:`official_tile_grid`, :func:`write_orthophoto`, :func:`write_mask`,
:func:`write_split_lists` and :func:`write_lookalike_release` (small look-alike files for tests).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import InputError

__all__ = [
    "CLASS_NAMES",
    "COLORMAP",
    "CRS",
    "NUM_CLASSES",
    "SPLITS",
    "TILE_SIZE",
    "WOODLAND",
    "LandCoverAIDataset",
    "LandCoverAIOrthophotos",
    "Orthophoto",
    "TileSpec",
    "official_tile_grid",
    "read_mask_tile",
    "read_image_tile",
    "split_orthophotos",
    "write_lookalike_release",
    "write_mask",
    "write_orthophoto",
    "write_split_lists",
]

#: Class names by mask value (LandCover.ai v1).
CLASS_NAMES: tuple[str, ...] = ("background", "building", "woodland", "water", "road")
NUM_CLASSES = len(CLASS_NAMES)
BACKGROUND, BUILDING, WOODLAND, WATER, ROAD = range(NUM_CLASSES)
#: Colour table (RGBA) used for maps (torchgeo's LandCover.ai colours; background opaque).
COLORMAP: dict[int, tuple[int, int, int, int]] = {
    0: (230, 230, 200, 255),
    1: (97, 74, 74, 255),
    2: (38, 115, 0, 255),
    3: (0, 197, 255, 255),
    4: (207, 207, 207, 255),
}
CRS = "EPSG:2180"
TILE_SIZE = 512
SPLITS = ("train", "val", "test")
JPEG_QUALITY = 95  # OpenCV's cv2.imwrite default


# --------------------------------------------------------------------------------------
# official tiling
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TileSpec:
    """One tile of the official grid: ``k`` is the tile number in the file name."""

    k: int
    row: int  # top pixel row in the orthophoto
    col: int  # left pixel column
    size: int

    def stem(self, image_stem: str) -> str:
        """Tile stem as used in ``output/`` and the split lists."""
        return f"{image_stem}_{self.k}"


def official_tile_grid(height: int, width: int, target_size: int = TILE_SIZE) -> list[TileSpec]:
    """Tiles that ``split.py`` writes for an image of ``height`` x ``width`` pixels.

    Positions are visited row by row (``y`` outer, ``x`` inner) with step ``target_size``;
    ``k`` is incremented at every position, but only full tiles are kept.
    """
    if target_size <= 0:
        raise ValueError("target_size must be positive")
    tiles = []
    k = 0
    for y in range(0, height, target_size):
        for x in range(0, width, target_size):
            if y + target_size <= height and x + target_size <= width:
                tiles.append(TileSpec(k=k, row=y, col=x, size=target_size))
            k += 1
    return tiles


def _encode_jpeg(rgb_hwc: np.ndarray, path: Path, quality: int = JPEG_QUALITY) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(rgb_hwc), mode="RGB").save(
        path, format="JPEG", quality=quality, subsampling="4:2:0"
    )


def _encode_mask_png(mask_hw: np.ndarray, path: Path) -> None:
    from PIL import Image

    rgb = np.repeat(np.ascontiguousarray(mask_hw, dtype=np.uint8)[:, :, None], 3, axis=2)
    Image.fromarray(rgb, mode="RGB").save(path, format="PNG")


def _image_paths(root: Path) -> tuple[list[Path], list[Path]]:
    images = sorted(glob.glob(os.path.join(root, "images", "*.tif")))
    masks = sorted(glob.glob(os.path.join(root, "masks", "*.tif")))
    return [Path(p) for p in images], [Path(p) for p in masks]


def split_orthophotos(
    root: str | os.PathLike,
    *,
    target_size: int = TILE_SIZE,
    output_dir: str | os.PathLike | None = None,
    jpeg_quality: int = JPEG_QUALITY,
    progress: bool = False,
) -> list[str]:
    """Cut ``root/images/*.tif`` and ``root/masks/*.tif`` into tiles like the official split.py.

    Writes ``<stem>_<k>.jpg`` and ``<stem>_<k>_m.png`` into ``output_dir`` (default
    ``root/output``) and returns the tile stems in the order they were written.
    Images are read window by window (one row of tiles at a time).
    """
    root = Path(root)
    out = Path(output_dir) if output_dir is not None else root / "output"
    images, masks = _image_paths(root)
    if not images:
        raise InputError(root / "images", "no *.tif orthophotos found")
    if [p.stem for p in images] != [p.stem for p in masks]:
        raise InputError(
            root,
            f"images/ and masks/ do not hold the same file names ({len(images)} images, {len(masks)} masks)",
        )
    out.mkdir(parents=True, exist_ok=True)
    stems: list[str] = []
    bar = None
    if progress:
        from terracarbon.utils import progress as make_progress

        bar = make_progress()
        bar.start()
        task = bar.add_task("LandCover.ai tiling", total=len(images))
    try:
        for img_path, mask_path in zip(images, masks, strict=True):
            photo = Orthophoto(img_path, mask_path)
            h, w = photo.shape
            grid = official_tile_grid(h, w, target_size)
            rows: dict[int, list[TileSpec]] = {}
            for t in grid:
                rows.setdefault(t.row, []).append(t)
            for row, tiles in rows.items():
                img_strip = photo.read_image(window=(row, 0, target_size, w))  # 3xHxW
                mask_strip = photo.read_mask(window=(row, 0, target_size, w))
                for t in tiles:
                    img_tile = img_strip[:, :, t.col : t.col + target_size].transpose(1, 2, 0)
                    mask_tile = mask_strip[:, t.col : t.col + target_size]
                    stem = t.stem(img_path.stem)
                    _encode_jpeg(img_tile, out / f"{stem}.jpg", jpeg_quality)
                    _encode_mask_png(mask_tile, out / f"{stem}_m.png")
                    stems.append(stem)
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return stems


def write_split_lists(
    root: str | os.PathLike,
    stems: Sequence[str],
    *,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    by_image: bool = False,
) -> dict[str, list[str]]:
    """Write ``train.txt``, ``val.txt`` and ``test.txt`` (one tile stem per line).

    The official lists were drawn at random over tiles (about 70/15/15); ``by_image=True``
    keeps all tiles of one orthophoto in the same split instead (spatially independent).
    """
    from terracarbon.utils import atomic_write_text

    root = Path(root)
    rng = np.random.default_rng(seed)
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError("fractions must sum to 1")
    units: list[list[str]]
    if by_image:
        groups: dict[str, list[str]] = {}
        for s in stems:
            groups.setdefault(s.rsplit("_", 1)[0], []).append(s)
        units = list(groups.values())
    else:
        units = [[s] for s in stems]
    order = rng.permutation(len(units))
    n = len(units)
    n_train = int(round(fractions[0] * n))
    n_val = int(round(fractions[1] * n))
    if n >= 3:
        n_train = min(max(n_train, 1), n - 2)
        n_val = min(max(n_val, 1), n - n_train - 1)
    parts = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }
    lists: dict[str, list[str]] = {}
    for split, idx in parts.items():
        names = [s for i in sorted(idx) for s in units[i]]
        lists[split] = names
        atomic_write_text(root / f"{split}.txt", "".join(f"{s}\n" for s in names))
    return lists


# --------------------------------------------------------------------------------------
# raw orthophotos
# --------------------------------------------------------------------------------------
def write_orthophoto(
    path: str | os.PathLike,
    rgb: np.ndarray,
    *,
    resolution: float = 0.25,
    origin: tuple[float, float] = (500_000.0, 300_000.0),
    crs: str = CRS,
) -> Path:
    """Write a 3 x H x W uint8 RGB orthophoto GeoTIFF (EPSG:2180, ``resolution`` m pixels)."""
    import rasterio
    from rasterio.transform import from_origin

    from terracarbon.utils import atomic_path

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.dtype != np.uint8:
        raise ValueError("rgb must be a uint8 array of shape 3 x H x W")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="GTiff",
        width=rgb.shape[2],
        height=rgb.shape[1],
        count=3,
        dtype="uint8",
        crs=crs,
        transform=from_origin(origin[0], origin[1], resolution, resolution),
        photometric="RGB",
        compress="deflate",
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(rgb)
    return path


def write_mask(
    path: str | os.PathLike,
    mask: np.ndarray,
    *,
    resolution: float = 0.25,
    origin: tuple[float, float] = (500_000.0, 300_000.0),
    crs: str = CRS,
) -> Path:
    """Write an H x W uint8 class mask GeoTIFF on the same grid as :func:`write_orthophoto`."""
    import rasterio
    from rasterio.transform import from_origin

    from terracarbon.utils import atomic_path

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError("mask must be H x W")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(
        driver="GTiff",
        width=mask.shape[1],
        height=mask.shape[0],
        count=1,
        dtype="uint8",
        crs=crs,
        transform=from_origin(origin[0], origin[1], resolution, resolution),
        compress="deflate",
        tiled=True,
        blockxsize=256,
        blockysize=256,
    )
    with atomic_path(path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(mask.astype(np.uint8), 1)
    return path


def _open(path: Path, expected_bands: int):
    from terracarbon.raster.io import open_raster

    return open_raster(path, expected_bands=expected_bands)


class Orthophoto:
    """One raw orthophoto and its mask (``images/<stem>.tif``, ``masks/<stem>.tif``)."""

    def __init__(self, image_path: str | os.PathLike, mask_path: str | os.PathLike | None = None):
        self.image_path = Path(image_path)
        self.mask_path = Path(mask_path) if mask_path is not None else None
        with _open(self.image_path, 3) as ds:
            self.shape: tuple[int, int] = (ds.height, ds.width)
            self.crs = ds.crs
            self.transform = ds.transform
            self.resolution: float = float(abs(ds.transform.a))
        if self.mask_path is not None:
            with _open(self.mask_path, 1) as ds:
                if (ds.height, ds.width) != self.shape:
                    raise InputError(
                        self.mask_path,
                        f"mask is {ds.height}x{ds.width} but image "
                        f"{self.image_path.name} is {self.shape[0]}x{self.shape[1]}",
                    )

    @property
    def stem(self) -> str:
        return self.image_path.stem

    @staticmethod
    def _window(window):
        from rasterio.windows import Window

        if window is None:
            return None
        row, col, h, w = window
        return Window(col, row, w, h)

    def read_image(self, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """RGB uint8 array 3 x h x w; ``window`` = (row, col, height, width) in pixels."""
        with _open(self.image_path, 3) as ds:
            try:
                return ds.read(window=self._window(window))
            except Exception as exc:
                raise InputError(self.image_path, f"cannot read pixels ({exc})") from exc

    def read_mask(self, window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Class mask uint8 array h x w; ``window`` = (row, col, height, width) in pixels."""
        if self.mask_path is None:
            raise InputError(self.image_path, "no mask for this orthophoto")
        with _open(self.mask_path, 1) as ds:
            try:
                return ds.read(1, window=self._window(window))
            except Exception as exc:
                raise InputError(self.mask_path, f"cannot read pixels ({exc})") from exc


class LandCoverAIOrthophotos:
    """The raw orthophotos of a LandCover.ai root (``images/*.tif`` with ``masks/*.tif``).

    Indexable: ``photos[i]`` is an :class:`Orthophoto`; ``photos.by_stem(stem)`` too.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        images, masks = _image_paths(self.root)
        if not images:
            raise InputError(self.root / "images", "no *.tif orthophotos found")
        mask_by_stem = {p.stem: p for p in masks}
        missing = [p.name for p in images if p.stem not in mask_by_stem]
        if missing:
            raise InputError(self.root / "masks", f"no mask for {', '.join(missing[:5])}")
        self.photos = [Orthophoto(p, mask_by_stem[p.stem]) for p in images]

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, i: int) -> Orthophoto:
        return self.photos[i]

    def __iter__(self):
        return iter(self.photos)

    def by_stem(self, stem: str) -> Orthophoto:
        for p in self.photos:
            if p.stem == stem:
                return p
        raise KeyError(stem)


# --------------------------------------------------------------------------------------
# official tiles
# --------------------------------------------------------------------------------------
def read_image_tile(path: str | os.PathLike) -> np.ndarray:
    """Read a ``<stem>_<k>.jpg`` tile as uint8 3 x H x W RGB."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"))
    except FileNotFoundError as exc:
        raise InputError(path, "tile not found") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(path, f"unreadable image tile ({exc})") from exc
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def read_mask_tile(path: str | os.PathLike) -> np.ndarray:
    """Read a ``<stem>_<k>_m.png`` tile as uint8 H x W class ids (first channel)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except FileNotFoundError as exc:
        raise InputError(path, "mask tile not found") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(path, f"unreadable mask tile ({exc})") from exc
    if arr.ndim == 3:
        arr = arr[:, :, 0]
    if arr.size and int(arr.max()) >= NUM_CLASSES:
        raise InputError(
            path, f"mask value {int(arr.max())} outside 0..{NUM_CLASSES - 1} ({', '.join(CLASS_NAMES)})"
        )
    return np.ascontiguousarray(arr, dtype=np.uint8)


class LandCoverAIDataset:
    """The official LandCover.ai tiles of one split (a torch ``Dataset``).

    ``root`` holds ``train.txt``/``val.txt``/``test.txt`` and ``output/``. Each item is a
    dict ``{"image": float32 tensor 3 x H x W (0-255), "mask": int64 tensor H x W, "id": str}``,
    passed through ``transforms`` if given. ``ids`` is the list of tile stems.
    """

    classes = CLASS_NAMES
    colormap = COLORMAP

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        cache: bool = False,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        list_path = self.root / f"{split}.txt"
        if not list_path.exists():
            raise InputError(
                list_path,
                "split list not found (expected the LandCover.ai release layout: "
                "train.txt, val.txt, test.txt and output/)",
            )
        self.ids = [ln.strip() for ln in list_path.read_text().splitlines() if ln.strip()]
        out = self.root / "output"
        if not out.is_dir():
            raise InputError(out, "tile folder not found (run split_orthophotos first)")
        missing = [i for i in self.ids[:1000] if not (out / f"{i}.jpg").exists()]
        if missing:
            raise InputError(
                out, f"{len(missing)} tile(s) listed in {list_path.name} missing, e.g. {missing[0]}.jpg"
            )
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        return self.root / "output" / f"{self.ids[i]}.jpg"

    def mask_path(self, i: int) -> Path:
        return self.root / "output" / f"{self.ids[i]}_m.png"

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 image (3 x H x W) and mask (H x W) of tile ``i``."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        img, mask = read_image_tile(self.image_path(i)), read_mask_tile(self.mask_path(i))
        if img.shape[1:] != mask.shape:
            raise InputError(self.mask_path(i), f"mask shape {mask.shape} != image {img.shape[1:]}")
        if self._cache is not None:
            self._cache[i] = (img, mask)
        return img, mask

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        img, mask = self.load(i)
        sample = {
            "image": torch.from_numpy(img.astype(np.float32)),
            "mask": torch.from_numpy(mask.astype(np.int64)),
            "id": self.ids[i],
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def class_pixel_counts(self, progress: bool = False) -> np.ndarray:
        """Pixels per class over the split (reads every mask tile; only the masks unless tiles are cached)."""
        from terracarbon.utils import progress as make_progress

        counts = np.zeros(NUM_CLASSES, dtype=np.int64)
        with make_progress(transient=True, disable=not progress) as bar:
            task = bar.add_task(f"class frequencies ({self.split})", total=len(self))
            for i in range(len(self)):
                mask = self.load(i)[1] if self._cache is not None else read_mask_tile(self.mask_path(i))
                counts += np.bincount(mask.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
                bar.advance(task)
        return counts

    def band_stats(self, max_tiles: int = 200) -> tuple[list[float], list[float]]:
        """Per-band mean and std (0-255 scale) over up to ``max_tiles`` evenly spaced tiles."""
        idx = np.linspace(0, len(self) - 1, min(max_tiles, len(self))).astype(int)
        s = np.zeros(3)
        s2 = np.zeros(3)
        n = 0
        for i in np.unique(idx):
            img = self.load(int(i))[0].reshape(3, -1).astype(np.float64)
            s += img.sum(1)
            s2 += (img**2).sum(1)
            n += img.shape[1]
        mean = s / n
        std = np.sqrt(np.maximum(s2 / n - mean**2, 1e-12))
        return mean.tolist(), std.tolist()


# --------------------------------------------------------------------------------------
# look-alike release for tests
# --------------------------------------------------------------------------------------
def write_lookalike_release(
    root: str | os.PathLike,
    *,
    shapes: Iterable[tuple[int, int]] = ((1100, 1300), (700, 600)),
    resolutions: Iterable[float] | None = None,
    target_size: int = TILE_SIZE,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    by_image: bool = False,
    scene_fn: Callable[[int, int, int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> Path:
    """Write a small dataset in the LandCover.ai v1 release layout under ``root``.

    One orthophoto per entry of ``shapes`` (H, W) named like the real sheets
    (``M-33-20-D-c-4-2``...), at 25 cm (and 50 cm for every other one unless
    ``resolutions`` is given), EPSG:2180; masks; then the official tiling
    (:func:`split_orthophotos` with ``target_size``) and the split lists.
    ``scene_fn(height, width, seed) -> (rgb 3xHxW uint8, mask HxW uint8)`` makes the
    content (default: :func:`terracarbon.data.synthetic.landcover.render_scene`).
    """
    if scene_fn is None:
        from terracarbon.data.synthetic.landcover import render_scene as scene_fn
    root = Path(root)
    shapes = list(shapes)
    res = (
        list(resolutions)
        if resolutions is not None
        else [0.25 if i % 4 != 3 else 0.5 for i in range(len(shapes))]
    )
    sheets = ["M-33-20-D-c-4-2", "M-33-32-B-b-4-4", "M-33-48-A-c-4-4", "M-34-32-B-a-4-3",
              "M-34-51-C-b-2-1", "M-34-56-A-b-1-4", "M-34-65-D-a-4-4", "N-33-104-A-c-1-1",
              "N-33-119-C-c-3-3", "N-33-130-A-d-3-3", "N-34-106-A-b-3-4", "N-34-140-A-b-4-2"]  # fmt: skip
    for i, ((h, w), r) in enumerate(zip(shapes, res, strict=True)):
        stem = sheets[i % len(sheets)] + ("" if i < len(sheets) else f"-{i // len(sheets)}")
        rgb, mask = scene_fn(h, w, seed * 1000 + i)
        origin = (450_000.0 + 3000.0 * i, 350_000.0 + 2000.0 * i)
        write_orthophoto(root / "images" / f"{stem}.tif", rgb, resolution=r, origin=origin)
        write_mask(root / "masks" / f"{stem}.tif", mask, resolution=r, origin=origin)
    stems = split_orthophotos(root, target_size=target_size)
    write_split_lists(root, stems, fractions=fractions, seed=seed, by_image=by_image)
    return root
