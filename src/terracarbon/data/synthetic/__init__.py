"""Synthetic data with known truth, written in the real formats (the test path and the real path are one path).

* :mod:`~terracarbon.data.synthetic.scenes` — seeded multi-band biomass scenes (Sentinel-2, PALSAR-2, canopy height,
  DEM, land cover) with true AGB and sparse GEDI-like labels (``terracarbon data synth``).
* :mod:`~terracarbon.data.synthetic.landcover` — aerial RGB scenes and LandCover.ai-layout releases.
* :mod:`~terracarbon.data.synthetic.trees` — 10 cm orthomosaics with known crowns, in the OAM-TCD layout.

They sit under ``data/`` beside the readers of the formats they write, below every domain package, so that no reader
imports a domain.
"""
