"""Shared fixtures: the real data under ../shared/data, seeded torch, a quiet single-process environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CODECARBON_LOG_LEVEL", "error")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("TERRACARBON_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data sets under ``../shared/data`` (NAICS, EPA factors, Hub emission records); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(
            f"real data not available: {SHARED_DATA} does not exist (a user's clone has no ../shared)"
        )
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed_torch():
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover
        pass
    yield
