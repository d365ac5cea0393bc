"""From a portable checkpoint to the engine's :class:`~terracarbon.raster.predict.TilePredictor`.

The adapter between ``models/`` (what a checkpoint holds) and the tiled engine (how it reads a raster):

* :func:`predictor_from_checkpoint` / :func:`predictor_from_loaded` choose ``finalize`` by the checkpoint's task
  (regression: band 1 rescaled; segmentation: paletted argmax classes);
* :func:`resolve_in_bands` selects the model's bands from any stack by name (band descriptions), so a stack with
  other or more bands predicts the same map;
* :func:`check_input_units` warns when the stack's ``TERRACARBON_UNITS`` tag differs from the model's inputs;
* :func:`predict_checkpoint` — checkpoint + raster -> map, the one entry point every domain's ``predict`` uses.

It lives on the engine's side so that ``models/`` never imports ``raster/`` (one-way imports).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from torch import nn

from terracarbon.errors import InputError
from terracarbon.models.registry import load_checkpoint
from terracarbon.raster.predict import TilePredictor, predict_raster


def predictor_from_checkpoint(path: str | Path, **overrides: Any):
    """A :class:`~terracarbon.raster.predict.TilePredictor` for a checkpoint, with ``finalize`` chosen by its task.

    ``meta["task"] == "regression"`` keeps band 1 (and undoes ``meta["target_scale"]``/``target_offset``);
    ``"segmentation"`` writes the argmax class as a paletted uint8 map with class names. ``stack=PATH`` selects the
    model's bands from that raster by name (:func:`resolve_in_bands`).
    """
    model, _, meta = load_checkpoint(path)
    return predictor_from_loaded(
        model, meta, onnx_cache=Path(path).with_suffix(".onnx"), source=path, **overrides
    )


def predictor_from_loaded(
    model: nn.Module,
    meta: dict[str, Any],
    *,
    source: str | Path | None = None,
    stack: str | Path | None = None,
    **overrides: Any,
):
    """Like :func:`predictor_from_checkpoint`, for a model and meta already loaded (no second read of the file).

    With ``stack`` (the raster to predict) and no ``in_bands`` override, the bands the model reads are chosen from the
    stack's band descriptions by the model's band names (:func:`resolve_in_bands`), and a units mismatch warns
    (:func:`check_input_units`).
    """
    task = meta.get("task", "regression")
    in_bands = meta.get("in_bands")
    if stack is not None and "in_bands" not in overrides:
        in_bands = resolve_in_bands(meta, stack, checkpoint=source)
        check_input_units(meta, stack, checkpoint=source)
    common = {
        "in_bands": in_bands,
        "mean": meta.get("mean"),
        "std": meta.get("std"),
        "onnx_cache": None,
    }
    common.update({k: v for k, v in overrides.items() if k in common})
    rest = {k: v for k, v in overrides.items() if k not in common}
    if task == "regression":
        return TilePredictor.for_regression(
            model,
            scale=meta.get("target_scale", 1.0),
            offset=meta.get("target_offset", 0.0),
            clip_min=meta.get("clip_min", 0.0),
            band_name=meta.get("target_name", "agb_mg_per_ha"),
            **common,
            **rest,
        )
    if task == "segmentation":
        return TilePredictor.for_segmentation(
            model,
            class_names=meta["class_names"],
            colormap=meta.get("colormap"),
            **common,
            **rest,
        )
    raise InputError(source, f"task {task!r} cannot be predicted tile by tile with this engine")


# --------------------------------------------------------------------------------------------------- bands by name


class UnitsWarning(UserWarning):
    """A stack's ``TERRACARBON_UNITS`` differs from the units the model was trained on."""


def _described(descriptions) -> bool:
    return bool(descriptions) and all(d for d in descriptions)


def resolve_in_bands(
    meta: dict[str, Any], stack: str | Path, *, checkpoint: str | Path | None = None
) -> list[int] | None:
    """The 1-based bands of ``stack`` a model reads, found by the model's band names (``meta["bands"]``).

    * A stack whose bands all carry descriptions: each model band is looked up by name (exact, then ignoring case),
      so another order or extra bands do not matter. A missing band is an :class:`InputError` naming the stack and the
      band (with a hint when it is an HLS/Sentinel-2 alias such as ``BLUE`` = ``B02``). A stack where *no* model band
      name occurs, read by a checkpoint with explicit ``in_bands`` (RGB orthophoto models), keeps those positions.
    * A stack without descriptions: today's positional behaviour, ``meta["in_bands"]`` or all bands; the band count
      must then equal the model's when it has no ``in_bands``.
    * A model without band names: ``meta["in_bands"]`` unchanged.
    """
    from terracarbon.raster.io import open_raster

    names = [str(b) for b in (meta.get("bands") or [])]
    in_bands = meta.get("in_bands")
    if not names:
        return None if in_bands is None else list(in_bands)
    with open_raster(stack, require_crs=False) as ds:
        descs = [d or "" for d in ds.descriptions]
        count = ds.count
    if not _described(descs):
        if in_bands is None and count != len(names):
            raise InputError(
                stack,
                f"has {count} band(s) without names, but the model reads {len(names)} ({', '.join(names)}); "
                "name the bands (band descriptions) or give a stack with exactly these bands in this order",
            )
        return None if in_bands is None else list(in_bands)
    exact = {}
    folded = {}
    for i, d in enumerate(descs, start=1):
        exact.setdefault(d, i)
        folded.setdefault(d.upper(), i)
    picked: list[int] = []
    missing: list[str] = []
    for n in names:
        i = exact.get(n) or folded.get(n.upper())
        if i is None:
            missing.append(n)
        else:
            picked.append(i)
    if not missing:
        return picked
    if len(missing) == len(names) and in_bands is not None and count >= max(in_bands):
        return list(in_bands)
    raise InputError(
        stack,
        f"has no band {', '.join(missing)} that the model{_of(checkpoint)} needs "
        f"(it needs {', '.join(names)}; the stack has {', '.join(descs)}){_alias_hint(missing, descs)}",
    )


def _of(checkpoint) -> str:
    return f" {Path(checkpoint).name}" if checkpoint is not None else ""


def _alias_hint(missing: list[str], descs: list[str]) -> str:
    from terracarbon.data.sentinel2 import HLS_S30_NAMES

    have = {d.upper() for d in descs}
    pairs = [f"{m}={HLS_S30_NAMES[m.upper()]}" for m in missing if HLS_S30_NAMES.get(m.upper()) in have]
    if not pairs:
        return ""
    return (
        f"; the stack has them under Sentinel-2 names ({', '.join(pairs)}): rebuild it with "
        f"`terracarbon data stack --bands {','.join(missing)} ...`"
    )


def check_input_units(meta: dict[str, Any], stack: str | Path, *, checkpoint: str | Path | None = None) -> bool:
    """Warn (:class:`UnitsWarning`, one line) when the checkpoint's ``input_units`` differ from the stack's
    ``TERRACARBON_UNITS`` tag; True when they differ. Either side missing: no warning."""
    import warnings

    import rasterio

    want = meta.get("input_units")
    if not want or not isinstance(want, str):
        return False
    with rasterio.open(stack) as ds:
        have = ds.tags().get("TERRACARBON_UNITS")
    if not have or have.strip().lower() == want.strip().lower():
        return False
    warnings.warn(
        f"{stack}: the stack's units are {have} (TERRACARBON_UNITS) but the model{_of(checkpoint)} was trained on "
        f"{want} inputs; rebuild the stack with `terracarbon data stack --units {want}`",
        UnitsWarning,
        stacklevel=2,
    )
    return True


def predict_checkpoint(
    checkpoint: str | Path,
    src_path: str | Path,
    dst_path: str | Path,
    *,
    validate: Callable[[dict[str, Any], dict[str, Any]], Mapping[str, Any] | None] | None = None,
    tags: Mapping[str, Any] | None = None,
    track: bool = True,
    run_dir: str | Path | None = None,
    run_name: str = "predict",
    **engine_kwargs: Any,
) -> Path:
    """Predict a raster with a terracarbon checkpoint: the one entry point every domain's ``predict`` uses.

    Loads the checkpoint once, lets ``validate(spec, meta)`` reject a model of the wrong kind (raise
    :class:`InputError`; it may return extra output tags), builds its :class:`~terracarbon.raster.predict.TilePredictor` (finalize chosen by the checkpoint's task), adds ``tags`` to
    the output, and runs :func:`predict_raster` (``engine_kwargs``: tile_size, overlap, batch_size, backend, resume,
    progress_bar, scheduler, device, on_strip) with the run's energy and CO2e recorded in ``run_dir`` (default
    ``<dst folder>/<dst stem>.run/``).
    """
    from terracarbon.footprint.track import tracked

    checkpoint, dst_path = Path(checkpoint), Path(dst_path)
    model, spec, meta = load_checkpoint(checkpoint)
    extra = (validate(spec, meta) if validate is not None else None) or {}
    predictor = predictor_from_loaded(  # bands selected from the input by name
        model, meta, onnx_cache=checkpoint.with_suffix(".onnx"), source=checkpoint, stack=src_path
    )
    predictor.tags = {**dict(predictor.tags), "model": checkpoint.name, **dict(tags or {}), **dict(extra)}
    rd = Path(run_dir) if run_dir is not None else dst_path.parent / f"{dst_path.stem}.run"
    with tracked(rd, run_name, enabled=track):
        return predict_raster(predictor, src_path, dst_path, **engine_kwargs)
