"""The mining study's research questions, answered on mined data (or the study's own CSV).

RQ1 — how do model creators measure and report carbon emissions on the Hub?
    share of reporting models over time (needs a database mined with ``filter_tag=None``, i.e.
    non-reporting models too; with only reporting models the counts per period are shown),
    measurement sources, completeness of the context fields, reporting-practice classes, and
    the trend of reported emissions over time.
RQ2 — what aspects impact the carbon emissions of training?
    emissions by domain, training type, location and AutoTrain use (medians, Kruskal-Wallis /
    Mann-Whitney tests), and Spearman rank correlations of emissions with model size, dataset size,
    downloads, likes and performance score. Plus the carbon-efficiency label distribution.

Outputs in ``out``: ``summary.md`` (Markdown tables), ``classes.csv`` (one row per model: its
reporting-practice and carbon-efficiency classes, :func:`terracarbon.footprint.classify.classify`),
``analysis.json`` (every figure of the summary, machine-readable) and PNG plots.

Data differences worth knowing: the miner records model size as the weights' byte count from the
listing's safetensors metadata (else the repo's storage); the study downloaded the size of
``pytorch_model.bin``. Dataset sizes are not part of the model listing: they come from
:func:`terracarbon.footprint.hub.fetch_dataset_sizes` (``mine --dataset-sizes``), as the study
looked them up per dataset.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._compat import atomic_path, write_json_atomic, write_text_atomic
from .classify import COMPLETENESS_CLASSES, LABELS, REPORTING_CLASSES, classify, load_records


@dataclass
class AnalysisResult:
    """Paths and headline figures of :func:`analyse`."""

    out_dir: Path
    summary: Path
    classes: Path
    replication: Path | None = None
    plots: list[Path] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if v == 0:
            return "0"
        if abs(v) >= 1e6 or abs(v) < 1e-3:
            return f"{v:.3g}"
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.3g}"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    return str(v).replace("|", "\\|")


def md_table(df: pd.DataFrame) -> str:
    """A DataFrame as a GitHub Markdown table (index dropped)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) for v in row) + " |")
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return None if math.isnan(f) else f
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def spearman(x: pd.Series, y: pd.Series) -> dict[str, Any]:
    """Spearman rank correlation on the pairs where both values are finite."""
    from scipy.stats import spearmanr

    a = pd.to_numeric(x, errors="coerce").astype(float)
    b = pd.to_numeric(y, errors="coerce").astype(float)
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < 3 or a[ok].nunique() < 2 or b[ok].nunique() < 2:
        return {"rho": float("nan"), "p": float("nan"), "n": n}
    res = spearmanr(a[ok], b[ok])
    return {"rho": float(res.statistic), "p": float(res.pvalue), "n": n}


def _group_stats(df: pd.DataFrame, by: str, top: int | None = None) -> pd.DataFrame:
    g = df.groupby(by)["co2_eq_emissions"]
    t = pd.DataFrame(
        {
            by: g.size().index,
            "models": g.size().to_numpy(),
            "median g": g.median().to_numpy(),
            "mean g": g.mean().to_numpy(),
            "p25 g": g.quantile(0.25).to_numpy(),
            "p75 g": g.quantile(0.75).to_numpy(),
        }
    ).sort_values("models", ascending=False)
    if top:
        t = t.head(top)
    return t.reset_index(drop=True)


def _kruskal(df: pd.DataFrame, by: str, min_n: int = 5) -> float:
    from scipy.stats import kruskal

    groups = [
        g.dropna().to_numpy() for _, g in df.groupby(by)["co2_eq_emissions"] if g.notna().sum() >= min_n
    ]
    if len(groups) < 2:
        return float("nan")
    try:
        return float(kruskal(*groups).pvalue)
    except ValueError:
        return float("nan")


def _mannwhitney(a: pd.Series, b: pd.Series) -> float:
    from scipy.stats import mannwhitneyu

    a, b = a.dropna(), b.dropna()
    if len(a) < 3 or len(b) < 3:
        return float("nan")
    return float(mannwhitneyu(a, b).pvalue)


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------
def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _plots(df: pd.DataFrame, classes: pd.DataFrame, per_year: pd.DataFrame, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    rep = df[df["co2_eq_emissions"].notna()]

    # RQ1: reporting over time
    if len(per_year):
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar(per_year["year"].astype(str), per_year["reporting models"], color="#3a7d44")
        ax.set_ylabel("models reporting CO2e")
        ax.set_xlabel("model creation year")
        if per_year["share reporting %"].notna().any():
            ax2 = ax.twinx()
            ax2.plot(per_year["year"].astype(str), per_year["share reporting %"], "o-", color="#b5472b")
            ax2.set_ylabel("share of all models (%)")
        ax.set_title("Emission-reporting models per year")
        paths.append(_save(fig, out / "reporting_over_time.png"))

    # RQ1: emissions over time
    dated = rep[rep["created_at"].notna() & (rep["co2_eq_emissions"] > 0)]
    if len(dated):
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.scatter(dated["created_at"].dt.tz_localize(None), dated["co2_eq_emissions"], s=6, alpha=0.4)
        naive = dated["created_at"].dt.tz_localize(None)
        q = dated.groupby(naive.dt.to_period("Q"))["co2_eq_emissions"].median()
        ax.plot([p.start_time for p in q.index], q.to_numpy(), "r-", lw=2, label="quarterly median")
        ax.set_yscale("log")
        ax.set_ylabel("CO2e (g, log)")
        ax.legend()
        ax.set_title("Reported training emissions over time")
        paths.append(_save(fig, out / "emissions_over_time.png"))

    # RQ2: by category
    for col, name in (
        ("domain", "emissions_by_domain.png"),
        ("training_type", "emissions_by_training_type.png"),
    ):
        sub = rep[rep["co2_eq_emissions"] > 0]
        groups = [(k, g["co2_eq_emissions"].to_numpy()) for k, g in sub.groupby(col) if len(g) >= 1]
        if not groups:
            continue
        groups.sort(key=lambda kv: -len(kv[1]))
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.boxplot([g for _, g in groups], showfliers=True)
        ax.set_xticks(range(1, len(groups) + 1), [f"{k}\n(n={len(g)})" for k, g in groups], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("CO2e (g, log)")
        ax.set_title(f"Emissions by {col.replace('_', ' ')}")
        paths.append(_save(fig, out / name))

    # RQ2: correlations
    for col, name, label in (
        ("size", "emissions_vs_size.png", "model size (bytes)"),
        ("datasets_size", "emissions_vs_datasets_size.png", "dataset size (bytes)"),
    ):
        sub = rep[(rep[col] > 0) & (rep["co2_eq_emissions"] > 0)]
        if len(sub) < 3:
            continue
        r = spearman(sub[col], sub["co2_eq_emissions"])
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.scatter(sub[col], sub["co2_eq_emissions"], s=6, alpha=0.4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("CO2e (g)")
        ax.set_title(f"Spearman rho = {r['rho']:.2f} (n = {r['n']})")
        paths.append(_save(fig, out / name))

    # classes
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    rc = classes["reporting_class"].value_counts().reindex(REPORTING_CLASSES, fill_value=0)
    axes[0].bar(rc.index, rc.to_numpy(), color="#4c72b0")
    axes[0].set_title("Reporting-practice classes")
    axes[0].tick_params(axis="x", labelsize=8, rotation=20)
    el = classes["efficiency_label"].value_counts().reindex(list(LABELS), fill_value=0)
    axes[1].bar(el.index, el.to_numpy(), color=["#1a9641", "#a6d96a", "#ffffbf", "#fdae61", "#d7191c"])
    axes[1].set_title("Carbon-efficiency labels")
    paths.append(_save(fig, out / "classes.png"))
    return paths


def _replication_plots(rows: list, extra: dict[str, Any], clean: pd.DataFrame | None, out: Path) -> list[Path]:
    """The notebooks' RQ figures redrawn on this input, each annotated with the published values."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    by = {r.quantity: r for r in rows}

    def pair(q: str) -> str:
        r = by.get(q)
        if r is None:
            return "–"
        return f"{_fmt4(r.reproduced)} (published {_fmt4(r.published)})"

    paths: list[Path] = []
    series = (
        (
            "monthly_median",
            "median g",
            "rq1_monthly_median_co2e.png",
            "Median CO2e of new reporting models per month (HFReportingAnalysis cells 15-20)",
            "median CO2e (g)",
            ["monthly median CO2e: maximum (g)", "monthly median CO2e: mean of months (g)",
             "monthly median CO2e: OLS slope p (raw)", "monthly median CO2e: OLS slope p (Holm)"],
        ),
        (
            "monthly_share",
            "share %",
            "rq1_monthly_share_reporting.png",
            "Share of new models reporting CO2e per month (HFReportingAnalysis cells 9-13)",
            "% of new models",
            ["monthly share reporting CO2e: maximum (%)", "monthly share reporting CO2e: overall (%)",
             "monthly share: OLS slope p (raw)", "monthly share: OLS slope p (Holm)"],
        ),
    )
    for key, col, name, title, ylabel, quantities in series:
        t = extra.get(key)
        if t is None or len(t) < 3:
            continue
        y = t[col].to_numpy(dtype=float)
        x = np.arange(len(y))
        fig, ax = plt.subplots(figsize=(8, 4))
        ax.plot(x, y, "o-", color="#3a7d44", label="this input")
        slope, icpt = np.polyfit(x, y, 1)
        ax.plot(x, icpt + slope * x, "--", color="#b5472b", label="OLS trend")
        step = max(1, len(x) // 8)
        ax.set_xticks(x[::step], [str(m) for m in t["month"].iloc[::step]], rotation=45, fontsize=8)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.text(
            0.99, 0.97, "\n".join(f"{q.split(': ', 1)[1]}: {pair(q)}" for q in quantities),
            transform=ax.transAxes, ha="right", va="top", fontsize=7,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "#999"},
        )
        ax.legend(loc="upper left", fontsize=8)
        paths.append(_save(fig, out / name))

    if clean is not None and len(clean) >= 3:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for ax, col, label, q in (
            (axes[0], "datasets_size", "dataset size (bytes)", "curated: Pearson log CO2e vs log dataset size r"),
            (axes[1], "size", "model size (bytes)", "curated: Pearson log CO2e vs log model size r"),
        ):
            ok = clean[col].notna() & clean["co2_eq_emissions"].notna()
            ax.scatter(clean.loc[ok, col] + 1e-6, clean.loc[ok, "co2_eq_emissions"] + 1e-6, s=14)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.set_ylabel("CO2e (g)")
            key = next((k for k in by if k.startswith(q)), None)
            ax.set_title(f"r = {pair(key) if key else '–'}", fontsize=8)
        fig.suptitle("48 curated models (HFClean.csv), HFEmissionsAnalysis cells 18-21", fontsize=9)
        paths.append(_save(fig, out / "rq2_log_size_correlations.png"))
    return paths


# --------------------------------------------------------------------------------------------
# analysis
# --------------------------------------------------------------------------------------------
def analyse(
    *,
    out: str | Path,
    db: str | Path | None = None,
    csv: str | Path | None = None,
    records: pd.DataFrame | None = None,
    faithful: bool = True,
    plots: bool = True,
    clean: str | Path | None = None,
) -> AnalysisResult:
    """Answer the study's research questions next to the replication package's published figures.

    Writes ``classes.csv`` (one row per input row: ``model_id, reporting_class,
    efficiency_label``, ...), ``replication.csv`` (``quantity, reproduced, published, source``,
    :mod:`terracarbon.footprint.replication`), ``summary.md``, ``analysis.json`` and PNG plots.

    Args:
        out: output folder (created).
        db / csv: a miner database or one of the study's CSVs (``HFCO2.csv`` layout) — exactly one.
        records: an already loaded records table instead of ``db``/``csv``.
        faithful: the replication's quirks (label CO2 index, reporting-class branch order);
            ``False`` applies the corrections.
        plots: write the PNG plots.
        clean: the study's ``HFClean.csv`` (48 curated models) for the RQ2 correlations; default
            ``HFClean.csv`` next to ``csv`` when it exists.
    """
    from .replication import compare

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = records if records is not None else load_records(db=db, csv=csv)
    source_name = str(db or csv or "records")
    df = df.reset_index(drop=True)
    classes = classify(records=df, out=out / "classes.csv", faithful=faithful)
    if clean is None and csv is not None and (Path(csv).parent / "HFClean.csv").is_file():
        if Path(csv).name != "HFClean.csv":
            clean = Path(csv).parent / "HFClean.csv"
    clean_df = load_records(csv=clean) if clean is not None else None
    rep_rows, rep_extra = compare(df, classes, clean_df, input_name=source_name)
    rep_table = pd.DataFrame([r.as_dict() for r in rep_rows], columns=["quantity", "reproduced", "published", "source"])
    with atomic_path(out / "replication.csv") as tmp:
        rep_table.to_csv(tmp, index=False)
    figures: dict[str, Any] = {"input": source_name, "clean": str(clean) if clean else None}
    figures["replication"] = [r.as_dict() | {"note": r.note, "rq": r.rq} for r in rep_rows]
    figures["holm"] = rep_extra.get("holm")

    n = len(df)
    ok = df[df["co2_eq_emissions"].notna()].copy()
    n_ok = len(ok)
    n_malformed = int((df["co2_status"] == "malformed").sum())
    n_reported = int(df["co2_reported"].astype(bool).sum())
    figures["models"] = n
    figures["reporting_models"] = n_reported
    figures["usable_emissions"] = n_ok
    figures["malformed"] = n_malformed
    has_nonreporting = n_reported < n

    # ---- RQ1 -------------------------------------------------------------------------------
    year = df["created_at"].dt.year
    per_year = (
        pd.DataFrame({"year": year, "rep": df["co2_reported"].astype(int)})
        .dropna(subset=["year"])
        .groupby("year")
        .agg(models=("rep", "size"), reporting=("rep", "sum"))
        .reset_index()
    )
    per_year["year"] = per_year["year"].astype(int).astype(str)
    per_year = per_year.rename(columns={"reporting": "reporting models"})
    per_year["share reporting %"] = (
        100.0 * per_year["reporting models"] / per_year["models"] if has_nonreporting else np.nan
    )
    med_year = ok.groupby(ok["created_at"].dt.year)["co2_eq_emissions"].median()
    med_year.index = med_year.index.astype(int).astype(str)
    per_year["median CO2e g"] = per_year["year"].map(med_year)
    figures["per_year"] = per_year.to_dict("records")

    src = ok["source"].value_counts()
    sources = pd.DataFrame(
        {"source": src.index, "models": src.to_numpy(), "%": 100 * src.to_numpy() / max(n_ok, 1)}
    )
    figures["sources"] = dict(zip(sources["source"], sources["models"]))
    context = pd.DataFrame(
        {
            "field": ["source", "training_type", "geographical_location", "hardware_used"],
            "models giving it": [
                int(ok[f"has_{f}"].sum())
                for f in ("source", "training_type", "geographical_location", "hardware_used")
            ],
        }
    )
    context["%"] = 100 * context["models giving it"] / max(n_ok, 1)
    rc = classes["reporting_class"].value_counts().reindex(REPORTING_CLASSES, fill_value=0)
    reporting_tbl = pd.DataFrame(
        {"class": rc.index, "models": rc.to_numpy(), "%": 100 * rc.to_numpy() / max(n, 1)}
    )
    figures["reporting_classes"] = dict(zip(reporting_tbl["class"], reporting_tbl["models"]))
    cc = classes["context_completeness"].value_counts().reindex(COMPLETENESS_CLASSES, fill_value=0)
    completeness_tbl = pd.DataFrame(
        {"class": cc.index, "models": cc.to_numpy(), "%": 100 * cc.to_numpy() / max(n, 1)}
    )
    figures["context_completeness"] = dict(zip(completeness_tbl["class"], completeness_tbl["models"]))

    dated = ok[ok["created_at"].notna()]
    trend = spearman(dated["created_at"].map(lambda t: t.toordinal()), dated["co2_eq_emissions"])
    figures["trend_time_vs_emissions"] = trend
    recent = dated[dated["created_at"] >= dated["created_at"].max() - pd.Timedelta(days=730)]
    figures["trend_last_2_years"] = spearman(
        recent["created_at"].map(lambda t: t.toordinal()), recent["co2_eq_emissions"]
    )

    # ---- RQ2 -------------------------------------------------------------------------------
    by_domain = _group_stats(ok, "domain")
    by_training = _group_stats(ok, "training_type")
    by_location = _group_stats(ok, "geographical_location", top=10)
    ok["autotrain"] = np.where(ok["auto"], "AutoTrain", "other")
    by_auto = _group_stats(ok, "autotrain")
    tests = {
        "domain (Kruskal-Wallis p)": _kruskal(ok, "domain"),
        "training type (Kruskal-Wallis p)": _kruskal(ok, "training_type"),
        "location (Kruskal-Wallis p)": _kruskal(ok, "geographical_location"),
        "AutoTrain vs other (Mann-Whitney p)": _mannwhitney(
            ok.loc[ok["auto"], "co2_eq_emissions"], ok.loc[~ok["auto"], "co2_eq_emissions"]
        ),
    }
    figures["group_tests"] = tests
    figures["by_domain"] = by_domain.to_dict("records")
    figures["by_training_type"] = by_training.to_dict("records")
    corr_rows = []
    for col, label in (
        ("size", "model size"),
        ("datasets_size", "dataset size"),
        ("downloads", "downloads"),
        ("likes", "likes"),
        ("performance_score", "performance score"),
    ):
        r = spearman(ok[col], ok["co2_eq_emissions"])
        corr_rows.append({"CO2e vs": label, "Spearman rho": r["rho"], "p": r["p"], "n": r["n"]})
    corr = pd.DataFrame(corr_rows)
    figures["spearman"] = {
        r["CO2e vs"]: {"rho": r["Spearman rho"], "p": r["p"], "n": r["n"]} for r in corr_rows
    }

    el = classes["efficiency_label"].value_counts().reindex(list(LABELS), fill_value=0)
    labels_tbl = pd.DataFrame(
        {"label": el.index, "models": el.to_numpy(), "%": 100 * el.to_numpy() / max(n_ok, 1)}
    )
    figures["efficiency_labels"] = dict(zip(labels_tbl["label"], labels_tbl["models"]))
    cross = pd.crosstab(classes["domain"], classes["efficiency_label"]).reindex(
        columns=list(LABELS), fill_value=0
    )
    cross = cross.reset_index()

    # ---- outputs ---------------------------------------------------------------------------
    plot_paths = _plots(df, classes, per_year, out) if plots else []
    if plots:
        plot_paths += _replication_plots(rep_rows, rep_extra, clean_df, out)
    figures["plots"] = [p.name for p in plot_paths]
    co2 = ok["co2_eq_emissions"]
    lines = [
        "# Carbon footprint of Hub models — analysis",
        "",
        f"Input: `{source_name}` — {n:,} models, {n_reported:,} declaring `co2_eq_emissions`, "
        f"{n_ok:,} with a usable value, {n_malformed:,} malformed. "
        f"Created {_fmt(df['created_at'].min())[:10]} … {_fmt(df['created_at'].max())[:10]}.",
        "",
        f"Reported emissions: median {_fmt(co2.median())} g, mean {_fmt(co2.mean())} g, "
        f"max {_fmt(co2.max())} g, total {_fmt(co2.sum() / 1000)} kg CO2e.",
        "",
        "Method: Castaño et al., *Exploring the Carbon Footprint of Hugging Face's ML Models: A "
        "Repository Mining Study* (ESEM 2023, arXiv:2305.11164), replication package "
        "github.com/GAISSA-UPC/ML-EnergyLabel. Both classifications follow the package's code "
        f"({'quirks kept' if faithful else 'corrected variant'}; see `terracarbon.footprint.classify`).",
        "",
        "## Reproduced vs published",
        "",
        "Each figure the package's notebooks print, reproduced on this input"
        + (f" and on `{clean}`" if clean else "")
        + ". `–` = not published / not computable here; the note says why values differ. "
        "Also in `replication.csv`.",
        "",
        *_replication_md(rep_rows),
        *[f"![{p.stem}]({p.name})\n" for p in plot_paths if p.name.startswith("rq")],
        "### Monthly median CO2e of reporting models (RQ1 trend)",
        "",
        md_table(rep_extra["monthly_median"].astype({"month": str})) if len(rep_extra["monthly_median"]) else "–",
        "",
        *(
            ["### Monthly share of new models reporting CO2e", "", md_table(rep_extra["monthly_share"].astype({"month": str})), ""]
            if has_nonreporting and len(rep_extra["monthly_share"])
            else []
        ),
        "## RQ1 — how are emissions measured and reported?",
        "",
        "### Reporting models per creation year",
        "",
        md_table(per_year)
        + (
            ""
            if has_nonreporting
            else "\n\n*Only reporting models are in this input, so the share among all models "
            "cannot be computed (mine with `--all-models` for it).*"
        ),
        "",
        f"Trend of reported emissions over time (Spearman, creation date vs CO2e): rho = "
        f"{_fmt(trend['rho'])} (p = {_fmt(trend['p'])}, n = {trend['n']}); last two years: rho = "
        f"{_fmt(figures['trend_last_2_years']['rho'])} (p = {_fmt(figures['trend_last_2_years']['p'])}).",
        "",
        "### How emissions were measured (source)",
        "",
        md_table(sources),
        "",
        "### Context fields given with the emissions",
        "",
        md_table(context),
        "",
        "### Reporting-practice classes (the study's, HFReportingAnalysis cell 35)",
        "",
        md_table(reporting_tbl),
        "",
        "### Context fields given (terracarbon's completeness classes)",
        "",
        md_table(completeness_tbl),
        "",
        "## RQ2 — what is associated with the emissions?",
        "",
        "### By application domain",
        "",
        md_table(by_domain),
        "",
        "### By training type",
        "",
        md_table(by_training),
        "",
        "### By location (top 10)",
        "",
        md_table(by_location),
        "",
        "### AutoTrain vs other models",
        "",
        md_table(by_auto),
        "",
        "Group differences: " + "; ".join(f"{k} = {_fmt(v)}" for k, v in tests.items()) + ".",
        "",
        "### Spearman correlations with CO2e",
        "",
        md_table(corr),
        "",
        "## Carbon-efficiency labels (A best … E worst)",
        "",
        md_table(labels_tbl),
        "",
        "By domain:",
        "",
        md_table(cross),
        "",
        "## Files",
        "",
        "- `classes.csv` — one row per model: reporting-practice class, carbon-efficiency label, per-metric ratings",
        "- `replication.csv` — reproduced vs published figures with the source notebook cell",
        "- `analysis.json` — all figures above",
        *[f"- `{p.name}`" for p in plot_paths],
        "",
    ]
    summary = write_text_atomic(out / "summary.md", "\n".join(lines))
    write_json_atomic(out / "analysis.json", _jsonable(figures))
    return AnalysisResult(
        out_dir=out,
        summary=summary,
        classes=out / "classes.csv",
        replication=out / "replication.csv",
        plots=plot_paths,
        figures=figures,
    )


def _fmt4(v: Any) -> str:
    """Four significant digits (integers in full) for the reproduced-vs-published table."""
    if isinstance(v, (bool, np.bool_)) or v is None:
        return _fmt(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "–"
        if f.is_integer() and abs(f) < 1e15:
            return f"{int(f):,}"
        return f"{f:.4g}"
    return _fmt(v)


def matches(reproduced: Any, published: Any) -> str:
    """``yes`` when a reproduced figure equals the published one at its printed precision, ``no``
    when it differs, ``–`` when either is missing."""
    try:
        a, b = float(reproduced), float(published)
    except (TypeError, ValueError):
        return "–"
    if math.isnan(a) or math.isnan(b):
        return "–"
    text = repr(published) if isinstance(published, (int, float)) else str(published)
    decimals = len(text.split(".", 1)[1]) if "." in text and "e" not in text.lower() else None
    tol = 1e-6 * abs(b)
    if decimals is not None:  # published as printed: half a unit of its last digit
        tol = max(tol, 0.5 * 10.0**-decimals)
    return "yes" if abs(a - b) <= tol else "no"


def _replication_md(rows: list) -> list[str]:
    """Markdown tables (one per RQ) of the reproduced-vs-published rows, with the notes."""
    lines: list[str] = []
    for rq, title in (("RQ1", "RQ1 — reporting"), ("RQ2", "RQ2 — what drives the emissions")):
        sub = [r for r in rows if r.rq == rq]
        if not sub:
            continue
        match = [matches(r.reproduced, r.published) for r in sub]
        t = pd.DataFrame(
            {
                "quantity": [r.quantity for r in sub],
                "reproduced": [_fmt4(r.reproduced) for r in sub],
                "published": [_fmt4(r.published) for r in sub],
                "same": match,
                "source": [r.source.replace("code/Analysis/", "") for r in sub],
                "note": [r.note if (m != "yes" or "(Holm)" in r.quantity) else "" for r, m in zip(sub, match)],
            }
        )
        lines += [f"### {title}", "", md_table(t), ""]
    return lines


def load_analysis(out_dir: str | Path) -> dict[str, Any]:
    """Read ``analysis.json`` written by :func:`analyse`."""
    return json.loads((Path(out_dir) / "analysis.json").read_text(encoding="utf-8"))
