"""The mining study's two classifications: reporting practice and carbon efficiency.

Study: J. Castaño, S. Martínez-Fernández, X. Franch, J. Bogner, "Exploring the Carbon Footprint of
Hugging Face's ML Models: A Repository Mining Study", ESEM 2023, arXiv:2305.11164. Replication
package: github.com/GAISSA-UPC/ML-EnergyLabel (commit fb434f2). Both classifications below follow
that package's code, quirks included; ``faithful=False`` (CLI ``--corrected``) applies the fixes.

"CO2e reported" (:func:`co2_from_card`, ``code/Preprocessing/HFPreprocessing.ipynb`` cells 6-7)
    The card metadata's ``co2_eq_emissions``; when it is missing, the value after
    ``Carbon Emitted:`` in the card *text* (regex ``extract_context_info``), unless that value
    contains "unknown"/"needed". The value is then reduced to its leading number
    (``harmonize_co2``, units ignored); a model reports CO2e when a number results
    (``co2_reported = co2_eq_emissions not null``). ``hardware_used`` is filled the same way from
    ``Hardware Type:`` in the text. Metadata values with units are converted to grams by
    :func:`terracarbon.footprint.normalise.parse_grams` (the study took the number only).

Reporting-practice classes (:func:`reporting_class`, ``code/Analysis/HFReportingAnalysis.ipynb``,
cell 35 "Energy reporting classification")
    * Unknown Energy Efficiency — no CO2e reported and no hardware;
    * Context Reporting — hardware only;
    * Basic Energy Reporting — CO2e, no hardware;
    * Energy Awareness — CO2e and hardware;
    * Energy Optimization — CO2e and an ``optimized`` / ``pruned`` / ``distilled`` tag;
    * Certified Energy Efficiency — that, plus an ``EcoCard`` tag.

    Quirk kept by default (``faithful=True``): in the notebook the two last branches come after
    the ``Basic``/``Awareness`` branches, which already cover every reporting model, and the tags
    they test are the *names* of the one-hot ``is_*`` columns; so they are never reached — the
    published counts (cell 39) hold only the first four classes. ``faithful=False`` tests the
    optimisation / EcoCard tags first (case-insensitive, tags as the Hub lists them).

Carbon-efficiency label (:func:`efficiency_labels`, ``app/energy_label.py`` and
``code/Analysis/HFEmissionsAnalysis.ipynb`` cells 41-42)
    * computed over the models that report CO2e (``df[df['co2_reported'] == True]``), every row
      of the input (HFCO2.csv repeats a few ids; the package keeps them);
    * five metrics with weights ``co2_eq_emissions`` 0.35, ``size_efficency`` 0.10,
      ``datasets_size_efficency`` 0.10, ``downloads`` 0.25, ``performance_score`` 0.20, where
      ``size_efficency = size / co2`` and ``datasets_size_efficency = datasets_size / co2``;
      higher is better for all but ``co2_eq_emissions``;
    * each value becomes an *index* relative to the reference model ``distilgpt2`` (its first
      row; a missing reference value is replaced by the metric's median): ``value / ref`` when
      higher is better, else ``ref / value`` — in float64, so a zero emission gives an infinite
      index (class A);
    * per-metric boundaries are percentiles of the indices over those models: 20/40/60/80 %
      (``downloads``: 60/85/94/96 %); for ``co2_eq_emissions`` the percentiles are taken of the
      *square root* of the index, but the raw index is compared against them (quirk, kept when
      ``faithful=True``; ``faithful=False`` takes the square root on both sides);
    * an index in ``(b_i, b_{i-1}]`` gets rating ``i`` (0 = A ... 4 = E; above the top boundary
      = A, anything else = E); the label is the weighted mean of the available ratings (weights
      renormalised), rounded half to even, mapped to ``A``-``E``.

    On the package's ``datasets/HFCO2.csv`` (1,419 rows) this gives C 826, B 486, D 55, A 37,
    E 15 — the counts of ``HFEmissionsAnalysis.ipynb`` cell 42.

``context_completeness`` (extra column, terracarbon's own)
    How many of the Hub schema's context fields (``source, training_type,
    geographical_location, hardware_used``) a reporting model gives: ``complete`` / ``partial`` /
    ``emissions only`` / ``malformed`` / ``not reported``. Not part of the study.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._compat import ConfigError, InputError, atomic_path
from .normalise import STUDY_METRICS, normalise_source, normalise_training_type, parse_grams

#: weights of the study's energy-efficiency label (replication code, ``METRIC_WEIGHTS``)
METRIC_WEIGHTS: dict[str, float] = {
    "co2_eq_emissions": 0.35,
    "size_efficency": 0.1,
    "datasets_size_efficency": 0.1,
    "downloads": 0.25,
    "performance_score": 0.2,
}
HIGHER_BETTER = ("performance_score", "size_efficency", "datasets_size_efficency", "downloads")
#: percentiles of the class boundaries per metric
PERCENTILES: dict[str, list[float]] = {
    "co2_eq_emissions": [20, 40, 60, 80],
    "size_efficency": [20, 40, 60, 80],
    "datasets_size_efficency": [20, 40, 60, 80],
    "downloads": [60, 85, 94, 96],
    "performance_score": [20, 40, 60, 80],
}
LABELS = "ABCDE"
REFERENCE_MODEL = "distilgpt2"
#: distilgpt2's values in the study's data set (HFCO2.csv), used when the reference model is absent
STUDY_REFERENCE: dict[str, float] = {
    "co2_eq_emissions": 149200.0,
    "size_efficency": 2364.837238605898,
    "datasets_size_efficency": 266551.5743699732,
    "downloads": 1172830.0,
    "performance_score": float("nan"),  # replaced by the median, as in the replication code
}

#: the study's reporting-practice classes (HFReportingAnalysis.ipynb cell 35), lowest to highest
REPORTING_CLASSES = (
    "Unknown Energy Efficiency",
    "Context Reporting",
    "Basic Energy Reporting",
    "Energy Awareness",
    "Energy Optimization",
    "Certified Energy Efficiency",
)
#: tags that make a reporting model "Energy Optimization" (cell 35, ``is_optimized``)
OPTIMIZATION_TAGS = ("optimized", "pruned", "distilled")
#: the tag of "Certified Energy Efficiency" (cell 35)
CERTIFICATION_TAG = "EcoCard"
#: terracarbon's context-completeness classes (not the study's)
COMPLETENESS_CLASSES = ("complete", "partial", "emissions only", "malformed", "not reported")
CONTEXT_FIELDS = ("source", "training_type", "geographical_location", "hardware_used")

#: columns of the normalised records table (:func:`load_records`)
RECORD_COLUMNS = (
    "model_id",
    "co2_reported",
    "co2_status",
    "co2_eq_emissions",
    "source",
    "training_type",
    "training_type_raw",
    "geographical_location",
    "hardware_used",
    "has_source",
    "has_training_type",
    "has_geographical_location",
    "has_hardware_used",
    "tags",
    "domain",
    "library_name",
    "libraries",
    "downloads",
    "likes",
    "size",
    "datasets",
    "datasets_size",
    "performance_score",
    "accuracy",
    "f1",
    "rouge1",
    "rougeL",
    "created_at",
    "auto",
    "autotrain_flag",
    "size_efficency",
    "datasets_size_efficency",
)

#: HFPreprocessing.ipynb cell 6, ``extract_context_info``: the card-text patterns the study used
CARD_TEXT_PATTERNS: dict[str, str] = {
    "hardware_used": r"[-*]*\s*(?:hardware|Hardware)(?:\s*[Tt]ype)*\s*[:]+\s*(.+)",
    "geographical_location": r"[-*]*\s*[Cc]ompute [Rr]egion\s*[:]+\s*(.+)",
    "co2_eq_emissions": r"[-*]*\s*[Cc]arbon [Ee]mitted\s*[:]+\s*(.+)",
}
#: values the study discards when parsed from the card text (``null_phrases``)
NULL_PHRASES = ("Unknown", "unknown", "needed", "Needed")
_LEADING_NUMBER = re.compile(r"\d+\.\d+|\d+")


# --------------------------------------------------------------------------------------------
# "CO2e reported" (HFPreprocessing.ipynb)
# --------------------------------------------------------------------------------------------
def parse_card_text(text: Any) -> dict[str, str | None]:
    """The context values the study read from a model card's Markdown text.

    ``HFPreprocessing.ipynb`` cell 6 (``extract_context_info``): first match, case-insensitive, of
    ``Carbon Emitted:``, ``Hardware Type:`` and ``Compute Region:`` lines; a value containing
    "unknown"/"needed" is dropped (``context_metrics_treatment``). Returns ``None`` per missing key.
    """
    out: dict[str, str | None] = {k: None for k in CARD_TEXT_PATTERNS}
    if not isinstance(text, str) or not text:
        return out
    for key, pattern in CARD_TEXT_PATTERNS.items():
        m = re.search(pattern, text, flags=re.IGNORECASE)
        value = m.group(1) if m else None
        if value is not None and not any(p in value for p in NULL_PHRASES):
            out[key] = value
    return out


def harmonize_co2(value: Any) -> float | None:
    r"""The study's number from a CO2e value: floats kept, strings reduced to their leading number.

    ``HFPreprocessing.ipynb`` cell 6, ``harmonize_co2`` (``re.match(r'\d+\.\d+|\d+')``: anchored at
    the start, units ignored); ``None`` when there is no number.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        f = float(value)
        return None if math.isnan(f) else f
    m = _LEADING_NUMBER.match(str(value))
    return float(m.group(0)) if m else None


def co2_from_card(metadata_grams: float | None, card_text: Any = None) -> tuple[float | None, str]:
    """CO2e (grams) a model reports, as the study defines it, and where it came from.

    ``metadata_grams`` is the usable ``co2_eq_emissions`` of the card metadata (``None`` when
    absent or malformed); otherwise the ``Carbon Emitted:`` value of ``card_text``
    (:func:`parse_card_text` + :func:`harmonize_co2`). Returns ``(grams, "metadata" | "card text" |
    "none")``.
    """
    if metadata_grams is not None and not (isinstance(metadata_grams, float) and math.isnan(metadata_grams)):
        return float(metadata_grams), "metadata"
    raw = parse_card_text(card_text)["co2_eq_emissions"]
    grams = harmonize_co2(raw)
    if grams is None:
        return None, "none"
    # a unit after the number is honoured where terracarbon understands it (the study ignored it)
    converted, problem = parse_grams(raw)
    return (converted if problem is None else grams), "card text"


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def _present(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, float) and math.isnan(v):
        return False
    s = str(v).strip()
    return bool(s) and s.lower() not in ("not specified", "nan", "none", "unknown", "n/a", "null")


def _given(v: Any) -> bool:
    """A value the study counts as given (``pd.notna``); the CSVs' fill value "Not Specified" is not."""
    if v is None:
        return False
    if isinstance(v, float) and math.isnan(v):
        return False
    return str(v).strip() not in ("", "Not Specified")


def _literal_list(v: Any) -> list:
    if isinstance(v, list):
        return v
    if not isinstance(v, str) or not v.strip():
        return []
    try:
        out = ast.literal_eval(v) if v.strip().startswith("[") else json.loads(v)
    except (ValueError, SyntaxError):
        return [v]
    return out if isinstance(out, list) else [out]


def _bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    try:
        return bool(int(v))
    except (TypeError, ValueError):
        return False


def performance_score(metrics: pd.DataFrame) -> pd.Series:
    """The study's performance score: min-max normalise accuracy/F1/ROUGE-1/ROUGE-L over all models,
    then the harmonic mean of the metrics a model reports (NaN when it reports none)."""
    from scipy.stats import hmean

    cols = [c for c in STUDY_METRICS if c in metrics]
    norm = pd.DataFrame(index=metrics.index)
    for c in cols:
        s = pd.to_numeric(metrics[c], errors="coerce")
        lo, hi = s.min(), s.max()
        norm[c] = (s - lo) / (hi - lo) if pd.notna(lo) and hi > lo else s.where(s.isna(), 1.0)

    def _row(r: pd.Series) -> float:
        vals = [v for v in r.to_numpy(dtype=float) if not math.isnan(v)]
        if not vals:
            return float("nan")
        if min(vals) <= 0:
            return 0.0
        return float(hmean(vals))

    return norm.apply(_row, axis=1) if cols else pd.Series(np.nan, index=metrics.index)


def _metrics_from_csv(raw: pd.DataFrame) -> pd.DataFrame:
    """accuracy/f1/rouge1/rougeL columns: HFClean has them as columns, HFCO2 in ``performance_metrics``."""
    out = pd.DataFrame(index=raw.index)
    if all(c in raw for c in STUDY_METRICS):
        for c in STUDY_METRICS:
            out[c] = pd.to_numeric(raw[c], errors="coerce")
        return out
    parsed = []
    for v in raw.get("performance_metrics", pd.Series(None, index=raw.index)):
        d: dict = {}
        if isinstance(v, str) and v.strip().startswith("{"):
            try:
                d = ast.literal_eval(v.replace("nan", "None"))
            except (ValueError, SyntaxError):
                d = {}
        parsed.append({c: d.get(c) if isinstance(d, dict) else None for c in STUDY_METRICS})
    m = pd.DataFrame(parsed, index=raw.index, columns=list(STUDY_METRICS))
    for c in STUDY_METRICS:
        out[c] = pd.to_numeric(m[c], errors="coerce")
    return out


def records_from_csv(path: str | Path) -> pd.DataFrame:
    """Read one of the study's CSVs into the normalised records table, one row per CSV row.

    Layouts: ``HFCO2.csv`` (``environment`` holds the hardware, "Not Specified" = missing) and
    ``HFClean.csv`` (``hardware_used``; tags one-hot in ``is_*`` columns; ``modelcard_text``).
    Values are kept as the study stored them (no unit conversion, no de-duplication).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "CSV file not found")
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise InputError(path, f"unreadable CSV ({exc})") from exc
    required = {"modelId", "co2_eq_emissions"}
    missing = required - set(raw.columns)
    if missing:
        raise InputError(path, f"not an HFCO2/HFClean-style CSV: missing column(s) {sorted(missing)}")
    n = len(raw)
    idx = raw.index

    def col(name: str, default: Any = None) -> pd.Series:
        return raw[name] if name in raw else pd.Series([default] * n, index=idx, dtype=object)

    co2 = pd.to_numeric(raw["co2_eq_emissions"], errors="coerce")
    text = col("modelcard_text")
    if "modelcard_text" in raw:  # HFPreprocessing: the card text fills missing metadata values
        parsed = [parse_card_text(t) for t in text]
        co2 = pd.Series(
            [c if pd.notna(c) else (harmonize_co2(p["co2_eq_emissions"]) or np.nan) for c, p in zip(co2, parsed)],
            index=idx,
            dtype=float,
        )
    df = pd.DataFrame({"model_id": raw["modelId"].astype(str)})
    if "co2_reported" in raw:
        reported = pd.to_numeric(raw["co2_reported"], errors="coerce").fillna(0).astype(int)
    else:
        reported = co2.notna().astype(int)
    df["co2_reported"] = reported.to_numpy()
    df["co2_status"] = np.where(co2.notna(), "ok", np.where(reported == 1, "malformed", "absent"))
    df["co2_eq_emissions"] = co2.to_numpy()
    auto_raw = col("auto", False)
    auto = auto_raw.map(_bool)
    src = col("source")
    df["source"] = [normalise_source(s, a) if _present(s) or a else "Not Specified" for s, a in zip(src, auto)]
    df["source"] = [s if s != "Not Specified" or not _present(r) else str(r) for s, r in zip(df["source"], src)]
    df["training_type"] = col("training_type").map(normalise_training_type)
    df["training_type_raw"] = col("training_type").to_numpy()
    loc = col("geographical_location")
    hw = col("environment") if "environment" in raw else col("hardware_used")
    df["geographical_location"] = [v if _given(v) else "Not Specified" for v in loc]
    df["hardware_used"] = [v if _given(v) else None for v in hw]
    df["has_source"] = [_present(s) or a for s, a in zip(src, auto)]
    df["has_training_type"] = col("training_type").map(_present).to_numpy()
    df["has_geographical_location"] = [_present(v) for v in loc]
    df["has_hardware_used"] = [_given(v) for v in hw]
    tag_cols = [c for c in raw.columns if c.startswith("is_")]
    if "tags" in raw:
        df["tags"] = raw["tags"].map(_literal_list)
    elif tag_cols:
        flags = raw[tag_cols].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy() > 0
        df["tags"] = [[tag_cols[j][3:] for j in np.flatnonzero(row)] for row in flags]
    else:
        df["tags"] = [[] for _ in range(n)]
    df["domain"] = col("domain", "Not Specified").fillna("Not Specified").to_numpy()
    libs = col("library_name").map(_literal_list)
    df["libraries"] = libs.to_numpy()
    df["library_name"] = [("transformers" if "transformers" in ls else (ls[0] if ls else None)) for ls in libs]
    df["downloads"] = pd.to_numeric(col("downloads"), errors="coerce").to_numpy()
    df["likes"] = pd.to_numeric(col("likes"), errors="coerce").to_numpy()
    df["size"] = pd.to_numeric(col("size"), errors="coerce").to_numpy()
    df["datasets"] = col("datasets").map(_literal_list).to_numpy()
    df["datasets_size"] = pd.to_numeric(col("datasets_size"), errors="coerce").to_numpy()
    metrics = _metrics_from_csv(raw)
    for c in STUDY_METRICS:
        df[c] = metrics[c].to_numpy()
    df["performance_score"] = pd.to_numeric(col("performance_score"), errors="coerce").to_numpy()
    df["created_at"] = pd.to_datetime(col("created_at"), errors="coerce", utc=True).to_numpy()
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    df["auto"] = auto.astype(bool).to_numpy()
    # the study's own filter for AutoTrain models (HFEmissionsAnalysis cell 8: ``auto == 'True'``)
    df["autotrain_flag"] = auto_raw.astype(str).to_numpy()
    return _efficiencies(df, keep_csv=raw)


def records_from_db(db_path: str | Path) -> pd.DataFrame:
    """Read a miner database (:mod:`terracarbon.footprint.hub`) into the normalised records table.

    ``co2_reported`` follows the study: a usable metadata value, else a number after
    ``Carbon Emitted:`` in the card text (when the miner fetched it); ``hardware_used`` likewise.
    """
    from .hub import read_dataset_sizes, read_models

    raw = read_models(db_path)
    sizes = read_dataset_sizes(db_path)
    df = pd.DataFrame({"model_id": raw["model_id"].astype(str)})
    co2_meta = pd.to_numeric(raw["co2_g"], errors="coerce")
    text_co2 = raw["card_co2_text"] if "card_co2_text" in raw else pd.Series(None, index=raw.index)
    text_hw = raw["card_hardware_text"] if "card_hardware_text" in raw else pd.Series(None, index=raw.index)
    co2 = []
    for meta, t in zip(co2_meta, text_co2):
        if pd.notna(meta):
            co2.append(float(meta))
            continue
        g = harmonize_co2(t) if isinstance(t, str) else None
        if g is not None:
            converted, problem = parse_grams(t)
            g = converted if problem is None else g
        co2.append(np.nan if g is None else g)
    co2 = pd.Series(co2, index=raw.index, dtype=float)
    df["co2_reported"] = co2.notna().astype(int)
    df["co2_status"] = np.where(co2.notna(), "ok", raw["co2_status"].where(raw["co2_status"] != "ok", "malformed"))
    df["co2_eq_emissions"] = co2
    auto = raw["auto"].fillna(0).astype(int).astype(bool)
    df["source"] = [normalise_source(s, a) for s, a in zip(raw["source"], auto)]
    df["training_type"] = raw["training_type"].map(normalise_training_type)
    df["training_type_raw"] = raw["training_type"]
    df["geographical_location"] = [v if _present(v) else "Not Specified" for v in raw["geographical_location"]]
    hw = [m if _given(m) else (t if _given(t) else None) for m, t in zip(raw["hardware_used"], text_hw)]
    df["hardware_used"] = hw
    df["has_source"] = [_present(s) or a for s, a in zip(raw["source"], auto)]
    df["has_training_type"] = raw["training_type"].map(_present)
    df["has_geographical_location"] = raw["geographical_location"].map(_present)
    df["has_hardware_used"] = [v is not None for v in hw]
    df["tags"] = raw["tags"].map(_literal_list)
    df["domain"] = raw["domain"].fillna("Not Specified")
    df["library_name"] = raw["library_name"]
    df["libraries"] = [
        sorted({*(t for t in tags if t in ("pytorch", "tf", "jax", "keras", "transformers")), *([lib] if lib else [])})
        for tags, lib in zip(df["tags"], raw["library_name"])
    ]
    df["downloads"] = pd.to_numeric(raw["downloads"], errors="coerce")
    df["likes"] = pd.to_numeric(raw["likes"], errors="coerce")
    df["size"] = pd.to_numeric(raw["size_bytes"], errors="coerce")
    df["datasets"] = raw["datasets"].map(_literal_list)
    # as in the study: the sum of the known dataset sizes, missing when none is known (0 -> NaN)
    df["datasets_size"] = [float(sum(sizes.get(d, 0) for d in ds)) or np.nan for ds in df["datasets"]]
    metrics = pd.DataFrame([json.loads(m) if isinstance(m, str) and m else {} for m in raw["metrics"]])
    metrics.index = df.index
    for c in STUDY_METRICS:
        df[c] = pd.to_numeric(metrics[c], errors="coerce") if c in metrics else np.nan
    df["performance_score"] = performance_score(metrics)
    df["created_at"] = pd.to_datetime(raw["created_at"], errors="coerce", utc=True)
    df["auto"] = auto
    df["autotrain_flag"] = auto.map(str)
    return _efficiencies(df)


def _efficiencies(df: pd.DataFrame, keep_csv: pd.DataFrame | None = None) -> pd.DataFrame:
    co2 = df["co2_eq_emissions"]
    with np.errstate(divide="ignore", invalid="ignore"):
        size_eff = df["size"] / co2
        ds_eff = df["datasets_size"] / co2
    # HFCO2.csv carries the study's own efficiency columns: keep them as stored
    if keep_csv is not None and "size_efficency" in keep_csv:
        size_eff = pd.to_numeric(keep_csv["size_efficency"], errors="coerce").to_numpy()
    if keep_csv is not None and "datasets_size_efficency" in keep_csv:
        ds_eff = pd.to_numeric(keep_csv["datasets_size_efficency"], errors="coerce").to_numpy()
    df["size_efficency"] = size_eff
    df["datasets_size_efficency"] = ds_eff
    return df[list(RECORD_COLUMNS)].reset_index(drop=True)


def load_records(*, db: str | Path | None = None, csv: str | Path | None = None) -> pd.DataFrame:
    """Load models from a miner database (``db``) or one of the study's CSVs (``csv``) — exactly one."""
    if (db is None) == (csv is None):
        raise ConfigError("give exactly one of a miner database (--db) or a study CSV (--csv)")
    return records_from_db(db) if db is not None else records_from_csv(csv)


# --------------------------------------------------------------------------------------------
# reporting practice
# --------------------------------------------------------------------------------------------
def _has_tag(tags: Sequence[Any], wanted: Sequence[str]) -> bool:
    low = {str(t).strip().lower().replace(" ", "-") for t in tags or []}
    return any(w.lower() in low for w in wanted)


def reporting_class(record: Mapping[str, Any], *, faithful: bool = True) -> str:
    """The study's reporting-practice class of one model (``HFReportingAnalysis.ipynb`` cell 35).

    ``record`` needs ``co2_reported`` (truthy when CO2e is reported, see :func:`co2_from_card`),
    ``hardware_used`` (``None``/NaN/"Not Specified" when missing; or ``has_hardware_used``) and,
    for the last two classes, ``tags`` (a list). ``faithful=True`` evaluates the branches in the
    notebook's order, where "Energy Optimization" and "Certified Energy Efficiency" are
    unreachable; ``faithful=False`` checks the optimisation and EcoCard tags first.
    """
    reported = bool(record.get("co2_reported")) and not (
        isinstance(record.get("co2_reported"), float) and math.isnan(record["co2_reported"])
    )
    if "has_hardware_used" in record and record.get("has_hardware_used") is not None:
        hardware = bool(record["has_hardware_used"])
    else:
        hardware = _given(record.get("hardware_used"))
    if not reported:
        return "Context Reporting" if hardware else "Unknown Energy Efficiency"
    if not faithful:
        tags = record.get("tags") or []
        if _has_tag(tags, OPTIMIZATION_TAGS):
            if _has_tag(tags, (CERTIFICATION_TAG,)):
                return "Certified Energy Efficiency"
            return "Energy Optimization"
    return "Energy Awareness" if hardware else "Basic Energy Reporting"


def context_completeness(record: Mapping[str, Any]) -> str:
    """terracarbon's context-completeness class of one record (not the study's; see module doc)."""
    status = record.get("co2_status")
    if status == "absent" or (status is None and not record.get("co2_reported")):
        return "not reported"
    if status == "malformed":
        return "malformed"
    n = sum(bool(record.get(f"has_{f}")) for f in CONTEXT_FIELDS)
    if n == len(CONTEXT_FIELDS):
        return "complete"
    if n >= 2:
        return "partial"
    return "emissions only"


# --------------------------------------------------------------------------------------------
# carbon efficiency (energy label)
# --------------------------------------------------------------------------------------------
def reference_metrics(df: pd.DataFrame, model_id: str = REFERENCE_MODEL) -> dict[str, float]:
    """Reference values: the reference model's first row (medians where missing), as ``load_ref_metrics``.

    When the reference model is not in ``df`` the study's own distilgpt2 values are used.
    """
    rows = df[df["model_id"] == model_id]
    ref = rows.iloc[0] if len(rows) else pd.Series(STUDY_REFERENCE)
    out = {}
    for m in METRIC_WEIGHTS:
        v = ref.get(m)
        v = float(v) if v is not None and pd.notna(v) else float("nan")
        out[m] = v if not math.isnan(v) else float(pd.to_numeric(df[m], errors="coerce").median())
    return out


def metric_index(values: Any, ref: float, metric: str) -> np.ndarray:
    """Index of each value against the reference: ``value/ref`` (higher better) else ``ref/value``.

    float64 arithmetic as in the package (``ref / 0`` is ``inf``); NaN stays NaN.
    """
    v = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return v / ref if metric in HIGHER_BETTER else ref / v


def boundaries(index: np.ndarray, metric: str) -> np.ndarray:
    """Descending class boundaries of a metric (``compute_boundaries``): percentiles of the index,
    of its square root for ``co2_eq_emissions``; NaN where the metric has no value at all."""
    vals = np.sqrt(index) if metric == "co2_eq_emissions" else index
    if not (~np.isnan(vals)).any():
        return np.full(4, np.nan)
    with np.errstate(invalid="ignore"):
        return np.nanpercentile(vals, PERCENTILES[metric])[::-1]


def efficiency_labels(
    df: pd.DataFrame, *, reference_model: str = REFERENCE_MODEL, faithful: bool = True
) -> pd.DataFrame:
    """The study's carbon-efficiency label (A-E) per model, with per-metric ratings.

    Computed over the rows with ``co2_reported`` (all rows when the column is absent), as
    ``assign_energy_label_to_df`` on ``df[df['co2_reported'] == True]``; other rows get no label.
    Returns a frame aligned with ``df`` holding ``efficiency_label``, ``rating_<metric>``
    (0 = A ... 4 = E, NaN if missing) and ``index_<metric>``.
    """
    out = pd.DataFrame(index=df.index)
    if "co2_reported" in df:
        pop = pd.to_numeric(df["co2_reported"], errors="coerce").fillna(0).astype(bool).to_numpy()
    else:
        pop = np.ones(len(df), dtype=bool)
    sub = df[pop]
    refs = reference_metrics(sub if len(sub) else df, reference_model)
    ratings = {}
    for m in METRIC_WEIGHTS:
        idx = metric_index(df[m], refs[m], m)
        idx[~pop] = np.nan
        out[f"index_{m}"] = idx
        bounds = boundaries(idx[pop], m)
        compare = idx if (faithful or m != "co2_eq_emissions") else np.sqrt(idx)
        ratings[m] = np.array([_rate(x, bounds) for x in compare], dtype=float)
        out[f"rating_{m}"] = ratings[m]
    weights = np.array(list(METRIC_WEIGHTS.values()))
    r = np.column_stack([ratings[m] for m in METRIC_WEIGHTS])
    labels: list[str | None] = []
    for row, ok in zip(r, pop):
        mask = np.isfinite(row)
        if not ok or not mask.any():
            labels.append(None)
            continue
        w = weights[mask] / weights[mask].sum()
        labels.append(LABELS[int(round(float(np.sum(row[mask] * w))))])
    out["efficiency_label"] = labels
    return out


def _rate(index: float, bounds: np.ndarray) -> float:
    """Rating 0..4 of an index against descending boundaries, as the replication's ``assign_rating``."""
    if index is None or pd.isna(index):
        return float("nan")
    intervals = [(math.inf, bounds[0])]
    intervals += [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    intervals.append((bounds[-1], 0.0))
    for i, (upper, lower) in enumerate(intervals):
        if index <= upper and index > lower:
            return float(i)
    return 4.0


# --------------------------------------------------------------------------------------------
# public entry point
# --------------------------------------------------------------------------------------------
def classify(
    *,
    db: str | Path | None = None,
    csv: str | Path | None = None,
    out: str | Path | None = None,
    records: pd.DataFrame | None = None,
    faithful: bool = True,
) -> pd.DataFrame:
    """Classify every model by reporting practice and carbon efficiency, one row per input row.

    Args:
        db / csv: a miner database or a study CSV (exactly one, unless ``records`` is given).
        out: optional path of ``classes.csv`` to write (atomically).
        records: an already loaded records table (:func:`load_records`).
        faithful: reproduce the replication's quirks (CO2 index vs square-root boundaries; the
            unreachable optimisation classes); ``False`` applies the corrections.

    Returns:
        ``model_id, reporting_class, efficiency_label`` (the interface), then
        ``context_completeness, co2_eq_emissions, domain, source, training_type`` and the
        per-metric ratings ``rating_<metric>`` of the efficiency label.
    """
    df = records if records is not None else load_records(db=db, csv=csv)
    df = df.reset_index(drop=True)
    eff = efficiency_labels(df, faithful=faithful)
    recs = df.to_dict("records")
    classes = pd.DataFrame(
        {
            "model_id": df["model_id"],
            "reporting_class": [reporting_class(r, faithful=faithful) for r in recs],
            "efficiency_label": eff["efficiency_label"],
            "context_completeness": [context_completeness(r) for r in recs],
            "co2_eq_emissions": df["co2_eq_emissions"],
            "domain": df["domain"],
            "source": df["source"],
            "training_type": df["training_type"],
        }
    )
    for m in METRIC_WEIGHTS:
        classes[f"rating_{m}"] = eff[f"rating_{m}"].map(lambda x: LABELS[int(x)] if pd.notna(x) else None)
    if out is not None:
        with atomic_path(out) as tmp:
            classes.to_csv(tmp, index=False)
    return classes
