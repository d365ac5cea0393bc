"""Helpers shared by the CLI sub-commands: console, error handling, tables."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from terracarbon.errors import TerracarbonError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one-line errors stay one line

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Turn :class:`TerracarbonError` into a red one-line message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TerracarbonError as exc:
            err_console.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def print_table(
    title: str, rows: Sequence[Mapping[str, Any]] | Mapping[str, Any], *, fmt: str = "{:,.3f}"
) -> None:
    """Print a list of dicts (one row each) or one dict (key/value rows) as a rich table."""
    table = Table(title=title)

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return fmt.format(v)
        return str(v)

    if isinstance(rows, Mapping):
        table.add_column("quantity")
        table.add_column("value", justify="right")
        for k, v in rows.items():
            table.add_row(str(k), cell(v))
    else:
        rows = list(rows)
        cols = list(rows[0].keys()) if rows else []
        for c in cols:
            table.add_column(str(c), justify="right")
        for r in rows:
            table.add_row(*(cell(r.get(c, "")) for c in cols))
    console.print(table)
