"""Voxel-edge contour tracing: exact round trip through rasterise_slice, loop shape, orientation and topology."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from radconf.dicom.polygons import rasterise_slice
from radconf.dicom.tracing import TracedContour, trace_slice, trace_volume
from radconf.errors import InvalidInput


def check_loop(contour: TracedContour) -> None:
    """Closed, corners only, axis-aligned unit-lattice edges on half-integers, orientation matching is_hole."""
    points = contour.points
    assert points.ndim == 2 and points.shape[1] == 2 and len(points) >= 4
    np.testing.assert_array_equal(points - 0.5, np.round(points - 0.5))  # voxel corners
    step = np.roll(points, -1, axis=0) - points
    assert np.all((step[:, 0] == 0) != (step[:, 1] == 0))  # axis-aligned, no zero-length edge, not repeated
    turn = step[:, 0] * np.roll(step, -1, axis=0)[:, 1] - step[:, 1] * np.roll(step, -1, axis=0)[:, 0]
    assert np.all(turn != 0)  # every vertex is a corner (no collinear vertex, no reversal)
    assert contour.is_hole == (contour.signed_area < 0) and contour.signed_area != 0


def check_round_trip(mask: np.ndarray) -> list[TracedContour]:
    contours = trace_slice(mask)
    for contour in contours:
        check_loop(contour)
    np.testing.assert_array_equal(rasterise_slice([c.points for c in contours], *mask.shape), mask)
    assert sum(c.signed_area for c in contours) == mask.sum()
    return contours


def topology(mask: np.ndarray) -> tuple[int, int]:
    """Oracle: 4-connected foreground components and 8-connected enclosed background components (holes)."""
    _, objects = ndimage.label(mask, structure=ndimage.generate_binary_structure(2, 1))
    _, background = ndimage.label(~np.pad(mask, 1), structure=np.ones((3, 3), bool))
    return objects, background - 1


@pytest.mark.parametrize("density", [0.05, 0.2, 0.5, 0.8, 0.95])
def test_random_masks_round_trip_and_topology(density):
    rng = np.random.default_rng(int(density * 100))
    for shape in [(1, 1), (1, 9), (7, 1), (13, 17), (40, 33)]:
        for _ in range(6):
            mask = rng.random(shape) < density
            contours = check_round_trip(mask)
            outer = sum(not c.is_hole for c in contours)
            holes = sum(c.is_hole for c in contours)
            assert (outer, holes) == topology(mask)


@pytest.mark.parametrize("shape", [(2, 2), (5, 5), (6, 9), (1, 8)])
def test_checkerboards_are_separate_pixels(shape):
    j, i = np.indices(shape)
    for parity in (0, 1):
        mask = (i + j) % 2 == parity
        contours = check_round_trip(mask)
        assert len(contours) == mask.sum()  # 4-connected foreground: every pixel its own loop
        assert all(len(c.points) == 4 and c.signed_area == 1 for c in contours)


def test_single_pixels_everywhere_including_border():
    for j, i in [(0, 0), (0, 5), (3, 0), (3, 5), (1, 2)]:
        mask = np.zeros((4, 6), bool)
        mask[j, i] = True
        (contour,) = check_round_trip(mask)
        assert not contour.is_hole
        corners = {tuple(p) for p in contour.points.tolist()}
        assert corners == {(i - 0.5, j - 0.5), (i + 0.5, j - 0.5), (i + 0.5, j + 0.5), (i - 0.5, j + 0.5)}
    one = np.ones((1, 1), bool)
    (contour,) = check_round_trip(one)
    np.testing.assert_array_equal(contour.points, [[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])


def test_full_and_empty_masks():
    (contour,) = check_round_trip(np.ones((5, 7), bool))
    assert {tuple(p) for p in contour.points.tolist()} == {(-0.5, -0.5), (6.5, -0.5), (6.5, 4.5), (-0.5, 4.5)}
    assert contour.signed_area == 35
    assert trace_slice(np.zeros((5, 7), bool)) == []


def test_ring_has_outer_loop_and_hole_of_opposite_orientation():
    mask = np.zeros((9, 9), bool)
    mask[2:7, 2:7] = True
    mask[3:6, 3:6] = False
    contours = check_round_trip(mask)
    assert sorted((c.is_hole, c.signed_area) for c in contours) == [(False, 25.0), (True, -9.0)]
    hole = next(c for c in contours if c.is_hole)
    assert {tuple(p) for p in hole.points.tolist()} == {(2.5, 2.5), (5.5, 2.5), (5.5, 5.5), (2.5, 5.5)}


def test_island_inside_hole_inside_object_touching_the_border():
    mask = np.zeros((9, 10), bool)
    mask[0:9, 0:9] = True  # touches three image edges
    mask[2:7, 2:7] = False
    mask[4, 4] = True
    contours = check_round_trip(mask)
    assert sorted((c.is_hole, c.signed_area) for c in contours) == [(False, 1.0), (False, 81.0), (True, -25.0)]


def test_pinch_points_keep_foreground_four_connected():
    diagonal = np.zeros((4, 4), bool)
    diagonal[1, 1] = diagonal[2, 2] = True
    contours = check_round_trip(diagonal)
    assert len(contours) == 2 and all(len(c.points) == 4 for c in contours)
    # Two hole pixels touching at a corner are one hole loop passing that corner twice.
    holes = np.ones((4, 4), bool)
    holes[1, 1] = holes[2, 2] = False
    contours = check_round_trip(holes)
    (hole,) = [c for c in contours if c.is_hole]
    assert len(hole.points) == 8 and hole.signed_area == -2
    assert sum(p == (1.5, 1.5) for p in map(tuple, hole.points.tolist())) == 2


def test_staircase_keeps_only_corners():
    mask = np.tril(np.ones((4, 4), bool))  # rows of 1, 2, 3, 4 voxels
    (contour,) = check_round_trip(mask)
    expected = [(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (1.5, 0.5), (1.5, 1.5), (2.5, 1.5), (2.5, 2.5), (3.5, 2.5),
                (3.5, 3.5), (-0.5, 3.5)]  # two corners per step, plus the left ones
    assert [tuple(p) for p in contour.points.tolist()] == expected
    assert contour.signed_area == 10


def test_points_are_read_only():
    (contour,) = trace_slice(np.ones((2, 2), bool))
    with pytest.raises(ValueError):
        contour.points[0, 0] = 3.0


def test_trace_volume_only_slices_with_foreground():
    volume = np.zeros((5, 6, 7), np.uint8)
    volume[1, 2:4, 2:5] = 1
    volume[3, 0, 0] = 7
    volume[3, 5, 6] = 1
    traced = trace_volume(volume)
    assert list(traced) == [1, 3]
    assert [c.signed_area for c in traced[1]] == [6.0]
    assert sorted(c.signed_area for c in traced[3]) == [1.0, 1.0]
    for k, contours in traced.items():
        np.testing.assert_array_equal(rasterise_slice([c.points for c in contours], 6, 7), volume[k] > 0)
    assert trace_volume(np.zeros((0, 3, 3), bool)) == {}


def test_body_sized_ellipse_round_trip():
    j, i = np.mgrid[:512, :512]
    mask = ((i - 255.3) / 200) ** 2 + ((j - 250.7) / 150) ** 2 < 1
    (contour,) = check_round_trip(mask)
    assert contour.signed_area == mask.sum()


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 2, 2))])
def test_trace_slice_rejects_non_2d(bad):
    with pytest.raises(InvalidInput):
        trace_slice(bad)


def test_trace_volume_rejects_non_3d():
    with pytest.raises(InvalidInput):
        trace_volume(np.zeros((3, 3)))
