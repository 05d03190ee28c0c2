"""The affine test-time samples: the transform in mm, and warping back and forth."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from radconf.uncertainty.sources import _warp, affine_matrix


def _physical(matrix: np.ndarray, shape, spacing) -> np.ndarray:
    """The grid-order normalised matrix back in array order and mm."""
    half = np.array([(n - 1) * s / 2 for n, s in zip(shape, spacing)])
    return np.diag(half) @ matrix[::-1, ::-1] @ np.diag(1 / half)


def test_identity_and_a_rotation_in_mm_on_anisotropic_voxels():
    assert np.allclose(affine_matrix((5, 9, 11), (3.0, 1.0, 0.7), 0.0, 1.0), np.eye(3))
    shape, spacing = (5, 9, 11), (3.0, 1.0, 0.7)
    physical = _physical(affine_matrix(shape, spacing, 30.0, 1.25), shape, spacing)
    # a rotation in the slice plane scaled by 1 / 1.25: the slice axis untouched, distances in mm kept up to scale
    assert np.allclose(physical[0], [0.8, 0, 0])
    assert np.allclose(physical[1:, 1:] @ physical[1:, 1:].T, np.eye(2) * 0.8 ** 2)
    angle = np.arctan2(physical[2, 1], physical[1, 1])
    assert np.rad2deg(angle) == pytest.approx(30.0)


def test_a_90_degree_rotation_moves_a_voxel_where_expected():
    volume = torch.zeros(1, 1, 5, 5)
    volume[0, 0, 1, 3] = 1.0  # (y, x) = (1, 3) on a 5 x 5 isotropic slice, centre (2, 2)
    rotated = _warp(volume, affine_matrix((1, 5, 5), (1.0, 1.0, 1.0), 90.0, 1.0))
    # output(v) = input(R v): the voxel lands at the offset v from the centre with R v = its input offset (-1, +1)
    y, x = np.unravel_index(int(rotated[0, 0].argmax()), (5, 5))
    assert rotated[0, 0].max() == pytest.approx(1.0, abs=1e-5)
    offset = np.array([y - 2, x - 2])
    r = np.array([[0, -1], [1, 0]])  # 90 degrees in the (y, x) plane, as affine_matrix builds it
    assert np.array_equal(r @ offset, [1 - 2, 3 - 2])


def test_warping_back_restores_a_smooth_volume_inside():
    z, y, x = np.meshgrid(np.arange(6), np.arange(24), np.arange(24), indexing="ij")
    volume = torch.from_numpy(np.stack([np.sin(y / 4.0) + np.cos(x / 5.0) + z / 6.0]).astype(np.float32))
    matrix = affine_matrix(volume.shape[1:], (3.0, 1.0, 1.0), 4.0, 1.04)
    back = _warp(_warp(volume, matrix), np.linalg.inv(matrix))
    inner = (slice(None), slice(None), slice(5, -5), slice(5, -5))
    assert float((back - volume)[inner].abs().max()) < 0.05
    assert float((_warp(volume, matrix) - volume)[inner].abs().max()) > 0.1  # it did move
