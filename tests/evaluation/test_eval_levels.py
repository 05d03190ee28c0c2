"""Confidence-level maps: per-level table, mean level Dice, calibration and level checks on tiny maps."""
from __future__ import annotations

import math

import numpy as np
import pytest

from radconf.evaluation import evaluate_level_maps
from radconf.evaluation.levels import (
    calibration_from_joint,
    check_level_map,
    level_joint_counts,
)


def _tiny_maps():
    """K = 2, one row of 8 voxels (reference / prediction levels)."""
    ref = np.array([0, 1, 1, 2, 2, 2, 1, 0])[None, None]
    pred = np.array([0, 0, 1, 2, 2, 1, 1, 1])[None, None]
    return ref, pred


def test_per_level_table_by_hand():
    ref, pred = _tiny_maps()
    result = evaluate_level_maps(ref, pred, 2, (1.0, 1.0, 1.0))
    level1, level2 = result.per_level
    assert level1["level"] == 1 and level2["level"] == 2
    # level >= 1: ref voxels 1..6 (6), pred voxels 2..7 (6), overlap 2..6 (5)
    assert level1["dice"] == pytest.approx(10 / 12)
    assert level1["sensitivity"] == pytest.approx(5 / 6)
    # level >= 2: ref 3, 4, 5 ; pred 3, 4 -> overlap 2
    assert level2["dice"] == pytest.approx(4 / 5)
    assert level2["precision"] == 1.0
    assert result.mean_level_dice == pytest.approx((10 / 12 + 4 / 5) / 2)
    assert {"hd95_mm", "surface_dice_2.0mm"} <= set(level1)


def test_calibration_by_hand():
    ref, pred = _tiny_maps()
    result = evaluate_level_maps(ref, pred, 2, (1.0, 1.0, 1.0))
    rows = {row["level"]: row for row in result.calibration}
    # predicted 0 at voxels 0, 1 -> ref levels 0, 1 -> fractions 0, 0.5
    assert rows[0]["n_voxels"] == 2 and rows[0]["observed_fraction"] == pytest.approx(0.25)
    # predicted 1 at voxels 2, 5, 6, 7 -> ref 1, 2, 1, 0 -> 0.5, 1, 0.5, 0
    assert rows[1]["n_voxels"] == 4 and rows[1]["observed_fraction"] == pytest.approx(0.5)
    # predicted 2 at voxels 3, 4 -> ref 2, 2
    assert rows[2]["n_voxels"] == 2 and rows[2]["observed_fraction"] == 1.0
    assert rows[2]["predicted_confidence"] == 1.0


def test_joint_counts_include_voxels_outside_the_box():
    ref = np.zeros((4, 5, 6), dtype=np.uint8)
    pred = np.zeros_like(ref)
    ref[1, 1, 1], pred[1, 1, 2] = 3, 1
    joint = level_joint_counts(ref, pred, 3)
    assert joint.sum() == ref.size
    assert joint[0, 3] == 1 and joint[1, 0] == 1 and joint[0, 0] == ref.size - 2
    rows = calibration_from_joint(joint)
    assert math.isnan(rows[2]["observed_fraction"]) and rows[2]["n_voxels"] == 0


def test_continuous_metrics_of_levels():
    ref, pred = _tiny_maps()
    result = evaluate_level_maps(ref, pred, 2, (1.0, 1.0, 1.0))
    m, mp = ref[0, 0] / 2, pred[0, 0] / 2
    tp = np.minimum(m, mp).sum()  # region: box 1..6 grows by ceil(0.6) = 1 -> whole row
    assert result.continuous["continuous_dice"] == pytest.approx(2 * tp / (m.sum() + mp.sum()))


def test_level_checks():
    with pytest.raises(ValueError, match=r"0\.\.2"):
        check_level_map(np.array([0, 3]), 2, "reference x.nii.gz")
    with pytest.raises(ValueError, match="integer"):
        check_level_map(np.array([0.5, 1.0]), 2)
    with pytest.raises(ValueError, match="K"):
        check_level_map(np.array([0, 1]), 0)
