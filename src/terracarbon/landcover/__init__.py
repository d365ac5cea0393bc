"""Land cover from aerial imagery (LandCover.ai): synthetic scenes, training, evaluation, maps and areas.

Public API (imported lazily):

- :func:`terracarbon.data.synthetic.landcover.render_scene`, :func:`~terracarbon.data.synthetic.landcover.make_synthetic_release`
- :func:`terracarbon.landcover.train.train_landcover` -> :class:`~terracarbon.landcover.train.LandCoverTrainResult`
- :func:`terracarbon.landcover.evaluate.evaluate_landcover`, :func:`~terracarbon.landcover.evaluate.evaluate_map`
- :func:`terracarbon.landcover.predict.predict_landcover`
- :func:`terracarbon.landcover.areas.landcover_areas`, :func:`~terracarbon.landcover.areas.woodland_area_ha`

The reader of the real dataset is :mod:`terracarbon.data.landcover_ai`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "render_scene": "terracarbon.data.synthetic.landcover",
    "make_synthetic_release": "terracarbon.data.synthetic.landcover",
    "train_landcover": "train",
    "LandCoverTrainResult": "train",
    "inverse_frequency_weights": "train",
    "MODEL_PRESETS": "_common",
    "evaluate_landcover": "evaluate",
    "evaluate_map": "evaluate",
    "predict_landcover": "predict",
    "landcover_areas": "areas",
    "woodland_area_ha": "areas",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        mod = _EXPORTS[name]
        return getattr(importlib.import_module(mod if "." in mod else f"terracarbon.landcover.{mod}"), name)
    raise AttributeError(name)
