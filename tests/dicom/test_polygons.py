"""Exact rasterisation of (column, row) polygons: hand counts, lattice-point counts and skimage as oracles."""
from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import polygon2mask

from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.polygons import rasterise_fractions, rasterise_slice, vertices_outside
from radconf.errors import InvalidInput


def rectangle(i0: float, i1: float, j0: float, j1: float) -> np.ndarray:
    return np.array([[i0, j0], [i1, j0], [i1, j1], [i0, j1]], dtype=float)


def circle(ci: float, cj: float, r: float, n: int = 720) -> np.ndarray:
    t = np.arange(n) * (2 * np.pi / n)
    return np.stack([ci + r * np.cos(t), cj + r * np.sin(t)], axis=1)


def lattice_disc(rows: int, columns: int, ci: float, cj: float, r: float) -> np.ndarray:
    """Lattice points strictly inside the circle, after checking none is within 1e-3 of it."""
    j, i = np.mgrid[:rows, :columns]
    distance = np.hypot(i - ci, j - cj)
    assert np.min(np.abs(distance - r)) > 1e-3  # test set-up: no centre near the circle (720-gon sag < 2e-4 px)
    return distance < r


def test_rectangles_off_grid_edges_cover_products_of_integer_ranges():
    mask = rasterise_slice([rectangle(1.3, 7.8, 2.6, 5.1)], 10, 12)
    expected = np.zeros((10, 12), bool)
    expected[3:6, 2:8] = True  # rows 3..5, columns 2..7
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == 18
    rng = np.random.default_rng(1)
    for _ in range(20):
        i0, i1 = np.sort(rng.uniform(-3, 33, 2))
        j0, j1 = np.sort(rng.uniform(-3, 23, 2))
        count_i = len([i for i in range(30) if i0 < i < i1])
        count_j = len([j for j in range(20) if j0 < j < j1])
        corners = rectangle(i0, i1, j0, j1)
        assert rasterise_slice([corners[::-1]], 20, 30).sum() == count_i * count_j


def test_half_open_rule_on_edges_through_centres_and_tiling():
    # Edges on integer lines pass through centres: left/top edges are in, right/bottom edges out.
    mask = rasterise_slice([rectangle(2, 5, 3, 6)], 10, 10)
    expected = np.zeros((10, 10), bool)
    expected[3:6, 2:5] = True
    np.testing.assert_array_equal(mask, expected)
    # Two rectangles sharing an edge through centres cover each centre once (no gap, no XOR cancellation).
    tiled = rasterise_slice([rectangle(0, 3, 0, 3), rectangle(3, 6, 0, 3)[::-1]], 8, 8)
    expected = np.zeros((8, 8), bool)
    expected[0:3, 0:6] = True
    np.testing.assert_array_equal(tiled, expected)


def test_triangle_counted_by_hand():
    # Inside: i >= 1, j >= 1, i + j < 6.4  ->  rows 1..5 hold 5, 4, 3, 2, 1 voxels.
    mask = rasterise_slice([np.array([[0.2, 0.3], [6.1, 0.3], [0.2, 6.2]])], 8, 8)
    assert [int(n) for n in mask.sum(axis=1)] == [0, 5, 4, 3, 2, 1, 0, 0]
    assert mask.sum() == 15
    assert mask[1, 1:6].all() and mask[5, 1] and not mask[5, 2]


def test_disc_matches_lattice_points_inside_circle():
    expected = lattice_disc(60, 64, 31.37, 28.71, 17.23)
    assert expected.sum() == 931
    np.testing.assert_array_equal(rasterise_slice([circle(31.37, 28.71, 17.23)], 60, 64), expected)


def test_small_disc_radius_1_6():
    centred = rasterise_slice([circle(10.0, 10.0, 1.6)], 20, 20)
    assert centred.sum() == 9  # d^2 in {0, 1, 2} < 2.56: the 3 x 3 block
    assert centred[9:12, 9:12].all()
    mask = rasterise_slice([circle(10.3, 10.2, 1.6)], 20, 20)
    inside = {(int(i), int(j)) for j, i in zip(*np.nonzero(mask))}
    assert inside == {(9, 10), (9, 11), (10, 9), (10, 10), (10, 11), (11, 9), (11, 10), (11, 11)}


def test_annulus_inner_contour_is_a_hole():
    outer = lattice_disc(45, 45, 20.4, 21.7, 13.3)
    inner = lattice_disc(45, 45, 20.4, 21.7, 5.9)
    mask = rasterise_slice([circle(20.4, 21.7, 13.3), circle(20.4, 21.7, 5.9)], 45, 45)
    np.testing.assert_array_equal(mask, outer & ~inner)
    assert mask.sum() == 551 - 111


def test_square_with_square_hole_and_island():
    outer, hole = rectangle(0.5, 10.5, 0.5, 10.5), rectangle(3.5, 6.5, 3.5, 6.5)
    assert rasterise_slice([outer, hole], 12, 12).sum() == 100 - 9
    island = rectangle(4.5, 5.5, 4.5, 5.5)  # one voxel (5, 5) inside the hole
    mask = rasterise_slice([outer, hole, island], 12, 12)
    assert mask.sum() == 92 and mask[5, 5] and not mask[4, 4]


def test_overlapping_contours_xor():
    a, b = rectangle(0.5, 6.5, 0.5, 4.5), rectangle(3.5, 9.5, 2.5, 7.5)  # 6 x 4, 6 x 5, overlap 3 x 2
    mask = rasterise_slice([a, b], 10, 10)
    assert mask.sum() == 24 + 30 - 2 * 6
    assert not mask[3:5, 4:7].any() and mask[1, 1] and mask[7, 9]


def test_clipping_at_the_border_and_vertices_outside():
    polygon = rectangle(-5.5, 3.5, -2.2, 100.0)
    mask = rasterise_slice([polygon], 10, 8)
    expected = np.zeros((10, 8), bool)
    expected[:, :4] = True
    np.testing.assert_array_equal(mask, expected)
    assert vertices_outside(polygon, 10, 8) == 4
    assert not rasterise_slice([rectangle(9.0, 12.0, 1.0, 3.0)], 10, 8).any()  # right of the image
    assert rasterise_slice([rectangle(-9.0, -1.0, 1.0, 3.0)], 10, 8).sum() == 0  # left of the image
    # Edges of the image are at -0.5 and size - 0.5: vertices on them are inside.
    assert vertices_outside(rectangle(-0.5, 7.5, -0.5, 9.5), 10, 8) == 0
    assert vertices_outside(np.array([[-0.51, 0.0], [7.51, 0.0], [0.0, 9.51], [0.0, -0.6], [3.0, 3.0]]), 10, 8) == 4
    assert rasterise_slice([rectangle(-0.5, 7.5, -0.5, 9.5)], 10, 8).all()


def test_patient_coordinates_anisotropic_pixels():
    origin = np.array([-249.6, -180.35, 12.5])
    geometry = SeriesGeometry(50, 80, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.3, 0.7), origin[None])
    centre, radius = np.array([-221.13, -150.77]), 12.0
    t = np.arange(720) * (2 * np.pi / 720)
    patient = np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * np.sin(t), np.full(720, 12.5)], 1)
    mask = rasterise_slice([geometry.in_plane_index(patient)], 50, 80)
    j, i = np.mgrid[:50, :80]
    x, y = -249.6 + 0.7 * i, -180.35 + 1.3 * j  # columns step 0.7 mm (PixelSpacing[1]), rows 1.3 mm
    distance = np.hypot(x - centre[0], y - centre[1])
    assert np.min(np.abs(distance - radius)) > 1e-3
    np.testing.assert_array_equal(mask, distance < radius)
    assert mask.sum() == 495


def test_fractions_half_and_quarter_at_edges_through_centres():
    fractions = rasterise_fractions([rectangle(2, 5, 3, 6)], 9, 8)
    assert fractions.dtype == np.float32 and fractions.shape == (9, 8)
    expected = np.zeros((9, 8), np.float32)
    expected[3:7, 2:6] = 0.5
    expected[4:6, 3:5] = 1.0
    expected[[3, 3, 6, 6], [2, 5, 2, 5]] = 0.25
    np.testing.assert_array_equal(fractions, expected)
    assert fractions.sum() == 9.0  # the rectangle's area
    np.testing.assert_array_equal(rasterise_fractions([rectangle(2, 5, 3, 6)], 9, 8, 2), expected)


def test_fractions_off_grid_and_supersampling_one():
    # Rows -1 .. 3; edge at i = 2.3: samples of column 2 at 1.625, 1.875, 2.125, 2.375 -> one inside;
    # column 5 edge at 5.1.
    fractions = rasterise_fractions([rectangle(2.3, 5.1, -1.0, 3.0)], 4, 7)
    np.testing.assert_array_equal(fractions[0], np.array([0, 0, 0.25, 1, 1, 0.5, 0], np.float32))
    np.testing.assert_array_equal(fractions[3], fractions[0] / 2)  # top edge j = 3.0 halves row 3
    np.testing.assert_array_equal(fractions[1], fractions[0])
    disc = [circle(10.3, 10.2, 4.6)]
    np.testing.assert_array_equal(rasterise_fractions(disc, 20, 20, 1), rasterise_slice(disc, 20, 20))
    assert abs(rasterise_fractions(disc, 20, 20, 8).sum() - np.pi * 4.6 ** 2) < 0.5


def random_star_polygon(rng: np.random.Generator) -> np.ndarray:
    """A simple polygon: vertices at sorted random angles around a centre, random radii."""
    n = int(rng.integers(3, 25))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(1.0, 22.0, n)
    centre = rng.uniform(5, 45, 2)
    return centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def distance_to_edges(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    a, b = polygon, np.roll(polygon, -1, axis=0)
    ab = b - a
    t = np.clip(np.einsum("pek,ek->pe", points[:, None] - a[None], ab) / np.einsum("ek,ek->e", ab, ab), 0, 1)
    closest = a[None] + t[..., None] * ab[None]
    return np.min(np.linalg.norm(points[:, None] - closest, axis=2), axis=1)


def test_matches_skimage_polygon2mask_on_random_simple_polygons():
    rng = np.random.default_rng(7)
    shape = (48, 52)
    for _ in range(200):
        polygon = random_star_polygon(rng)
        ours = rasterise_slice([polygon], *shape)
        oracle = polygon2mask(shape, polygon[:, ::-1])  # skimage takes (row, column) vertices
        rows, columns = np.nonzero(ours != oracle)
        if len(rows):
            ties = distance_to_edges(np.stack([columns, rows], axis=1).astype(float), polygon)
            assert np.all(ties < 1e-9), f"{len(rows)} voxels differ away from edges"
        assert ours.any() or not oracle.any()


def test_empty_and_degenerate_input():
    assert not rasterise_slice([], 4, 5).any() and rasterise_slice([], 4, 5).shape == (4, 5)
    assert rasterise_slice([rectangle(0, 3, 0, 3)], 0, 0).shape == (0, 0)
    assert not rasterise_slice([np.array([[1.0, 1.0], [3.0, 3.0]]), np.zeros((0, 2))], 5, 5).any()
    assert rasterise_fractions([], 3, 2).shape == (3, 2)


@pytest.mark.parametrize("bad", [[np.zeros((4, 3))], [np.array([[0.0, 0.0], [np.nan, 1.0], [2.0, 0.0]])],
                                 rectangle(0, 1, 0, 1), [np.array([[0.0, 0.0], [1e12, 1.0], [2.0, 0.0]])]])
def test_bad_polygons_raise_invalid_input(bad):
    with pytest.raises(InvalidInput):
        rasterise_slice(bad, 5, 5)


def test_bad_sizes_and_supersampling_raise_invalid_input():
    with pytest.raises(InvalidInput):
        rasterise_slice([], -1, 5)
    with pytest.raises(InvalidInput):
        rasterise_fractions([], 5, 5, supersampling=0)
    with pytest.raises(InvalidInput):
        rasterise_fractions([], 5, 5, supersampling=2.5)
    with pytest.raises(InvalidInput):
        vertices_outside(np.zeros(3), 5, 5)
