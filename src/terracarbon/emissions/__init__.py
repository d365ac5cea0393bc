"""Enterprise emissions (GREEN): company description -> NAICS industry -> supply-chain CO2e.

Public API (imported lazily to keep ``import terracarbon.emissions`` light):

- :func:`~.naics.load_naics`, :class:`~.naics.NaicsTaxonomy`, :func:`~.naics.load_labelled`,
  :func:`~.naics.concordance` — the Census NAICS 2017/2022 trees and labelled index items.
- :func:`~.factors.load_factors`, :class:`~.factors.FactorTable` — US EPA supply-chain factors with fallback.
- :class:`~.classify.NaicsClassifier`, :func:`~.classify.classify_csv` — retrieval + group reasoning ensemble.
- :func:`~.train.train_classifier`, :func:`~.train.finetune` — contrastive fine-tuning and calibration.
- :func:`~.estimate.estimate_emissions`, :func:`~.estimate.estimate_csv` — tCO2e with interval and provenance.
- :func:`~.evaluate.evaluate_classifier`, :func:`~.evaluate.retrieval_baseline` — per-level accuracy, MAPE.
- :class:`~.llm.LLMMember` — optional OpenAI-compatible LLM ensemble member.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "load_naics": "naics",
    "load_labelled": "naics",
    "NaicsTaxonomy": "naics",
    "concordance": "naics",
    "download_naics": "naics",
    "load_factors": "factors",
    "FactorTable": "factors",
    "NaicsClassifier": "classify",
    "classify_csv": "classify",
    "Prediction": "classify",
    "train_classifier": "train",
    "finetune": "train",
    "estimate_emissions": "estimate",
    "estimate_csv": "estimate",
    "EmissionEstimate": "estimate",
    "evaluate_classifier": "evaluate",
    "retrieval_baseline": "evaluate",
    "LLMMember": "llm",
    "load_model": "models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"terracarbon.emissions.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
