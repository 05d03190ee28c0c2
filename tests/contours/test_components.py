"""Connected components and hole filling against scipy.ndimage and SimpleITK."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from radconf.contours import connected_components, fill_holes, largest_component, remove_small_components
from radconf.errors import InvalidInput

STRUCTURE_RANK = {6: 1, 18: 2, 26: 3}


def random_mask(seed, shape=(14, 18, 20), density=0.3):
    return np.random.default_rng(seed).random(shape) < density


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_components_equal_scipy_label(connectivity):
    mask = random_mask(0)
    mask[0] = False  # bounding box smaller than the array
    labels, count = connected_components(mask.astype(np.uint8), connectivity=connectivity)
    expected, expected_count = ndimage.label(mask, ndimage.generate_binary_structure(3, STRUCTURE_RANK[connectivity]))
    assert count == expected_count > 1
    assert np.array_equal(labels, expected)  # same numbering: raster order of the first voxel
    assert np.array_equal(np.bincount(labels.ravel()), np.bincount(expected.ravel()))


def test_largest_component_equals_simpleitk_relabel():
    mask = random_mask(4, density=0.2)
    for fully_connected, connectivity in ((False, 6), (True, 26)):
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        relabelled = sitk.RelabelComponent(sitk.ConnectedComponent(image, fully_connected), sortByObjectSize=True)
        reference = sitk.GetArrayFromImage(relabelled) == 1
        sizes = np.sort(np.bincount(ndimage.label(mask, ndimage.generate_binary_structure(
            3, STRUCTURE_RANK[connectivity]))[0].ravel())[1:])
        assert sizes[-1] > sizes[-2]  # a unique largest component
        assert np.array_equal(largest_component(mask, connectivity=connectivity), reference)


def test_largest_component_of_equal_sizes_is_the_first_in_raster_order():
    mask = np.zeros((3, 5, 5), dtype=bool)
    mask[2, 0, 0:2] = True
    mask[0, 4, 3:5] = True
    assert np.array_equal(largest_component(mask), np.pad(np.ones((1, 1, 2), bool), ((0, 2), (4, 0), (3, 0))))


def test_remove_small_components_by_voxels_and_by_volume():
    mask = np.zeros((6, 10, 10), dtype=bool)
    mask[0, 0, 0] = True  # 1 voxel
    mask[2:4, 2:4, 2:4] = True  # 8 voxels
    mask[5, 6:9, 6] = True  # 3 voxels
    spacing = (2.5, 0.98, 0.98)
    kept = remove_small_components(mask, spacing, min_voxels=3)
    assert kept.sum() == 11 and not kept[0, 0, 0]
    voxel = 2.5 * 0.98 * 0.98
    assert remove_small_components(mask, spacing, min_volume_mm3=3 * voxel).sum() == 11  # at the threshold: kept
    assert remove_small_components(mask, spacing, min_volume_mm3=3.01 * voxel).sum() == 8
    assert remove_small_components(mask, spacing, min_volume_mm3=0).sum() == 12
    corner = remove_small_components(mask, spacing, min_voxels=2, connectivity=6)
    assert corner.sum() == 11
    with pytest.raises(InvalidInput, match="exactly one"):
        remove_small_components(mask, spacing, min_voxels=2, min_volume_mm3=3.0)
    with pytest.raises(InvalidInput, match="exactly one"):
        remove_small_components(mask, spacing)
    with pytest.raises(InvalidInput, match="min_voxels"):
        remove_small_components(mask, spacing, min_voxels=-1)
    with pytest.raises(InvalidInput, match="min_volume_mm3"):
        remove_small_components(mask, spacing, min_volume_mm3=float("inf"))
    with pytest.raises(InvalidInput, match="connectivity"):
        connected_components(mask, connectivity=8)


def test_empty_masks():
    empty = np.zeros((3, 4, 5), dtype=bool)
    labels, count = connected_components(empty)
    assert count == 0 and labels.shape == empty.shape and not labels.any()
    assert not largest_component(empty).any() and not fill_holes(empty).any()
    assert not fill_holes(empty, per_slice=True).any()
    assert not remove_small_components(empty, (1, 1, 1), min_voxels=1).any()


def holes_phantom(seed):
    """Random blobs closed into shells, so that there are holes of several shapes."""
    rng = np.random.default_rng(seed)
    solid = ndimage.binary_dilation(rng.random((16, 20, 22)) > 0.995, iterations=3)
    return solid & ~(rng.random(solid.shape) > 0.6) | ndimage.binary_erosion(solid) ^ solid


@pytest.mark.parametrize("seed", [0, 1])
def test_fill_holes_3d_equals_scipy_and_simpleitk(seed):
    mask = holes_phantom(seed)
    original = mask.copy()
    for connectivity, fully_connected in ((6, False), (26, True)):
        filled = fill_holes(mask, connectivity=connectivity)
        structure = ndimage.generate_binary_structure(3, STRUCTURE_RANK[connectivity])
        assert np.array_equal(filled, ndimage.binary_fill_holes(mask, structure))
        image = sitk.GetImageFromArray(mask.astype(np.uint8))
        reference = sitk.GetArrayFromImage(sitk.BinaryFillhole(image, fullyConnected=fully_connected,
                                                               foregroundValue=1)).astype(bool)
        assert np.array_equal(filled, reference)
    assert (fill_holes(mask) & ~mask).sum() > 0
    assert np.array_equal(fill_holes(mask, connectivity=18), ndimage.binary_fill_holes(
        mask, ndimage.generate_binary_structure(3, 2)))
    assert np.array_equal(mask, original)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_fill_holes_per_slice_equals_scipy_in_each_slice(axis):
    mask = holes_phantom(2)
    for connectivity, rank in ((6, 1), (26, 2)):
        expected = np.stack([ndimage.binary_fill_holes(plane, ndimage.generate_binary_structure(2, rank))
                             for plane in np.moveaxis(mask, axis, 0)], axis=axis)
        assert (expected & ~mask).any()
        assert np.array_equal(fill_holes(mask, per_slice=True, axis=axis, connectivity=connectivity), expected)


def test_a_tube_is_a_hole_in_every_slice_but_not_in_3d():
    tube = np.zeros((5, 7, 7), dtype=bool)
    tube[:, 1:6, 1:6] = True
    tube[:, 3, 3] = False  # open at both ends along axis 0
    assert np.array_equal(fill_holes(tube), tube)
    assert fill_holes(tube, per_slice=True)[:, 3, 3].all()
    assert np.array_equal(fill_holes(tube, per_slice=True, axis=1), tube)
    with pytest.raises(InvalidInput, match="axis"):
        fill_holes(tube, per_slice=True, axis=3)


def test_fill_holes_of_a_mask_filling_the_array():
    # background split into many pieces on the array border (the mask reaches every face)
    mask = random_mask(9, shape=(10, 12, 14), density=0.75)
    for connectivity, rank in ((6, 1), (26, 3)):
        expected = ndimage.binary_fill_holes(mask, ndimage.generate_binary_structure(3, rank))
        assert np.array_equal(fill_holes(mask, connectivity=connectivity), expected)
    assert (fill_holes(mask) & ~mask).any()


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_components_of_a_broken_line_of_voxels(connectivity):
    # a bounding box with two axes of length 1 holding two components (cc3d alone fails on it at connectivity 26)
    mask = np.zeros((5, 5, 5), bool)
    mask[1, 2, 2] = mask[3, 2, 2] = mask[4, 2, 2] = True
    labels, count = connected_components(mask, connectivity)
    assert count == 2 and labels[1, 2, 2] == 1 and labels[3, 2, 2] == labels[4, 2, 2] == 2
    assert largest_component(mask, connectivity).sum() == 2
    assert remove_small_components(mask, (1.0, 1.0, 1.0), min_voxels=2, connectivity=connectivity).sum() == 2
