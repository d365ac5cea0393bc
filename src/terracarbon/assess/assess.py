"""One call that tells what a site holds: biomass, carbon stock, land cover, tree cover, and what computing it cost.

:func:`assess` runs the available models over a scene folder (as :func:`terracarbon.data.synthetic.scenes.make_scene` writes
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

Modules
-------
This module holds :func:`assess` (the orchestration), :class:`AssessmentResult` and :func:`load_assessment`; the
parts live beside it: :mod:`terracarbon.assess.models` (which checkpoint maps which layer),
:mod:`terracarbon.assess.layers` (the layer runners and the biomass uncertainty), :mod:`terracarbon.assess.summary`
(class areas, tree cover, key figures) and :mod:`terracarbon.assess.provenance` (input records, software versions,
energy / CO2e tracking).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from terracarbon.assess.layers import (
    TREE_HEIGHT_M,
    _biomass_std,
    _client,
    _derive_layer,
    _given_layer,
    _input_for,
    _predict_layer,
)
from terracarbon.assess.models import _checkpoint_meta, default_models, layer_name
from terracarbon.assess.provenance import _model_record, _provenance, _tracked, _training_footprint
from terracarbon.assess.summary import _class_areas, _tree_summary, summary_rows
from terracarbon.errors import ConfigError, InputError
from terracarbon.utils import atomic_write_json, atomic_write_text

__all__ = ["FORMAT", "AssessmentResult", "assess", "load_assessment"]

FORMAT = "terracarbon-assessment/1"


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

    training = _training_footprint(models, metas)
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
        "provenance": _provenance(used_inputs, aoi_path, scene_dir / "scene.json" if scene_meta else None),
    }
    json_path = atomic_write_json(run_dir / "assessment.json", data)
    return AssessmentResult(run_dir=run_dir, json_path=json_path, data=json.loads(json_path.read_text()))
