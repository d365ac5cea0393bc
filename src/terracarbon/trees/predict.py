"""Tree cover and tree crowns over large orthomosaics.

* **Tree cover** (:func:`predict_tree_cover`): a semantic checkpoint through the shared tiled engine
  (:func:`terracarbon.raster.predict.predict_raster` with the checkpoint's segmentation predictor): blended overlapping
  tiles, a paletted uint8 GeoTIFF (0 = no tree, 1 = tree, nodata 255) with class names, cloud-optimised, atomic,
  resumable.
* **Crowns** (:func:`predict_crowns`): Mask R-CNN on the engine's overlapping tile grid
  (:class:`terracarbon.raster.predict.TileGrid`); each detection's mask becomes a georeferenced polygon
  (:func:`rasterio.features.shapes` with the tile's transform). Crowns cut by tile borders are detected (partly) in
  several tiles: :func:`merge_crowns` first drops same-tile detections nested in a better-scoring one (mask-level NMS,
  ``suppress_threshold``), then joins detections from *different* tiles whose overlap (intersection over the smaller
  polygon) reaches ``merge_threshold`` and replaces each group by the union of its polygons (score: the group's
  maximum), so each crown appears once. With an overlap at least as wide as the largest crown, every crown
  lies whole inside some tile and the union restores its full outline. Output: a GeoPackage (layer ``crowns``, image
  CRS) with ``crown_id``, ``score``, ``area_m2`` and ``n_tiles``, written atomically.
* **Summary** (:func:`tree_cover_summary`): tree-cover percentage and hectares (true pixel areas, via
  :func:`terracarbon.raster.zonal.class_areas`) and crown counts / areas, over the whole image or an AOI.
* :func:`predict_trees` does all of it into one folder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from terracarbon.errors import ConfigError, InputError
from terracarbon.trees._common import TREE_CLASS_NAMES, TREE_COLORMAP
from terracarbon.utils import atomic_path, atomic_write_json

CROWN_COLUMNS = ["crown_id", "score", "area_m2", "n_tiles", "geometry"]


# --------------------------------------------------------------------------------------------------------------------
# tree cover (semantic) through the shared engine
# --------------------------------------------------------------------------------------------------------------------


def predict_tree_cover(
    checkpoint: str | Path,
    src: str | Path,
    dst: str | Path,
    *,
    tile_size: int | None = 512,
    overlap: int | None = 64,
    batch_size: int = 4,
    backend: str = "eager",
    resume: bool = True,
    progress: bool = True,
    scheduler: Any = None,
    device: str | None = None,
    track: bool = True,
    run_dir: str | Path | None = None,
) -> Path:
    """Tree-cover map (uint8: 0 no tree, 1 tree, 255 nodata) of an RGB GeoTIFF with a semantic checkpoint.

    ``tile_size`` / ``overlap`` None: the checkpoint's own (``meta["tile_size"]``/``["overlap"]``, e.g. restor's
    1024/256 for an imported SegFormer), else 512/128. With ``track`` the run's energy / CO2e go to ``run_dir``
    (default ``<dst folder>/<dst stem>.run/``).
    """
    from terracarbon.raster.checkpoint import predict_checkpoint

    if tile_size is None or overlap is None:  # the model's recommended tiling (meta only, weights not read)
        try:
            meta = torch.load(checkpoint, map_location="cpu", weights_only=False, mmap=True).get("meta") or {}
        except Exception:
            meta = {}  # predict_checkpoint reports an unreadable file
        tile_size = tile_size or int(meta.get("tile_size", 512))
        overlap = min(overlap if overlap is not None else int(meta.get("overlap", 128)), tile_size // 2)

    def validate(spec: dict, meta: dict) -> None:
        if meta.get("task") != "segmentation":
            raise InputError(
                checkpoint, f"is a {meta.get('task')!r} model; tree cover needs a semantic (segmentation) one"
            )

    return predict_checkpoint(
        checkpoint,
        src,
        dst,
        validate=validate,
        track=track,
        run_dir=run_dir,
        run_name="predict",
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        backend=backend,
        resume=resume,
        progress_bar=progress,
        scheduler=scheduler,
        device=device,
    )


# --------------------------------------------------------------------------------------------------------------------
# crowns (instance) with cross-tile merging
# --------------------------------------------------------------------------------------------------------------------


def mask_to_polygon(mask: np.ndarray, transform) -> Any | None:
    """Largest polygon (shapely, in the transform's CRS) of a binary mask; None if the mask is empty."""
    from rasterio import features
    from shapely.geometry import shape

    if not mask.any():
        return None
    polys = [
        shape(geom)
        for geom, val in features.shapes(mask.astype(np.uint8), mask=mask.astype(bool), transform=transform)
        if val == 1
    ]
    if not polys:
        return None
    return max(polys, key=lambda p: p.area)


def _read_window(ds, window, bands: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Boundless read of a window (zero outside the raster) -> (float32 C×t×t, valid t×t)."""
    data = ds.read(list(bands), window=window, boundless=True, fill_value=0, out_dtype="float32")
    valid = np.zeros(data.shape[1:], bool)
    r0, c0 = int(window.row_off), int(window.col_off)
    rr0, cc0 = max(0, -r0), max(0, -c0)
    rr1 = min(data.shape[1], ds.height - r0)
    cc1 = min(data.shape[2], ds.width - c0)
    if rr1 > rr0 and cc1 > cc0:
        valid[rr0:rr1, cc0:cc1] = True
    valid &= np.isfinite(data).all(0)
    for b, nd in zip(bands, [ds.nodatavals[b - 1] for b in bands]):
        if nd is not None and np.isfinite(nd):
            valid &= data[list(bands).index(b)] != np.float32(nd)
    data[:, ~valid] = 0.0
    return data, valid


def detect_crowns(
    model: torch.nn.Module,
    src: str | Path,
    *,
    tile_size: int = 512,
    overlap: int = 128,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    scale: float = 1.0 / 255.0,
    bands: Sequence[int] = (1, 2, 3),
    batch_size: int = 2,
    device: str | None = None,
    progress: bool = True,
) -> tuple[list, list[float], list[int], Any]:
    """Run a crown model tile by tile; returns ``(polygons, scores, tile indexes, crs)`` before merging.

    Polygons are in the raster's CRS. Detections are clipped to valid (inside-raster, non-nodata) pixels.
    """
    import rasterio.windows

    from terracarbon.models.crowns import native_resolution
    from terracarbon.raster.io import open_raster
    from terracarbon.raster.predict import TileGrid
    from terracarbon.utils import progress as progress_bar

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device).eval()
    geoms: list = []
    scores: list[float] = []
    tiles: list[int] = []
    with open_raster(src) as ds:
        if max(bands) > ds.count:
            raise InputError(src, f"has {ds.count} band(s); crown models read RGB bands {list(bands)}")
        grid = TileGrid(ds.height, ds.width, tile_size, overlap)
        crs = ds.crs
        wins = list(grid.windows())
        with progress_bar(disable=not progress) as bar, torch.no_grad():
            task = bar.add_task(f"crowns {Path(src).name}", total=len(wins))
            for b0 in range(0, len(wins), batch_size):
                batch = wins[b0 : b0 + batch_size]
                xs, valids = [], []
                for _, _, w in batch:
                    x, v = _read_window(ds, w, bands)
                    xs.append(torch.from_numpy(x * np.float32(scale)).to(device))
                    valids.append(v)
                with native_resolution(model, tile_size, tile_size):
                    outs = model(xs)
                for (r, c, w), out, valid in zip(batch, outs, valids):
                    tile_id = r * grid.n_cols + c
                    keep = out["scores"] >= score_threshold
                    masks = out["masks"][keep][:, 0].cpu().numpy() > mask_threshold
                    for m, s in zip(masks, out["scores"][keep].cpu().tolist()):
                        m &= valid
                        rows = np.flatnonzero(m.any(1))
                        cols = np.flatnonzero(m.any(0))
                        if rows.size == 0:
                            continue
                        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
                        sub = rasterio.windows.Window(
                            int(w.col_off) + c0, int(w.row_off) + r0, c1 - c0, r1 - r0
                        )
                        sub_t = rasterio.windows.transform(sub, ds.transform)
                        poly = mask_to_polygon(m[r0:r1, c0:c1], sub_t)
                        if poly is None:
                            continue
                        geoms.append(poly)
                        scores.append(float(s))
                        tiles.append(tile_id)
                bar.advance(task, len(batch))
    return geoms, scores, tiles, crs


def merge_crowns(
    geoms: Sequence,
    scores: Sequence[float],
    tiles: Sequence[int],
    *,
    merge_threshold: float = 0.3,
    suppress_threshold: float = 0.5,
) -> tuple[list, list[float], list[int]]:
    """Merge detections of the same crown from overlapping tiles.

    1. Within a tile, a detection covered by a better-scoring detection of the same tile for at least
       ``suppress_threshold`` of its area (intersection over the smaller polygon) is a duplicate or a part of that crown
       and is dropped (mask-level NMS; box NMS keeps such nested detections). ``suppress_threshold >= 1`` disables it.
    2. Across tiles, two detections are joined when their intersection covers at least ``merge_threshold`` of the
       smaller one; joins are transitive (union-find). Each group becomes the union of its polygons (largest part if
       the union is not connected), with the group's best score.

    Returns ``(polygons, scores, n_detections per crown)``.
    """
    from shapely import STRtree
    from shapely.ops import unary_union

    if len(geoms) == 0:
        return [], [], []
    # 1. same-tile suppression, best score first
    order = sorted(range(len(geoms)), key=lambda i: -scores[i])
    kept: list[int] = []
    if suppress_threshold < 1:
        by_tile: dict[int, list[int]] = {}
        for i in order:
            gi = geoms[i]
            dup = False
            for j in by_tile.get(tiles[i], []):
                gj = geoms[j]
                if gi.intersects(gj):
                    small = min(gi.area, gj.area)
                    if small > 0 and gi.intersection(gj).area / small >= suppress_threshold:
                        dup = True
                        break
            if not dup:
                by_tile.setdefault(tiles[i], []).append(i)
                kept.append(i)
    else:
        kept = order
    geoms = [geoms[i] for i in kept]
    scores = [scores[i] for i in kept]
    tiles = [tiles[i] for i in kept]
    n = len(geoms)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = STRtree(list(geoms))
    left, right = tree.query(list(geoms), predicate="intersects")
    areas = np.array([g.area for g in geoms])
    for i, j in zip(left.tolist(), right.tolist()):
        if i >= j or tiles[i] == tiles[j]:
            continue
        inter = geoms[i].intersection(geoms[j]).area
        small = min(areas[i], areas[j])
        if small > 0 and inter / small >= merge_threshold:
            pi, pj = find(i), find(j)
            if pi != pj:
                parent[pj] = pi
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    out_g, out_s, out_n = [], [], []
    for members in groups.values():
        if len(members) == 1:
            g = geoms[members[0]]
        else:
            g = unary_union([geoms[i] for i in members])
            if g.geom_type != "Polygon":
                parts = list(getattr(g, "geoms", [g]))
                g = max(parts, key=lambda p: p.area)
        out_g.append(g)
        out_s.append(max(scores[i] for i in members))
        out_n.append(len(members))
    return out_g, out_s, out_n


def crowns_frame(geoms: Sequence, scores: Sequence[float], n_tiles: Sequence[int], crs) -> Any:
    """GeoDataFrame of crowns (``crown_id``, ``score``, ``area_m2``, ``n_tiles``) in ``crs``, largest score first."""
    import geopandas as gpd

    from terracarbon.raster.zonal import geometry_area_m2

    order = np.argsort(-np.asarray(scores, dtype=float), kind="stable") if len(scores) else []
    geoms = [geoms[i] for i in order]
    gdf = gpd.GeoDataFrame(
        {
            "crown_id": np.arange(1, len(geoms) + 1, dtype=np.int64),
            "score": np.asarray([scores[i] for i in order], dtype=np.float64),
            "area_m2": np.asarray([geometry_area_m2(g, crs) for g in geoms], dtype=np.float64),
            "n_tiles": np.asarray([n_tiles[i] for i in order], dtype=np.int64),
        },
        geometry=gpd.GeoSeries(geoms, crs=crs),
        crs=crs,
    )
    return gdf[CROWN_COLUMNS]


def write_crowns(gdf, dst: str | Path) -> Path:
    """Write crowns to a GeoPackage (layer ``crowns``) atomically."""
    dst = Path(dst)
    if dst.suffix.lower() != ".gpkg":
        raise ConfigError(f"crowns are written as a GeoPackage; use a .gpkg output path, not {dst.name}")
    with atomic_path(dst, suffix=".gpkg") as tmp:
        gdf.to_file(tmp, driver="GPKG", layer="crowns")
    return dst


def predict_crowns(
    checkpoint: str | Path | torch.nn.Module,
    src: str | Path,
    dst: str | Path,
    *,
    tile_size: int = 512,
    overlap: int = 128,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    merge_threshold: float = 0.3,
    suppress_threshold: float = 0.5,
    min_area_m2: float = 0.25,
    batch_size: int = 2,
    device: str | None = None,
    progress: bool = True,
    track: bool = True,
    run_dir: str | Path | None = None,
):
    """Crown polygons of an RGB GeoTIFF with a Mask R-CNN checkpoint, merged across tiles, as a GeoPackage.

    Args:
        checkpoint: ``task == "instance"`` checkpoint (or a model taking 0–1 RGB tensors).
        src: RGB orthomosaic (GeoTIFF with CRS). dst: output ``.gpkg``.
        tile_size, overlap: tile grid (the engine's :class:`TileGrid`); make ``overlap`` ≥ the largest crown (px).
        score_threshold, mask_threshold: detection score and mask probability cut-offs.
        merge_threshold: overlap (over the smaller polygon) joining detections from different tiles.
        suppress_threshold: overlap above which a lower-scoring detection of the same tile is dropped.
        min_area_m2: drop smaller crowns after merging (default 0.25 m²: 25 px at 10 cm, below what the imagery can
            delineate; removes slivers of crowns cut by tile edges that overlap their whole crown too little to merge).
        track, run_dir: record energy / CO2e in ``run_dir`` (default ``<dst folder>/<dst stem>.run/``).

    Returns:
        The crowns GeoDataFrame (also written to ``dst``).
    """
    if isinstance(checkpoint, torch.nn.Module):
        model, scale = checkpoint, 1.0 / 255.0
    else:
        from terracarbon.models.registry import load_checkpoint

        model, _, meta = load_checkpoint(checkpoint)
        if meta.get("task") != "instance":
            raise InputError(
                checkpoint, f"is a {meta.get('task')!r} model; crowns need an instance (Mask R-CNN) one"
            )
        scale = float(meta.get("scale", 1.0 / 255.0))
    from terracarbon.trees._common import tracked

    dst = Path(dst)
    rd = Path(run_dir) if run_dir is not None else dst.parent / f"{dst.stem}.run"
    with tracked(rd, "predict", enabled=track):
        return _predict_crowns(
            model,
            src,
            dst,
            scale,
            tile_size,
            overlap,
            score_threshold,
            mask_threshold,
            merge_threshold,
            suppress_threshold,
            min_area_m2,
            batch_size,
            device,
            progress,
        )


def _predict_crowns(
    model,
    src,
    dst,
    scale,
    tile_size,
    overlap,
    score_threshold,
    mask_threshold,
    merge_threshold,
    suppress_threshold,
    min_area_m2,
    batch_size,
    device,
    progress,
):
    geoms, scores, tiles, crs = detect_crowns(
        model,
        src,
        tile_size=tile_size,
        overlap=overlap,
        score_threshold=score_threshold,
        mask_threshold=mask_threshold,
        scale=scale,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    g, s, n = merge_crowns(
        geoms, scores, tiles, merge_threshold=merge_threshold, suppress_threshold=suppress_threshold
    )
    gdf = crowns_frame(g, s, n, crs)
    if min_area_m2 > 0:
        gdf = gdf[gdf["area_m2"] >= min_area_m2].reset_index(drop=True)
        gdf["crown_id"] = np.arange(1, len(gdf) + 1, dtype=np.int64)
    write_crowns(gdf, dst)
    return gdf


def rasterize_crowns(crowns, like: str | Path, dst: str | Path) -> Path:
    """Tree-cover GeoTIFF (uint8 0/1, class names, colour table) from crown polygons on the grid of ``like``."""
    from rasterio import features

    from terracarbon.raster.io import open_raster, write_geotiff

    with open_raster(like) as ds:
        shape, transform, crs = (ds.height, ds.width), ds.transform, ds.crs
    gdf = crowns.to_crs(crs) if crowns.crs is not None and crowns.crs != crs else crowns
    arr = np.zeros(shape, np.uint8)
    if len(gdf):
        arr = features.rasterize(
            ((g, 1) for g in gdf.geometry), out_shape=shape, transform=transform, fill=0, dtype="uint8"
        )
    return write_geotiff(
        dst,
        arr,
        crs=crs,
        transform=transform,
        nodata=255,
        band_descriptions=["class"],
        colormap=TREE_COLORMAP,
        tags={"class_names": TREE_CLASS_NAMES},
    )


# --------------------------------------------------------------------------------------------------------------------
# summaries over an AOI
# --------------------------------------------------------------------------------------------------------------------


def tree_cover_summary(
    canopy: str | Path, *, crowns: str | Path | Any | None = None, aoi: str | Path | None = None
) -> dict[str, Any]:
    """Tree-cover percentage / hectares of a tree-cover GeoTIFF and crown counts, over the image or an AOI.

    ``crowns``: GeoPackage path or GeoDataFrame; a crown counts when its representative point lies in the AOI.
    Returns ``tree_cover_percent``, ``tree_cover_ha``, ``area_ha`` (classified area), ``nodata_ha`` and, with crowns,
    ``crown_count``, ``crowns_per_ha``, ``crown_area_m2_total``, ``crown_area_m2_mean``, ``crown_area_m2_median``.
    """
    from terracarbon.raster.zonal import class_areas

    ca = class_areas(canopy, aoi, class_names=TREE_CLASS_NAMES)
    tree = ca.get("tree", {"area_ha": 0.0, "percent": 0.0})
    out: dict[str, Any] = {
        "tree_cover_percent": float(tree["percent"]),
        "tree_cover_ha": float(tree["area_ha"]),
        "area_ha": float(ca.total_area_ha),
        "nodata_ha": float(ca.nodata_area_ha),
        "aoi_area_ha": ca.aoi_area_ha,
    }
    if crowns is not None:
        import geopandas as gpd

        gdf = crowns if isinstance(crowns, gpd.GeoDataFrame) else _read_crowns(crowns)
        if aoi is not None and len(gdf):
            from terracarbon.raster.zonal import read_aoi

            zone = read_aoi(aoi, gdf.crs)
            union = zone.geometry.union_all() if hasattr(zone.geometry, "union_all") else zone.unary_union
            gdf = gdf[gdf.geometry.representative_point().within(union)]
        areas = gdf["area_m2"].to_numpy(dtype=float) if len(gdf) else np.zeros(0)
        out.update(
            {
                "crown_count": int(len(gdf)),
                "crowns_per_ha": float(len(gdf) / out["area_ha"]) if out["area_ha"] > 0 else math.nan,
                "crown_area_m2_total": float(areas.sum()),
                "crown_area_m2_mean": float(areas.mean()) if areas.size else 0.0,
                "crown_area_m2_median": float(np.median(areas)) if areas.size else 0.0,
            }
        )
    return out


def _read_crowns(path: str | Path):
    import geopandas as gpd

    path = Path(path)
    if not path.exists():
        raise InputError(path, "crowns file does not exist")
    try:
        gdf = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"not a readable vector file ({exc})") from exc
    if "area_m2" not in gdf:
        from terracarbon.raster.zonal import geometry_area_m2

        gdf["area_m2"] = [geometry_area_m2(g, gdf.crs) for g in gdf.geometry]
    return gdf


def predict_trees(
    src: str | Path,
    out_dir: str | Path,
    *,
    semantic_checkpoint: str | Path | None = None,
    instance_checkpoint: str | Path | None = None,
    aoi: str | Path | None = None,
    tile_size: int = 512,
    overlap: int = 128,
    score_threshold: float = 0.5,
    merge_threshold: float = 0.3,
    progress: bool = True,
    track: bool = True,
) -> dict[str, Any]:
    """Tree cover (``canopy.tif``), crowns (``crowns.gpkg``) and ``summary.json`` of an orthomosaic in ``out_dir``.

    With only an instance checkpoint, ``canopy.tif`` is the rasterised crowns. Returns the summary (with paths).
    """
    from terracarbon.trees._common import tracked

    if semantic_checkpoint is None and instance_checkpoint is None:
        raise ConfigError("give a semantic checkpoint, an instance checkpoint, or both")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    canopy = out_dir / "canopy.tif"
    crowns_path = out_dir / "crowns.gpkg"
    gdf = None
    with tracked(out_dir, "predict", enabled=track) as tr:
        if semantic_checkpoint is not None:
            predict_tree_cover(
                semantic_checkpoint,
                src,
                canopy,
                tile_size=tile_size,
                overlap=min(overlap, tile_size // 2),
                progress=progress,
                track=False,
            )
        if instance_checkpoint is not None:
            gdf = predict_crowns(
                instance_checkpoint,
                src,
                crowns_path,
                tile_size=tile_size,
                overlap=min(overlap, tile_size // 2),
                score_threshold=score_threshold,
                merge_threshold=merge_threshold,
                progress=progress,
                track=False,
            )
            if semantic_checkpoint is None:
                rasterize_crowns(gdf, src, canopy)
    summary = tree_cover_summary(canopy, crowns=gdf, aoi=aoi)
    summary["canopy"] = str(canopy)
    summary["crowns"] = str(crowns_path) if gdf is not None else None
    summary["footprint"] = tr.result
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
