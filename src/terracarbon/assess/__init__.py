"""Site carbon assessment: run the available models over a scene, compute stocks and class areas inside an AOI.

See :func:`terracarbon.assess.assess` and ``terracarbon assess --help``. The orchestration is in
:mod:`terracarbon.assess.assess`; checkpoint discovery in :mod:`~terracarbon.assess.models`, the layer runners in
:mod:`~terracarbon.assess.layers`, the zonal summary in :mod:`~terracarbon.assess.summary` and the provenance and
footprint records in :mod:`~terracarbon.assess.provenance`.
"""

from terracarbon.assess.assess import AssessmentResult, assess, load_assessment
from terracarbon.assess.models import LAYERS, default_models

__all__ = ["LAYERS", "AssessmentResult", "assess", "default_models", "load_assessment"]
