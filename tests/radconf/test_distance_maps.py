"""Distance-map targets against hand-computed distances with anisotropic spacing, and scipy's EDT."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from scipy.ndimage import distance_transform_edt

from radconf.anatomy.distance import (
    certified_distance,
    denormalise_distance,
    distance_to_exterior,
    distance_to_structure,
    normalise_distance,
)


def test_single_voxel_distances_by_hand_with_anisotropic_spacing():
    mask = np.zeros((3, 4, 5), bool)
    mask[1, 1, 1] = True
    distance = distance_to_structure(mask, (2.5, 1.0, 0.5))
    assert distance[1, 1, 1] == 0.0
    assert distance[0, 1, 1] == pytest.approx(2.5)  # one slice away
    assert distance[1, 3, 1] == pytest.approx(2.0)  # two rows of 1 mm
    assert distance[1, 1, 4] == pytest.approx(1.5)  # three columns of 0.5 mm
    assert distance[2, 3, 4] == pytest.approx(math.sqrt(2.5 ** 2 + 2.0 ** 2 + 1.5 ** 2))
    assert distance.dtype == np.float32


def test_signed_distance_is_negative_inside():
    mask = np.zeros((1, 1, 7), bool)
    mask[0, 0, 2:5] = True  # voxels 2, 3, 4 inside, spacing 2 mm along x
    signed = distance_to_structure(mask, (1.0, 1.0, 2.0), signed=True)
    assert signed[0, 0].tolist() == pytest.approx([4.0, 2.0, -2.0, -4.0, -2.0, 2.0, 4.0])


def test_matches_scipy_on_a_random_shape():
    rng = np.random.default_rng(0)
    mask = rng.random((12, 14, 16)) > 0.97
    spacing = (3.0, 0.8, 1.2)
    np.testing.assert_allclose(distance_to_structure(mask, spacing), distance_transform_edt(~mask, sampling=spacing),
                               rtol=1e-6)


def test_empty_and_full_masks_and_bad_spacing():
    assert np.isinf(distance_to_structure(np.zeros((2, 2, 2)), (1, 1, 1))).all()
    assert (distance_to_structure(np.ones((2, 2, 2)), (1, 1, 1)) == 0).all()
    assert np.isneginf(distance_to_structure(np.ones((2, 2, 2)), (1, 1, 1), signed=True)).all()
    with pytest.raises(ValueError, match="one positive spacing per axis"):
        distance_to_structure(np.ones((2, 2, 2)), (1, 1))


def test_normalisation_by_hand():
    values = normalise_distance(np.array([0.0, 20.0, 60.0, -20.0, np.inf]), scale_mm=20.0)
    np.testing.assert_allclose(values, [0.0, 0.5, 0.75, -0.5, 1.0])


def test_distance_to_exterior_by_hand():
    # 3 x 5 array, spacing 0.5 x 1 mm: along rows 0.5, 1.0, 0.5; along columns 1, 2, 3, 2, 1
    expected = np.array([[0.5, 0.5, 0.5, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5, 0.5]], np.float32)
    np.testing.assert_array_equal(distance_to_exterior((3, 5), (0.5, 1.0)), expected)
    np.testing.assert_array_equal(distance_to_exterior((3, 5), (4.0, 1.0))[1], [1, 2, 3, 2, 1])


@pytest.mark.parametrize("signed", [False, True])
def test_certified_distance_equals_the_whole_image_distance(signed):
    rng = np.random.default_rng(4)
    volume = ndimage.binary_dilation(rng.random((30, 40, 36)) > 0.995, iterations=3)
    spacing = (2.5, 1.0, 0.7)
    truth = distance_to_structure(volume, spacing, signed=signed)
    window = (slice(6, 22), slice(10, 31), slice(3, 30))
    patch = volume[window]
    distance, valid = certified_distance(patch, spacing, signed=signed)
    np.testing.assert_allclose(distance[valid], truth[window][valid], rtol=1e-5, atol=1e-4)
    assert valid.mean() > 0.3  # most of the patch is certified
    # where the patch alone is wrong, it is never certified
    wrong = ~np.isclose(distance, truth[window], rtol=1e-5, atol=1e-4)
    assert wrong.any() and not (wrong & valid).any()


def test_certified_distance_of_an_empty_patch_is_never_valid():
    distance, valid = certified_distance(np.zeros((4, 5, 6), bool), (1.0, 1.0, 1.0))
    assert np.isinf(distance).all() and not valid.any()


def test_denormalise_inverts_normalise():
    distance = np.array([0.0, 1.5, 20.0, 300.0, -7.0], np.float32)
    np.testing.assert_allclose(denormalise_distance(normalise_distance(distance, 20.0), 20.0), distance, rtol=1e-4)
    assert np.isfinite(denormalise_distance(np.array([1.0, -1.0]), 20.0)).all()
