"""Barrier-aware margins: walls, gaps, equality with the exact margin in free space, the grid metric vs Dijkstra."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra

from radconf.contours import Margin, expand, expand_within, geodesic_reach_factor
from radconf.contours.geodesic import grid_distance, step_cost, step_extents, steps
from radconf.contours.margins import semi_axes
from radconf.errors import InvalidInput

pytestmark = pytest.mark.filterwarnings("ignore:margin .* is larger than the image")


def wall_case(gap: bool):
    """1 mm voxels; a source at (y=10, x=5), a wall at x = 10 across the image, optionally a slot at y = 20..22."""
    mask = np.zeros((3, 40, 24), dtype=bool)
    mask[1, 10, 5] = True
    barriers = np.zeros(mask.shape, dtype=bool)
    barriers[:, :, 10] = True
    if gap:
        barriers[:, 20:23, 10] = False
    return mask, barriers


def test_a_wall_is_never_crossed():
    mask, barriers = wall_case(gap=False)
    grown = expand_within(mask, (1, 1, 1), 26.0, barriers=barriers)
    assert grown[1, 10, 5 + 4] and grown[1, 30, 5] and not grown[:, :, 10:].any()
    assert np.array_equal(grown, expand(mask, (1, 1, 1), 26.0) & (np.arange(24) < 10))


def test_the_margin_goes_around_through_a_gap_when_the_path_is_within_the_margin():
    mask, barriers = wall_case(gap=True)
    target = (1, 10, 15)  # 10 mm straight through the wall
    # shortest path around: to the slot corner (19.5, 9.5), along it, down to the target: 2 * hypot(9.5, 4.5) + 1
    path = 2 * np.hypot(9.5, 4.5) + 1
    assert 22.0 < path < 22.1
    for margin, reached in ((15.0, False), (21.0, False), (26.0, True)):
        grown = expand_within(mask, (1, 1, 1), margin, barriers=barriers)
        assert grown[target] == reached, margin
        assert expand(mask, (1, 1, 1), margin)[target]
        assert not (grown & barriers).any()
    grown = expand_within(mask, (1, 1, 1), 15.0, barriers=barriers)
    assert grown[1, 21, 11] and not grown[1, 5, 11]  # behind the wall only next to the slot


def test_without_barriers_it_equals_expand():
    rng = np.random.default_rng(0)
    mask = rng.random((10, 14, 16)) > 0.985
    mask[0, 0, 0] = mask[-1, 5, -1] = True  # at the image border
    spacing = (2.5, 0.98, 0.98)
    for margin in (4.0, Margin(radial=3.0, superior=6.0, inferior=0.0, left=1.5)):
        exact = expand(mask, spacing, margin)
        assert np.array_equal(expand_within(mask, spacing, margin), exact)
        assert np.array_equal(expand_within(mask, spacing, margin, barriers=np.zeros(mask.shape, bool)), exact)
        # barriers everywhere beyond the margin: the grid paths run, and every exact-margin voxel is still reached
        for neighbourhood in (1, 2, 3):
            within = expand_within(mask, spacing, margin, barriers=~exact, neighbourhood=neighbourhood)
            assert np.array_equal(within, exact), (margin, neighbourhood)


def test_body_cuts_and_blocks_and_keep_input():
    mask, _ = wall_case(gap=False)
    body = np.zeros(mask.shape, dtype=bool)
    body[:, 5:35, 2:20] = True
    body[:, 8:, 8] = False  # a cut in the body beside the source (at y=10, x=5), open below y = 8
    straight = expand(mask, (1, 1, 1), 12.0)
    assert straight[1, 16, 9] and straight[1, 10, 14]
    # around the cut's end (7.5, 7.5)-(7.5, 8.5): to (16, 9) 3.54 + 1 + 8.5 = 13.0 mm, to (10, 14) 10.6 mm
    grown = expand_within(mask, (1, 1, 1), 12.0, body=body)
    assert not (grown & ~body).any() and not grown[1, 16, 9]
    # through voxel centres the path passes (7, 8) and (7, 9): 3.61 + 2 + 9 = 14.6 mm
    assert not expand_within(mask, (1, 1, 1), 14.0, body=body)[1, 16, 9]
    assert expand_within(mask, (1, 1, 1), 15.0, body=body)[1, 16, 9]
    assert grown[1, 10, 14]
    barriers = np.zeros(mask.shape, dtype=bool)
    barriers[1, 10, 5:7] = True  # the source lies in a barrier
    grown = expand_within(mask, (1, 1, 1), 3.0, barriers=barriers)
    assert not grown[1, 10, 5] and grown[1, 10, 3] and not grown[1, 10, 7]
    kept = expand_within(mask, (1, 1, 1), 3.0, barriers=barriers, keep_input=True)
    assert kept[1, 10, 5] and np.array_equal(kept & ~mask, grown)
    assert not expand_within(np.zeros(mask.shape, bool), (1, 1, 1), 3.0, barriers=barriers).any()


def reference_grid_distance(sources, passable, spacing, axes, neighbourhood):
    """Dijkstra (scipy.sparse.csgraph) on the same graph: a step is an edge when its whole block is passable."""
    shape = sources.shape
    index = np.arange(sources.size).reshape(shape)
    rows, columns, weights = [], [], []
    open_ = passable | sources
    for offset in steps(step_extents(spacing, axes, neighbourhood)):
        cost = step_cost(offset, spacing, axes)
        if not np.isfinite(cost):
            continue
        for p in itertools.product(*map(range, shape)):
            q = tuple(a + k for a, k in zip(p, offset))
            if not all(0 <= c < n for c, n in zip(q, shape)):
                continue
            block = tuple(slice(min(a, b), max(a, b) + 1) for a, b in zip(p, q))
            if open_[block].all():
                rows.append(index[p])
                columns.append(index[q])
                weights.append(cost)
    graph = coo_matrix((weights, (rows, columns)), shape=(sources.size, sources.size)).tocsr()
    distance = dijkstra(graph, indices=np.flatnonzero(sources), min_only=True)
    return distance.reshape(shape)


@pytest.mark.parametrize("neighbourhood", [1, 2])
def test_grid_distance_equals_dijkstra(neighbourhood):
    rng = np.random.default_rng(neighbourhood)
    shape = (5, 7, 8)
    sources = np.zeros(shape, dtype=bool)
    sources[2, 1, 1] = sources[4, 6, 7] = True
    passable = ndimage.binary_opening(rng.random(shape) > 0.25, np.ones((1, 1, 1))) | sources
    spacing = (2.0, 1.0, 0.9)
    axes = semi_axes(Margin(radial=4.0, superior=7.0, left=2.0))
    ours = grid_distance(sources, passable, spacing, axes, neighbourhood)
    reference = reference_grid_distance(sources, passable, spacing, axes, neighbourhood)
    assert np.isinf(reference).any() and np.isfinite(reference).sum() > 50
    assert np.array_equal(np.isinf(ours), np.isinf(reference))
    finite = np.isfinite(reference)
    np.testing.assert_allclose(ours[finite], reference[finite], rtol=1e-6)


def test_reach_factor_and_steps():
    assert len(steps((1, 1, 1))) == 26 and len(steps((2, 2, 2))) == 98 and len(steps((1, 2, 2))) == 66
    assert step_extents((2.5, 0.98, 0.98), semi_axes(Margin(radial=10)), 2) == (1, 2, 2)
    assert step_extents((2.5, 0.98, 0.98), semi_axes(Margin(radial=10, superior=30, inferior=30)), 2) == (2, 2, 2)
    assert step_extents((1, 1, 1), semi_axes(Margin(radial=10)), 3) == (3, 3, 3)
    # 26 steps on 1 mm voxels: (2, 1, 0) costs 1 + sqrt(2) instead of sqrt(5); the worst ratio in the 3D ball is ~1.13
    t26 = geodesic_reach_factor((1, 1, 1), 10.0, neighbourhood=1)
    t98 = geodesic_reach_factor((1, 1, 1), 10.0)
    assert 1.08 < t26 < 1.13 and 1.0 < t98 < 1.05
    assert geodesic_reach_factor((1, 1, 1), 0.5) == 1.0
    with pytest.raises(InvalidInput, match="neighbourhood"):
        geodesic_reach_factor((1, 1, 1), 10.0, neighbourhood=4)
    mask = np.zeros((3, 3, 3), dtype=bool)
    with pytest.raises(InvalidInput, match="barriers has shape"):
        expand_within(mask, (1, 1, 1), 2.0, barriers=np.zeros((3, 3, 4), bool))
    with pytest.raises(InvalidInput, match="body"):
        expand_within(mask, (1, 1, 1), 2.0, body=np.full((3, 3, 3), 0.5))


def test_scattered_clusters_box_by_box():
    mask = np.zeros((20, 50, 50), dtype=bool)
    for z, y, x in ((1, 2, 3), (17, 45, 46), (10, 25, 5)):
        mask[z:z + 2, y:y + 2, x:x + 3] = True
    spacing = (2.5, 0.98, 0.98)
    exact = expand(mask, spacing, 4.0)
    assert np.array_equal(expand_within(mask, spacing, 4.0, barriers=~exact), exact)
    wall = np.zeros(mask.shape, dtype=bool)
    wall[:, :, 8] = True  # beside the first and third cluster, far from the second
    grown = expand_within(mask, spacing, 4.0, barriers=wall)
    assert np.array_equal(grown, exact & (np.arange(50) < 8)[None, None] | exact & (np.arange(50) > 8) &
                          (np.arange(20) > 12)[:, None, None])
