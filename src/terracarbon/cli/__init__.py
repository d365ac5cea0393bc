"""The ``terracarbon`` command line: a thin typer layer over the Python API.

Each domain contributes a sub-app from ``terracarbon.cli.<domain>`` (a ``typer.Typer`` named ``app``); a domain that
fails to import (e.g. an optional dependency missing) is reported instead of breaking the whole CLI.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="terracarbon",
    help="Measure carbon on land (biomass, tree cover, land cover) and carbon in software (ML footprint, emissions).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

SUBCOMMANDS = {
    "data": "Synthetic scenes and dataset utilities.",
    "biomass": "Aboveground biomass: train, evaluate, predict maps.",
    "carbon": "Carbon and CO2e stocks over an area of interest.",
    "landcover": "Land cover from aerial imagery (LandCover.ai).",
    "trees": "Tree cover and tree crowns from aerial imagery (OAM-TCD).",
    "gfm": "Geospatial foundation models: pretrain, compare, transfer.",
    "footprint": "Energy and CO2e of ML runs; Hub mining and analysis.",
    "emissions": "Enterprise emissions: description -> NAICS -> CO2e.",
    "report": "HTML reports of assessment runs.",
}

_broken: dict[str, str] = {}
for _name, _help in SUBCOMMANDS.items():
    try:
        _mod = importlib.import_module(f"terracarbon.cli.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name == f"terracarbon.cli.{_name}":
            continue  # domain not installed in this build
        _broken[_name] = str(_exc)
        continue
    if hasattr(_mod, "app"):
        app.add_typer(_mod.app, name=_name, help=_help)
    if hasattr(_mod, "register"):
        _mod.register(app)

for _name in ("demo",):
    try:
        importlib.import_module(f"terracarbon.cli.{_name}").register(app)
    except ModuleNotFoundError as _exc:
        if _exc.name != f"terracarbon.cli.{_name}":
            _broken[_name] = str(_exc)


@app.command("version")
def version() -> None:
    """Print the terracarbon version."""
    from terracarbon import __version__

    typer.echo(__version__)
    for name, why in _broken.items():
        typer.echo(f"warning: sub-command {name!r} unavailable: {why}", err=True)


def main() -> None:
    """Entry point of the ``terracarbon`` console script."""
    app()
