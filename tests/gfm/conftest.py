"""Shared fixtures for the GFM tests: tiny Swin geometries and small GeoTIFFs written with rasterio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

#: a very small Swin (same code path as tiny/base, widths shrunk so CPU tests stay fast)
MINI = {"size": "tiny", "embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 2, 4, 8), "window_size": 4}


def write_stack(path: Path, bands: int = 6, size: int = 96, seed: int = 0, nodata_rows: int = 0) -> Path:
    """A georeferenced float32 GeoTIFF with smooth, band-correlated structure (and optional NaN rows)."""
    import rasterio
    from rasterio.transform import from_origin
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.normal(size=(size, size)), 3)
    base = (base - base.mean()) / (base.std() + 1e-6)
    arr = np.stack(
        [
            base * (1 + 0.3 * b) + 0.2 * gaussian_filter(rng.normal(size=(size, size)), 1) + b
            for b in range(bands)
        ]
    ).astype(np.float32)
    if nodata_rows:
        arr[:, :nodata_rows] = np.nan
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=size,
        width=size,
        count=bands,
        dtype="float32",
        crs="EPSG:32722",
        transform=from_origin(500000, 9000000, 10, 10),
        nodata=float("nan"),
    ) as ds:
        ds.write(arr)
        for b in range(bands):
            ds.set_band_description(b + 1, f"B{b + 1}")
    return path


@pytest.fixture
def mini() -> dict:
    return dict(MINI)


@pytest.fixture
def make_stack():
    return write_stack


@pytest.fixture
def stacks(tmp_path: Path) -> list[Path]:
    return [
        write_stack(tmp_path / "a.tif", seed=1, nodata_rows=8),
        write_stack(tmp_path / "b.tif", seed=2),
    ]
