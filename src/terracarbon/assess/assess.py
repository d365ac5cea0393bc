"""One call that tells what a site holds: biomass, carbon stock, land cover, tree cover, and what computing it cost.

:func:`assess` runs the available models over a scene folder (as :func:`terracarbon.data.scenes.make_scene` writes
it: ``stack.tif``, ``aoi.geojson``, ``scene.json`` ...) through the shared tiled engine
(:func:`terracarbon.raster.predict.predict_raster`, optionally on a Dask cluster), then computes inside the AOI — and
per polygon when the AOI holds several (e.g. parcels):

* the **carbon stock** of the biomass map (:func:`terracarbon.carbon.carbon_stock`: AGB -> carbon -> CO2e, true
  pixel areas), with an uncertainty: the model's own standard-deviation band when it has one, otherwise a per-pixel
  standard deviation equal to the model's held-out RMSE for the pixel's AGB bin (from the checkpoint's metrics);
* **class areas** (ha and %) of the land-cover and tree-cover maps (:func:`terracarbon.raster.zonal.class_areas`);
* its own **energy and CO2e** (:func:`terracarbon.footprint.track_emissions`), next to the training footprint each
  model's checkpoint records.

Layers and their inputs
-----------------------
``models`` maps a layer name to a terracarbon checkpoint (``.pt``, :func:`terracarbon.models.registry.save_checkpoint`):

``biomass``
    a regression model; reads ``stack.tif`` (its band names must match the model's).
``landcover``, ``tree_cover``
    segmentation models. Aerial models (LandCover.ai at 25-50 cm, OAM-TCD at 10 cm) read RGB imagery: they run when
    the scene folder holds an ``aerial.tif`` with the band count the model expects (or ``inputs={layer: path}``
    names one). A segmentation model trained on the scene's own stack (same band count and names) reads
    ``stack.tif``. Otherwise the layer is skipped and the reason recorded.

When no model gives a land-cover or tree-cover layer (``derive_missing=True``), assess derives them from the inputs
and says so in the layer's ``source``: land cover from the stack's ``LC`` band, tree cover as canopy height (``CH``
band) >= 5 m, the height threshold of the FAO forest definition. With ``models=None`` the models the demo trained are
used (:func:`default_models`: ``demo-output/models/*.pt``, else any ``*.pt`` under ``demo-output/`` classified by the
task and class names in its metadata).

Outputs (``out_dir`` is the run folder)
---------------------------------------
``assessment.json`` (everything below, format ``terracarbon-assessment/1``), ``layers/<layer>.tif`` (cloud-optimised
GeoTIFFs; ``layers/biomass_std.tif`` the uncertainty), ``aoi.geojson`` (the AOI in EPSG:4326, for the report),
``emissions.json`` / ``emissions.csv`` (the run's footprint). :func:`terracarbon.report.build_report` turns the folder
into an HTML report.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terracarbon.errors import ConfigError, InputError
from terracarbon.utils import atomic_path, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["LAYERS", "AssessmentResult", "assess", "default_models", "load_assessment"]

FORMAT = "terracarbon-assessment/1"
LAYERS: tuple[str, ...] = ("biomass", "landcover", "tree_cover")
"""Layer names an assessment knows."""

_ALIASES = {
    "agb": "biomass",
    "land_cover": "landcover",
    "land-cover": "landcover",
    "lc": "landcover",
    "trees": "tree_cover",
    "tree": "tree_cover",
    "treecover": "tree_cover",
    "tree-cover": "tree_cover",
    "canopy": "tree_cover",
}
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
_HASH_LIMIT = 1 << 30  # hash input files up to 1 GiB (bigger ones: size and mtime only)


# -------------------------------------------------------------------------------------------------------- results


@dataclass
class AssessmentResult:
    """What :func:`assess` returns: the run folder and the content of its ``assessment.json``."""

    run_dir: Path
    json_path: Path
    data: dict[str, Any]

    @property
    def layers(self) -> dict[str, Path]:
        """Layer name -> GeoTIFF path."""
        return {k: self.run_dir / v["path"] for k, v in self.data.get("layers", {}).items()}

    @property
    def stock(self) -> dict[str, Any] | None:
        """The carbon stock (``CarbonStock.to_dict()``), or None without a biomass layer."""
        return self.data.get("stock")

    @property
    def footprint(self) -> dict[str, Any] | None:
        """The assessment run's own energy / CO2e record."""
        return (self.data.get("footprint") or {}).get("assessment")

    def summary_rows(self) -> dict[str, Any]:
        """Key figures for a table."""
        return summary_rows(self.data)


def summary_rows(data: Mapping[str, Any]) -> dict[str, Any]:
    """Key figures of an assessment dict, for a rich table."""
    rows: dict[str, Any] = {}
    st = data.get("stock")
    if st:
        rows["AOI area (ha)"] = st.get("aoi_area_ha") or st.get("area_ha")
        rows["mean AGB (Mg/ha)"] = st["agb_mean_mg_per_ha"]
        rows["carbon (Mg C)"] = st["carbon_total_mg"]
        co2 = st["co2e_total_t"]
        sd = st.get("co2e_total_std_t_correlated")
        rows["CO2e (t)"] = f"{co2:,.1f} ± {sd:,.1f}" if sd is not None else co2
    tc = data.get("tree_cover")
    if tc:
        rows["tree cover (%)"] = tc["percent"]
    lc = (data.get("class_areas") or {}).get("landcover")
    if lc:
        for name, v in lc["total"]["classes"].items():
            if v["area_ha"] > 0:
                rows[f"land cover: {name} (ha)"] = v["area_ha"]
    fp = (data.get("footprint") or {}).get("assessment") or {}
    if fp.get("energy_kwh") is not None:
        rows["this run: energy (Wh)"] = fp["energy_kwh"] * 1000.0
        rows["this run: CO2e (g)"] = fp["emissions_g"]
    for s in data.get("skipped", []):
        rows[f"skipped: {s['layer']}"] = s["reason"]
    return rows


def load_assessment(run_dir: str | os.PathLike) -> dict[str, Any]:
    """Read ``assessment.json`` of a run folder (or the file itself); InputError when missing or invalid."""
    path = Path(run_dir)
    if path.is_dir():
        path = path / "assessment.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(
            path, "no assessment record (file not found); run `terracarbon assess` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable assessment record ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(path, f"not a terracarbon assessment (expected format {FORMAT!r})")
    return data


# --------------------------------------------------------------------------------------------------------- models


def layer_name(name: str) -> str:
    """Canonical layer name (``"trees"`` -> ``"tree_cover"`` ...); ConfigError for unknown names."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LAYERS:
        raise ConfigError(f"unknown layer {name!r}; choose one of {', '.join(LAYERS)}")
    return key


def _checkpoint_meta(path: Path) -> dict[str, Any]:
    """The ``meta`` dict of a terracarbon checkpoint (InputError when it is not one)."""
    import torch

    from terracarbon.models.registry import FORMAT as MODEL_FORMAT

    if not path.exists():
        raise InputError(path, "checkpoint does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(path, f"not a readable checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise InputError(path, f"not a terracarbon model file (expected format {MODEL_FORMAT!r})")
    meta = dict(payload.get("meta") or {})
    meta["_spec"] = payload.get("spec")
    return meta


def _class_names(meta: Mapping[str, Any]) -> list[str]:
    names = meta.get("class_names") or []
    if isinstance(names, Mapping):
        return [str(v) for _, v in sorted(names.items(), key=lambda kv: int(kv[0]))]
    return [str(n) for n in names]


def classify_checkpoint(meta: Mapping[str, Any]) -> str | None:
    """Which layer a checkpoint maps, from its metadata: regression -> biomass; segmentation -> land cover (LandCover.ai
    style classes) or tree cover (a ``tree`` class / two classes); None when unknown."""
    if meta.get("layer"):
        with contextlib.suppress(ConfigError):
            return layer_name(meta["layer"])
    task = meta.get("task", "regression")
    if task == "regression":
        return "biomass"
    if task == "segmentation":
        names = [n.lower() for n in _class_names(meta)]
        if any(k in n for n in names for k in ("woodland", "building", "road", "water", "urban", "crop")):
            return "landcover"
        if any("tree" in n or "canopy" in n for n in names) or len(names) == 2:
            return "tree_cover"
        return "landcover"
    return None


def default_models(base: str | os.PathLike = "demo-output") -> dict[str, Path]:
    """The models the demo trained: ``base/models/<layer>.pt`` (or any ``.pt`` there), else ``*.pt`` under ``base``.

    Each checkpoint's layer comes from its file name when that is a layer name, else from its metadata
    (:func:`classify_checkpoint`); the first match per layer wins (``models/`` first, then sorted paths).
    """
    base = Path(base)
    found: dict[str, Path] = {}
    if not base.is_dir():
        return found
    first = sorted((base / "models").glob("*.pt")) if (base / "models").is_dir() else []
    rest = sorted(
        p
        for p in base.rglob("*.pt")
        if p not in first and not any(part.startswith(".") for part in p.relative_to(base).parts)
    )
    for p in [*first, *rest]:
        layer = None
        with contextlib.suppress(ConfigError):
            layer = layer_name(p.stem)
        if layer is None:
            try:
                layer = classify_checkpoint(_checkpoint_meta(p))
            except InputError:
                continue
        if layer is not None and layer not in found:
            found[layer] = p.resolve()
    return found


def _model_in_count(meta: Mapping[str, Any]) -> int | None:
    for key in ("in_bands", "bands", "mean"):
        v = meta.get(key)
        if v:
            return len(v)
    spec = meta.get("_spec") or {}
    return spec.get("in_channels")


# --------------------------------------------------------------------------------------------------------- helpers


def _sha256(path: Path) -> str | None:
    if path.stat().st_size > _HASH_LIMIT:
        return None
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _file_record(path: Path, role: str, **extra: Any) -> dict[str, Any]:
    st = path.stat()
    rec: dict[str, Any] = {
        "role": role,
        "path": str(path.resolve()),
        "size_bytes": st.st_size,
        "modified": _dt.datetime.fromtimestamp(st.st_mtime, _dt.timezone.utc).isoformat(timespec="seconds"),
        "sha256": _sha256(path),
    }
    if path.suffix.lower() in (".tif", ".tiff"):
        import rasterio

        with rasterio.open(path) as ds:
            rec.update(
                crs=str(ds.crs),
                width=ds.width,
                height=ds.height,
                count=ds.count,
                dtype=ds.dtypes[0],
                pixel_size=[abs(ds.transform.a), abs(ds.transform.e)],
                bounds=list(ds.bounds),
                bands=[d or f"band {i + 1}" for i, d in enumerate(ds.descriptions)],
                generator=ds.tags().get("generator"),
            )
    rec.update(extra)
    return rec


def _software() -> dict[str, Any]:
    import importlib.metadata as md

    out: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in (
        "terracarbon",
        "torch",
        "rasterio",
        "segmentation-models-pytorch",
        "dask",
        "distributed",
        "codecarbon",
    ):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    with contextlib.suppress(Exception):
        import rasterio

        out["gdal"] = rasterio.__gdal_version__
    out["cpu_count"] = os.cpu_count()
    return out


@contextlib.contextmanager
def _tracked(out_dir: Path, enabled: bool, country_iso_code: str) -> Iterator[dict[str, Any]]:
    """track_emissions around the block, imported lazily; a tracking failure never breaks the assessment."""
    holder: dict[str, Any] = {}
    tracker = None
    if enabled:
        try:
            from terracarbon.footprint import track_emissions

            tracker = track_emissions(out_dir, "assess", country_iso_code=country_iso_code)
            tracker.__enter__()
        except Exception as exc:  # noqa: BLE001
            log.warning("emissions tracking unavailable: %s", exc)
            tracker = None
    try:
        yield holder
    finally:
        if tracker is not None:
            try:
                tracker.__exit__(None, None, None)
                holder["result"] = dict(tracker.result or {})
            except Exception as exc:  # noqa: BLE001
                log.warning("emissions tracking failed: %s", exc)


@contextlib.contextmanager
def _client(scheduler: Any) -> Iterator[Any]:
    if scheduler is None:
        yield None
        return
    from terracarbon.raster.predict import dask_client

    with dask_client(scheduler) as client:
        yield client


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


def _band_index(stack: Path, name: str) -> int | None:
    import rasterio

    with rasterio.open(stack) as ds:
        desc = [d or "" for d in ds.descriptions]
    return desc.index(name) + 1 if name in desc else None


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


def _polygon_label(row: Mapping[str, Any], zone: int) -> str:
    for key in ("name", "label", "parcel_id", "id"):
        v = row.get(key)
        if v is not None and str(v) not in ("", "nan", "None"):
            return str(v)
    return f"polygon {zone + 1}"


# ----------------------------------------------------------------------------------------------------------- assess


def assess(
    scene_dir: str | os.PathLike,
    aoi: str | os.PathLike | None = None,
    models: Mapping[str, str | os.PathLike] | None = None,
    out_dir: str | os.PathLike = "assessment",
    *,
    scheduler: Any = None,
    workers: int | None = None,
    inputs: Mapping[str, str | os.PathLike] | None = None,
    layers: Mapping[str, str | os.PathLike] | None = None,
    tile_size: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    backend: str = "eager",
    carbon_fraction: float = 0.47,
    derive_missing: bool = True,
    tree_height_m: float = TREE_HEIGHT_M,
    demo_dir: str | os.PathLike = "demo-output",
    country_iso_code: str = "USA",
    progress: bool = True,
    track: bool = True,
) -> AssessmentResult:
    """Assess a site: map its layers with the available models, compute carbon stocks and class areas inside ``aoi``.

    Args:
        scene_dir: scene folder (``stack.tif``, optional ``aerial.tif``, ``scene.json``, ``aoi.geojson``).
        aoi: GeoJSON / GeoPackage of the area of interest (any CRS; several polygons give per-polygon figures);
            default the scene's ``aoi.geojson``.
        models: ``{layer: checkpoint}`` with layers ``biomass``, ``landcover``, ``tree_cover`` (aliases ``trees``,
            ``land_cover``, ``agb``); None uses :func:`default_models` of ``demo_dir``; ``{}`` runs no model.
        out_dir: the run folder (created); receives ``assessment.json``, ``layers/``, ``aoi.geojson``, emissions.
        scheduler: Dask scheduler for the tiled engine (``"tcp://host:port"``, ``"local:N"`` or a ``Client``).
        workers: shorthand for ``scheduler="local:N"`` (a LocalCluster of N single-threaded worker processes).
        inputs: ``{layer: raster}`` overriding the input a model reads (default: see the module docs).
        layers: ``{layer: GeoTIFF}`` maps already predicted (e.g. the demo's ``agb_map.tif``): copied into the run
            instead of predicting again; the layer's checkpoint in ``models`` (if any) still gives its metadata
            (uncertainty from its metrics, class names, training footprint).
        tile_size, overlap, batch_size, backend: options of :func:`terracarbon.raster.predict.predict_raster`.
        carbon_fraction: carbon share of dry biomass (IPCC default 0.47).
        derive_missing: derive land cover (``LC`` band) and tree cover (``CH`` >= ``tree_height_m``) from the stack
            when no model gives them.
        country_iso_code: electricity grid of the footprint record (codecarbon, offline).
        progress: show rich progress bars. track: record energy / CO2e.

    Returns:
        :class:`AssessmentResult` (``assessment.json`` content in ``.data``).

    Raises:
        InputError: missing scene folder / stack / AOI / checkpoint, AOI outside the rasters, wrong bands.
        ConfigError: unknown layer names, inconsistent options.
    """
    t_start = time.perf_counter()
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    scene_dir = Path(scene_dir)
    if not scene_dir.is_dir():
        raise InputError(scene_dir, "scene folder does not exist")
    stack = scene_dir / "stack.tif"
    if not stack.exists():
        raise InputError(stack, "scene folder has no stack.tif (write one with `terracarbon data synth`)")
    from terracarbon.raster.io import open_raster

    with open_raster(stack):
        pass  # validates: readable, CRS, not truncated
    aoi_path = Path(aoi) if aoi is not None else scene_dir / "aoi.geojson"
    if not aoi_path.exists():
        raise InputError(aoi_path, "AOI file does not exist")
    if workers is not None:
        if int(workers) < 1:
            raise ConfigError("workers must be at least 1")
        if scheduler is not None:
            raise ConfigError("give either a scheduler or a number of workers, not both")
        scheduler = f"local:{int(workers)}"
    if models is None:
        models = default_models(demo_dir)
    models = {layer_name(k): Path(v) for k, v in dict(models).items()}
    inputs = {layer_name(k): Path(v) for k, v in dict(inputs or {}).items()}
    given = {layer_name(k): Path(v) for k, v in dict(layers or {}).items()}
    for path in given.values():
        with open_raster(path):
            pass  # validates: exists, readable, CRS
    metas = {layer: _checkpoint_meta(p) for layer, p in models.items()}
    scene_meta: dict[str, Any] = {}
    if (scene_dir / "scene.json").exists():
        with contextlib.suppress(OSError, ValueError):
            scene_meta = json.loads((scene_dir / "scene.json").read_text())

    run_dir = Path(out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    layers_dir = run_dir / "layers"
    layers_dir.mkdir(exist_ok=True)

    from terracarbon.raster.zonal import read_aoi

    gdf = read_aoi(aoi_path)
    atomic_write_text(run_dir / "aoi.geojson", gdf.to_crs("EPSG:4326").to_json(drop_id=True))

    layers: dict[str, dict[str, Any]] = {}
    skipped: list[dict[str, str]] = []
    used_inputs: dict[str, Path] = {"stack": stack}
    with _tracked(run_dir, track, country_iso_code) as fp:
        # ---- maps given ready-made
        for layer, path in given.items():
            layers[layer] = _given_layer(layer, path, layers_dir, models.get(layer), metas.get(layer) or {})
            used_inputs[f"{layer} map (given)"] = path
        # ---- models through the tiled engine (one Dask client for all layers)
        plan = []
        for layer, ckpt in models.items():
            if layer in given:
                continue
            src, why = _input_for(layer, metas[layer], scene_dir, stack, inputs)
            if src is None:
                skipped.append({"layer": layer, "reason": why})
                continue
            plan.append((layer, ckpt, src))
        with _client(scheduler if plan else None) as client:
            for layer, ckpt, src in plan:
                try:
                    layers[layer] = _predict_layer(
                        layer,
                        ckpt,
                        metas[layer],
                        src,
                        layers_dir,
                        client,
                        tile_size,
                        overlap,
                        batch_size,
                        backend,
                        progress,
                    )
                except InputError as exc:
                    if layer == "biomass":
                        raise
                    skipped.append({"layer": layer, "reason": str(exc)})
                    continue
                used_inputs[f"{layer} input"] = src
        # ---- derived layers
        if derive_missing:
            for layer in ("landcover", "tree_cover"):
                if layer not in layers:
                    entry = _derive_layer(layer, stack, layers_dir, tree_height_m)
                    if entry is not None:
                        layers[layer] = entry
                    elif layer not in {s["layer"] for s in skipped}:
                        skipped.append({"layer": layer, "reason": "no model and no band to derive it from"})
        if "biomass" not in layers and "biomass" not in {s["layer"] for s in skipped}:
            skipped.append({"layer": "biomass", "reason": "no biomass model given or found"})
        # ---- uncertainty, stocks, class areas
        stock = None
        if "biomass" in layers:
            _biomass_std(layers["biomass"], metas.get("biomass", {}), run_dir)
            from terracarbon.carbon import carbon_stock

            cs = carbon_stock(run_dir / layers["biomass"]["path"], aoi_path, carbon_fraction=carbon_fraction)
            stock = cs.to_dict()
            if layers["biomass"].get("uncertainty"):
                stock["uncertainty_model"] = layers["biomass"]["uncertainty"]
        areas: dict[str, Any] = {}
        for layer in ("landcover", "tree_cover"):
            if layer in layers:
                areas[layer] = _class_areas(run_dir / layers[layer]["path"], aoi_path, gdf, layers[layer])
        tree_cover = _tree_summary(layers.get("tree_cover"), areas.get("tree_cover"))

    training = {}
    for layer, ckpt in models.items():
        meta = metas[layer]
        rec = meta.get("footprint")
        side = ckpt.parent / "emissions.json"
        if not rec and side.exists():
            with contextlib.suppress(OSError, ValueError):
                rec = json.loads(side.read_text())
        training[layer] = rec
    data: dict[str, Any] = {
        "format": FORMAT,
        "created": started,
        "wall_time_s": time.perf_counter() - t_start,
        "scene_dir": str(scene_dir.resolve()),
        "scene": {k: scene_meta.get(k) for k in ("generator", "seed", "region", "region_name", "size", "crs")}
        if scene_meta
        else None,
        "aoi": str(aoi_path.resolve()),
        "aoi_polygons": len(gdf),
        "aoi_geojson": "aoi.geojson",
        "options": {
            "scheduler": None if scheduler is None else str(scheduler),
            "workers": workers,
            "tile_size": tile_size,
            "overlap": overlap,
            "batch_size": batch_size,
            "backend": backend,
            "carbon_fraction": carbon_fraction,
            "derive_missing": derive_missing,
            "tree_height_m": tree_height_m,
        },
        "models": {layer: _model_record(models[layer], metas[layer]) for layer in models},
        "layers": layers,
        "skipped": skipped,
        "stock": stock,
        "class_areas": areas,
        "tree_cover": tree_cover,
        "footprint": {"assessment": fp.get("result"), "training": training},
        "provenance": {
            "inputs": [_file_record(p, role) for p, role in _roles(used_inputs).items()]
            + [_file_record(aoi_path, "aoi")]
            + ([_file_record(scene_dir / "scene.json", "scene metadata")] if scene_meta else []),
            "software": _software(),
        },
    }
    json_path = atomic_write_json(run_dir / "assessment.json", data)
    return AssessmentResult(run_dir=run_dir, json_path=json_path, data=json.loads(json_path.read_text()))


def _roles(used: Mapping[str, Path]) -> dict[Path, str]:
    """{path: "role, role"}: one provenance record per file."""
    out: dict[Path, list[str]] = {}
    for role, p in used.items():
        out.setdefault(Path(p).resolve(), []).append(role)
    return {p: ", ".join(r) for p, r in out.items()}


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
    from terracarbon.models.registry import predictor_from_checkpoint
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
    from terracarbon.data.scenes import LC_CLASSES

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


def _class_areas(path: Path, aoi_path: Path, gdf, entry: Mapping[str, Any]) -> dict[str, Any]:
    from terracarbon.raster.zonal import class_areas

    names = {int(k): v for k, v in (entry.get("class_names") or {}).items()} or None
    total = class_areas(path, aoi_path, class_names=names).to_dict()
    polygons = []
    if len(gdf) > 1:
        with tempfile.TemporaryDirectory(prefix="terracarbon-assess-") as tmp:
            for i in range(len(gdf)):
                row = gdf.iloc[i]
                one = Path(tmp) / f"zone{i}.geojson"
                one.write_text(gdf.iloc[[i]].to_crs("EPSG:4326").to_json(drop_id=True))
                try:
                    ca = class_areas(path, one, class_names=names).to_dict()
                except InputError as exc:  # polygon outside the layer
                    ca = {"error": exc.problem}
                polygons.append({"zone": int(row.get("zone", i)), "label": _polygon_label(row, i), **ca})
    return {"total": total, "polygons": polygons}


def _tree_class(entry: Mapping[str, Any]) -> tuple[int, str]:
    names = {int(k): str(v) for k, v in (entry.get("class_names") or {}).items()}
    for k, n in sorted(names.items()):
        low = n.lower()
        if ("tree" in low or "canopy" in low) and not low.startswith(("no", "non")):
            return k, n
    return 1, names.get(1, "1")


def _tree_summary(entry: Mapping[str, Any] | None, areas: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if entry is None or areas is None:
        return None
    _, name = _tree_class(entry)

    def pick(ca: Mapping[str, Any]) -> dict[str, Any] | None:
        if "classes" not in ca:
            return None
        c = ca["classes"].get(name) or {"area_ha": 0.0, "percent": 0.0}
        return {"area_ha": c["area_ha"], "percent": c["percent"], "classified_area_ha": ca["total_area_ha"]}

    tot = pick(areas["total"]) or {"area_ha": 0.0, "percent": 0.0, "classified_area_ha": 0.0}
    return {
        "tree_class": name,
        "source": entry.get("source"),
        **tot,
        "polygons": [{"zone": p["zone"], "label": p["label"], **(pick(p) or {})} for p in areas["polygons"]],
    }


def _model_record(path: Path, meta: Mapping[str, Any]) -> dict[str, Any]:
    metrics = meta.get("metrics") or {}
    rec = {
        "checkpoint": str(path.resolve()),
        "sha256": _sha256(path),
        "size_bytes": path.stat().st_size,
        "task": meta.get("task"),
        "arch": (meta.get("_spec") or {}).get("arch"),
        "bands": meta.get("bands"),
        "class_names": _class_names(meta) or None,
        "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) or v is None},
        "train_scenes": meta.get("train_scenes"),
        "seed": meta.get("seed"),
    }
    card = path.parent / "README.md"
    if card.exists():
        rec["model_card"] = str(card.resolve())
    return rec
