"""ML carbon footprint: track terracarbon's own runs, write Hub model cards, mine and analyse the Hub.

Public API:

- :func:`track_emissions` — codecarbon offline tracker as context manager / decorator
  (``emissions.csv`` + ``emissions.json`` in the run folder).
- :func:`write_model_card` / :func:`read_model_card` — Hub model cards with ``co2_eq_emissions``.
- :func:`mine_hub` (``terracarbon.footprint.hub``) — resumable Hub miner into SQLite.
- :func:`classify` / :func:`analyse` — the mining study's reporting-practice and carbon-efficiency
  classes as its replication package (GAISSA-UPC/ML-EnergyLabel) defines them, research-question
  tables next to the package's published figures (:mod:`terracarbon.footprint.replication`),
  plots and a Markdown summary.
"""

from __future__ import annotations

from typing import Any

from .cards import read_model_card, write_model_card
from .track import EmissionsTracking, format_result, load_emissions, track_emissions, tracked

__all__ = [
    "EmissionsTracking",
    "format_result",
    "load_emissions",
    "read_model_card",
    "track_emissions",
    "tracked",
    "write_model_card",
    "mine_hub",
    "classify",
    "analyse",
]


def __getattr__(name: str) -> Any:  # lazy: keep `import terracarbon.footprint` light
    if name == "mine_hub":
        from .hub import mine_hub

        return mine_hub
    if name == "classify":
        from .classify import classify

        return classify
    if name == "analyse":
        from .analyse import analyse

        return analyse
    raise AttributeError(name)
