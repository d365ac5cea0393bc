"""The layer runners of an assessment: each writes one ``layers/<layer>.tif`` of the run folder and describes it.

* :func:`_predict_layer` runs a checkpoint through the shared tiled engine
  (:func:`terracarbon.raster.predict.predict_raster`, on the Dask client of :func:`_client` when one is asked for),
  on the input :func:`_input_for` picks (``stack.tif``, ``aerial.tif`` or a given raster);
* :func:`_given_layer` copies a ready-made map into the run;
* :func:`_derive_layer` derives land cover (the stack's ``LC`` band) or tree cover (canopy height ``CH`` >=
  :data:`TREE_HEIGHT_M`) when no model gives them;
* :func:`_biomass_std` writes the per-pixel uncertainty ``layers/biomass_std.tif`` from the model's held-out RMSE per
  AGB bin (:func:`_rmse_by_bin`) unless the biomass map carries its own std band.

Every layer entry (:func:`_layer_entry`) records path, CRS, shape, pixel size, dtype, nodata, source and timing;
:func:`_map_strips` is the bounded-memory strip writer of the derived rasters (cloud-optimised, atomic).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.assess.models import _class_names, _model_in_count
from terracarbon.errors import InputError
from terracarbon.utils import atomic_path

__all__ = ["TREE_HEIGHT_M"]


TREE_HEIGHT_M = 5.0
"""Minimum tree height of the FAO forest definition, used to derive tree cover from canopy height."""


# colours of the derived layers (RGBA)
_SCENE_LC_COLOURS = {
    1: (34, 110, 34, 255),  # forest
    2: (140, 170, 60, 255),  # shrub
    3: (200, 215, 110, 255),  # grass
    4: (230, 190, 90, 255),  # crop
    5: (50, 110, 200, 255),  # water
    6: (200, 60, 60, 255),  # urban
}


_TREE_COLOURS = {0: (235, 230, 200, 255), 1: (20, 120, 40, 255)}


@contextlib.contextmanager
def _client(scheduler: Any) -> Iterator[Any]:
    if scheduler is None:
        yield None
        return
    from terracarbon.raster.predict import dask_client

    with dask_client(scheduler) as client:
        yield client


def _input_for(
    layer: str, meta: Mapping[str, Any], scene_dir: Path, stack: Path, inputs: Mapping[str, Path]
) -> tuple[Path | None, str]:
    """The raster a model reads, or (None, why not)."""
    import rasterio

    if layer in inputs:
        if not inputs[layer].exists():
            raise InputError(inputs[layer], f"input raster for {layer} does not exist")
        return inputs[layer], ""
    if layer == "biomass":
        return stack, ""
    need = _model_in_count(meta)
    aerial = scene_dir / "aerial.tif"
    candidates = [aerial, stack] if aerial.exists() else [stack]
    for cand in candidates:
        with rasterio.open(cand) as ds:
            count, names = ds.count, [d or "" for d in ds.descriptions]
        bands = meta.get("bands")
        if cand == stack and bands and all(names) and list(bands) != names:
            continue
        in_bands = meta.get("in_bands")
        if in_bands and cand != stack and count >= max(in_bands):  # e.g. RGB bands of an RGBN orthophoto
            return cand, ""
        if need is None or need == count:
            return cand, ""
    where = "aerial.tif" if aerial.exists() else "no aerial.tif in the scene folder"
    return None, (
        f"the {layer} model reads {need} band(s) ({', '.join(map(str, meta.get('bands') or [])) or 'unnamed'}); "
        f"{where}, and stack.tif does not match"
    )


def _predict_layer(
    layer,
    ckpt: Path,
    meta,
    src: Path,
    layers_dir: Path,
    client,
    tile_size,
    overlap,
    batch_size,
    backend,
    progress,
) -> dict[str, Any]:
    from terracarbon.raster.checkpoint import predictor_from_checkpoint
    from terracarbon.raster.predict import predict_raster

    if layer == "biomass" and meta.get("task", "regression") != "regression":
        raise InputError(ckpt, f"is a {meta.get('task')!r} model, not a biomass regression model")
    if layer != "biomass" and meta.get("task") != "segmentation":
        raise InputError(
            ckpt, f"is a {meta.get('task')!r} model; the {layer} layer needs a segmentation model"
        )
    if layer == "biomass":
        from terracarbon.raster.io import open_raster

        with open_raster(src) as ds:
            names, count = [d or "" for d in ds.descriptions], ds.count
        bands = meta.get("bands")
        if bands and count != len(bands):
            raise InputError(src, f"has {count} band(s) but the biomass model was trained on {len(bands)}")
        if bands and all(names) and names != list(bands):
            raise InputError(src, f"band names {names} differ from the biomass model's bands {list(bands)}")
    predictor = predictor_from_checkpoint(ckpt)
    predictor.tags = {**dict(predictor.tags), "layer": layer, "model": ckpt.name}
    if layer == "biomass":
        predictor.tags["units"] = "Mg/ha"
    dst = layers_dir / f"{layer}.tif"
    t0 = time.perf_counter()
    predict_raster(
        predictor,
        src,
        dst,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        backend=backend,
        progress_bar=progress,
        scheduler=client,
    )
    wall = time.perf_counter() - t0
    entry = _layer_entry(dst, layers_dir.parent, layer, source="model", wall_s=wall, input=str(src))
    entry["model"] = str(ckpt)
    if layer == "biomass":
        entry.update(kind="continuous", units="Mg/ha", description="aboveground biomass density (model)")
    else:
        names = list(predictor.class_names or _class_names(meta))
        entry.update(
            kind="classes",
            class_names={str(i): n for i, n in enumerate(names)},
            colormap={str(k): list(v) for k, v in (predictor.colormap or {}).items()} or None,
            description=f"{layer.replace('_', ' ')} classes (model)",
        )
    return entry


def _given_layer(
    layer: str, path: Path, layers_dir: Path, ckpt: Path | None, meta: Mapping[str, Any]
) -> dict:
    """Copy a ready-made map into the run as ``layers/<layer>.tif`` and describe it."""
    import shutil

    from terracarbon.raster.io import read_class_names

    dst = layers_dir / f"{layer}.tif"
    if path.resolve() != dst.resolve():
        with atomic_path(dst, suffix=".tif") as tmp:
            shutil.copyfile(path, tmp)
    entry = _layer_entry(dst, layers_dir.parent, layer, source="given", input=str(path.resolve()), wall_s=0.0)
    if ckpt is not None:
        entry["model"] = str(ckpt)
    if layer == "biomass":
        entry.update(
            kind="continuous", units="Mg/ha", description=f"aboveground biomass density ({path.name})"
        )
    else:
        names = _class_names(meta) or read_class_names(dst) or []
        if isinstance(names, Mapping):
            cn = {str(k): str(v) for k, v in names.items()}
        else:
            cn = {str(i): str(n) for i, n in enumerate(names)}
        cmap = meta.get("colormap")
        entry.update(
            kind="classes",
            class_names=cn or None,
            colormap={str(k): list(v) for k, v in cmap.items()} if cmap else None,
            description=f"{layer.replace('_', ' ')} classes ({path.name})",
        )
    return entry


def _layer_entry(path: Path, run_dir: Path, layer: str, **extra: Any) -> dict[str, Any]:
    import rasterio

    with rasterio.open(path) as ds:
        rec = {
            "path": str(path.relative_to(run_dir)),
            "layer": layer,
            "crs": str(ds.crs),
            "shape": [ds.height, ds.width],
            "pixel_size": [abs(ds.transform.a), abs(ds.transform.e)],
            "dtype": ds.dtypes[0],
            "nodata": ds.nodata,
        }
    rec.update(extra)
    return rec


def _derive_layer(layer: str, stack: Path, layers_dir: Path, tree_height_m: float) -> dict[str, Any] | None:
    from terracarbon.data.synthetic.scenes import LC_CLASSES

    t0 = time.perf_counter()
    if layer == "landcover":
        b = _band_index(stack, "LC")
        if b is None:
            return None

        def lc(x: np.ndarray) -> np.ndarray:
            v = x[0]
            ok = np.isfinite(v) & (v >= 1) & (v <= 254)
            return np.where(ok, np.rint(np.where(ok, v, 0)), 255)

        names = {int(k): v for k, v in LC_CLASSES.items()}
        dst = _map_strips(
            stack,
            layers_dir / "landcover.tif",
            lc,
            bands=[b],
            dtype="uint8",
            nodata=255,
            description="class",
            colormap=_SCENE_LC_COLOURS,
            tags={
                "class_names": json.dumps(names),
                "layer": "landcover",
                "source": f"band LC of {stack.name}",
            },
        )
        entry = _layer_entry(dst, layers_dir.parent, layer, source="derived", wall_s=time.perf_counter() - t0)
        entry.update(
            kind="classes",
            input=str(stack),
            class_names={str(k): v for k, v in names.items()},
            colormap={str(k): list(v) for k, v in _SCENE_LC_COLOURS.items()},
            description=f"land cover from the LC band of {stack.name} (input product, no model)",
        )
        return entry
    b = _band_index(stack, "CH")
    if b is None:
        return None

    def trees(x: np.ndarray) -> np.ndarray:
        v = x[0]
        return np.where(
            np.isfinite(v), (np.where(np.isfinite(v), v, 0) >= tree_height_m).astype(np.uint8), 255
        )

    dst = _map_strips(
        stack,
        layers_dir / "tree_cover.tif",
        trees,
        bands=[b],
        dtype="uint8",
        nodata=255,
        description="class",
        colormap=_TREE_COLOURS,
        tags={"class_names": json.dumps(["no tree", "tree"]), "layer": "tree_cover"},
    )
    entry = _layer_entry(dst, layers_dir.parent, layer, source="derived", wall_s=time.perf_counter() - t0)
    entry.update(
        kind="classes",
        input=str(stack),
        class_names={"0": "no tree", "1": "tree"},
        colormap={str(k): list(v) for k, v in _TREE_COLOURS.items()},
        description=f"tree cover: canopy height (CH band of {stack.name}) >= {tree_height_m:g} m (FAO), no model",
    )
    return entry


def _band_index(stack: Path, name: str) -> int | None:
    import rasterio

    with rasterio.open(stack) as ds:
        desc = [d or "" for d in ds.descriptions]
    return desc.index(name) + 1 if name in desc else None


def _map_strips(
    src: Path,
    dst: Path,
    fn: Callable[[np.ndarray], np.ndarray],
    *,
    bands: list[int],
    dtype: str,
    nodata: float | int | None,
    description: str,
    colormap: Mapping[int, tuple[int, ...]] | None = None,
    tags: Mapping[str, Any] | None = None,
    rows: int = 512,
) -> Path:
    """Write ``fn(src bands)`` strip by strip (bounded memory) as a one-band cloud-optimised GeoTIFF, atomically."""
    import rasterio
    from rasterio.windows import Window

    from terracarbon.raster.io import _decorate, to_cog

    with rasterio.open(src) as ds:
        profile = {
            "driver": "GTiff",
            "height": ds.height,
            "width": ds.width,
            "count": 1,
            "dtype": dtype,
            "crs": ds.crs,
            "transform": ds.transform,
            "nodata": nodata,
            "compress": "DEFLATE",
        }
        with atomic_path(dst, suffix=".tif") as tmp:
            plain = tmp.with_name(tmp.name + ".plain.tif")
            try:
                with rasterio.open(plain, "w", **profile) as out:
                    for r0 in range(0, ds.height, rows):
                        win = Window(0, r0, ds.width, min(rows, ds.height - r0))
                        data = ds.read(bands, window=win, out_dtype="float32")
                        out.write(np.asarray(fn(data)).astype(dtype), 1, window=win)
                    _decorate(out, [description], colormap, tags)
                to_cog(plain, tmp)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    plain.unlink()
    return dst


def _biomass_std(entry: dict[str, Any], meta: Mapping[str, Any], run_dir: Path) -> None:
    """Write ``layers/biomass_std.tif`` (per-pixel sd = the model's held-out RMSE of the pixel's AGB bin) unless the
    map carries its own std band."""
    from terracarbon.carbon import find_std_source

    path = run_dir / entry["path"]
    std_band, companion = find_std_source(path)
    if std_band is not None:
        entry["uncertainty"] = {
            "source": f"band {std_band} of the model output (predicted standard deviation)"
        }
        return
    rb = _rmse_by_bin(meta.get("metrics") or {})
    if rb is None:
        entry["uncertainty"] = None
        return
    lows, highs, rmse, overall = rb
    nodata = entry.get("nodata")

    def sd(x: np.ndarray) -> np.ndarray:
        v = x[0]
        ok = np.isfinite(v) if nodata is None else np.isfinite(v) & (v != np.float32(nodata))
        vv = np.where(ok, v, 0.0)
        idx = np.clip(np.searchsorted(lows, vv, side="right") - 1, 0, len(lows) - 1)
        inside = (vv >= lows[idx]) & (vv < highs[idx])
        return np.where(ok, np.where(inside, rmse[idx], overall), -9999.0)

    dst = path.with_name(f"{path.stem}_std{path.suffix}")
    _map_strips(
        path,
        dst,
        sd,
        bands=[1],
        dtype="float32",
        nodata=-9999.0,
        description="agb_std_mg_per_ha",
        tags={"units": "Mg/ha"},
    )
    entry["std_path"] = str(dst.relative_to(run_dir))
    entry["uncertainty"] = {
        "source": "held-out RMSE of the model per AGB bin (checkpoint metrics), as per-pixel standard deviation",
        "rmse_overall_mg_per_ha": overall,
        "rmse_by_bin_mg_per_ha": {
            (f"{lo:g}+" if math.isinf(hi) else f"{lo:g}-{hi:g}"): float(r)
            for lo, hi, r in zip(lows, highs, rmse)
        },
    }


def _rmse_by_bin(metrics: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, float] | None:
    """(lower edges, upper edges, rmse per bin, overall rmse) from a biomass checkpoint's metrics (``per_bin`` keys
    ``"lo-hi"`` / ``"lo+"``); bins with < 20 labels or no figure, and AGB outside every bin, take the overall RMSE."""
    overall = metrics.get("rmse")
    if overall is None or not math.isfinite(float(overall)):
        return None
    overall = float(overall)
    bins = []
    for key, m in (metrics.get("per_bin") or {}).items():
        lo_s, _, hi_s = str(key).rstrip("+").partition("-")
        try:
            lo, hi = float(lo_s), (float(hi_s) if hi_s else math.inf)
        except ValueError:
            continue
        r = m.get("rmse") if isinstance(m, Mapping) else None
        ok = r is not None and math.isfinite(float(r)) and int(m.get("n") or 0) >= 20
        bins.append((lo, hi, float(r) if ok else overall))
    bins.sort()
    if not bins:
        bins = [(-math.inf, math.inf, overall)]
    lows, highs, vals = (np.asarray(x, np.float64) for x in zip(*bins))
    return lows, highs, vals, overall
