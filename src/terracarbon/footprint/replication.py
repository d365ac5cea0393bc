"""The replication package's published figures, and the same figures reproduced on any input.

Published values are the outputs stored in the notebooks of the study's replication package
(github.com/GAISSA-UPC/ML-EnergyLabel, commit fb434f2; cells counted from 0 as nbformat stores
them). Each reproduced figure follows the notebook code named in its ``source``:

RQ1 (``code/Analysis/HFReportingAnalysis.ipynb``)
    * cells 9-13: monthly share of new models that report CO2e (``co2_reported`` sum / models per
      ``year_month``), last (incomplete) month dropped; OLS of the share on the month number
      (``sm.OLS(y, add_constant(time))``), slope p-value. Needs every model, not only reporting
      ones (the study's ``HFTotalProcessed.csv``, ~170k models, is not in the package).
      The notebook keeps the months from the 35th on (``iloc[34:]``, positional on its data); here
      the months from 2021-11 on are kept, the start of the CO2e series of cell 15.
    * cells 15-20: monthly median CO2e of the reporting models from 2021-11, last month dropped,
      same OLS slope test.
    * cells 25, 32, 33: reporting models by domain, share tagged ``pytorch`` / ``transformers``.
    * cell 39: the reporting-practice classes (on all 170,462 models).
RQ2 (``code/Analysis/HFEmissionsAnalysis.ipynb``)
    * cell 10: Spearman CO2e vs accuracy / F1 / ROUGE-1 / ROUGE-L, AutoTrain models of HFCO2.csv
      (``auto == 'True'``); cell 12: the same on HFClean.csv.
    * cells 14-16: pretraining vs fine-tuning on HFClean.csv (Mann-Whitney U, medians, means).
    * cell 21: Pearson of ``log(CO2e + 1e-6)`` with ``log(size + 1e-6)`` (48 models) and with
      ``log(datasets_size + 1e-6)`` (the 47 with a dataset size) on HFClean.csv; cell 20:
      Spearman of the latter.
    * cells 23-26: CO2e of reporting NLP vs Computer Vision models (stats, Mann-Whitney U).
    * cell 42: the carbon-efficiency label counts.
Multiple testing (``code/Analysis/HFGeneralAnalysis.ipynb`` cells 20-22)
    Holm correction over the study's 14 p-values; reproduced with the reproduced p-values, the
    published one standing in for a test the input cannot give (flagged in the note).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .classify import LABELS, REPORTING_CLASSES

PACKAGE = "GAISSA-UPC/ML-EnergyLabel"
REP = "code/Analysis/HFReportingAnalysis.ipynb"
EMI = "code/Analysis/HFEmissionsAnalysis.ipynb"
GEN = "code/Analysis/HFGeneralAnalysis.ipynb"
MONTHS_FROM = "2021-11"
LOG_EPS = 1e-6
DUP_NOTE = (
    "the notebook counted HFTotalProcessed.csv (not in the package); HFCO2.csv repeats distilgpt2 (x2) "
    "and biomedical-ner-all (x4) and holds the curated HFClean values for 48 models — without the 4 "
    "repeated rows the NLP median is the published 4.988945 (n = 1158)"
)

#: the 14 p-values of HFGeneralAnalysis cell 20 (raw), in the notebook's order, and the Holm-
#: corrected values printed by cell 22
HOLM_FAMILY: list[tuple[str, float, float]] = [
    ("slope reporting co2", 0.06421025271260412, 0.5778922744134372),
    ("slope reported co2", 0.0010268592930073807, 0.011295452223081188),
    ("accuracy autotrain", 0.9259196067684714, 1.0),
    ("f1 autotrain", 0.6916077268076143, 1.0),
    ("rouge 1 autotrain", 0.7712600666419309, 1.0),
    ("rougeL autotrain", 0.4377329988626998, 1.0),
    ("accuracy clean", 0.41714143714253127, 1.0),
    ("f1 clean", 0.3178226816985236, 1.0),
    ("rouge 1 clean", 0.4820720382996776, 1.0),
    ("rougeL clean", 1.0, 1.0),
    ("pretraining vs finetuning", 0.02920509534997118, 0.29205095349971183),
    ("log(co2e) - log(model size)", 3.294350083195913e-05, 0.0004282655108154687),
    ("log(co2e) - log(data size)", 4.190761324292362e-05, 0.0005028913589150835),
    ("domain analysis", 1.1409164876282704e-15, 1.5972830826795786e-14),
]


@dataclass
class Row:
    """One line of ``replication.csv`` (plus a note for ``summary.md``)."""

    rq: str
    quantity: str
    reproduced: Any
    published: Any
    source: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The four contract columns."""
        return {
            "quantity": self.quantity,
            "reproduced": self.reproduced,
            "published": self.published,
            "source": self.source,
        }


def holm(pvalues: list[float]) -> list[float]:
    """Holm step-down adjusted p-values (as ``statsmodels.stats.multitest.multipletests(method='holm')``)."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="mergesort")
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def ols_slope_p(y: np.ndarray) -> tuple[float, float]:
    """Slope and two-sided p-value of ``y ~ 1 + t`` with ``t = 0, 1, ...`` (the notebooks' OLS)."""
    from scipy.stats import linregress

    y = np.asarray(y, dtype=float)
    if len(y) < 3 or not np.isfinite(y).all():
        return float("nan"), float("nan")
    res = linregress(np.arange(len(y), dtype=float), y)
    return float(res.slope), float(res.pvalue)


def _month(df: pd.DataFrame) -> pd.Series:
    t = pd.to_datetime(df["created_at"], errors="coerce", utc=True)
    return t.dt.tz_localize(None).dt.to_period("M")


def monthly_share(df: pd.DataFrame) -> pd.DataFrame:
    """Share (%) of the models created each month that report CO2e, months from 2021-11, last dropped."""
    m = _month(df)
    g = pd.DataFrame({"month": m, "rep": df["co2_reported"].astype(int)}).dropna(subset=["month"])
    t = g.groupby("month").agg(models=("rep", "size"), reporting=("rep", "sum")).reset_index()
    t = t[t["month"] >= pd.Period(MONTHS_FROM, "M")].iloc[:-1]
    t["share %"] = 100.0 * t["reporting"] / t["models"]
    return t.reset_index(drop=True)


def monthly_median(df: pd.DataFrame) -> pd.DataFrame:
    """Median CO2e (g) of the reporting models created each month, from 2021-11, last month dropped."""
    rep = df[df["co2_reported"].astype(bool) & df["co2_eq_emissions"].notna()]
    m = _month(rep)
    t = rep.groupby(m)["co2_eq_emissions"].median().rename("median g").reset_index()
    t = t.rename(columns={t.columns[0]: "month"})
    t = t[t["month"] >= pd.Period(MONTHS_FROM, "M")].iloc[:-1]
    return t.reset_index(drop=True)


def _spearman(x, y) -> tuple[float, float, int]:
    from scipy.stats import spearmanr

    a = np.asarray(pd.to_numeric(pd.Series(x), errors="coerce"), dtype=float)
    b = np.asarray(pd.to_numeric(pd.Series(y), errors="coerce"), dtype=float)
    ok = ~np.isnan(a) & ~np.isnan(b)
    if ok.sum() < 3:
        return float("nan"), float("nan"), int(ok.sum())
    r = spearmanr(a[ok], b[ok])
    return float(r.statistic), float(r.pvalue), int(ok.sum())


def _pearson_log(x, y) -> tuple[float, float, int]:
    from scipy.stats import pearsonr

    a = np.asarray(pd.to_numeric(pd.Series(x), errors="coerce"), dtype=float)
    b = np.asarray(pd.to_numeric(pd.Series(y), errors="coerce"), dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan"), float("nan"), int(ok.sum())
    r = pearsonr(np.log(a[ok] + LOG_EPS), np.log(b[ok] + LOG_EPS))
    return float(r.statistic), float(r.pvalue), int(ok.sum())


def _mwu(a, b) -> float:
    from scipy.stats import mannwhitneyu

    a = pd.Series(a).dropna()
    b = pd.Series(b).dropna()
    if len(a) < 1 or len(b) < 1:
        return float("nan")
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def _nan() -> float:
    return float("nan")


def compare(
    records: pd.DataFrame,
    classes: pd.DataFrame,
    clean: pd.DataFrame | None = None,
    *,
    input_name: str = "input",
) -> tuple[list[Row], dict[str, Any]]:
    """Every published figure with its reproduction on ``records`` (and the curated ``clean`` set).

    Args:
        records: the records table (:func:`terracarbon.footprint.classify.load_records`), e.g. of
            HFCO2.csv or a miner database.
        classes: :func:`terracarbon.footprint.classify.classify` of ``records`` (same row order).
        clean: records of HFClean.csv (the 48 curated models) or ``None``.

    Returns:
        The rows of ``replication.csv`` and the series behind them (``monthly_share``,
        ``monthly_median`` frames, ``holm`` list).
    """
    rows: list[Row] = []
    extra: dict[str, Any] = {}
    rep = records[records["co2_reported"].astype(bool)]
    all_reporting = len(rep) == len(records)

    # ---------------- RQ1: reporting over time ----------------------------------------------
    share = monthly_share(records)
    extra["monthly_share"] = share if not all_reporting else share.iloc[0:0]
    need_all = "needs non-reporting models too (mine with `--all-models`); the input holds only reporting models"
    if all_reporting or share.empty:
        vals = dict.fromkeys(("max", "overall", "last", "median", "p"), _nan())
        note = need_all
    else:
        vals = {
            "max": float(share["share %"].max()),
            "overall": float(100 * share["reporting"].sum() / share["models"].sum()),
            "last": float(share["share %"].iloc[-1]),
            "median": float(share["share %"].median()),
            "p": ols_slope_p(share["share %"].to_numpy())[1],
        }
        note = "different models and months than the study's April-2023 Hub snapshot"
    for key, label, pub in (
        ("max", "monthly share reporting CO2e: maximum (%)", 3.12),
        ("overall", "monthly share reporting CO2e: overall (%)", 0.90),
        ("last", "monthly share reporting CO2e: last month (%)", 0.62),
        ("median", "monthly share reporting CO2e: median month (%)", 0.92),
    ):
        rows.append(Row("RQ1", label, vals[key], pub, f"{REP} cell 10", note))
    p_share = vals["p"]
    rows.append(Row("RQ1", "monthly share: OLS slope p (raw)", p_share, 0.06421334222939966, f"{REP} cell 13", note))

    med = monthly_median(records)
    extra["monthly_median"] = med
    y = med["median g"].to_numpy(dtype=float)
    slope_med, p_med = ols_slope_p(y)
    note_med = (
        "HFCO2.csv has the reporting models after the HFClean merge (2 duplicated rows, "
        "curated values for 48 models); the notebook grouped HFTotalProcessed.csv"
    )
    for label, val, pub in (
        ("monthly median CO2e: maximum (g)", float(np.nanmax(y)) if len(y) else _nan(), 18.48),
        ("monthly median CO2e: mean of months (g)", float(np.nanmean(y)) if len(y) else _nan(), 6.04),
        ("monthly median CO2e: last month (g)", float(y[-1]) if len(y) else _nan(), 1.24),
        ("monthly median CO2e: median month (g)", float(np.nanmedian(y)) if len(y) else _nan(), 4.30),
    ):
        rows.append(Row("RQ1", label, val, pub, f"{REP} cell 17", note_med))
    rows.append(Row("RQ1", "monthly median CO2e: OLS slope (g/month)", slope_med, "–", f"{REP} cell 18"))
    rows.append(Row("RQ1", "monthly median CO2e: OLS slope p (raw)", p_med, 0.0010268592930073807, f"{REP} cell 20", note_med))

    # ---------------- RQ1: who reports ------------------------------------------------------
    dom = rep["domain"].value_counts()
    for d, pub in (("NLP", 1160), ("Computer Vision", 188), ("Multimodal", 11), ("Audio", 1)):
        rows.append(
            Row("RQ1", f"reporting models, domain {d}", int(dom.get(d, 0)), pub, f"{REP} cell 25", DUP_NOTE)
        )
    rows.append(Row("RQ1", "reporting models, domain not specified", int(dom.get("Not Specified", 0)), "–", f"{REP} cell 25",
                    "the notebook's value_counts drops models without a domain"))
    tt = rep["training_type"].value_counts()
    for t in ("fine-tuning", "pretraining", "Not Specified"):
        rows.append(Row("RQ1", f"reporting models, training type {t}", int(tt.get(t, 0)), "–", "HFPreprocessing.ipynb cell 14",
                        "the package prints no count per training type"))
    libs = rep["libraries"] if "libraries" in rep else pd.Series([[]] * len(rep))
    n_rep = max(len(rep), 1)
    for lib, pub, cell in (("pytorch", 0.9520112914608327, 32), ("transformers", 0.7678193366266761, 33)):
        share_lib = float(sum(lib in (ls or []) for ls in libs) / n_rep) if len(rep) else _nan()
        rows.append(Row("RQ1", f"share of reporting models using {lib}", share_lib, pub, f"{REP} cell {cell}",
                        "the notebook used the `is_<tag>` one-hot columns of all reporting models"))

    rc = classes["reporting_class"].value_counts()
    published_rc = {
        "Unknown Energy Efficiency": 168851,
        "Context Reporting": 194,
        "Basic Energy Reporting": 1338,
        "Energy Awareness": 79,
        "Energy Optimization": 0,
        "Certified Energy Efficiency": 0,
    }
    for c in REPORTING_CLASSES:
        note = ""
        if c in ("Unknown Energy Efficiency", "Context Reporting") and all_reporting:
            note = "the input holds only reporting models"
        elif c in ("Basic Energy Reporting", "Energy Awareness"):
            note = (
                "published on HFTotalProcessed.csv (1,417 reporting models); HFCO2.csv has 1,415 distinct "
                "models in 1,419 rows (distilgpt2 x2, biomedical-ner-all x4, both with hardware) and "
                "hardware merged in from HFClean.csv (HFPreprocessing cell 13)"
            )
        elif c in ("Energy Optimization", "Certified Energy Efficiency"):
            note = "unreachable in the notebook's branch order (see classify docs; `--corrected`)"
        rows.append(Row("RQ1", f"reporting class: {c}", int(rc.get(c, 0)), published_rc[c], f"{REP} cell 39", note))

    # ---------------- RQ2 ------------------------------------------------------------------
    p_repro: dict[str, float] = {}
    auto = records[records["autotrain_flag"].astype(str) == "True"] if "autotrain_flag" in records else records[records["auto"]]
    pub_auto = {
        "accuracy": (0.0032244550384418293, 0.9259196067684714),
        "f1": (-0.014355126071879163, 0.6916077268076143),
        "rouge1": (-0.01953244490294246, 0.7712600666419309),
        "rougeL": (-0.05210677816280857, 0.4377329988626998),
    }
    names = {"accuracy": "accuracy", "f1": "f1", "rouge1": "rouge 1", "rougeL": "rougeL"}
    for m, (rho_pub, p_pub) in pub_auto.items():
        rho, p, n = _spearman(auto["co2_eq_emissions"], auto[m]) if m in auto else (_nan(), _nan(), 0)
        rows.append(Row("RQ2", f"Spearman CO2e vs {m}, AutoTrain models: rho (n={n})", rho, rho_pub, f"{EMI} cell 10"))
        rows.append(Row("RQ2", f"Spearman CO2e vs {m}, AutoTrain models: p", p, p_pub, f"{EMI} cell 10"))
        p_repro[f"{names[m]} autotrain"] = p

    cv = rep.loc[rep["domain"] == "Computer Vision", "co2_eq_emissions"]
    nlp = rep.loc[rep["domain"] == "NLP", "co2_eq_emissions"]
    for label, val, pub in (
        ("CO2e of Computer Vision models: mean (g)", cv.mean(), 7.480591),
        ("CO2e of Computer Vision models: median (g)", cv.median(), 1.171724),
        ("CO2e of NLP models: mean (g)", nlp.mean(), 21770.941347),
        ("CO2e of NLP models: median (g)", nlp.median(), 4.988945),
    ):
        rows.append(Row("RQ2", label, float(val) if len(cv) and len(nlp) else _nan(), pub, f"{EMI} cell 23", DUP_NOTE))
    p_dom = _mwu(cv, nlp)
    rows.append(Row("RQ2", "Mann-Whitney U CV vs NLP CO2e: p (raw)", p_dom, 1.1409164876282704e-15,
                    f"{GEN} cell 20 ({EMI} cell 26)", DUP_NOTE))
    p_repro["domain analysis"] = p_dom

    el = classes["efficiency_label"].value_counts()
    pub_el = {"A": 37, "B": 486, "C": 826, "D": 55, "E": 15}
    for lab in LABELS:
        rows.append(Row("RQ2", f"efficiency label {lab}", int(el.get(lab, 0)), pub_el[lab], f"{EMI} cell 42"))
    rows.append(Row("RQ2", "models with an efficiency label", int(classes["efficiency_label"].notna().sum()), 1419, f"{EMI} cell 42"))

    # ---------------- RQ2 on the 48 curated models (HFClean.csv) ------------------------------
    no_clean = "HFClean.csv not given (`--clean`)"
    if clean is not None:
        extra["clean_models"] = len(clean)
        pub_clean = {
            "accuracy": (0.27272727272727276, 0.41714143714253127),
            "f1": (-0.3765723339400754, 0.3178226816985236),
            "rouge1": (0.3214285714285715, 0.4820720382996776),
            "rougeL": (0.0, 1.0),
        }
        for m, (rho_pub, p_pub) in pub_clean.items():
            rho, p, n = _spearman(clean["co2_eq_emissions"], clean[m])
            rows.append(Row("RQ2", f"Spearman CO2e vs {m}, curated models: rho (n={n})", rho, rho_pub, f"{EMI} cell 12"))
            rows.append(Row("RQ2", f"Spearman CO2e vs {m}, curated models: p", p, p_pub, f"{EMI} cell 12"))
            p_repro[f"{names[m]} clean"] = p
        tt_raw = clean["training_type_raw"] if "training_type_raw" in clean else clean["training_type"]
        co2 = clean["co2_eq_emissions"]
        pre = co2[tt_raw == "pretraining"]
        fine = co2[tt_raw == "fine-tuning"]
        both = co2[tt_raw == "pretraining + fine-tuning"]
        for label, val, pub in (
            ("curated: pretraining CO2e median (g)", pre.median(), 432.6742168),
            ("curated: fine-tuning CO2e median (g)", fine.median(), 17.0),
            ("curated: pretraining + fine-tuning CO2e median (g)", both.median(), 228920.0),
            ("curated: pretraining CO2e mean (g)", pre.mean(), 1243469.3790219603),
            ("curated: fine-tuning CO2e mean (g)", fine.mean(), 336.2286869880833),
        ):
            rows.append(Row("RQ2", label, float(val) if pd.notna(val) else _nan(), pub, f"{EMI} cells 15-16"))
        p_tt = _mwu(pre, fine)
        rows.append(Row("RQ2", "curated: Mann-Whitney U pretraining vs fine-tuning p (raw)", p_tt, 0.02920509534997118, f"{EMI} cell 14"))
        p_repro["pretraining vs finetuning"] = p_tt
        r_size, p_size, n_size = _pearson_log(clean["co2_eq_emissions"], clean["size"])
        r_ds, p_ds, n_ds = _pearson_log(clean["co2_eq_emissions"], clean["datasets_size"])
        rows.append(Row("RQ2", f"curated: Pearson log CO2e vs log model size r (n={n_size})", r_size, 0.5614984878926341, f"{EMI} cell 21"))
        rows.append(Row("RQ2", "curated: Pearson log CO2e vs log model size p (raw)", p_size, 3.294350083195913e-05, f"{EMI} cell 21"))
        rows.append(Row("RQ2", f"curated: Pearson log CO2e vs log dataset size r (n={n_ds})", r_ds, 0.5604251133350532, f"{EMI} cell 21"))
        rows.append(Row("RQ2", "curated: Pearson log CO2e vs log dataset size p (raw)", p_ds, 4.190761324292362e-05, f"{EMI} cell 21"))
        ok = clean["datasets_size"].notna() & clean["size"].notna() & clean["co2_eq_emissions"].notna()
        rho_ds, p_rho_ds, _ = _spearman(np.log(clean.loc[ok, "co2_eq_emissions"] + LOG_EPS), np.log(clean.loc[ok, "datasets_size"] + LOG_EPS))
        rows.append(Row("RQ2", "curated: Spearman log CO2e vs log dataset size rho", rho_ds, 0.5910603767900025, f"{EMI} cell 20"))
        p_repro["log(co2e) - log(model size)"] = p_size
        p_repro["log(co2e) - log(data size)"] = p_ds
    else:
        for label in ("curated: Pearson log CO2e vs log model size r", "curated: Pearson log CO2e vs log dataset size r"):
            rows.append(Row("RQ2", label, _nan(), 0.5614984878926341 if "model" in label else 0.5604251133350532,
                            f"{EMI} cell 21", no_clean))

    # ---------------- Holm over the study's family -------------------------------------------
    p_repro["slope reported co2"] = p_med
    p_repro["slope reporting co2"] = p_share
    fam_p, stand_ins = [], []
    for name, raw_pub, _ in HOLM_FAMILY:
        p = p_repro.get(name, _nan())
        if p is None or (isinstance(p, float) and math.isnan(p)):
            fam_p.append(raw_pub)
            stand_ins.append(name)
        else:
            fam_p.append(p)
    adj = holm(fam_p)
    extra["holm"] = [
        {"test": name, "p": p, "p_holm": a, "published_p_holm": pub_adj, "stand_in": name in stand_ins}
        for (name, _, pub_adj), p, a in zip(HOLM_FAMILY, fam_p, adj)
    ]
    note_holm = ("published raw p used for: " + ", ".join(stand_ins)) if stand_ins else ""
    for (name, _, pub_adj), a in zip(HOLM_FAMILY, adj):
        if name in ("slope reporting co2", "slope reported co2", "log(co2e) - log(model size)",
                    "log(co2e) - log(data size)", "domain analysis", "pretraining vs finetuning"):
            label = {
                "slope reporting co2": "monthly share: OLS slope p (Holm)",
                "slope reported co2": "monthly median CO2e: OLS slope p (Holm)",
            }.get(name, f"{name}: p (Holm)")
            rows.append(Row("RQ1" if "slope" in name else "RQ2", label,
                            _nan() if name in stand_ins else a, pub_adj, f"{GEN} cell 22", note_holm))
    return rows, extra
