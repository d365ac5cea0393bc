"""``terracarbon emissions``: company description -> NAICS industry -> supply-chain emissions (tCO2e)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table

app = typer.Typer(
    help="Enterprise emissions (GREEN): classify a company description into NAICS, multiply revenue by the "
    "US EPA supply-chain emission factor.",
    no_args_is_help=True,
)

_MODEL = typer.Option(
    None, "--model", help="Local sentence-transformers model folder (default: shipped MiniLM)."
)
_TAXONOMY = typer.Option(
    None, "--taxonomy", help="NAICS descriptions/code file or folder (default: data folder)."
)
_YEAR = typer.Option(
    2017, "--naics-year", help="NAICS edition of the taxonomy (2017 matches the EPA factors)."
)
_BACKEND = typer.Option(
    "onnx-int8",
    "--backend",
    help="Sentence encoder: onnx-int8 (fast default, exported once and cached), onnx (fp32) or torch.",
)
_THREADS = typer.Option(None, "--threads", help="Encoder threads (default: all cores).")


def _classifier(
    model, taxonomy, naics_year, beam, llm_url, llm_model, llm_key, backend="onnx-int8", threads=None, fast=False
):
    from terracarbon.emissions.classify import NaicsClassifier
    from terracarbon.emissions.llm import LLMMember
    from terracarbon.emissions.naics import load_naics

    tax = load_naics(taxonomy, year=naics_year)
    llm = LLMMember(llm_url, llm_model or "default", api_key=llm_key) if llm_url else None
    kwargs = {} if beam is None else {"beam": None if beam <= 0 else beam}
    if fast:  # encoder-free: the lexical member alone (a model folder written by `train`)
        kwargs["members"] = ["lexical"]
    return NaicsClassifier(tax, model, llm=llm, backend=backend, threads=threads, **kwargs)


@app.command("classify")
@handle_errors
def classify_cmd(
    text: str = typer.Argument(None, help="One description to classify (or use --batch)."),
    batch: Path = typer.Option(None, "--batch", help="CSV of descriptions to classify."),
    column: str = typer.Option(None, "--column", help="Column of --batch holding the descriptions."),
    out: Path = typer.Option(None, "--out", help="Output CSV for --batch."),
    top_k: int = typer.Option(10, "--top-k", help="Number of ranked 6-digit codes."),
    model: Path = _MODEL,
    taxonomy: Path = _TAXONOMY,
    naics_year: int = _YEAR,
    beam: int = typer.Option(None, "--beam", help="Codes kept per level (0 = score every path)."),
    llm_url: str = typer.Option(
        None, "--llm-url", help="OpenAI-compatible endpoint for the optional LLM member."
    ),
    llm_model: str = typer.Option(None, "--llm-model", help="Model name for --llm-url."),
    llm_key: str = typer.Option(None, "--llm-key", help="API key (default $TERRACARBON_LLM_API_KEY)."),
    footprint: Path = typer.Option(None, "--footprint", help="Record this run's energy/CO2e in this folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    backend: str = _BACKEND,
    threads: int = _THREADS,
    fast: bool = typer.Option(
        False,
        "--fast",
        help="Encoder-free fast mode: the lexical (TF-IDF + linear SVM) member alone; needs a --model folder "
        "written by `train`. Several times faster, a few points less accurate (docs/emissions.md).",
    ),
) -> None:
    """Classify TEXT, or every row of --batch CSV (--column, --out), into NAICS codes with confidences."""
    from terracarbon.emissions.classify import classify_csv
    from terracarbon.errors import ConfigError

    if (text is None) == (batch is None):
        raise ConfigError("give either TEXT or --batch CSV")
    clf = _classifier(model, taxonomy, naics_year, beam, llm_url, llm_model, llm_key, backend, threads, fast)
    if batch is not None:
        if not column or out is None:
            raise ConfigError("--batch needs --column and --out")
        df = classify_csv(clf, batch, out, column=column, top_k=top_k, footprint_dir=footprint)
        console.print(f"classified {len(df)} rows -> {out}")
        return
    pred = clf.predict([text], top_k=top_k)[0]
    if as_json:
        typer.echo(json.dumps(pred.to_dict(), indent=2))
        return
    rows = [
        {"rank": i + 1, "code": c.code, "title": c.title, "probability": c.probability}
        for i, c in enumerate(pred.candidates)
    ]
    print_table(f"NAICS for: {text}", rows, fmt="{:.3f}")


@app.command("estimate")
@handle_errors
def estimate_cmd(
    description: str = typer.Option(None, "--description", help="What the company does."),
    revenue: float = typer.Option(None, "--revenue", help="Annual revenue (in --currency of --year)."),
    currency: str = typer.Option("USD", "--currency", help="Currency of the revenue."),
    fx_rate: float = typer.Option(
        None, "--fx-rate", help="US dollars per 1 unit of --currency (non-USD only)."
    ),
    year: int = typer.Option(2021, "--year", help="Year of the revenue's dollars (CPI-U deflated to 2021)."),
    code: str = typer.Option(None, "--code", help="Known NAICS code (skips classification)."),
    margins: bool = typer.Option(
        False, "--margins/--no-margins", help="Factors with margins (purchaser price)."
    ),
    top_k: int = typer.Option(10, "--top-k", help="Codes in the uncertainty interval."),
    batch: Path = typer.Option(None, "--batch", help="CSV of companies (batch mode)."),
    description_column: str = typer.Option("description", "--description-column"),
    revenue_column: str = typer.Option("revenue", "--revenue-column"),
    year_column: str = typer.Option(None, "--year-column"),
    out: Path = typer.Option(None, "--out", help="Output CSV for --batch."),
    factors_path: Path = typer.Option(
        None, "--factors", help="EPA supply-chain factor CSV (default: data folder)."
    ),
    model: Path = _MODEL,
    taxonomy: Path = _TAXONOMY,
    naics_year: int = _YEAR,
    footprint: Path = typer.Option(None, "--footprint", help="Record this run's energy/CO2e in this folder."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    backend: str = _BACKEND,
) -> None:
    """Estimate supply-chain emissions (tCO2e) from a description and revenue, with interval and provenance."""
    from terracarbon.emissions.estimate import estimate_csv, estimate_emissions
    from terracarbon.emissions.factors import load_factors
    from terracarbon.errors import ConfigError

    factors = load_factors(factors_path)
    if batch is not None:
        if out is None:
            raise ConfigError("--batch needs --out")
        clf = _classifier(model, taxonomy, naics_year, None, None, None, None, backend)
        df = estimate_csv(
            batch,
            out,
            description_column=description_column,
            revenue_column=revenue_column,
            year_column=year_column,
            year=year,
            currency=currency,
            fx_rate=fx_rate,
            classifier=clf,
            factors=factors,
            top_k=top_k,
            margins=margins,
            footprint_dir=footprint,
        )
        console.print(f"estimated {len(df)} companies, total {df.tco2e.sum():,.1f} tCO2e -> {out}")
        return
    if revenue is None:
        raise ConfigError("give --revenue")
    clf = None if code else _classifier(model, taxonomy, naics_year, None, None, None, None, backend)
    est = estimate_emissions(
        description,
        revenue,
        currency=currency,
        year=year,
        fx_rate=fx_rate,
        code=code,
        classifier=clf,
        factors=factors,
        top_k=top_k,
        margins=margins,
    )
    if as_json:
        typer.echo(json.dumps(est.to_dict(), indent=2, default=str))
        return
    lo, hi = est.interval
    print_table(
        "emission estimate",
        {
            "NAICS": f"{est.code} {est.title}",
            "confidence": "-" if est.confidence is None else f"{est.confidence:.2f}",
            "revenue (2021 USD)": f"{est.revenue_usd:,.0f}",
            "factor (kg CO2e/USD)": f"{est.factor_kg_per_usd:.3f}",
            "emissions (tCO2e)": f"{est.tco2e:,.1f}",
            f"{est.interval_level:.0%} interval (tCO2e)": f"{lo:,.1f} - {hi:,.1f}",
            "expected (tCO2e)": f"{est.tco2e_expected:,.1f}",
        },
    )
    for k, v in est.provenance.items():
        console.print(f"[dim]{k}: {v}[/]")


@app.command("train")
@handle_errors
def train_cmd(
    pairs: Path = typer.Option(..., "--pairs", help="Labelled CSV (e.g. the NAICS index file)."),
    text_column: str = typer.Option(None, "--text-column", help="Description column (default: detected)."),
    code_column: str = typer.Option(None, "--code-column", help="NAICS code column (default: detected)."),
    out: Path = typer.Option(..., "--out", help="Output model folder (usable as --model)."),
    model: Path = _MODEL,
    taxonomy: Path = _TAXONOMY,
    naics_year: int = _YEAR,
    epochs: float = typer.Option(1.0, "--epochs"),
    batch_size: int = typer.Option(32, "--batch-size"),
    lr: float = typer.Option(5e-5, "--lr"),
    max_minutes: float = typer.Option(
        13.0,
        "--max-minutes",
        help="Time budget of the fine-tuning loop (13: the whole train, lexical member included, took 17.5 min on 2 cores).",
    ),
    holdout: float = typer.Option(0.1, "--holdout", help="Fraction held out for the final evaluation."),
    calibration: float = typer.Option(0.1, "--calibration", help="Fraction used to calibrate the ensemble."),
    freeze_layers: int = typer.Option(0, "--freeze-layers", help="Freeze embeddings + the first N layers."),
    threads: int = typer.Option(None, "--threads", help="torch threads (1 is fastest on a busy machine)."),
    seed: int = typer.Option(0, "--seed"),
    cross_references: Path = typer.Option(
        None,
        "--cross-references",
        help="Census cross-reference CSV: its 'X--are classified in Y' lines become extra training pairs.",
    ),
    hard_fraction: float = typer.Option(
        0.5, "--hard-fraction", help="Share of batches drawn from one 4-digit subtree (sibling hard negatives)."
    ),
    head: bool = typer.Option(True, "--head/--no-head", help="Fit the supervised linear head member."),
    xref_examples: bool = typer.Option(
        False, "--xref-examples/--no-xref-examples", help="Also use cross-reference activities as kNN examples."
    ),
    backend: str = _BACKEND,
    lexical: bool = typer.Option(
        True, "--lexical/--no-lexical", help="Fit the lexical member (TF-IDF n-grams + linear SVM)."
    ),
    lexical_c: float = typer.Option(1.0, "--lexical-c", help="Regularisation C of the lexical member's SVM."),
) -> None:
    """Fine-tune the sentence encoder (MultipleNegativesRankingLoss), calibrate the ensemble, evaluate, save."""
    from terracarbon.emissions.naics import load_naics
    from terracarbon.emissions.train import train_classifier

    tax = load_naics(taxonomy, year=naics_year)
    res = train_classifier(
        pairs,
        out,
        taxonomy=tax,
        text_column=text_column,
        code_column=code_column,
        model=model,
        holdout_fraction=holdout,
        calibration_fraction=calibration,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_minutes=max_minutes,
        freeze_layers=freeze_layers,
        threads=threads,
        seed=seed,
        cross_references=cross_references,
        hard_fraction=hard_fraction,
        head=head,
        xref_examples=xref_examples,
        backend=backend,
        lexical=lexical,
        lexical_c=lexical_c,
    )
    ft = res.finetune
    console.print(
        f"fine-tuned {ft['steps']}/{ft['planned_steps']} steps ({ft['epochs_done']:.2f} epochs) "
        f"in {ft['wall_time_s'] / 60:.1f} min; total {res.wall_time_s / 60:.1f} min -> {out}"
    )
    if res.metrics:
        _print_metrics("held-out accuracy", res.metrics)


def _print_metrics(title: str, m: dict) -> None:
    rows = []
    for lv in (2, 3, 4, 5, 6):
        if f"level{lv}_top1" in m:
            rows.append(
                {"level": f"{lv}-digit", "top-1": m[f"level{lv}_top1"], "top-10": m[f"level{lv}_top10"]}
            )
    print_table(title, rows, fmt="{:.3f}")


@app.command("calibrate")
@handle_errors
def calibrate_cmd(
    model: Path = typer.Option(..., "--model", help="Model folder written by `train`."),
    labelled: Path = typer.Option(..., "--labelled", help="Labelled CSV (e.g. MODEL/calibration.csv)."),
    members: str = typer.Option(None, "--members", help="Comma-separated members (default: all available)."),
    beam: int = typer.Option(None, "--beam", help="Codes kept per level (0 = every path)."),
    taxonomy: Path = _TAXONOMY,
    naics_year: int = _YEAR,
) -> None:
    """Refit the ensemble's temperatures and weights of a trained model on a labelled CSV."""
    from terracarbon.emissions.naics import load_naics
    from terracarbon.emissions.train import recalibrate

    cal = recalibrate(
        model,
        labelled,
        taxonomy=load_naics(taxonomy, year=naics_year),
        members=members.split(",") if members else None,
        beam=beam,
    )
    rows = [
        {"level": lv, **v["weights"], "acc | parent": v["acc_given_parent"], "nll": v["nll"]}
        for lv, v in cal["levels"].items()
    ]
    print_table(f"calibration of {model}", rows, fmt="{:.3f}")


@app.command("evaluate")
@handle_errors
def evaluate_cmd(
    labelled: Path = typer.Option(..., "--labelled", help="Labelled CSV (text + NAICS code)."),
    text_column: str = typer.Option(None, "--text-column"),
    code_column: str = typer.Option(None, "--code-column"),
    model: Path = _MODEL,
    taxonomy: Path = _TAXONOMY,
    naics_year: int = _YEAR,
    beam: int = typer.Option(None, "--beam", help="Codes kept per level (0 = score every path)."),
    baseline: bool = typer.Option(False, "--baseline", help="Also score flat zero-shot retrieval."),
    factors_path: Path = typer.Option(None, "--factors", help="EPA factor CSV, for the emission MAPE."),
    as_json: bool = typer.Option(False, "--json"),
    backend: str = _BACKEND,
    threads: int = _THREADS,
) -> None:
    """Top-1/top-10 accuracy per NAICS level (and emission MAPE) on a labelled CSV."""
    from terracarbon.emissions.evaluate import evaluate_classifier, retrieval_baseline
    from terracarbon.emissions.factors import load_factors
    from terracarbon.emissions.naics import load_labelled

    clf = _classifier(model, taxonomy, naics_year, beam, None, None, None, backend, threads)
    df = load_labelled(labelled, text_column=text_column, code_column=code_column, taxonomy=clf.taxonomy)
    factors = load_factors(factors_path) if factors_path else None
    res = {
        "ensemble": evaluate_classifier(
            clf, df.text.tolist(), df.code.tolist(), factors=factors, progress=True
        )
    }
    if baseline:
        res["flat_retrieval"] = retrieval_baseline(
            clf.model, clf.taxonomy, df.text.tolist(), df.code.tolist()
        )
    if as_json:
        typer.echo(json.dumps(res, indent=2))
        return
    for name, m in res.items():
        _print_metrics(f"{name} on {labelled.name} (n={m['n']})", m)
        extra = {k: v for k, v in m.items() if "ape" in k or k in ("mean_confidence", "ece")}
        if extra:
            print_table(f"{name}: calibration / emissions", extra, fmt="{:.3f}")


@app.command("factor")
@handle_errors
def factor_cmd(
    code: str = typer.Argument(..., help="NAICS code (2 to 6 digits)."),
    margins: bool = typer.Option(False, "--margins/--no-margins"),
    factors_path: Path = typer.Option(None, "--factors"),
) -> None:
    """Look up the EPA supply-chain factor of a NAICS code (falls back up the hierarchy and says so)."""
    from terracarbon.emissions.factors import load_factors

    f = load_factors(factors_path).lookup(code, margins=margins)
    print_table(
        f"EPA factor for NAICS {code}",
        {
            "matched code": f.matched_code,
            "title": f.title,
            "factor": f"{f.kg_per_usd:.4g} {f.unit}",
            "with / without margins": f"{f.kg_per_usd_with_margins:.4g} / {f.kg_per_usd_without_margins:.4g}",
            "note": f.note,
        },
    )


@app.command("naics")
@handle_errors
def naics_cmd(
    code: str = typer.Argument(None, help="Show this code (default: the sectors)."),
    taxonomy: Path = _TAXONOMY,
    naics_year: int = _YEAR,
    download: bool = typer.Option(False, "--download", help="Fetch the Census file once if none is found."),
    concordance_to: int = typer.Option(
        None, "--concordance-to", help="Write a concordance to this NAICS year."
    ),
    out: Path = typer.Option(None, "--out", help="CSV for --concordance-to."),
) -> None:
    """Browse the NAICS tree; optionally write a 2017 <-> 2022 concordance CSV."""
    from terracarbon.emissions.naics import concordance, load_naics
    from terracarbon.utils import atomic_path

    tax = load_naics(taxonomy, year=naics_year, download=download)
    if concordance_to:
        other = load_naics(taxonomy, year=concordance_to, download=download)
        df = concordance(tax, other)
        if out is not None:
            with atomic_path(out) as tmp:
                df.to_csv(tmp, index=False)
        print_table(f"NAICS {naics_year} -> {concordance_to}", df.status.value_counts().to_dict(), fmt="{}")
        return
    codes = tax.children(code) if code else tax.codes(2)
    if code:
        n = tax[code]
        console.print(f"[bold]{n.code}[/] {n.title} ({n.level_name})\n{n.description}")
    print_table(
        f"NAICS {naics_year}" + (f" under {code}" if code else " sectors"),
        [{"code": c, "title": tax[c].title} for c in codes],
    )
