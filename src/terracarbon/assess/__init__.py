"""Site carbon assessment: run the available models over a scene, compute stocks and class areas inside an AOI.

See :func:`terracarbon.assess.assess` and ``terracarbon assess --help``.
"""

from terracarbon.assess.assess import (
    LAYERS,
    AssessmentResult,
    assess,
    default_models,
    load_assessment,
)

__all__ = ["LAYERS", "AssessmentResult", "assess", "default_models", "load_assessment"]
