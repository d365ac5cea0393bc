"""Tree cover and individual tree crowns from 10 cm aerial imagery (OAM-TCD task).

Submodules: :mod:`~terracarbon.data.synthetic.trees` (synthetic orthomosaics with known crowns),
:mod:`~terracarbon.trees.semantic` (U-Net tree cover), :mod:`~terracarbon.trees.instance` (Mask R-CNN crowns),
:mod:`~terracarbon.trees.predict` (tiled prediction of large orthomosaics, crown merging, AOI summaries),
:mod:`~terracarbon.trees.cv` (k-fold cross-validation), :mod:`~terracarbon.trees.metrics` (fold summaries; the
per-batch metrics are in :mod:`terracarbon.tasks.metrics`).
"""
