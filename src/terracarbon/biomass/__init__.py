"""Aboveground biomass (AGB) mapping from sparse GEDI-like labels.

- :func:`train_biomass` — train a U-Net (or any registry model) on scenes with sparse labels, export the best
  epoch as a portable checkpoint with a model card (:mod:`terracarbon.biomass.train`).
- :func:`evaluate_biomass` — RMSE, MAE, bias, R² at labelled pixels, overall and per AGB bin.
- :func:`predict_biomass` — an AGB map for any stack through the shared tiled engine.
- :func:`train_rf_baseline` — the random-forest baseline on per-pixel features.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train_biomass", "TrainResult", "evaluate_biomass", "predict_biomass", "train_rf_baseline"]

_WHERE = {
    "train_biomass": "train",
    "TrainResult": "train",
    "evaluate_biomass": "evaluate",
    "predict_biomass": "predict",
    "train_rf_baseline": "baseline",
}


def __getattr__(name: str) -> Any:  # lazy: importing the package does not import torch/Lightning
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"terracarbon.biomass.{_WHERE[name]}"), name)
    raise AttributeError(name)
