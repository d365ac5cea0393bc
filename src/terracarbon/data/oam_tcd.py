"""OAM-TCD (Restor / ETH Zürich) tree-crown dataset: reader, and a writer of small look-alike copies.

Real layout
-----------
OAM-TCD ("OAM-TCD: A globally diverse dataset of high-resolution tree cover maps", Veitch-Michaelis et al., 2024,
arXiv:2407.11743) holds 5,072 RGB GeoTIFF tiles of 2048 × 2048 px at 10 cm/px sampled from OpenAerialMap, with
human-labelled instance masks in two categories: ``tree`` (an individual crown) and ``canopy`` (a group of trees
whose crowns cannot be told apart). On the Hugging Face hub (``restor/tcd``, CC BY 4.0; ``restor/tcd-nc`` and
``restor/tcd-sa`` hold the NC / SA-licensed tiles) each row carries ``image_id``, ``oam_id``, ``image``,
``annotation`` (the rendered mask image), ``width``/``height``, ``crs``/``bounds`` (EPSG:3395 in the release),
``validation_fold`` (0–4 for training tiles: the biome-stratified cross-validation fold; the holdout test tiles are a
separate split), ``biome``/``biome_name``, ``lat``/``lon``, ``license`` and ``coco_annotations`` (a JSON list of
MS-COCO annotations). The project's converter ``tools/generate_dataset.py restor/tcd <out> --folds --tiffs`` turns
that into the MS-COCO folders this reader consumes::

    <root>/
      holdout/
        images/<oam_id>_<image_id>.tif   RGB GeoTIFF tiles (``.jpg`` without ``--tiffs``)
        masks/<oam_id>_<image_id>.png    the dataset's rendered annotation image (not needed: masks come from JSON)
        train.json                       all training tiles (validation_fold 0..4)
        test.json                        holdout test tiles
      kfold_0/ … kfold_4/
        images -> ../holdout/images      (symlinks)
        masks  -> ../holdout/masks
        train.json                       tiles with validation_fold != k
        val.json                         tiles with validation_fold == k

Each JSON is MS-COCO: ``images`` ``[{id, file_name, width, height, license}]``, ``annotations``
``[{id, image_id, category_id, segmentation, bbox (xywh), area, iscrowd}]`` and ``categories``
``[{"id": 2, "name": "tree"}, {"id": 1, "name": "canopy"}]``. ``segmentation`` is either a list of polygons (flat
``[x0, y0, x1, y1, …]`` in pixel-edge coordinates) or an RLE mask ``{"size": [h, w], "counts": …}`` (compressed string,
or uncompressed list), depending on the complexity of the outline.

Sources read to pin this down (via the project's search tool): the dataset card ``docs/dataset.md`` and the converter
``tools/generate_dataset.py`` (categories, folder and file names, fold logic) and ``tools/make_masks.py`` (polygon /
RLE decoding with pycocotools, ``tree`` = 1 / ``canopy`` = 2 in rendered masks) in github.com/Restor-Foundation/tcd;
the per-fold configs ``config/train_kfold{0..4}_{semantic,detectron}.yaml`` there; the Hugging Face dataset card and
viewer of ``restor/tcd`` (columns, 2048 × 2048 at 10 cm, EPSG:3395, ``validation_fold``).

What the reader gives
---------------------
``OAMTCDDataset(root, split, fold=None, mode="semantic")`` yields ``{"image": float32 3×H×W in 0–1, "mask": int64 H×W}``
with mask 1 where any ``tree`` *or* ``canopy`` annotation covers the pixel (tree cover, as in the paper's semantic
task) and 0 elsewhere. ``mode="instance"`` yields ``(image, target)`` in torchvision's detection convention with one
instance per ``tree`` annotation: ``boxes`` (float32 N×4, xyxy pixels, from the mask), ``labels`` (int64, all 1),
``masks`` (uint8 N×H×W), ``area``, ``iscrowd``, ``image_id``. ``fold=None`` reads ``holdout/<split>.json``
(``train``/``test``); ``fold=k`` reads ``kfold_k/<split>.json`` (``train``/``val``; ``test`` is accepted for ``val``, as
the paper's configs name it). A folder with ``<split>.json`` and ``images/`` directly inside is read as is.

:func:`write_oam_tcd` writes the same layout from in-memory samples (tests, synthetic data).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import ConfigError, InputError

CATEGORIES = [
    {"id": 2, "name": "tree", "supercategory": "root"},
    {"id": 1, "name": "canopy", "supercategory": "root"},
]
TREE_CATEGORY_ID = 2
CANOPY_CATEGORY_ID = 1
N_FOLDS = 5
SEMANTIC_CLASSES = ("no_tree", "tree")
#: band order of the OAM-TCD orthomosaics (8-bit RGB) and the class names / colours of a tree-cover map
RGB_BANDS = ["red", "green", "blue"]
TREE_CLASS_NAMES = list(SEMANTIC_CLASSES)
TREE_COLORMAP = {0: (0, 0, 0, 0), 1: (34, 139, 34, 255)}
MODES = ("semantic", "instance")
Window = tuple[int, int, int, int]  # (row, col, height, width) in pixels


# --------------------------------------------------------------------------------------------------------------------
# annotation decoding
# --------------------------------------------------------------------------------------------------------------------


def annotation_to_rle(segmentation: Any, height: int, width: int) -> dict:
    """A COCO ``segmentation`` (polygon list, uncompressed or compressed RLE) as one compressed RLE."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        polys = [list(map(float, p)) for p in segmentation if len(p) >= 6]
        if not polys:
            raise ValueError("polygon segmentation with fewer than 3 points")
        return mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size", [height, width])
        if list(size) != [height, width]:
            raise ValueError(f"RLE size {list(size)} differs from the image size {[height, width]}")
        if isinstance(segmentation["counts"], list):
            return mask_utils.frPyObjects(segmentation, height, width)
        counts = segmentation["counts"]
        return {"size": [height, width], "counts": counts.encode() if isinstance(counts, str) else counts}
    raise ValueError(f"unsupported segmentation of type {type(segmentation).__name__}")


def annotation_to_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO ``segmentation`` into a ``uint8`` H×W mask (1 inside)."""
    from pycocotools import mask as mask_utils

    return mask_utils.decode(annotation_to_rle(segmentation, height, width)).astype(np.uint8)


def mask_to_rle(mask: np.ndarray) -> dict:
    """Encode a binary H×W mask as a JSON-ready compressed COCO RLE (``counts`` as str)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def mask_to_box(mask: np.ndarray) -> list[float] | None:
    """xyxy box (pixel edges) of a binary mask, or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


# --------------------------------------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------------------------------------


def resolve_split(root: str | Path, split: str, fold: int | None) -> tuple[Path, Path]:
    """(annotation json, image folder) for a split of an OAM-TCD COCO export."""
    root = Path(root)
    if not root.exists():
        raise InputError(root, "OAM-TCD folder does not exist")
    if fold is None:
        names = [split]
        folders = [root / "holdout", root]
    else:
        if not 0 <= int(fold) < 100:
            raise ConfigError(f"fold must be a non-negative integer, not {fold!r}")
        names = ["val", "test"] if split in ("val", "test", "validation") else [split]
        folders = [root / f"kfold_{int(fold)}"]
        if not folders[0].exists():
            raise InputError(folders[0], f"fold folder missing (generate folds with --folds); root is {root}")
    for folder in folders:
        for name in names:
            ann = folder / f"{name}.json"
            if ann.exists():
                return ann, folder / "images"
    tried = ", ".join(str(f / f"{n}.json") for f in folders for n in names)
    raise InputError(root, f"no annotation file for split {split!r} (looked for {tried})")


def _read_coco(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except OSError as exc:
        raise InputError(path, f"cannot read annotation file ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise InputError(path, "not an MS-COCO annotation file (no 'images' list)")
    data.setdefault("annotations", [])
    data.setdefault("categories", CATEGORIES)
    return data


def read_image(path: str | Path, window: Window | None = None) -> tuple[np.ndarray, Any, Any]:
    """Read an RGB tile (GeoTIFF, or JPEG/PNG), or a ``(row, col, height, width)`` window of it.

    Returns ``(3×H×W array in the file's dtype, crs, transform)``.
    """
    import rasterio
    import rasterio.windows
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    path = Path(path)
    if not path.exists():
        raise InputError(path, "image file listed in the annotations does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                if src.count < 3:
                    raise InputError(path, f"expected an RGB image (3 bands), found {src.count} band(s)")
                if window is None:
                    return src.read([1, 2, 3]), src.crs, src.transform
                r0, c0, h, w = window
                win = rasterio.windows.Window(c0, r0, w, h)
                return src.read([1, 2, 3], window=win), src.crs, src.window_transform(win)
    except RasterioIOError as exc:
        raise InputError(path, f"unreadable image ({exc})") from exc


class OAMTCDDataset:
    """Tiles and annotations of an OAM-TCD MS-COCO export (see the module docstring for the layout).

    Args:
        root: the export folder (holding ``holdout/`` and ``kfold_*/``), or a single folder with ``<split>.json``.
        split: ``"train"``/``"test"`` (holdout) or ``"train"``/``"val"`` (with ``fold``).
        fold: cross-validation fold (0–4) or None for the holdout split.
        mode: ``"semantic"`` (binary tree-cover masks: tree and canopy are both tree cover) or ``"instance"``
            (torchvision detection targets for ``tree`` annotations).
        transforms: optional callable applied to each sample (dict for semantic, ``(image, target)`` for instance).
        image_ids: optional subset of COCO image ids.
        scale: factor applied to the pixel values (``1/255`` maps 8-bit RGB to 0–1).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        fold: int | None = None,
        mode: str = "semantic",
        transforms: Callable | None = None,
        image_ids: Iterable[int] | None = None,
        scale: float = 1.0 / 255.0,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, not {mode!r}")
        self.root = Path(root)
        self.split = split
        self.fold = fold
        self.mode = mode
        self.transforms = transforms
        self.scale = float(scale)
        self.annotation_file, self.image_dir = resolve_split(self.root, split, fold)
        data = _read_coco(self.annotation_file)
        self.categories = {int(c["id"]): str(c["name"]).lower() for c in data["categories"]}
        self.tree_ids = {cid for cid, name in self.categories.items() if name == "tree"}
        self.cover_ids = {cid for cid, name in self.categories.items() if name in ("tree", "canopy")}
        if not self.tree_ids:
            raise InputError(self.annotation_file, "no 'tree' category in 'categories'")
        images = data["images"]
        if image_ids is not None:
            keep = {int(i) for i in image_ids}
            images = [im for im in images if int(im["id"]) in keep]
        self.images: list[dict] = sorted(images, key=lambda im: int(im["id"]))
        self._anns: dict[int, list[dict]] = {int(im["id"]): [] for im in self.images}
        for ann in data["annotations"]:
            iid = int(ann.get("image_id", -1))
            if iid in self._anns:
                self._anns[iid].append(ann)

    # -- metadata ------------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_ids(self) -> list[int]:
        """COCO ids of the images, in dataset order."""
        return [int(im["id"]) for im in self.images]

    def image_path(self, index: int) -> Path:
        """Path of the image file of sample ``index``."""
        return self.image_dir / self.images[index]["file_name"]

    def annotations(self, index: int) -> list[dict]:
        """Raw COCO annotations of sample ``index``."""
        return list(self._anns[int(self.images[index]["id"])])

    def _decode(self, index: int, ann: dict) -> np.ndarray:
        im = self.images[index]
        try:
            return annotation_to_mask(ann["segmentation"], int(im["height"]), int(im["width"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputError(
                self.annotation_file,
                f"annotation {ann.get('id')} of image {im['id']}: bad segmentation ({exc})",
            ) from exc

    def semantic_mask(self, index: int, window: Window | None = None) -> np.ndarray:
        """uint8 tree-cover mask (1 under any ``tree`` or ``canopy`` annotation), of the tile or of ``window``.

        ``window`` is ``(row, col, height, width)`` in pixels.
        """
        r0, c0, h, w = self._window(index, window)
        mask = np.zeros((h, w), dtype=np.uint8)
        for ann in self.annotations(index):
            if int(ann.get("category_id", -1)) in self.cover_ids:
                mask |= self._decode(index, ann)[r0 : r0 + h, c0 : c0 + w]
        return mask

    def instance_target(self, index: int, window: Window | None = None, min_visible: float = 0.0) -> dict:
        """torchvision detection target (``boxes``, ``labels``, ``masks``, ``area``, ``iscrowd``, ``image_id``).

        With ``window`` (``(row, col, height, width)``) masks and boxes are cropped to it and crowns keeping less than
        ``min_visible`` of their pixels (or none) are dropped. Masks are cropped one by one, so memory stays at one
        full-tile mask plus the crops.
        """
        import torch

        r0, c0, h, w = self._window(index, window)
        masks, boxes = [], []
        for ann in self.annotations(index):
            if int(ann.get("category_id", -1)) not in self.tree_ids:
                continue
            full = self._decode(index, ann)
            m = full[r0 : r0 + h, c0 : c0 + w]
            vis = int(m.sum())
            if vis == 0 or vis < min_visible * int(full.sum()):
                continue
            masks.append(np.ascontiguousarray(m))
            boxes.append(mask_to_box(m))
        n = len(masks)
        mask_arr = np.stack(masks) if n else np.zeros((0, h, w), dtype=np.uint8)
        return {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(n, 4),
            "labels": torch.ones(n, dtype=torch.int64),
            "masks": torch.from_numpy(mask_arr),
            "area": torch.from_numpy(mask_arr.reshape(n, h * w).sum(1).astype(np.float32)),
            "iscrowd": torch.zeros(n, dtype=torch.int64),
            "image_id": int(self.images[index]["id"]),
        }

    def _window(self, index: int, window: Window | None) -> tuple[int, int, int, int]:
        im = self.images[index]
        th, tw = int(im["height"]), int(im["width"])
        if window is None:
            return 0, 0, th, tw
        r0, c0, h, w = (int(v) for v in window)
        if r0 < 0 or c0 < 0 or r0 + h > th or c0 + w > tw:
            raise ConfigError(f"window {window} lies outside the {tw}×{th} tile {im['file_name']}")
        return r0, c0, h, w

    def read_image(self, index: int, window: Window | None = None) -> np.ndarray:
        """The image of sample ``index`` (or its ``window``) as a float32 3×H×W array (times ``scale``)."""
        im = self.images[index]
        path = self.image_path(index)
        arr, _, _ = read_image(path, window=None if window is None else self._window(index, window))
        if window is None and arr.shape[1:] != (int(im["height"]), int(im["width"])):
            raise InputError(
                path,
                f"image is {arr.shape[2]}×{arr.shape[1]} px but {self.annotation_file.name} says "
                f"{im['width']}×{im['height']}",
            )
        return arr.astype(np.float32) * self.scale

    def __getitem__(self, index: int):
        import torch

        if index < 0:
            index += len(self)
        image = torch.from_numpy(self.read_image(index))
        if self.mode == "semantic":
            sample: Any = {
                "image": image,
                "mask": torch.from_numpy(self.semantic_mask(index).astype(np.int64)),
            }
        else:
            sample = (image, self.instance_target(index))
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def coco_ground_truth(self) -> dict:
        """The split's COCO dict restricted to ``tree`` annotations (for pycocotools evaluation)."""
        anns = []
        for i in range(len(self)):
            for ann in self.annotations(i):
                if int(ann.get("category_id", -1)) in self.tree_ids:
                    anns.append(ann)
        return {
            "images": self.images,
            "annotations": anns,
            "categories": [c for c in CATEGORIES if c["id"] == 2],
        }


def instance_collate(batch: Sequence) -> tuple[list, list]:
    """Collate ``(image, target)`` pairs into two lists (torchvision detection models take lists)."""
    images, targets = zip(*batch)
    return list(images), list(targets)


# --------------------------------------------------------------------------------------------------------------------
# writer of look-alike files
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class TileSample:
    """One tile for :func:`write_oam_tcd`.

    ``annotations``: dicts with ``category`` (``"tree"``/``"canopy"``) and ``segmentation`` — a COCO polygon list, a
    COCO RLE dict, or a binary H×W numpy mask (written as compressed RLE, as the real data does for complex outlines).
    ``validation_fold``: 0..4 for training tiles, -1 for holdout test tiles.
    """

    image: np.ndarray
    annotations: list[dict] = field(default_factory=list)
    image_id: int = 0
    oam_id: str = "synthetic"
    validation_fold: int = -1
    bounds: tuple[float, float, float, float] | None = None


def _coco_annotation(ann: dict, ann_id: int, image_id: int, h: int, w: int) -> dict:
    from pycocotools import mask as mask_utils

    seg = ann["segmentation"]
    if isinstance(seg, np.ndarray):
        seg = mask_to_rle(seg)
    rle = annotation_to_rle(seg, h, w)
    cat = {"tree": TREE_CATEGORY_ID, "canopy": CANOPY_CATEGORY_ID}[ann.get("category", "tree")]
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": cat,
        "segmentation": seg,
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0,
    }


def write_oam_tcd(
    root: str | Path,
    samples: Sequence[TileSample],
    *,
    n_folds: int = N_FOLDS,
    crs: str = "EPSG:3395",
    resolution: float = 0.1,
    license_name: str = "CC-BY 4.0",
) -> Path:
    """Write samples in the OAM-TCD MS-COCO layout (``holdout/`` + ``kfold_*/``, see the module docstring).

    Images are written as RGB GeoTIFFs at ``resolution`` m/px in ``crs`` (bounds from the sample or a made-up
    origin), masks as PNG class maps (0 background, 1 tree, 2 canopy, as ``tools/make_masks.py`` renders them). Fold
    files follow ``tools/generate_dataset.py``: ``kfold_k/train.json`` = training tiles with fold != k,
    ``kfold_k/val.json`` = fold == k; test tiles (fold < 0) go to ``holdout/test.json`` only.
    """
    import rasterio
    from PIL import Image
    from rasterio.transform import from_origin

    root = Path(root)
    hold = root / "holdout"
    (hold / "images").mkdir(parents=True, exist_ok=True)
    (hold / "masks").mkdir(parents=True, exist_ok=True)
    records: dict[int, dict] = {}
    anns_by_image: dict[int, list[dict]] = {}
    ann_id = 1
    for s in samples:
        img = np.asarray(s.image)
        if img.ndim != 3 or img.shape[0] != 3:
            raise ConfigError(f"sample {s.image_id}: image must be 3×H×W, got shape {img.shape}")
        _, h, w = img.shape
        name = f"{s.oam_id}_{s.image_id}"
        if s.bounds is not None:
            transform = rasterio.transform.from_bounds(*s.bounds, w, h)
        else:
            transform = from_origin(1_000_000.0 + 1000.0 * s.image_id, 6_000_000.0, resolution, resolution)
        with rasterio.open(
            hold / "images" / f"{name}.tif",
            "w",
            driver="GTiff",
            width=w,
            height=h,
            count=3,
            dtype=img.dtype,
            crs=crs,
            transform=transform,
            compress="deflate",
            photometric="RGB",
        ) as dst:
            dst.write(img)
        class_map = np.zeros((h, w), dtype=np.uint8)
        coco_anns = []
        for ann in s.annotations:
            ca = _coco_annotation(ann, ann_id, s.image_id, h, w)
            ann_id += 1
            coco_anns.append(ca)
            m = annotation_to_mask(ca["segmentation"], h, w).astype(bool)
            class_map[m] = 1 if ca["category_id"] == TREE_CATEGORY_ID else 2
        Image.fromarray(class_map).save(hold / "masks" / f"{name}.png")
        records[s.image_id] = {
            "file_name": f"{name}.tif",
            "width": w,
            "height": h,
            "id": int(s.image_id),
            "license": 1,
            "validation_fold": int(s.validation_fold),
        }
        anns_by_image[s.image_id] = coco_anns

    def dump(path: Path, ids: list[int]) -> None:
        coco = {
            "images": [records[i] for i in ids],
            "annotations": [a for i in ids for a in anns_by_image[i]],
            "licenses": [{"id": 1, "name": license_name}],
            "categories": CATEGORIES,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(coco, indent=1), encoding="utf-8")

    train_ids = [s.image_id for s in samples if s.validation_fold >= 0]
    test_ids = [s.image_id for s in samples if s.validation_fold < 0]
    dump(hold / "train.json", train_ids)
    dump(hold / "test.json", test_ids)
    folds = {s.image_id: s.validation_fold for s in samples}
    for k in range(n_folds):
        fk = root / f"kfold_{k}"
        fk.mkdir(parents=True, exist_ok=True)
        dump(fk / "train.json", [i for i in train_ids if folds[i] != k])
        dump(fk / "val.json", [i for i in train_ids if folds[i] == k])
        for sub in ("images", "masks"):
            link = fk / sub
            if link.exists() or link.is_symlink():
                continue
            try:
                os.symlink(Path("..") / "holdout" / sub, link, target_is_directory=True)
            except OSError:  # pragma: no cover - filesystems without symlinks
                shutil.copytree(hold / sub, link)
    return root


def assign_folds(n: int, n_folds: int = N_FOLDS, test_fraction: float = 0.2, seed: int = 0) -> list[int]:
    """Fold ids for ``n`` tiles: ``-1`` (holdout test) for about ``test_fraction`` of them, 0..n_folds-1 round robin."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_test = int(round(n * test_fraction))
    folds = [0] * n
    for rank, i in enumerate(order):
        folds[i] = -1 if rank < n_test else (rank - n_test) % n_folds
    return folds
