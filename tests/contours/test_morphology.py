"""Exact margins and morphology: hand-computed balls, brute force over every voxel pair, scipy as an oracle."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from radconf.contours import Margin, closing, contract, dilate, erode, expand, opening
from radconf.contours.boxes import cluster_boxes, occupied_blocks
from radconf.errors import InvalidInput


def brute_force_expand(mask, spacing, axes):
    """Every voxel pair: p is in when some mask voxel q has sum_i ((p - q)_i / a_i(sign))^2 <= 1 (+1e-6)."""
    grid = np.indices(mask.shape).reshape(3, -1).T
    sources = np.argwhere(mask)
    result = np.zeros(grid.shape[0], dtype=bool)
    for q in sources:
        d = (grid - q) * np.asarray(spacing, float)
        total = np.zeros(grid.shape[0])
        for i, (minus, plus) in enumerate(axes):
            semi = np.where(d[:, i] > 0, plus, minus)
            with np.errstate(divide="ignore", invalid="ignore"):
                term = np.where(d[:, i] == 0, 0.0, (d[:, i] / semi) ** 2)
            total += np.where(np.isnan(term), np.inf, term)
        result |= total <= 1 + 1e-6
    return result.reshape(mask.shape)


def ball(spacing, radius):
    """The explicit structuring element: voxel offsets whose centre lies within ``radius`` mm."""
    reach = [int(radius / s * (1 + 1e-6)) for s in spacing]
    offsets = np.indices([2 * r + 1 for r in reach]).reshape(3, -1).T - reach
    inside = ((offsets * np.asarray(spacing)) ** 2).sum(axis=1) <= radius ** 2 * (1 + 1e-6)
    return inside.reshape([2 * r + 1 for r in reach])


def lattice_points_in_disc(squared_radius: int) -> int:
    return sum(2 * math.isqrt(squared_radius - j * j) + 1 for j in range(-math.isqrt(squared_radius),
                                                                         math.isqrt(squared_radius) + 1))


def test_point_grown_by_10_mm_is_the_ellipsoid_of_voxel_centres():
    mask = np.zeros((9, 25, 25), dtype=np.uint8)
    mask[4, 12, 12] = 1
    grown = dilate(mask, (3.0, 1.0, 1.0), 10.0)
    # slices z = -3..3 (3 mm apart) hold the lattice points of the disc of squared radius 100 - (3 i)^2
    expected = sum(lattice_points_in_disc(100 - 9 * i * i) for i in range(-3, 4))
    assert lattice_points_in_disc(100) == 317 and expected == 317 + 2 * (293 + 197 + 61)
    assert grown.dtype == bool and grown.sum() == expected
    assert grown[4, 12, 2] and grown[4, 12, 22] and grown[4, 18, 20] and grown[1, 12, 12 + 4]
    assert not grown[4, 12, 1] and not grown[1, 12, 12 + 5] and not grown[0, 12, 12]


def test_margin_zero_is_the_identity_and_inputs_are_not_modified():
    rng = np.random.default_rng(1)
    mask = rng.random((6, 7, 8)) > 0.7
    copy = mask.copy()
    for operation in (dilate, erode, opening, closing):
        result = operation(mask, (2.0, 1.0, 1.0), 0.0)
        assert result is not mask and np.array_equal(result, mask)
    assert np.array_equal(expand(mask, (2, 1, 1), Margin(radial=0, superior=0)), mask)
    dilate(mask, (2.0, 1.0, 1.0), 3.0)
    assert np.array_equal(mask, copy)


def test_empty_masks_give_empty_results():
    empty = np.zeros((4, 5, 6), dtype=bool)
    for result in (dilate(empty, (1, 1, 1), 3), erode(empty, (1, 1, 1), 3), closing(empty, (1, 1, 1), 2),
                   opening(empty, (1, 1, 1), 2), expand(empty, (1, 1, 1), Margin(superior=4)),
                   contract(empty, (1, 1, 1), 2)):
        assert result.shape == empty.shape and not result.any()


@pytest.mark.parametrize("spacing,radius", [((2.5, 0.98, 0.98), 4.0), ((1.0, 1.0, 1.0), 2.0), ((3.0, 0.7, 1.1), 3.3)])
def test_dilation_and_erosion_equal_scipy_with_the_explicit_ball(spacing, radius):
    rng = np.random.default_rng(7)
    mask = ndimage.binary_dilation(rng.random((12, 20, 18)) > 0.985)
    structure = ball(spacing, radius)
    assert np.array_equal(dilate(mask, spacing, radius), ndimage.binary_dilation(mask, structure))
    solid = ndimage.binary_dilation(mask, iterations=3) | (rng.random(mask.shape) > 0.9)
    # voxels outside the array never erode the mask: scipy's border_value=1
    assert np.array_equal(erode(solid, spacing, radius), ndimage.binary_erosion(solid, structure, border_value=1))
    assert np.array_equal(closing(mask, spacing, radius),
                          ndimage.binary_erosion(ndimage.binary_dilation(mask, structure), structure,
                                                 border_value=1))
    assert np.array_equal(opening(solid, spacing, radius),
                          ndimage.binary_dilation(ndimage.binary_erosion(solid, structure, border_value=1),
                                                  structure))


def test_erosion_is_the_dual_of_dilation():
    rng = np.random.default_rng(3)
    mask = ndimage.binary_closing(rng.random((10, 16, 16)) > 0.4)
    spacing = (2.0, 0.8, 1.2)
    assert np.array_equal(erode(mask, spacing, 2.5), ~dilate(~mask, spacing, 2.5))
    margin = Margin(radial=2.0, superior=4.0, left=0.0, posterior=3.0)
    assert np.array_equal(contract(mask, spacing, margin), ~expand(~mask, spacing, margin.reflected()))
    assert not (opening(mask, spacing, 2.0) & ~mask).any() and not (mask & ~closing(mask, spacing, 2.0)).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asymmetric_margins_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((9, 11, 13)) > 0.985
    mask[rng.integers(9), rng.integers(11), rng.integers(13)] = True
    spacing = tuple(rng.uniform(0.6, 2.5, 3))
    margin = Margin(radial=2.0, superior=float(rng.uniform(0, 6)), inferior=float(rng.uniform(0, 6)),
                    anterior=float(rng.uniform(0, 6)), posterior=3.5, left=0.0, right=float(rng.uniform(0, 6)))
    # identity direction: axis 0 = (inferior, superior), axis 1 = (anterior, posterior), axis 2 = (right, left)
    axes = ((margin.inferior, margin.superior), (margin.anterior, margin.posterior), (margin.right, margin.left))
    assert np.array_equal(expand(mask, spacing, margin), brute_force_expand(mask, spacing, axes))
    ellipsoid = Margin(radial=3.0, superior=5.0, inferior=5.0)
    assert np.array_equal(expand(mask, spacing, ellipsoid), brute_force_expand(mask, spacing, ((5, 5), (3, 3), (3, 3))))
    solid = ~mask
    mirrored = tuple((plus, minus) for minus, plus in axes)
    assert np.array_equal(contract(solid, spacing, margin), ~brute_force_expand(mask, spacing, mirrored))


def test_directions_map_through_a_flipped_direction_matrix():
    mask = np.zeros((9, 9, 9), dtype=bool)
    mask[4, 4, 4] = True
    margin = Margin(radial=0.0, left=3.0, superior=2.0)
    identity = expand(mask, (1, 1, 1), margin)
    assert identity[4, 4, 7] and not identity[4, 4, 1] and identity[6, 4, 4] and not identity[2, 4, 4]
    flipped = (-1, 0, 0, 0, 1, 0, 0, 0, -1)  # x and z flipped: array axis 2 -> patient right, axis 0 -> inferior
    grown = expand(mask, (1, 1, 1), margin, direction=flipped)
    assert grown[4, 4, 1] and not grown[4, 4, 7] and grown[2, 4, 4] and not grown[6, 4, 4]
    assert np.array_equal(grown, identity[::-1, :, ::-1])
    rng = np.random.default_rng(5)
    blobs = rng.random((8, 10, 12)) > 0.97
    full = Margin(radial=1.0, superior=3.0, inferior=0.5, anterior=2.0, posterior=0.0, left=2.5, right=1.5)
    expected = expand(blobs[::-1, :, ::-1], (2.0, 1.0, 0.8), full)[::-1, :, ::-1]
    assert np.array_equal(expand(blobs, (2.0, 1.0, 0.8), full, direction=np.array(flipped).reshape(3, 3)), expected)
    # rows/columns permuted: image x index runs along patient y (posterior), image y index along patient x (left)
    swapped = (0, 1, 0, 1, 0, 0, 0, 0, 1)
    grown = expand(mask, (1, 1, 1), Margin(radial=0.0, posterior=3.0), direction=swapped)
    assert grown[4, 4, 7] and grown.sum() == 4


def test_oblique_direction_and_bad_arguments_are_refused():
    mask = np.zeros((3, 3, 3), dtype=bool)
    c, s = math.cos(0.3), math.sin(0.3)
    with pytest.raises(InvalidInput, match="oblique"):
        expand(mask, (1, 1, 1), 2.0, direction=(c, -s, 0, s, c, 0, 0, 0, 1))
    with pytest.raises(InvalidInput, match="radius_mm"):
        dilate(mask, (1, 1, 1), -1.0)
    with pytest.raises(InvalidInput, match="Margin.superior"):
        Margin(superior=-2.0)
    for spacing in ((1, 1), (1, 0, 1), (1, float("nan"), 1), "abc"):
        with pytest.raises(InvalidInput, match="spacing"):
            dilate(mask, spacing, 1.0)
    with pytest.raises(InvalidInput, match="0/1"):
        dilate(mask.astype(float), (1, 1, 1), 1.0)
    with pytest.raises(InvalidInput, match="values other than 0 and 1"):
        dilate(np.full((2, 2, 2), 2), (1, 1, 1), 1.0)
    with pytest.raises(InvalidInput, match="3D"):
        dilate(np.zeros((3, 3), bool), (1, 1, 1), 1.0)
    assert dilate(np.ones((2, 2, 2), np.int16), (1, 1, 1), 1.0).dtype == bool


def test_a_margin_larger_than_the_image_is_clipped_with_one_warning():
    mask = np.zeros((3, 4, 5), dtype=bool)
    mask[1, 2, 2] = True
    with pytest.warns(UserWarning, match=r"larger than the image \(6 x 4 x 5 mm") as caught:
        grown = expand(mask, (2.0, 1.0, 1.0), 30.0)
    assert len(caught) == 1 and grown.all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dilate(mask, (2.0, 1.0, 1.0), 3.0)


def test_scattered_clusters_are_computed_box_by_box_exactly():
    rng = np.random.default_rng(11)
    mask = np.zeros((24, 60, 60), dtype=bool)
    for z, y, x in ((2, 3, 4), (20, 50, 55), (12, 30, 8), (5, 55, 30)):
        mask[z:z + 2, y:y + 3, x:x + 2] = rng.random((2, 3, 2)) > 0.3
    mask[0, 0, 0] = mask[23, 59, 59] = True  # in the corners: boxes clipped at the border
    spacing = (2.5, 0.98, 0.98)
    assert len(cluster_boxes(mask, (2, 5, 5), (2, 5, 5))) >= 4
    margin = Margin(radial=4.0, superior=6.0, inferior=2.0, posterior=1.0, left=0.0)
    axes = ((2.0, 6.0), (4.0, 1.0), (4.0, 0.0))
    assert np.array_equal(expand(mask, spacing, margin), brute_force_expand(mask, spacing, axes))
    exact = ndimage.distance_transform_edt(~mask, sampling=spacing) <= 5.0 * (1 + 1e-6)
    assert np.array_equal(dilate(mask, spacing, 5.0), exact)
    solid = ~mask
    inside = ndimage.distance_transform_edt(np.pad(solid, 1, constant_values=True), sampling=spacing)
    assert np.array_equal(erode(solid, spacing, 3.0), inside[1:-1, 1:-1, 1:-1] > 3.0 * (1 + 1e-6))
    grown = dilate(mask, spacing, 3.0)
    assert np.array_equal(erode(grown, spacing, 3.0), closing(mask, spacing, 3.0))
    assert np.array_equal(erode(grown, spacing, 3.0), ~dilate(~grown, spacing, 3.0))


def test_occupied_blocks_equal_a_block_reduction():
    mask = np.random.default_rng(2).random((13, 17, 21)) > 0.995
    expected = mask
    for axis in range(3):
        expected = np.logical_or.reduceat(expected, np.arange(0, mask.shape[axis], 8), axis=axis)
    assert expected.any() and not expected.all()
    assert np.array_equal(occupied_blocks(mask), expected)
