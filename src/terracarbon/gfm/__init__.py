"""Geospatial foundation models: own SimMIM pretraining, GFM-vs-U-Net comparison and eco-region transfer.

* :func:`terracarbon.gfm.pretrain.pretrain_simmim` — masked-image pretraining on unlabelled GeoTIFF tiles.
* :func:`terracarbon.gfm.compare.compare_models` — U-Net scratch vs GFM frozen/unfrozen/own-pretrained/random.
* :func:`terracarbon.gfm.transfer.eco_region_transfer` — train on one eco-region, zero-shot and k % fine-tune.

The model itself lives in :mod:`terracarbon.models.gfm`, weight loading in :mod:`terracarbon.models.weights`.
"""
