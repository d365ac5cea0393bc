"""Synthetic 10 cm RGB orthomosaics with known tree crowns (tests, demos, the experiments under ``experiments/trees``).

Crowns are irregular ellipses (a few low-frequency radial harmonics) with radial shading, per-tree colour and
texture, cast shadows on a textured soil background; ``canopy`` groups are unions of touching crowns, as OAM-TCD
labels closed canopy. Every crown's outline is a COCO polygon and its mask is *that polygon rasterised by
pycocotools* (the reader's decoder), so the image, the masks and the annotation files agree pixel for pixel.

* :func:`render_tile` -> image + annotations in pixel coordinates.
* :func:`make_orthomosaic` -> a georeferenced GeoTIFF + crowns GeoDataFrame (ground truth for tiled prediction).
* :func:`make_synthetic_tcd` -> a look-alike OAM-TCD export (:func:`terracarbon.data.oam_tcd.write_oam_tcd`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.data.oam_tcd import TileSample, annotation_to_mask, assign_folds, write_oam_tcd


@dataclass
class Crown:
    """One synthetic crown: polygon vertices in pixel-edge coordinates (x, y), category, centre and radii."""

    polygon: np.ndarray  # K×2 (x, y)
    category: str = "tree"
    center: tuple[float, float] = (0.0, 0.0)
    radii: tuple[float, float] = (1.0, 1.0)
    parts: list[np.ndarray] = field(default_factory=list)  # canopy groups: polygons of the member crowns

    def coco_polygon(self) -> list[list[float]]:
        """COCO polygon segmentation (one flat list)."""
        return [[round(float(v), 2) for v in self.polygon.reshape(-1)]]


def _crown_polygon(rng: np.random.Generator, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    theta = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    r = 1.0 + 0.10 * np.sin(3 * theta + p1) + 0.05 * np.sin(5 * theta + p2)
    rot = rng.uniform(0, np.pi)
    x = a * r * np.cos(theta)
    y = b * r * np.sin(theta)
    xr = cx + x * np.cos(rot) - y * np.sin(rot)
    yr = cy + x * np.sin(rot) + y * np.cos(rot)
    return np.stack([xr, yr], axis=1)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.normal(0.0, 1.0, (gh, gw))
    ys = np.arange(h) / cell
    xs = np.arange(w) / cell
    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    fy = (ys - y0)[:, None]
    fx = (xs - x0)[None, :]
    g00 = grid[y0][:, x0]
    g01 = grid[y0][:, x0 + 1]
    g10 = grid[y0 + 1][:, x0]
    g11 = grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy


def place_crowns(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    n_trees: int,
    n_groups: int = 0,
    radius: tuple[float, float] = (6.0, 14.0),
    gap: float = 3.0,
    margin: float = 0.0,
    max_tries: int = 4000,
) -> list[Crown]:
    """Non-overlapping crowns (trees, and canopy groups of 3–5 touching crowns) inside a ``height``×``width`` image.

    ``margin`` keeps crowns that far (px) from the image edge (0 lets them be cut by it, as on real tiles).
    """
    placed: list[tuple[float, float, float]] = []  # (cx, cy, bounding radius) of everything placed
    crowns: list[Crown] = []

    def free(cx: float, cy: float, rr: float) -> bool:
        return all((cx - x) ** 2 + (cy - y) ** 2 > (rr + r + gap) ** 2 for x, y, r in placed)

    tries = 0
    for _ in range(n_groups):
        while tries < max_tries:
            tries += 1
            rr = 3.2 * radius[1]
            cx = rng.uniform(margin + rr * 0.6, width - margin - rr * 0.6)
            cy = rng.uniform(margin + rr * 0.6, height - margin - rr * 0.6)
            if not free(cx, cy, rr):
                continue
            parts = []
            for _k in range(int(rng.integers(3, 6))):
                a = rng.uniform(*radius)
                ang = rng.uniform(0, 2 * np.pi)
                d = rng.uniform(0, 1.6 * radius[1])
                parts.append(_crown_polygon(rng, cx + d * np.cos(ang), cy + d * np.sin(ang), a, a * 0.9))
            from shapely.geometry import Polygon
            from shapely.ops import unary_union

            union = unary_union([Polygon(p).buffer(0.8) for p in parts])
            if union.geom_type != "Polygon":
                union = max(union.geoms, key=lambda g: g.area)
            crowns.append(
                Crown(np.asarray(union.exterior.coords)[:-1], "canopy", (cx, cy), (rr, rr), parts=parts)
            )
            placed.append((cx, cy, rr))
            break
    for _ in range(n_trees):
        while tries < max_tries:
            tries += 1
            a = rng.uniform(*radius)
            b = a * rng.uniform(0.8, 1.0)
            rr = a * 1.16
            cx = rng.uniform(margin + rr, width - margin - rr) if margin else rng.uniform(0, width)
            cy = rng.uniform(margin + rr, height - margin - rr) if margin else rng.uniform(0, height)
            if not free(cx, cy, rr):
                continue
            crowns.append(Crown(_crown_polygon(rng, cx, cy, a, b), "tree", (cx, cy), (a, b)))
            placed.append((cx, cy, rr))
            break
    return crowns


def _clip_polygon(poly: np.ndarray, height: int, width: int) -> np.ndarray | None:
    from shapely.geometry import Polygon, box

    g = Polygon(poly).intersection(box(0, 0, width, height))
    if g.is_empty or g.area < 4:
        return None
    if g.geom_type != "Polygon":
        g = max(g.geoms, key=lambda x: x.area)
    return np.asarray(g.exterior.coords)[:-1]


def render_tile(
    height: int,
    width: int,
    *,
    n_trees: int = 8,
    n_groups: int = 0,
    radius: tuple[float, float] = (6.0, 14.0),
    seed: int = 0,
    margin: float = 0.0,
    crowns: list[Crown] | None = None,
) -> tuple[np.ndarray, list[Crown], list[np.ndarray]]:
    """Render one RGB tile.

    Returns ``(image uint8 3×H×W, crowns (clipped to the tile), masks)`` where ``masks[i]`` is the pycocotools
    rasterisation of ``crowns[i].coco_polygon()``.
    """
    rng = np.random.default_rng(seed)
    if crowns is None:
        crowns = place_crowns(
            rng, height, width, n_trees=n_trees, n_groups=n_groups, radius=radius, margin=margin
        )
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5

    # soil / dry grass background with low-frequency variation and pixel noise
    base = np.array(rng.uniform([150, 125, 90], [185, 155, 115]), dtype=np.float32)
    low = _smooth_noise(rng, height, width, cell=24)
    img = base[:, None, None] + 14.0 * low[None] + rng.normal(0, 6, (3, height, width))
    patch = _smooth_noise(rng, height, width, cell=40) > 0.9  # a few greyish bare patches
    img[:, patch] = img[:, patch] * 0.9 + 12

    kept: list[Crown] = []
    masks: list[np.ndarray] = []
    cover = np.zeros((height, width), dtype=bool)
    shade = np.zeros((height, width), dtype=np.float32)
    colour = np.zeros((3, height, width), dtype=np.float32)
    for c in crowns:
        poly = _clip_polygon(c.polygon, height, width)
        if poly is None:
            continue
        c = Crown(poly, c.category, c.center, c.radii, c.parts)
        m = annotation_to_mask(c.coco_polygon(), height, width).astype(bool)
        if m.sum() < 4:
            continue
        kept.append(c)
        masks.append(m)
        g = rng.uniform(85, 150)
        tree_rgb = np.array([g * rng.uniform(0.45, 0.75), g, g * rng.uniform(0.3, 0.55)], dtype=np.float32)
        centres = (
            [(c.center, max(c.radii))]
            if not c.parts
            else [
                ((float(p[:, 0].mean()), float(p[:, 1].mean())), float(np.abs(p - p.mean(0)).max()))
                for p in c.parts
            ]
        )
        rn = np.full((height, width), 9.0, dtype=np.float32)
        for (cx, cy), r in centres:
            rn = np.minimum(rn, np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / max(r, 1.0))
        s = np.clip(1.18 - 0.5 * np.clip(rn, 0, 1.3) ** 2, 0.45, 1.2)
        colour[:, m] = tree_rgb[:, None]
        shade[m] = s[m]
        cover |= m
    # shadows cast to the south-east on the ground
    dy, dx = 3, 3
    shadow = np.zeros_like(cover)
    shadow[dy:, dx:] = cover[:-dy, :-dx]
    shadow &= ~cover
    img[:, shadow] *= 0.55
    texture = rng.normal(0, 9, (height, width)).astype(np.float32)
    crown_img = colour * shade[None] + texture[None]
    img[:, cover] = crown_img[:, cover]
    return np.clip(img, 0, 255).astype(np.uint8), kept, masks


@dataclass
class SyntheticOrtho:
    """A synthetic orthomosaic on disk and its ground truth."""

    path: Path
    crs: str
    transform: Any
    height: int
    width: int
    crowns: list[Crown]
    masks: list[np.ndarray]

    @property
    def cover(self) -> np.ndarray:
        """Boolean tree-cover mask (trees and canopy)."""
        out = np.zeros((self.height, self.width), dtype=bool)
        for m in self.masks:
            out |= m
        return out

    def crowns_gdf(self):
        """Ground-truth crowns (``tree`` and ``canopy``) as a GeoDataFrame in the image CRS, with ``area_m2``."""
        import geopandas as gpd
        from shapely.affinity import affine_transform
        from shapely.geometry import Polygon

        t = self.transform
        geoms = [affine_transform(Polygon(c.polygon), [t.a, t.b, t.d, t.e, t.c, t.f]) for c in self.crowns]
        gdf = gpd.GeoDataFrame({"category": [c.category for c in self.crowns]}, geometry=geoms, crs=self.crs)
        gdf["area_m2"] = gdf.geometry.area
        return gdf


def make_orthomosaic(
    path: str | Path,
    *,
    height: int = 512,
    width: int | None = None,
    n_trees: int | None = None,
    n_groups: int = 0,
    radius: tuple[float, float] = (6.0, 14.0),
    seed: int = 0,
    crs: str = "EPSG:32632",
    resolution: float = 0.1,
    origin: tuple[float, float] = (500_000.0, 5_200_000.0),
    crowns: list[Crown] | None = None,
    margin: float = 2.0,
) -> SyntheticOrtho:
    """Write a synthetic RGB orthomosaic GeoTIFF (uint8, ``resolution`` m/px, ``crs``) with known crowns.

    ``n_trees`` defaults to a density of about one crown per 45×45 px. Pass ``crowns`` to place them yourself
    (e.g. a crown straddling a tile border in tests).
    """
    import rasterio
    from rasterio.transform import from_origin

    from terracarbon.utils import atomic_path

    width = height if width is None else width
    if n_trees is None:
        n_trees = max(1, int(height * width / 45**2))
    img, kept, masks = render_tile(
        height,
        width,
        n_trees=n_trees,
        n_groups=n_groups,
        radius=radius,
        seed=seed,
        margin=margin,
        crowns=crowns,
    )
    transform = from_origin(origin[0], origin[1], resolution, resolution)
    path = Path(path)
    with atomic_path(path) as tmp:
        with rasterio.open(
            tmp,
            "w",
            driver="GTiff",
            width=width,
            height=height,
            count=3,
            dtype="uint8",
            crs=crs,
            transform=transform,
            compress="deflate",
            tiled=True,
            blockxsize=256 if width >= 256 else 16 * max(1, width // 16),
            blockysize=256 if height >= 256 else 16 * max(1, height // 16),
            photometric="RGB",
        ) as dst:
            dst.write(img)
            for i, name in enumerate(("red", "green", "blue"), start=1):
                dst.set_band_description(i, name)
    return SyntheticOrtho(path, crs, transform, height, width, kept, masks)


def make_synthetic_tcd(
    root: str | Path,
    *,
    n_images: int = 10,
    size: int = 128,
    n_trees: tuple[int, int] = (4, 8),
    n_groups: tuple[int, int] = (0, 1),
    radius: tuple[float, float] = (6.0, 14.0),
    n_folds: int = 5,
    test_fraction: float = 0.2,
    canopy_as_rle: bool = True,
    seed: int = 0,
) -> Path:
    """Write a look-alike OAM-TCD export of synthetic tiles (``size``×``size`` px) under ``root``.

    Trees are stored as COCO polygons and canopy groups as compressed RLE (both encodings occur in the real data);
    fold ids are assigned round robin after drawing ``test_fraction`` of the tiles for the holdout test split.
    """
    rng = np.random.default_rng(seed)
    folds = assign_folds(n_images, n_folds=n_folds, test_fraction=test_fraction, seed=seed)
    samples = []
    for i in range(n_images):
        img, crowns, masks = render_tile(
            size,
            size,
            n_trees=int(rng.integers(n_trees[0], n_trees[1] + 1)),
            n_groups=int(rng.integers(n_groups[0], n_groups[1] + 1)),
            radius=radius,
            seed=seed * 1000 + i,
        )
        anns = []
        for c, m in zip(crowns, masks):
            seg: Any = m if (c.category == "canopy" and canopy_as_rle) else c.coco_polygon()
            anns.append({"category": c.category, "segmentation": seg})
        samples.append(TileSample(img, anns, image_id=i + 1, oam_id="synth", validation_fold=folds[i]))
    return write_oam_tcd(root, samples, n_folds=n_folds)
