"""Continuous metrics (the sarcoma confidence-map study).

A tiny map by hand, the evaluation region, and equality with binary metrics.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from radconf.evaluation import (
    binary_metrics,
    continuous_metrics,
    enlarged_reference_box,
)
from radconf.evaluation.continuous import ContinuousCounts


def test_tiny_map_by_hand():
    m = np.array([0, 0.2, 1, 1, 0.6, 0])[None, None]
    mp = np.array([0, 0.6, 0.8, 1, 0.2, 0.4])[None, None]
    # reference box x = 1..4 (extent 4): +ceil(0.4) = 1 voxel each side -> the whole row (N = 6)
    counts = ContinuousCounts.from_maps(m, mp)
    assert counts.n_voxels == 6
    assert counts.tp == pytest.approx(0 + 0.2 + 0.8 + 1 + 0.2 + 0)
    assert counts.fp == pytest.approx(0.4 + 0.4)
    assert counts.fn == pytest.approx(0.2 + 0.4)
    assert counts.tn == pytest.approx(1 + 0.4 + 0 + 0 + 0.4 + 0.6)
    result = continuous_metrics(m, mp)
    assert result["continuous_dice"] == pytest.approx(4.4 / (4.4 + 0.8 + 0.6))
    assert result["continuous_accuracy"] == pytest.approx((2.2 + 2.4) / 6)
    assert result["continuous_sensitivity"] == pytest.approx(2.2 / 2.8)
    assert result["continuous_specificity"] == pytest.approx(2.4 / 3.2)


@pytest.mark.parametrize("start, stop, size, expected", [(10, 20, 30, (9, 21)), (10, 25, 30, (8, 27)),
                                                         (0, 10, 12, (0, 11)), (5, 6, 8, (4, 7))])
def test_enlarged_box_by_hand(start, stop, size, expected):
    """Each side grows by ceil(0.2 * extent / 2) voxels, clipped: extent 10 -> 1, 15 -> 2, 1 -> 1."""
    m = np.zeros((1, 1, size))
    m[0, 0, start:stop] = 0.5
    box = enlarged_reference_box(m)
    assert (box[2].start, box[2].stop) == expected
    assert (box[0].start, box[0].stop) == (0, 1)  # extent 1 would grow by 1 but the image has one slice


def test_voxels_outside_the_region_do_not_count():
    m = np.zeros((1, 1, 40))
    m[0, 0, 10:20] = 1.0
    mp = m.copy()
    mp[0, 0, 35:38] = 1.0  # far false positives, outside 9..21
    assert continuous_metrics(m, mp)["continuous_dice"] == 1.0


def test_binary_maps_equal_binary_metrics_on_the_same_box(shapes):
    ref = shapes.ellipsoid((20, 24, 26), (10, 12, 13), (5, 7, 6))
    pred = np.roll(ref, (1, 2), axis=(0, 2)) & ~shapes.ellipsoid((20, 24, 26), (10, 12, 8), (3, 3, 3))
    box = enlarged_reference_box(ref)
    cont = continuous_metrics(ref.astype(np.float32), pred.astype(np.float64))
    binary = binary_metrics(ref[box], pred[box])
    assert cont["continuous_dice"] == pytest.approx(binary["dice"], abs=1e-12)
    assert cont["continuous_sensitivity"] == pytest.approx(binary["sensitivity"], abs=1e-12)
    assert cont["continuous_specificity"] == pytest.approx(binary["specificity"], abs=1e-12)
    tp = np.count_nonzero(ref[box] & pred[box])
    tn = np.count_nonzero(~ref[box] & ~pred[box])
    assert cont["continuous_accuracy"] == pytest.approx((tp + tn) / ref[box].size, abs=1e-12)
    assert cont["continuous_tp"] == tp and cont["continuous_tn"] == tn


def test_empty_reference_gives_nan():
    result = continuous_metrics(np.zeros((3, 3, 3)), np.full((3, 3, 3), 0.5))
    assert math.isnan(result["continuous_dice"]) and result["region_voxels"] == 0


def test_invalid_maps():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        continuous_metrics(np.array([[[0, 3]]]), np.array([[[0, 1]]]))
    with pytest.raises(ValueError, match="differ"):
        continuous_metrics(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)))
