"""Provenance and footprint of an assessment: what went in (files, models, software) and what computing it cost.

:func:`_file_record` describes an input file (path, size, modification time, SHA-256 up to :data:`_HASH_LIMIT`, and
for GeoTIFFs CRS, size, bands); :func:`_model_record` a checkpoint (hash, task, architecture, bands, classes,
held-out metrics, model card); :func:`_software` the versions of the packages involved. :func:`_tracked` measures the
run's own energy and CO2e (:func:`terracarbon.footprint.track_emissions`), and :func:`_training_footprint` collects
the training footprint each model records.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from terracarbon.assess.models import _class_names

log = logging.getLogger(__name__)


_HASH_LIMIT = 1 << 30  # hash input files up to 1 GiB (bigger ones: size and mtime only)


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


def _roles(used: Mapping[str, Path]) -> dict[Path, str]:
    """{path: "role, role"}: one provenance record per file."""
    out: dict[Path, list[str]] = {}
    for role, p in used.items():
        out.setdefault(Path(p).resolve(), []).append(role)
    return {p: ", ".join(r) for p, r in out.items()}


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


def _training_footprint(models: Mapping[str, Path], metas: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Layer -> the training footprint of its model: the checkpoint's ``footprint`` metadata, else the
    ``emissions.json`` beside the checkpoint, else None."""
    training = {}
    for layer, ckpt in models.items():
        meta = metas[layer]
        rec = meta.get("footprint")
        side = ckpt.parent / "emissions.json"
        if not rec and side.exists():
            with contextlib.suppress(OSError, ValueError):
                rec = json.loads(side.read_text())
        training[layer] = rec
    return training


def _provenance(used: Mapping[str, Path], aoi_path: Path, scene_json: Path | None) -> dict[str, Any]:
    """The ``provenance`` record of ``assessment.json``: one record per input file (the rasters read, the AOI, the
    scene metadata when there is one) and the software versions."""
    return {
        "inputs": [_file_record(p, role) for p, role in _roles(used).items()]
        + [_file_record(aoi_path, "aoi")]
        + ([_file_record(scene_json, "scene metadata")] if scene_json is not None else []),
        "software": _software(),
    }
