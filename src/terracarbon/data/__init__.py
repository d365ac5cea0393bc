"""Readers and writers of the real dataset formats, and synthetic scene generators.

* :mod:`terracarbon.data.agbd` — the AGBD biomass dataset (HDF5 patches, GEDI L4A labels).
* :mod:`terracarbon.data.scenes` — seeded synthetic multi-band scenes with known biomass and sparse GEDI-like labels.
* :mod:`terracarbon.data.landcover_ai` — LandCover.ai orthophotos, masks and the official 512 px tiling.
* :mod:`terracarbon.data.oam_tcd` — OAM-TCD tiles with COCO-style tree / canopy annotations.
"""

from terracarbon.data.agbd import AGBDDataset, write_agbd_sample
from terracarbon.data.scenes import Scene, load_scene, make_scene

__all__ = ["AGBDDataset", "Scene", "load_scene", "make_scene", "write_agbd_sample"]
