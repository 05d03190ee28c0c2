"""radconf.margins.grow_case: counts on tiny grids, patient directions, barriers, body, contraction, clipping."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from radconf.contours import Margin
from radconf.errors import InvalidInput
from radconf.margins import check_margin, grow_case

FLIP_Z = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # image z index increasing = patient inferior


def _point(shape=(9, 25, 25), at=(4, 12, 12)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[at] = True
    return mask


def test_point_grown_by_10_mm_on_1_1_3_mm_voxels():
    # voxels (k, j, i) with (3k)^2 + j^2 + i^2 <= 100: 317 (k = 0) + 2 * (293 + 197 + 61) (|k| = 1, 2, 3)
    grown = grow_case(gtv=_point(), spacing=(3.0, 1.0, 1.0), margin=10)
    assert grown.mask.sum() == 1419 and not grown.clipped
    assert np.flatnonzero(grown.mask.any(axis=(1, 2))).tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_superior_follows_the_image_direction():
    margin = Margin(radial=0, superior=6)  # two 3 mm slices towards the head, nothing else
    identity = grow_case(gtv=_point(), spacing=(3.0, 1.0, 1.0), margin=margin)
    flipped = grow_case(gtv=_point(), spacing=(3.0, 1.0, 1.0), margin=margin, direction=FLIP_Z)
    assert np.argwhere(identity.mask)[:, 0].tolist() == [4, 5, 6]
    assert np.argwhere(flipped.mask)[:, 0].tolist() == [2, 3, 4]


def test_barrier_wall_stops_the_margin_and_a_gap_lets_it_around():
    gtv = _point(shape=(9, 21, 21), at=(4, 15, 8))
    wall = np.zeros(gtv.shape, bool)
    wall[:, :, 10] = True
    closed = grow_case(gtv=gtv, spacing=(1.0, 1.0, 1.0), margin=8, barriers=wall)
    assert not closed.mask[:, :, 10:].any() and closed.mask[4, 15, 9]
    wall[:, 17:, 10] = False  # a gap at the side, 2 voxels from the GTV's row
    around = grow_case(gtv=gtv, spacing=(1.0, 1.0, 1.0), margin=8, barriers=wall)
    assert around.mask[4, 18, 11]  # 4.2 mm away, through the gap
    assert not around.mask[4, 10, 11]  # 5.8 mm in a straight line through the wall, about 10 mm around it
    assert not (around.mask & wall).any()
    free = grow_case(gtv=gtv, spacing=(1.0, 1.0, 1.0), margin=8)
    assert (around.mask <= free.mask).all() and free.mask[4, 10, 11]


def test_body_cuts_and_the_gtv_is_kept():
    gtv = _point()
    body = np.zeros(gtv.shape, bool)
    body[:, :, :14] = True
    gtv_outside = gtv.copy()
    gtv_outside[4, 12, 20] = True
    grown = grow_case(gtv=gtv_outside, spacing=(1.0, 1.0, 1.0), margin=2, body=body)
    assert grown.mask[4, 12, 20] and grown.mask[4, 12, 13] and not grown.mask[4, 12, 14]
    assert grown.mask[:, :, 14:].sum() == 1


def test_contract_and_its_refusals():
    cube = np.zeros((7, 7, 7), bool)
    cube[1:6, 1:6, 1:6] = True
    shrunk = grow_case(gtv=cube, spacing=(1.0, 1.0, 1.0), margin=1, contract=True)
    assert shrunk.mask.sum() == 27 and shrunk.mask[2:5, 2:5, 2:5].all() and not shrunk.clipped
    with pytest.raises(InvalidInput, match="no barriers"):
        grow_case(gtv=cube, spacing=(1.0, 1.0, 1.0), margin=1, contract=True, barriers=cube)
    with pytest.raises(InvalidInput, match="contract=True"):
        check_margin(-1.0)


def test_clipped_when_the_margin_leaves_the_image():
    near = grow_case(gtv=_point(at=(4, 12, 23)), spacing=(1.0, 1.0, 1.0), margin=3)
    assert near.clipped
    expected = ndimage.distance_transform_edt(~_point(at=(4, 12, 23))) <= 3  # the oracle: scipy's exact EDT
    assert np.array_equal(near.mask, expected)
    assert not grow_case(gtv=_point(at=(4, 12, 21)), spacing=(1.0, 1.0, 1.0), margin=3).clipped
    body = np.ones((9, 25, 25), bool)
    body[:, :, 24] = False  # the body ends before the border: the border cuts nothing
    inside = grow_case(gtv=_point(at=(4, 12, 22)), spacing=(1.0, 1.0, 1.0), margin=3, body=body)
    assert not inside.clipped and inside.mask[4, 12, 23]
    assert grow_case(gtv=_point(at=(4, 12, 22)), spacing=(1.0, 1.0, 1.0), margin=3).clipped
