"""``terracarbon demo``: the whole biomass path on the embedded synthetic sample."""

from __future__ import annotations

from pathlib import Path

import typer

from terracarbon.cli.common import handle_errors


def register(root: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""

    @root.command("demo")
    @handle_errors
    def demo(
        out: Path = typer.Option(Path("demo-output"), "--out", help="Folder for all demo outputs."),
        seed: int = typer.Option(0, help="Random seed of the sample scene and training."),
        quick: bool = typer.Option(False, help="Smaller scene and fewer epochs (a smoke run)."),
    ) -> None:
        """Generate the sample scene, train briefly, map biomass, compute the carbon stock, assess the site."""
        from terracarbon.demo import run_demo

        run_demo(out_dir=out, seed=seed, quick=quick)
