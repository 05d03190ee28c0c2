"""Overlap metrics, volumes and the StructureMetrics / compute_metrics twin, with hand-computed answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from radconf.evaluation import (
    StructureMetrics,
    binary_metrics,
    compute_metrics,
    metric_names,
)
from radconf.evaluation.binary import OverlapCounts

REQUIRED_KEYS = {"dice", "iou", "sensitivity", "precision", "hd95_mm", "hd_max_mm", "assd_mm", "msd_mm",
                 "surface_dice_2.0mm", "surface_dice_3.0mm", "volume_ref_cm3", "volume_pred_cm3"}


def _cube_pair():
    """4^3 cube and the same cube shifted by one voxel along x, in a 10^3 image."""
    ref = np.zeros((10, 10, 10), dtype=bool)
    ref[3:7, 3:7, 3:7] = True
    return ref, np.roll(ref, 1, axis=2)


def test_shifted_cube_overlap_by_hand():
    ref, pred = _cube_pair()
    spacing = (2.5, 1.0, 0.5)  # voxel volume 1.25 mm^3
    m = binary_metrics(ref, pred, spacing)
    # |ref| = |pred| = 64, overlap 4 x 4 x 3 = 48, image 1000 voxels
    assert m["dice"] == pytest.approx(2 * 48 / 128)
    assert m["iou"] == pytest.approx(48 / 80)
    assert m["sensitivity"] == pytest.approx(48 / 64)
    assert m["precision"] == pytest.approx(48 / 64)
    tn = 1000 - 80
    assert m["specificity"] == pytest.approx(tn / (tn + 16))
    assert m["fpr"] == pytest.approx(16 / (tn + 16))
    assert m["volume_ref_cm3"] == pytest.approx(64 * 1.25 / 1000)
    assert m["volume_pred_cm3"] == pytest.approx(64 * 1.25 / 1000)
    assert m["volume_diff_cm3"] == pytest.approx(0.0)


def test_volume_difference_sign():
    ref = np.zeros((6, 6, 6), dtype=bool)
    ref[1:3, 1:3, 1:3] = True
    pred = ref.copy()
    pred[1:4, 1:3, 1:3] = True  # 4 extra voxels
    m = binary_metrics(ref, pred, (2.0, 1.0, 1.0))
    assert m["volume_diff_cm3"] == pytest.approx(4 * 2.0 / 1000)
    assert m["precision"] == pytest.approx(8 / 12) and m["sensitivity"] == 1.0


def test_empty_mask_table():
    empty = np.zeros((5, 5, 5), dtype=bool)
    some = empty.copy()
    some[1:3, 1:3, 1:3] = True
    both = OverlapCounts.from_masks(empty, empty, (1, 1, 1))
    assert math.isnan(both.dice) and math.isnan(both.iou)
    assert math.isnan(both.sensitivity) and math.isnan(both.precision)
    assert both.specificity == 1.0 and both.fpr == 0.0 and both.volume_ref_cm3 == 0.0
    ref_empty = OverlapCounts.from_masks(empty, some, (1, 1, 1))
    assert ref_empty.dice == 0.0 and ref_empty.iou == 0.0 and ref_empty.precision == 0.0
    assert math.isnan(ref_empty.sensitivity)
    pred_empty = OverlapCounts.from_masks(some, empty, (1, 1, 1))
    assert pred_empty.dice == 0.0 and pred_empty.sensitivity == 0.0
    assert math.isnan(pred_empty.precision)
    full = OverlapCounts.from_masks(np.ones((2, 2, 2), bool), np.ones((2, 2, 2), bool), (1, 1, 1))
    assert full.dice == 1.0 and math.isnan(full.specificity)


def test_compute_metrics_keys_and_twin():
    ref, pred = _cube_pair()
    result = compute_metrics(ref, pred, spacing_mm=(2.5, 1.0, 1.0), tolerances_mm=(2.0, 3.0))
    assert REQUIRED_KEYS <= set(result)
    assert list(result) == metric_names((2.0, 3.0))
    twin = StructureMetrics(ref, pred, (2.5, 1.0, 1.0)).as_dict()
    assert twin == result
    assert result["hd_max_mm"] == pytest.approx(1.0) and result["hd95_mm"] == pytest.approx(1.0)
    assert result["surface_dice_2.0mm"] == 1.0


def test_compute_metrics_empty_conventions():
    empty = np.zeros((6, 6, 6), dtype=bool)
    some = empty.copy()
    some[2:4, 2:4, 2:4] = True
    both = compute_metrics(empty, empty, (1, 1, 1))
    assert all(math.isnan(both[k]) for k in ("dice", "iou", "hd95_mm", "hd_max_mm", "assd_mm", "msd_mm",
                                             "surface_dice_2.0mm"))
    for ref, pred in ((some, empty), (empty, some)):
        one = compute_metrics(ref, pred, (1, 1, 1))
        assert one["dice"] == 0.0 and one["surface_dice_2.0mm"] == 0.0
        assert all(one[k] == math.inf for k in ("hd95_mm", "hd_max_mm", "assd_mm", "msd_mm"))


@pytest.mark.parametrize("convention", ["surface-distance", "pooled", "unweighted", "voxel"])
def test_hd95_conventions_selectable(convention):
    ref, pred = _cube_pair()
    result = compute_metrics(ref, pred, (1.0, 1.0, 1.0), hd95_convention=convention)
    assert result["hd95_mm"] == pytest.approx(1.0)


def test_invalid_arguments():
    ref, pred = _cube_pair()
    with pytest.raises(ValueError, match="hd95_convention"):
        compute_metrics(ref, pred, (1, 1, 1), hd95_convention="median")
    with pytest.raises(ValueError, match="tolerances"):
        compute_metrics(ref, pred, (1, 1, 1), tolerances_mm=(-1.0,))
    with pytest.raises(ValueError, match="spacing_mm"):
        compute_metrics(ref, pred, (1, 0, 1))
    with pytest.raises(TypeError, match="numpy array"):
        compute_metrics(ref.tolist(), pred, (1, 1, 1))
