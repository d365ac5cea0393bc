"""Readers and writers of the real dataset formats, the stack builder, and synthetic data.

* :mod:`terracarbon.data.gedi` — GEDI L4A granules -> footprint points; :mod:`terracarbon.data.labels` — footprints
  -> label rasters on any grid.
* :mod:`terracarbon.data.sentinel2` — Sentinel-2 L2A (STAC items, SAFE folders, band folders) and HLS readers;
  :mod:`terracarbon.data.stack` — every layer onto one grid, bands named as AGBD names them.
* :mod:`terracarbon.data.agbd` — the AGBD biomass dataset (HDF5 patches, GEDI L4A labels).
* :mod:`terracarbon.data.landcover_ai` — LandCover.ai orthophotos, masks and the official 512 px tiling.
* :mod:`terracarbon.data.oam_tcd` — OAM-TCD tiles with COCO-style tree / canopy annotations.
* :mod:`terracarbon.data.synthetic` — look-alike data with known truth in those formats.

Names are imported lazily, so that ``import terracarbon.data.stack`` does not load torch (the AGBD dataset does).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AGBDDataset": "terracarbon.data.agbd",
    "write_agbd_sample": "terracarbon.data.agbd",
    "Scene": "terracarbon.data.synthetic.scenes",
    "load_scene": "terracarbon.data.synthetic.scenes",
    "make_scene": "terracarbon.data.synthetic.scenes",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
