"""The mining study's two classifications: reporting practice and carbon efficiency.

Study: J. Castaño, S. Martínez-Fernández, X. Franch, J. Bogner, "Exploring the Carbon Footprint of
Hugging Face's ML Models: A Repository Mining Study", ESEM 2023, arXiv:2305.11164. Its abstract
proposes "two classifications ... one for categorizing models based on their carbon emission
reporting practices and another for their carbon efficiency".

Carbon-efficiency classification (:func:`efficiency_labels`)
    Implemented from the study's replication code: the ``energy_label.py`` module of its Streamlit
    dashboard ("Hugging Face Dashboard", which reads ``datasets/HFCO2.csv``, the data set shipped
    in ``../shared/data/footprint``). The definition, as found there:

    * five metrics with weights ``co2_eq_emissions`` 0.35, ``size_efficency`` 0.10,
      ``datasets_size_efficency`` 0.10, ``downloads`` 0.25, ``performance_score`` 0.20, where
      ``size_efficency = size / co2`` and ``datasets_size_efficency = datasets_size / co2``
      (bytes per gram) — higher is better for all but ``co2_eq_emissions``;
    * each value becomes an *index* relative to a reference model (``distilgpt2``; a missing
      reference value is replaced by the metric's median): ``value / ref`` when higher is better,
      else ``ref / value`` (a division by zero gives index 0);
    * per-metric class boundaries are percentiles of the indices over all models: 20/40/60/80 %
      (``downloads``: 60/85/94/96 %); for ``co2_eq_emissions`` the percentiles are taken of the
      *square root* of the index; an index in ``(b_i, b_{i-1}]`` gets rating ``i`` (0 = A ...
      4 = E, above the top boundary = A, at or below the lowest = E);
    * the label is the weighted mean of the available ratings (weights renormalised over the
      metrics that are not missing), rounded (Python ``round``, half to even) and mapped to
      ``A``-``E``; a model with no rating at all gets no label.

    Note: the replication code compares the *raw* CO2 index against boundaries computed on its
    square root, which puts nearly every model in class A for that metric. ``faithful=True``
    (default) reproduces that; ``faithful=False`` applies the square root on both sides.

Reporting-practice classification (:func:`reporting_class`)
    The exact rules of the study's reporting classification were **not** found in the replication
    material available to us (the dashboard code and the mined CSV contain the fields but not the
    rule). What is implemented is the closest documented version: completeness against the Hub's own
    ``co2_eq_emissions`` schema (Hub docs, "Displaying carbon emissions for your model":
    ``emissions, source, training_type, geographical_location, hardware_used``), the same fields the
    study extracted (``retrieve_emission_parameters`` in its extraction code):

    * ``complete`` — a usable emissions value and all four context fields;
    * ``partial`` — a usable emissions value and two or three context fields;
    * ``emissions only`` — a usable emissions value and at most one context field;
    * ``malformed`` — ``co2_eq_emissions`` present but no usable value (recorded by the miner);
    * ``not reported`` — no ``co2_eq_emissions``.

    For the study's CSV, "Not Specified" means absent and the source of AutoTrain models counts as
    given (the study set it to ``AutoTrain`` from the model's tags).
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._compat import ConfigError, InputError, atomic_path
from .normalise import STUDY_METRICS, normalise_source, normalise_training_type

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

REPORTING_CLASSES = ("complete", "partial", "emissions only", "malformed", "not reported")
CONTEXT_FIELDS = ("source", "training_type", "geographical_location", "hardware_used")

#: columns of the normalised records table (:func:`load_records`)
RECORD_COLUMNS = (
    "model_id",
    "co2_reported",
    "co2_status",
    "co2_eq_emissions",
    "source",
    "training_type",
    "geographical_location",
    "hardware_used",
    "has_source",
    "has_training_type",
    "has_geographical_location",
    "has_hardware_used",
    "domain",
    "library_name",
    "downloads",
    "likes",
    "size",
    "datasets",
    "datasets_size",
    "performance_score",
    "created_at",
    "auto",
    "size_efficency",
    "datasets_size_efficency",
)


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


def records_from_csv(path: str | Path) -> pd.DataFrame:
    """Read the study's CSV (``HFCO2.csv`` layout) into the normalised records table."""
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
        raise InputError(path, f"not an HFCO2-style CSV: missing column(s) {sorted(missing)}")
    co2 = pd.to_numeric(raw["co2_eq_emissions"], errors="coerce")
    df = pd.DataFrame({"model_id": raw["modelId"].astype(str)})
    reported = raw["co2_reported"].astype(int) if "co2_reported" in raw else co2.notna().astype(int)
    df["co2_reported"] = reported
    df["co2_status"] = np.where(
        co2.notna() & (co2 >= 0), "ok", np.where(reported == 1, "malformed", "absent")
    )
    df["co2_eq_emissions"] = co2.where(co2 >= 0)
    auto = raw["auto"].map(_bool) if "auto" in raw else pd.Series(False, index=raw.index)
    src = raw.get("source", pd.Series(None, index=raw.index))
    df["source"] = [s if _present(s) else ("AutoTrain" if a else "Not Specified") for s, a in zip(src, auto)]
    df["training_type"] = raw.get("training_type", pd.Series(None, index=raw.index)).map(
        normalise_training_type
    )
    loc = raw.get("geographical_location", pd.Series(None, index=raw.index))
    hw = raw.get("environment", raw.get("hardware_used", pd.Series(None, index=raw.index)))
    df["geographical_location"] = [v if _present(v) else "Not Specified" for v in loc]
    df["hardware_used"] = [v if _present(v) else "Not Specified" for v in hw]
    for f in CONTEXT_FIELDS:
        df[f"has_{f}"] = df[f].map(_present)
    df["domain"] = raw.get("domain", pd.Series("Not Specified", index=raw.index)).fillna("Not Specified")
    libs = raw.get("library_name", pd.Series(None, index=raw.index)).map(_literal_list)
    df["library_name"] = [
        ("transformers" if "transformers" in ls else (ls[0] if ls else None)) for ls in libs
    ]
    df["downloads"] = pd.to_numeric(raw.get("downloads"), errors="coerce")
    df["likes"] = pd.to_numeric(raw.get("likes"), errors="coerce")
    df["size"] = pd.to_numeric(raw.get("size"), errors="coerce")
    df["datasets"] = raw.get("datasets", pd.Series(None, index=raw.index)).map(_literal_list)
    df["datasets_size"] = pd.to_numeric(raw.get("datasets_size"), errors="coerce")
    df["performance_score"] = pd.to_numeric(raw.get("performance_score"), errors="coerce")
    df["created_at"] = pd.to_datetime(raw.get("created_at"), errors="coerce", utc=True)
    df["auto"] = auto.astype(bool)
    return _efficiencies(df)


def records_from_db(db_path: str | Path) -> pd.DataFrame:
    """Read a miner database (:mod:`terracarbon.footprint.hub`) into the normalised records table."""
    from .hub import read_dataset_sizes, read_models

    raw = read_models(db_path)
    sizes = read_dataset_sizes(db_path)
    df = pd.DataFrame({"model_id": raw["model_id"].astype(str)})
    df["co2_reported"] = raw["co2_reported"].astype(int)
    df["co2_status"] = raw["co2_status"]
    df["co2_eq_emissions"] = pd.to_numeric(raw["co2_g"], errors="coerce")
    auto = raw["auto"].fillna(0).astype(int).astype(bool)
    df["source"] = [normalise_source(s, a) for s, a in zip(raw["source"], auto)]
    df["training_type"] = raw["training_type"].map(normalise_training_type)
    df["geographical_location"] = [
        v if _present(v) else "Not Specified" for v in raw["geographical_location"]
    ]
    df["hardware_used"] = [v if _present(v) else "Not Specified" for v in raw["hardware_used"]]
    df["has_source"] = [_present(s) or a for s, a in zip(raw["source"], auto)]
    df["has_training_type"] = raw["training_type"].map(_present)
    df["has_geographical_location"] = raw["geographical_location"].map(_present)
    df["has_hardware_used"] = raw["hardware_used"].map(_present)
    df["domain"] = raw["domain"].fillna("Not Specified")
    df["library_name"] = raw["library_name"]
    df["downloads"] = pd.to_numeric(raw["downloads"], errors="coerce")
    df["likes"] = pd.to_numeric(raw["likes"], errors="coerce")
    df["size"] = pd.to_numeric(raw["size_bytes"], errors="coerce")
    df["datasets"] = raw["datasets"].map(_literal_list)
    # as in the study: the sum of the known dataset sizes, missing when none is known (0 -> NaN)
    df["datasets_size"] = [float(sum(sizes.get(d, 0) for d in ds)) or np.nan for ds in df["datasets"]]
    metrics = pd.DataFrame([json.loads(m) if isinstance(m, str) and m else {} for m in raw["metrics"]])
    metrics.index = df.index
    df["performance_score"] = performance_score(metrics)
    df["created_at"] = pd.to_datetime(raw["created_at"], errors="coerce", utc=True)
    df["auto"] = auto
    return _efficiencies(df)


def _efficiencies(df: pd.DataFrame) -> pd.DataFrame:
    co2 = df["co2_eq_emissions"]
    with np.errstate(divide="ignore", invalid="ignore"):
        df["size_efficency"] = df["size"] / co2
        df["datasets_size_efficency"] = df["datasets_size"] / co2
    return df[list(RECORD_COLUMNS)].reset_index(drop=True)


def load_records(*, db: str | Path | None = None, csv: str | Path | None = None) -> pd.DataFrame:
    """Load models from a miner database (``db``) or the study's CSV (``csv``) — exactly one."""
    if (db is None) == (csv is None):
        raise ConfigError("give exactly one of a miner database (--db) or a study CSV (--csv)")
    return records_from_db(db) if db is not None else records_from_csv(csv)


# --------------------------------------------------------------------------------------------
# reporting practice
# --------------------------------------------------------------------------------------------
def reporting_class(record: Mapping[str, Any]) -> str:
    """Reporting-practice class of one record (see the module docstring for the definition)."""
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
    """Reference values: the reference model's metrics (medians where missing), as in the study.

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


def _index(value: float, ref: float, metric: str) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return float("nan")
    try:
        return value / ref if metric in HIGHER_BETTER else ref / value
    except ZeroDivisionError:
        return 0.0


def efficiency_labels(
    df: pd.DataFrame, *, reference_model: str = REFERENCE_MODEL, faithful: bool = True
) -> pd.DataFrame:
    """The study's carbon-efficiency label (A-E) per model, with per-metric ratings.

    ``df`` needs the columns of :data:`METRIC_WEIGHTS` (plus ``model_id``); rows without a usable
    emissions value get no label. Returns a frame aligned with ``df`` holding ``efficiency_label``,
    ``rating_<metric>`` (0 = A ... 4 = E, NaN if missing) and ``index_<metric>``.
    """
    out = pd.DataFrame(index=df.index)
    valid = df["co2_eq_emissions"].notna()
    sub = df[valid]
    refs = reference_metrics(sub if len(sub) else df, reference_model)
    ratings = {}
    for m, weight in METRIC_WEIGHTS.items():
        del weight
        values = pd.to_numeric(df[m], errors="coerce").astype(float)
        idx = pd.Series([_index(float(v), refs[m], m) for v in values], index=df.index, dtype=float)
        idx = idx.where(valid)
        out[f"index_{m}"] = idx
        finite = idx[valid].to_numpy(dtype=float)
        finite_for_pct = np.sqrt(finite) if m == "co2_eq_emissions" else finite
        if (~np.isnan(finite_for_pct)).any():
            with np.errstate(invalid="ignore"):
                bounds = np.nanpercentile(finite_for_pct, PERCENTILES[m])[::-1]
        else:
            bounds = np.full(4, np.nan)
        compare = idx if (faithful or m != "co2_eq_emissions") else np.sqrt(idx)
        ratings[m] = compare.map(lambda x, b=bounds: _rate(x, b))
        out[f"rating_{m}"] = ratings[m]
    weights = np.array(list(METRIC_WEIGHTS.values()))
    r = np.column_stack([ratings[m].to_numpy(dtype=float) for m in METRIC_WEIGHTS])
    labels = []
    for row, ok in zip(r, valid):
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
    """Classify every model by reporting practice and carbon efficiency.

    Args:
        db / csv: a miner database or a study CSV (exactly one, unless ``records`` is given).
        out: optional path of ``classes.csv`` to write (atomically).
        records: an already loaded records table (:func:`load_records`).
        faithful: reproduce the replication code's CO2-index quirk (see module docstring).

    Returns:
        One row per model: ``model_id, reporting_class, efficiency_label, co2_eq_emissions`` and the
        per-metric ratings ``rating_<metric>`` of the efficiency label.
    """
    df = records if records is not None else load_records(db=db, csv=csv)
    # one row per model (the study's CSV repeats a few ids): keep the last, as the miner does
    df = df.drop_duplicates("model_id", keep="last").reset_index(drop=True)
    eff = efficiency_labels(df, faithful=faithful)
    classes = pd.DataFrame(
        {
            "model_id": df["model_id"],
            "reporting_class": [reporting_class(r) for r in df.to_dict("records")],
            "efficiency_label": eff["efficiency_label"],
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
