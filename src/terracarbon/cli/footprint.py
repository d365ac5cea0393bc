"""``terracarbon footprint``: energy/CO2e of runs, model cards, Hub mining, classification, analysis."""

from __future__ import annotations

from pathlib import Path

import typer

from terracarbon.cli.common import console, handle_errors, print_table

app = typer.Typer(
    help="Energy and CO2e of ML runs (codecarbon, offline); Hub model cards; mine, classify and analyse "
    "the Hugging Face Hub's reported emissions.",
    no_args_is_help=True,
)


def _result_rows(result: dict) -> dict:
    keys = (
        ("energy_kwh", "energy (kWh)"),
        ("cpu_energy_kwh", "CPU energy (kWh)"),
        ("gpu_energy_kwh", "GPU energy (kWh)"),
        ("ram_energy_kwh", "RAM energy (kWh)"),
        ("emissions_g", "emissions (g CO2e)"),
        ("duration_s", "duration (s)"),
        ("carbon_intensity_g_per_kwh", "grid intensity (g/kWh)"),
        ("country_iso_code", "grid"),
        ("method", "measurement method"),
        ("hardware", "hardware"),
        ("probe", "codecarbon probe"),
    )
    return {label: result.get(k) for k, label in keys if result.get(k) is not None}


@app.command(
    "track",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@handle_errors
def track(
    command: list[str] = typer.Argument(..., help="The command to run, after `--`."),
    out: Path = typer.Option(
        None, "--out", help="Run folder for emissions.csv/.json (default runs/<time>-track)."
    ),
    country: str = typer.Option("USA", "--country", help="ISO 3166-1 alpha-3 code of the electricity grid."),
    region: str = typer.Option(None, "--region", help="Region inside the country (e.g. california)."),
    name: str = typer.Option(None, "--name", help="Task name recorded in the CSV (default: the program)."),
) -> None:
    """Run COMMAND while measuring its energy and CO2e: `terracarbon footprint track -- python train.py`.

    The exit code is the command's. codecarbon's hardware probe is cached per machine in
    ~/.cache/terracarbon/footprint (TERRACARBON_PROBE_CACHE=off probes every time).
    """
    from terracarbon.footprint.track import format_result, track_command
    from terracarbon.utils import run_dir

    out_dir = out if out is not None else run_dir("runs", "track")
    res = track_command(list(command), out_dir, task_name=name, country_iso_code=country, region=region)
    if res.result:
        print_table(f"footprint of `{' '.join(command)}`", _result_rows(res.result), fmt="{:.6g}")
        console.print(format_result(res.result))
    console.print(f"records: {out_dir}/emissions.csv, {out_dir}/emissions.json")
    raise typer.Exit(res.returncode)


@app.command("card")
@handle_errors
def card(
    out_dir: Path = typer.Argument(..., help="Folder of the exported model (README.md is written there)."),
    model_id: str = typer.Option(..., "--model-id", help="Model name."),
    run: Path = typer.Option(
        None, "--run", help="Run folder (or emissions.json) with the tracked footprint."
    ),
    emissions_g: float = typer.Option(None, "--emissions-g", help="Emissions in grams (instead of --run)."),
    training_type: str = typer.Option("fine-tuning", "--training-type", help="pre-training or fine-tuning."),
    location: str = typer.Option(None, "--location", help="Geographical location (default: the run's grid)."),
    hardware: str = typer.Option(None, "--hardware", help="Hardware used (default: the run's hardware)."),
    dataset: list[str] = typer.Option([], "--dataset", help="Dataset id (repeatable)."),
    metric: list[str] = typer.Option([], "--metric", help="name=value (repeatable)."),
    license: str = typer.Option("apache-2.0", "--license"),
    pipeline_tag: str = typer.Option(None, "--pipeline-tag"),
) -> None:
    """Write a Hub model card (README.md) with co2_eq_emissions for an exported model."""
    from terracarbon.errors import ConfigError
    from terracarbon.footprint import load_emissions, write_model_card

    footprint = load_emissions(run) if run is not None else None
    if emissions_g is None and footprint is not None:
        emissions_g = footprint.get("emissions_g")
    metrics = {}
    for m in metric:
        key, sep, value = m.partition("=")
        if not sep:
            raise ConfigError(f"--metric must be name=value, got {m!r}")
        try:
            metrics[key.strip()] = float(value)
        except ValueError as exc:
            raise ConfigError(f"--metric {key}: {value!r} is not a number") from exc
    path = write_model_card(
        out_dir,
        model_id=model_id,
        emissions_g=emissions_g,
        training_type=training_type,
        location=location or (footprint or {}).get("country_iso_code"),
        hardware=hardware or (footprint or {}).get("hardware"),
        datasets=list(dataset),
        metrics=metrics,
        license=license,
        pipeline_tag=pipeline_tag,
        footprint=footprint,
    )
    console.print(f"model card: {path}")


@app.command("mine")
@handle_errors
def mine(
    db: Path = typer.Option(..., "--db", help="SQLite database (created; a rerun resumes)."),
    endpoint: str = typer.Option(
        None, "--endpoint", help="Hub URL (default $HF_ENDPOINT or huggingface.co)."
    ),
    limit: int = typer.Option(None, "--limit", help="Stop when the database holds N models."),
    all_models: bool = typer.Option(
        False, "--all-models", help="List every model, not only those tagged co2_eq_emissions."
    ),
    search: str = typer.Option(None, "--search", help="Hub search string."),
    restart: bool = typer.Option(False, "--restart", help="Forget the stored cursor; start again."),
    timeout: float = typer.Option(30.0, "--timeout", help="Per-request timeout (s)."),
    min_interval: float = typer.Option(0.5, "--min-interval", help="Minimum seconds between requests."),
    max_retries: int = typer.Option(6, "--max-retries", help="Retries for 429/5xx/timeouts."),
    token: str = typer.Option(None, "--token", help="Hub token (optional; none is read from disk)."),
    dataset_sizes: bool = typer.Option(
        False, "--dataset-sizes", help="Also look up the size of every dataset used by a reporting model."
    ),
    card_text: str = typer.Option(
        None,
        "--card-text",
        help="Also read model cards' text for the study's 'Carbon Emitted:' / 'Hardware Type:' rules: "
        "'all' or 'unreported' (only models the text can change). Resumable.",
    ),
    card_text_limit: int = typer.Option(None, "--card-text-limit", help="At most N cards this run."),
) -> None:
    """Mine model listings with their card data into SQLite (resumable, polite).

    The database is the checkpoint: rerun the same command to continue where it stopped.
    """
    from terracarbon.footprint.hub import fetch_card_texts, fetch_dataset_sizes, mine_hub

    res = mine_hub(
        db,
        endpoint=endpoint,
        limit=limit,
        filter_tag=None if all_models else "co2_eq_emissions",
        search=search,
        restart=restart,
        timeout=timeout,
        min_interval_s=min_interval,
        max_retries=max_retries,
        token=token,
    )
    print_table(
        "Hub mining",
        {
            "endpoint": res.endpoint,
            "database": str(res.db_path),
            "models stored": res.models_stored,
            "processed this run": res.models_seen,
            "pages this run": res.pages,
            "resumed": res.resumed,
            "listing complete": res.complete,
            "retries": res.retries,
            "waited (s)": round(res.waited_s, 2),
            **{f"co2 {k}": v for k, v in sorted(res.co2_counts.items())},
        },
    )
    if dataset_sizes:
        counts = fetch_dataset_sizes(
            db,
            endpoint=endpoint,
            token=token,
            timeout=timeout,
            min_interval_s=min_interval,
            max_retries=max_retries,
        )
        print_table("dataset sizes", counts)
    if card_text:
        counts = fetch_card_texts(
            db,
            endpoint=endpoint,
            token=token,
            which=card_text,
            limit=card_text_limit,
            timeout=timeout,
            min_interval_s=min_interval,
            max_retries=max_retries,
        )
        print_table("card texts", counts)


@app.command("classify")
@handle_errors
def classify_cmd(
    out: Path = typer.Option(..., "--out", help="classes.csv to write."),
    db: Path = typer.Option(None, "--db", help="Miner database."),
    csv: Path = typer.Option(None, "--csv", help="The study's CSV (HFCO2.csv layout)."),
    not_faithful: bool = typer.Option(
        False,
        "--corrected",
        "--fix-co2-quirk",
        help="Corrected variant: square root of the CO2 index on both sides, optimisation/EcoCard "
        "classes reachable (default: the replication package's behaviour).",
    ),
) -> None:
    """The study's reporting-practice class and carbon-efficiency label (A-E) of every model."""
    from terracarbon.footprint.classify import classify

    classes = classify(db=db, csv=csv, out=out, faithful=not not_faithful)
    print_table("reporting-practice classes", classes["reporting_class"].value_counts().to_dict())
    print_table("carbon-efficiency labels", classes["efficiency_label"].value_counts().sort_index().to_dict())
    console.print(f"classes: {out}")


@app.command("analyse")
@handle_errors
def analyse_cmd(
    out: Path = typer.Option(..., "--out", help="Output folder (summary.md, classes.csv, PNG plots)."),
    db: Path = typer.Option(None, "--db", help="Miner database."),
    csv: Path = typer.Option(None, "--csv", help="The study's CSV (HFCO2.csv layout)."),
    clean: Path = typer.Option(
        None, "--clean", help="The study's HFClean.csv (48 curated models; default: next to --csv)."
    ),
    not_faithful: bool = typer.Option(
        False, "--corrected", "--fix-co2-quirk", help="Corrected variant (see `classify --help`)."
    ),
) -> None:
    """The study's research questions, reproduced next to the published figures.

    Writes classes.csv, replication.csv (quantity, reproduced, published, source), summary.md,
    analysis.json and PNG plots into --out.
    """
    from terracarbon.footprint.analyse import analyse

    res = analyse(out=out, db=db, csv=csv, clean=clean, faithful=not not_faithful)
    f = res.figures
    print_table(
        "Hub carbon-footprint analysis",
        {
            "models": f["models"],
            "usable emissions": f["usable_emissions"],
            "malformed": f["malformed"],
            "rho(CO2e, model size)": f["spearman"]["model size"]["rho"],
            "rho(CO2e, dataset size)": f["spearman"]["dataset size"]["rho"],
            "rho(CO2e, creation date)": f["trend_time_vs_emissions"]["rho"],
        },
    )
    console.print(
        f"summary: {res.summary}\nclasses: {res.classes}\nreplication: {res.replication}\n"
        f"plots: {len(res.plots)} PNG in {out}"
    )
