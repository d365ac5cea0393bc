"""The zonal engine: coverage weights per tile, the pixel-centre rule unchanged, vectorised geodesic areas."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from shapely import affinity
from shapely.geometry import Point, Polygon, box

from terracarbon.errors import ConfigError
from terracarbon.raster.zonal import aoi_mask, geometry_area_m2, geometry_areas_m2, iter_cell_weights

TR = Affine(10.0, 0, 500000.0, 0, -10.0, 6000000.0)
SHAPE = (300, 260)


def _geoms():
    return [
        affinity.rotate(box(500123.4, 5998765.4, 500987.6, 5999876.5), 23.0),
        Point(501500.3, 5998200.7).buffer(123.4, 32),
        Polygon(box(500100, 5997200, 500700, 5997800).exterior.coords,
                [box(500300, 5997400, 500500, 5997600).exterior.coords]),
    ]


def _weights(geoms, method, tile):
    n = len(geoms)
    acc = [np.zeros(SHAPE) for _ in range(n)]
    union = np.zeros(SHAPE)
    for tc in iter_cell_weights(TR, SHAPE, geoms, method=method, tile=tile):
        r0, c0 = int(tc.window.row_off), int(tc.window.col_off)
        w_ = int(tc.window.width)
        for z, idx, w in tc.zones:
            rr, cc = np.divmod(idx, w_)
            acc[z][rr + r0, cc + c0] += w
        idx, w = tc.union
        rr, cc = np.divmod(idx, w_)
        union[rr + r0, cc + c0] += w
    return acc, union


@pytest.mark.parametrize("tile", [37, 1024])
def test_coverage_weights_sum_to_polygon_area(tile):
    geoms = _geoms()
    raster = box(500000.0, 6000000.0 - 10 * SHAPE[0], 500000.0 + 10 * SHAPE[1], 6000000.0)
    acc, union = _weights(geoms, "coverage", tile)
    inside = [g.intersection(raster).area for g in geoms]  # the rotated box pokes out of the raster's top edge
    assert inside[0] < geoms[0].area
    for a, area in zip(acc, inside):
        assert a.max() <= 1.0 + 1e-6 and a.min() >= 0.0
        assert a.sum() * 100.0 == pytest.approx(area, rel=1e-6)  # planar pixel units: Σ w = area / 100 m²
    assert union.sum() * 100.0 == pytest.approx(sum(inside), rel=1e-6)  # disjoint polygons


def test_centre_rule_is_the_pixel_centre_mask():
    geoms = _geoms()
    acc, _ = _weights(geoms, "centre", 64)
    for g, a in zip(geoms, acc):
        assert np.array_equal(a > 0, aoi_mask([g], TR, SHAPE))


def test_grid_checks_and_vectorised_areas():
    with pytest.raises(ConfigError, match="north-up"):
        list(iter_cell_weights(Affine(10, 0, 0, 0, 10, 0), SHAPE, _geoms()))
    with pytest.raises(ConfigError, match="method"):
        list(iter_cell_weights(TR, SHAPE, _geoms(), method="mean"))
    geoms = _geoms()
    vec = geometry_areas_m2(geoms, "EPSG:32633")
    assert vec == pytest.approx([geometry_area_m2(g, "EPSG:32633") for g in geoms], rel=1e-9)
    assert vec[2] == pytest.approx((600 * 600 - 200 * 200) / 0.9996**2, rel=2e-4)  # the hole is subtracted
