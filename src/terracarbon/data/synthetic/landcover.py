"""Synthetic aerial scenes with known land-cover classes (LandCover.ai look-alikes).

:func:`render_scene` paints an RGB orthophoto and its class mask: agricultural parcels
(background) with plough stripes, textured woodland blobs, smooth water bodies, linear
roads and rectangular buildings with roof colours, under a slowly varying illumination
and per-pixel noise. :func:`make_synthetic_release` writes several such scenes in the
LandCover.ai v1 release layout (GeoTIFFs in EPSG:2180, official tiling, split lists),
so training and evaluation go through the same reader as the real dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from terracarbon.data.landcover_ai import (
    BACKGROUND,
    BUILDING,
    ROAD,
    WATER,
    WOODLAND,
    write_lookalike_release,
)

__all__ = ["render_scene", "make_synthetic_release"]

_FIELD_COLOURS = np.array(
    [[196, 186, 120], [150, 132, 104], [150, 176, 96], [205, 196, 150], [128, 150, 80]], dtype=np.float32
)
_ROOF_COLOURS = np.array([[186, 64, 44], [160, 52, 40], [205, 100, 60]], dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-filtered noise (large sigmas filtered on a coarser grid, then upsampled)."""
    h, w = shape
    f = max(1, int(sigma // 3))
    small = rng.standard_normal((h // f + 2, w // f + 2)).astype(np.float32)
    small = ndimage.gaussian_filter(small, sigma / f, mode="wrap")
    full = ndimage.zoom(small, f, order=1)[:h, :w] if f > 1 else small[:h, :w]
    return (full - full.mean()) / (full.std() + 1e-6)


def _parcels(rng: np.random.Generator, h: int, w: int, scale: float) -> np.ndarray:
    """Label image of rectangular field parcels (recursive cuts)."""
    labels = np.zeros((h, w), np.int32)
    boxes = [(0, 0, h, w)]
    n = 0
    while boxes:
        y0, x0, y1, x1 = boxes.pop()
        bh, bw = y1 - y0, x1 - x0
        if max(bh, bw) > scale and rng.random() < 0.9:
            if bh >= bw:
                c = int(rng.integers(y0 + bh // 4, y1 - bh // 4 + 1))
                boxes += [(y0, x0, c, x1), (c, x0, y1, x1)]
            else:
                c = int(rng.integers(x0 + bw // 4, x1 - bw // 4 + 1))
                boxes += [(y0, x0, y1, c), (y0, c, y1, x1)]
        else:
            labels[y0:y1, x0:x1] = n
            n += 1
    return labels


def _line_mask(h: int, w: int, p: tuple[float, float], angle: float, width: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.abs((xx - p[1]) * np.sin(angle) - (yy - p[0]) * np.cos(angle))
    return d <= width / 2


def render_scene(
    height: int,
    width: int,
    seed: int = 0,
    *,
    object_scale: float = 1.0,
    noise_sigma: float = 7.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one synthetic aerial scene.

    Returns ``(rgb, mask)``: uint8 3 x H x W and uint8 H x W with LandCover.ai class ids
    (0 background, 1 building, 2 woodland, 3 water, 4 road). ``object_scale`` scales
    object sizes in pixels (1.0 suits 64-128 px training tiles).
    """
    rng = np.random.default_rng(seed)
    h, w = int(height), int(width)
    s = float(object_scale)
    mask = np.full((h, w), BACKGROUND, np.uint8)
    rgb = np.zeros((3, h, w), np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    # background: field parcels with plough stripes
    parcels = _parcels(rng, h, w, 60 * s)
    n_parcels = int(parcels.max()) + 1
    colours = _FIELD_COLOURS[rng.integers(0, len(_FIELD_COLOURS), n_parcels)]
    colours = colours + rng.normal(0, 8, colours.shape).astype(np.float32)
    angles = rng.uniform(0, np.pi, n_parcels).astype(np.float32)
    periods = rng.uniform(3, 7, n_parcels).astype(np.float32) * s
    a, p = angles[parcels], periods[parcels]
    stripes = np.sin((xx * np.cos(a) + yy * np.sin(a)) * 2 * np.pi / p)
    for c in range(3):
        rgb[c] = colours[parcels, c] + 7 * stripes

    # woodland: thresholded smooth noise, dark green canopy texture
    wood = _smooth_noise(rng, (h, w), 14 * s) > rng.uniform(0.35, 0.75)
    wood = ndimage.binary_opening(wood, iterations=2)
    canopy = _smooth_noise(rng, (h, w), 1.2 * s)
    tint = rng.uniform(-6, 6, 3)
    wood_rgb = np.array([48, 84, 40], np.float32) + tint
    for c in range(3):
        rgb[c] = np.where(wood, wood_rgb[c] + 16 * canopy * (1.0 if c != 2 else 0.6), rgb[c])
    mask[wood] = WOODLAND

    # water: a few ellipses (lakes, ponds) and sometimes a river
    water = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 3))):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(10, 28) * s, rng.uniform(10, 34) * s
        th = rng.uniform(0, np.pi)
        dy, dx = yy - cy, xx - cx
        u = dx * np.cos(th) + dy * np.sin(th)
        v = -dx * np.sin(th) + dy * np.cos(th)
        water |= (u / rx) ** 2 + (v / ry) ** 2 <= 1.0
    if rng.random() < 0.5:
        base = rng.uniform(0.2, 0.8) * h
        meander = base + 12 * s * np.sin(xx / (rng.uniform(25, 45) * s) + rng.uniform(0, 6))
        water |= np.abs(yy - meander) <= rng.uniform(4, 7) * s
    water_rgb = np.array([38, 66, 92], np.float32) + rng.uniform(-6, 6, 3)
    ripple = _smooth_noise(rng, (h, w), 3 * s)
    for c in range(3):
        rgb[c] = np.where(water, water_rgb[c] + 4 * ripple, rgb[c])
    mask[water] = WATER

    # roads: straight lines crossing the scene
    road = np.zeros((h, w), bool)
    for _ in range(int(rng.integers(1, 4))):
        road |= _line_mask(
            h, w, (rng.uniform(0, h), rng.uniform(0, w)), rng.uniform(0, np.pi), rng.uniform(7, 11) * s
        )
    road_grey = rng.uniform(150, 175)
    for c in range(3):
        rgb[c] = np.where(road, road_grey - 3 * c + 3 * ripple, rgb[c])
    mask[road] = ROAD

    # buildings: rectangles, preferably near roads, never on water (painted in a local window)
    near_road = (ndimage.distance_transform_edt(~road) <= 14 * s) & ~road if road.any() else ~road
    n_build = int(rng.integers(4, 12) * h * w / (256 * 256))
    cand = np.argwhere(near_road & ~water)
    for _ in range(n_build):
        if rng.random() < 0.75 and len(cand):
            cy, cx = cand[rng.integers(0, len(cand))]
        else:
            cy, cx = rng.integers(0, h), rng.integers(0, w)
        bh, bw = (rng.uniform(12, 24, 2) * s).astype(int)
        y0, x0 = max(int(cy) - bh // 2, 0), max(int(cx) - bw // 2, 0)
        y1, x1 = min(y0 + bh, h), min(x0 + bw, w)
        ye, xe = min(y1 + 2, h), min(x1 + 2, w)  # window incl. the shadow
        box = np.zeros((ye - y0, xe - x0), bool)
        box[: y1 - y0, : x1 - x0] = True
        box &= ~water[y0:ye, x0:xe] & ~road[y0:ye, x0:xe]
        if box.sum() < 16:
            continue
        roof = _ROOF_COLOURS[rng.integers(0, len(_ROOF_COLOURS))] + rng.normal(0, 6, 3)
        ly, lx = np.mgrid[0 : ye - y0, 0 : xe - x0]
        ridge = (
            np.where(lx < (x1 - x0) / 2, 1.08, 0.92) if bw > bh else np.where(ly < (y1 - y0) / 2, 1.08, 0.92)
        )
        win = rgb[:, y0:ye, x0:xe]
        for c in range(3):
            win[c] = np.where(box, roof[c] * ridge, win[c])
        # cast shadow just outside the south-east edge
        shadow = np.zeros_like(box)
        shadow[2:, 2:] = box[:-2, :-2]
        mwin = mask[y0:ye, x0:xe]
        shadow &= ~box & (mwin != WATER) & (mwin != ROAD) & (mwin != BUILDING)
        win[:, shadow] *= 0.6
        mwin[box] = BUILDING

    # illumination and sensor noise
    light = 1.0 + 0.06 * _smooth_noise(rng, (h, w), 40 * s)
    rgb = rgb * light + rng.normal(0, noise_sigma, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).round().astype(np.uint8), mask


def make_synthetic_release(
    root: str | os.PathLike,
    *,
    n_images: int = 8,
    size: tuple[int, int] = (256, 256),
    tile_size: int = 64,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    by_image: bool = False,
    object_scale: float = 1.0,
) -> Path:
    """Write ``n_images`` synthetic scenes in the LandCover.ai release layout under ``root``.

    Uses the official tiling with ``tile_size`` (512 in the real release; smaller for CI)
    and writes train/val/test lists. Returns ``root``.
    """

    def scene(h: int, w: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        return render_scene(h, w, s, object_scale=object_scale)

    out = write_lookalike_release(
        root,
        shapes=[tuple(size)] * n_images,
        target_size=tile_size,
        seed=seed,
        fractions=fractions,
        by_image=by_image,
        scene_fn=scene,
    )
    from terracarbon.utils import atomic_write_text

    atomic_write_text(
        Path(root) / "SYNTHETIC",
        f"synthetic LandCover.ai look-alike: terracarbon.data.synthetic.landcover, {n_images} scenes of {size}, "
        f"tiles of {tile_size} px, seed {seed}\n",
    )
    return out
