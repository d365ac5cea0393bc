"""Normalisation of the Hub's free-form model metadata: ``co2_eq_emissions``, metrics, domains.

``co2_eq_emissions`` in a model card is supposed to be either a number (grams CO2eq) or a mapping
``{emissions, source, training_type, geographical_location, hardware_used}`` (Hub docs,
``model-cards-co2``). Real cards also carry strings with units (``"0.5 kg"``, ``"12,3 g CO2eq"``),
negative or missing numbers, lists, and mappings without ``emissions``. :func:`normalise_co2` turns
any of these into grams plus a status (``ok`` / ``malformed`` / ``absent``) and a note, so malformed
values are recorded rather than dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

#: grams per unit, for unit strings found in cards (lower case, CO2 suffixes stripped)
UNIT_GRAMS: dict[str, float] = {
    "": 1.0,
    "g": 1.0,
    "gr": 1.0,
    "gram": 1.0,
    "grams": 1.0,
    "mg": 1e-3,
    "kg": 1e3,
    "kgs": 1e3,
    "kilogram": 1e3,
    "kilograms": 1e3,
    "t": 1e6,
    "ton": 1e6,
    "tons": 1e6,
    "tonne": 1e6,
    "tonnes": 1e6,
    "mt": 1e6,
    "lb": 453.59237,
    "lbs": 453.59237,
    "pound": 453.59237,
    "pounds": 453.59237,
}

_NUM_UNIT = re.compile(
    r"^\s*~?\s*(?P<num>[-+]?(?:\d+(?:[.,]\d+)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<unit>[A-Za-z][A-Za-z0-9₂]*)?"
    r"(?P<rest>.*)$"
)

CO2_FIELDS = ("source", "training_type", "geographical_location", "hardware_used")

#: Hub pipeline tags -> application domain, following the study's domains
#: (NLP, Computer Vision, Audio, Multimodal, plus Tabular / Reinforcement Learning / Other).
PIPELINE_DOMAIN: dict[str, str] = {}
for _tag in (
    "text-classification token-classification table-question-answering question-answering "
    "zero-shot-classification translation summarization conversational feature-extraction "
    "text-generation text2text-generation fill-mask sentence-similarity text-ranking "
    "text-retrieval"
).split():
    PIPELINE_DOMAIN[_tag] = "NLP"
for _tag in (
    "image-classification object-detection image-segmentation depth-estimation image-to-image "
    "unconditional-image-generation video-classification zero-shot-image-classification "
    "mask-generation zero-shot-object-detection image-feature-extraction keypoint-detection "
    "image-to-3d text-to-3d"
).split():
    PIPELINE_DOMAIN[_tag] = "Computer Vision"
for _tag in (
    "automatic-speech-recognition audio-classification text-to-speech text-to-audio "
    "audio-to-audio voice-activity-detection"
).split():
    PIPELINE_DOMAIN[_tag] = "Audio"
for _tag in (
    "image-to-text text-to-image visual-question-answering document-question-answering "
    "image-text-to-text text-to-video video-text-to-text any-to-any visual-document-retrieval"
).split():
    PIPELINE_DOMAIN[_tag] = "Multimodal"
for _tag in ("tabular-classification", "tabular-regression", "time-series-forecasting"):
    PIPELINE_DOMAIN[_tag] = "Tabular"
PIPELINE_DOMAIN["reinforcement-learning"] = "Reinforcement Learning"
PIPELINE_DOMAIN["robotics"] = "Reinforcement Learning"


def _finite(x: Any) -> float | None:
    if isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def parse_grams(value: Any, unit: str | None = None) -> tuple[float | None, str | None]:
    """Parse an emissions value (number or string with unit) into grams.

    Returns ``(grams, None)`` on success or ``(None, problem)``.
    """
    if value is None:
        return None, "emissions value missing"
    if isinstance(value, bool):
        return None, f"emissions value is a boolean ({value!r})"
    if isinstance(value, (int, float)):
        grams = _finite(value)
        if grams is None:
            return None, f"emissions value is not finite ({value!r})"
        factor = 1.0
        if unit:
            key = _unit_key(unit)
            if key not in UNIT_GRAMS:
                return None, f"unknown emissions unit {unit!r}"
            factor = UNIT_GRAMS[key]
        grams *= factor
    elif isinstance(value, str):
        m = _NUM_UNIT.match(value)
        if not m:
            return None, f"emissions string has no number ({value[:60]!r})"
        num = m.group("num")
        if "," in num and "." not in num:
            num = num.replace(",", ".")
        grams = _finite(num)
        if grams is None:
            return None, f"emissions value is not a number ({value[:60]!r})"
        key = _unit_key((m.group("unit") or unit or "").replace("₂", "2"))
        if key not in UNIT_GRAMS:
            return None, f"unknown emissions unit in {value[:60]!r}"
        grams *= UNIT_GRAMS[key]
    else:
        return None, f"emissions value has type {type(value).__name__}"
    if grams < 0:
        return None, f"negative emissions ({value!r})"
    return grams, None


def _unit_key(unit: str) -> str:
    u = unit.strip().lower()
    for suffix in ("co2eq", "co2e", "co2", "eq"):
        if u.endswith(suffix) and len(u) > len(suffix):
            u = u[: -len(suffix)]
            break
        if u == suffix:
            return ""
    return u.strip()


def normalise_co2(card_data: Any) -> dict[str, Any]:
    """Extract and normalise ``co2_eq_emissions`` from a card's metadata dict.

    Returns a dict with ``co2_status`` (``"absent"``, ``"ok"`` or ``"malformed"``), ``co2_g``
    (grams, ``None`` unless ok), ``co2_note`` (problem description), ``co2_raw`` (the original
    value) and the four context fields ``source, training_type, geographical_location,
    hardware_used`` (strings or ``None``).
    """
    out: dict[str, Any] = {
        "co2_status": "absent",
        "co2_g": None,
        "co2_note": None,
        "co2_raw": None,
        **{f: None for f in CO2_FIELDS},
    }
    if not isinstance(card_data, Mapping):
        if card_data not in (None, "", {}):
            out["co2_note"] = f"card metadata is not a mapping ({type(card_data).__name__})"
        return out
    if "co2_eq_emissions" not in card_data:
        return out
    raw = card_data["co2_eq_emissions"]
    out["co2_raw"] = raw
    if isinstance(raw, Mapping):
        for f in CO2_FIELDS:
            v = raw.get(f)
            if v not in (None, ""):
                out[f] = v if isinstance(v, str) else str(v)
        if "emissions" not in raw:
            out["co2_status"] = "malformed"
            out["co2_note"] = "mapping without 'emissions'"
            return out
        grams, problem = parse_grams(raw.get("emissions"), unit=raw.get("unit") or raw.get("units"))
    elif isinstance(raw, list) and len(raw) == 1:
        grams, problem = parse_grams(raw[0])
    else:
        grams, problem = parse_grams(raw)
    if problem:
        out["co2_status"] = "malformed"
        out["co2_note"] = problem
    else:
        out["co2_status"] = "ok"
        out["co2_g"] = grams
    return out


def normalise_training_type(value: Any) -> str:
    """Map free-text training types to the study's categories: fine-tuning / pretraining / Not Specified."""
    if not isinstance(value, str) or not value.strip():
        return "Not Specified"
    v = value.lower()
    if "fine" in v:
        return "fine-tuning"
    if "pre" in v:
        return "pretraining"
    return "Not Specified"


def normalise_source(value: Any, auto: bool = False) -> str:
    """Map free-text emission sources to the study's categories (AutoTrain, Code Carbon, MLCO2...)."""
    if auto:
        return "AutoTrain"
    if not isinstance(value, str) or not value.strip():
        return "Not Specified"
    v = value.lower()
    if "autotrain" in v or "autonlp" in v:
        return "AutoTrain"
    if "codecarbon" in v or "code carbon" in v:
        return "Code Carbon"
    if "mlco2" in v or "ml co2" in v or "ml-co2" in v:
        return "MLCO2"
    if "google cloud" in v:
        return "Google Cloud Footprint"
    if "bloom" in v or "paper" in v or "article" in v or "arxiv" in v:
        return "Article"
    return "Not Specified"


def domain_of(pipeline_tag: Any, tags: Any = None) -> str:
    """Application domain from the pipeline tag (falling back to tags); ``"Not Specified"`` if unknown."""
    if isinstance(pipeline_tag, str) and pipeline_tag in PIPELINE_DOMAIN:
        return PIPELINE_DOMAIN[pipeline_tag]
    domains = {PIPELINE_DOMAIN[t] for t in (tags or []) if isinstance(t, str) and t in PIPELINE_DOMAIN}
    if len(domains) == 1:
        return domains.pop()
    if "Multimodal" in domains:
        return "Multimodal"
    return "Not Specified"


#: metric names the study extracted from model-index for its performance score
STUDY_METRICS = ("accuracy", "f1", "rouge1", "rougeL")


def _metric_value(v: Any, name: str) -> float | None:
    if isinstance(v, str):
        s = v.strip().rstrip("%").replace(",", ".")
        f = _finite(s)
        if f is not None and v.strip().endswith("%"):
            f /= 100.0
    else:
        f = _finite(v)
    if f is None:
        return None
    if name in ("accuracy", "f1") and f > 1:
        f /= 100.0  # percentages, as the study normalised them
    return f


def extract_metrics(card_data: Any) -> dict[str, float]:
    """Accuracy / F1 / ROUGE-1 / ROUGE-L from the card's ``model-index`` (first result), as in the study."""
    out: dict[str, float] = {}
    if not isinstance(card_data, Mapping):
        return out
    mi = card_data.get("model-index") or card_data.get("model_index")
    if isinstance(mi, list):
        mi = mi[0] if mi else None
    if not isinstance(mi, Mapping):
        return out
    results = mi.get("results")
    if not isinstance(results, list):
        return out
    for res in results:
        if not isinstance(res, Mapping) or not isinstance(res.get("metrics"), list):
            continue
        for m in res["metrics"]:
            if not isinstance(m, Mapping):
                continue
            mtype = str(m.get("type") or m.get("name") or "").strip()
            key = {"accuracy": "accuracy", "f1": "f1", "rouge1": "rouge1", "rougel": "rougeL"}.get(
                mtype.lower().replace("-", "").replace("_", "")
            )
            if key and key not in out:
                val = _metric_value(m.get("value"), key)
                if val is not None:
                    out[key] = val
    return out
