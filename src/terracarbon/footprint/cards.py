"""Hugging Face model cards (``README.md`` with YAML metadata) for exported terracarbon models.

The YAML header follows the Hub's model-card metadata schema
(https://huggingface.co/docs/hub/model-cards, ``modelcard.md`` in huggingface/hub-docs), in particular

.. code-block:: yaml

    co2_eq_emissions:
      emissions: 12.3            # grams of CO2eq
      source: codecarbon
      training_type: fine-tuning # or pre-training
      geographical_location: USA
      hardware_used: 2 x AMD EPYC, 24 GB RAM

plus ``license``, ``datasets``, ``metrics`` (metric ids), ``tags``, ``pipeline_tag``, ``library_name``
and a ``model-index`` holding the metric values. The metadata is produced by
:class:`huggingface_hub.ModelCardData`, so :meth:`huggingface_hub.ModelCard.load` reads it back to
the same dict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._compat import ConfigError, InputError, write_text_atomic

_TRAINING_TYPES = {
    "pretraining": "pre-training",
    "pre-training": "pre-training",
    "pre_training": "pre-training",
    "finetuning": "fine-tuning",
    "fine-tuning": "fine-tuning",
    "fine_tuning": "fine-tuning",
    "training": "training",
}


def normalise_training_type(value: str | None) -> str | None:
    """Map spellings such as ``"pretraining"``/``"fine_tuning"`` to the Hub's ``pre-training``/``fine-tuning``."""
    if value is None:
        return None
    key = str(value).strip().lower().replace(" ", "-")
    return _TRAINING_TYPES.get(key, str(value).strip())


def _flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (metrics or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten_metrics(value, prefix=f"{name}."))
            continue
        if isinstance(value, bool):
            continue
        try:
            f = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(f):
            out[name] = f
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def build_card_data(
    *,
    model_id: str,
    emissions_g: float | None,
    training_type: str | None,
    location: str | None,
    hardware: str | None,
    datasets: Sequence[str] | str | None,
    metrics: Mapping[str, Any] | None,
    license: str = "apache-2.0",
    pipeline_tag: str | None = None,
    tags: Iterable[str] = (),
    source: str = "codecarbon",
    library_name: str | None = "pytorch",
    base_model: str | None = None,
):
    """Build the :class:`huggingface_hub.ModelCardData` of a card (see :func:`write_model_card`)."""
    from huggingface_hub import EvalResult, ModelCardData

    if isinstance(datasets, str):
        datasets = [datasets]
    datasets = [str(d) for d in (datasets or [])]
    flat = _flatten_metrics(metrics or {})
    co2: dict[str, Any] | None = None
    if emissions_g is not None:
        try:
            grams = float(emissions_g)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"model card for {model_id}: emissions_g must be a number, got {emissions_g!r}"
            ) from exc
        co2 = {"emissions": grams, "source": source}
        if training_type:
            co2["training_type"] = normalise_training_type(training_type)
        if location:
            co2["geographical_location"] = str(location)
        if hardware:
            co2["hardware_used"] = str(hardware)
    eval_results = None
    if flat:
        ds = datasets[0] if datasets else "unspecified"
        eval_results = [
            EvalResult(
                task_type=pipeline_tag or "other",
                dataset_type=ds,
                dataset_name=ds,
                metric_type=name,
                metric_value=value,
                metric_name=name,
            )
            for name, value in flat.items()
        ]
    tag_list = ["terracarbon", *[str(t) for t in tags]]
    kwargs: dict[str, Any] = {}
    if co2 is not None:
        kwargs["co2_eq_emissions"] = co2
    return ModelCardData(
        license=license,
        library_name=library_name,
        pipeline_tag=pipeline_tag,
        tags=list(dict.fromkeys(tag_list)),
        datasets=datasets or None,
        metrics=list(flat) or None,
        base_model=base_model,
        model_name=model_id,
        eval_results=eval_results,
        **kwargs,
    )


def write_model_card(
    out_dir: str | Path,
    *,
    model_id: str,
    emissions_g: float | None,
    training_type: str | None,
    location: str | None,
    hardware: str | None,
    datasets: Sequence[str] | str | None,
    metrics: Mapping[str, Any] | None,
    license: str = "apache-2.0",
    pipeline_tag: str | None = None,
    tags: Iterable[str] = (),
    extra_text: str = "",
    source: str = "codecarbon",
    library_name: str | None = "pytorch",
    base_model: str | None = None,
    footprint: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``out_dir/README.md``: a Hub model card whose YAML carries ``co2_eq_emissions``.

    Args:
        out_dir: folder of the exported checkpoint (created if missing).
        model_id: model name (also the ``model-index`` name).
        emissions_g: training emissions in grams CO2eq (e.g. ``track_emissions(...).result["emissions_g"]``);
            ``None`` omits the ``co2_eq_emissions`` block.
        training_type: ``"pre-training"`` or ``"fine-tuning"`` (other spellings normalised).
        location: ``geographical_location`` (e.g. the ISO3 grid code used by the tracker).
        hardware: ``hardware_used`` (e.g. ``result["hardware"]``).
        datasets: dataset ids used for training.
        metrics: evaluation metrics; numeric leaves (nested dicts flattened as ``a.b``) go into
            ``metrics`` and ``model-index``; everything is listed in the card body.
        license: SPDX-like Hub licence id.
        pipeline_tag: Hub pipeline tag (e.g. ``"image-segmentation"``), also the model-index task type.
        tags: extra tags (``terracarbon`` is always added).
        extra_text: Markdown appended to the body.
        source: ``co2_eq_emissions.source`` (default ``"codecarbon"``).
        library_name: Hub ``library_name``.
        base_model: optional base model id.
        footprint: optional full tracking result (energy, method...) rendered in the body.

    Returns:
        The path of the written ``README.md`` (written atomically).
    """
    from huggingface_hub import ModelCard

    data = build_card_data(
        model_id=model_id,
        emissions_g=emissions_g,
        training_type=training_type,
        location=location,
        hardware=hardware,
        datasets=datasets,
        metrics=metrics,
        license=license,
        pipeline_tag=pipeline_tag,
        tags=tags,
        source=source,
        library_name=library_name,
        base_model=base_model,
    )
    body = [f"# {model_id}", "", "Model trained and exported with terracarbon.", ""]
    body += ["## Training footprint", ""]
    if emissions_g is None:
        body.append("Emissions were not measured for this model.")
    else:
        body.append("| field | value |")
        body.append("|---|---|")
        body.append(f"| emissions (g CO2eq) | {_fmt(float(emissions_g))} |")
        body.append(f"| source | {source} |")
        for label, value in (
            ("training type", normalise_training_type(training_type)),
            ("geographical location", location),
            ("hardware used", hardware),
        ):
            if value:
                body.append(f"| {label} | {value} |")
        if footprint:
            for key, label in (
                ("energy_kwh", "energy (kWh)"),
                ("duration_s", "duration (s)"),
                ("method", "measurement method"),
                ("carbon_intensity_g_per_kwh", "grid carbon intensity (g/kWh)"),
            ):
                if footprint.get(key) is not None:
                    body.append(f"| {label} | {_fmt(footprint[key])} |")
    body.append("")
    if metrics:
        body += ["## Evaluation", "", "| metric | value |", "|---|---|"]
        for name, value in _flatten_metrics(metrics).items():
            body.append(f"| {name} | {_fmt(value)} |")
        body.append("")
    if datasets:
        ds = [datasets] if isinstance(datasets, str) else list(datasets)
        body += ["## Data", "", *[f"- {d}" for d in ds], ""]
    if extra_text:
        body += [extra_text.rstrip(), ""]
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)
    card = ModelCard(content)
    path = Path(out_dir) / "README.md"
    return write_text_atomic(path, str(card))


def read_model_card(path: str | Path) -> dict[str, Any]:
    """Parse a model card (file or folder with ``README.md``) with huggingface_hub; return its metadata dict.

    Raises:
        InputError: file missing or its YAML header is not valid model-card metadata.
    """
    from huggingface_hub import ModelCard

    p = Path(path)
    if p.is_dir():
        p = p / "README.md"
    if not p.is_file():
        raise InputError(p, "model card not found")
    try:
        card = ModelCard.load(p)
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises several types
        raise InputError(p, f"invalid model card metadata ({exc})") from exc
    return card.data.to_dict()
