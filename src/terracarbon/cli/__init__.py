"""The ``terracarbon`` command line: a thin typer layer over the Python API.

Each domain contributes a sub-app from ``terracarbon.cli.<domain>`` (a ``typer.Typer`` named ``app``); a domain that
fails to import (e.g. an optional dependency missing) is reported instead of breaking the whole CLI.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

import typer

app = typer.Typer(
    name="terracarbon",
    help="Measure carbon on land (biomass, tree cover, land cover) and carbon in software (ML footprint, emissions). "
    "Add --debug (or set TERRACARBON_DEBUG=1) to see the full traceback of an unexpected error.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
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
    "models": "Published models: import TerraTorch / Hugging Face checkpoints.",
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


def _split_debug(argv: list[str]) -> tuple[bool, list[str]]:
    """(debug wanted, argv without ``--debug``); a ``--debug`` after ``--`` belongs to a wrapped command."""
    cut = argv.index("--") if "--" in argv else len(argv)
    head, tail = argv[:cut], argv[cut:]
    debug = "--debug" in head or os.environ.get("TERRACARBON_DEBUG", "").lower() in ("1", "true", "yes")
    return debug, [a for a in head if a != "--debug"] + tail


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``terracarbon`` console script.

    Errors terracarbon raises on purpose print one line and exit 2 (:func:`terracarbon.cli.common.handle_errors`).
    Any other exception prints one line naming its type and exits 1; ``--debug`` (anywhere on the command line) or
    ``TERRACARBON_DEBUG=1`` shows the full traceback instead.
    """
    debug, args = _split_debug(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name="terracarbon", standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("terracarbon: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence of the CLI
        if debug:
            traceback.print_exception(exc)
        else:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            print(
                f"terracarbon: unexpected {type(exc).__name__}: {msg} "
                "(run with --debug or TERRACARBON_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
        raise SystemExit(1) from None
