"""The selection rule on hand-built cases: a step that helps is kept; one that lowers Dice or raises HD95 is not."""
from __future__ import annotations

import math

import numpy as np
import pytest

from radconf.postprocessing import structures_of
from radconf.postprocessing.selection import (
    MIN_DICE_GAIN,
    CaseMaps,
    Scores,
    case_scores,
    decide,
    select_steps,
)
from tests.postprocessing.conftest import cube

LABELS = {"labels": {"background": 0, "organ": 1}, "file_ending": ".nii.gz"}
ORGAN = (slice(2, 12), slice(2, 12), slice(2, 12))  # 1000 voxels
LARGEST = {"op": "largest_component"}


def _select(cases, steps, dataset=LABELS):
    return select_steps(cases, structures_of(dataset), steps, progress=False)


def test_a_far_island_is_removed_by_keeping_the_largest_component():
    reference = cube((20, 40, 40), (ORGAN, 1))
    prediction = cube((20, 40, 40), (ORGAN, 1), ((slice(5, 8), slice(30, 33), slice(30, 33)), 1))  # 27 voxels
    selection = _select([CaseMaps("a", reference, prediction, (1.0, 1.0, 1.0))], [LARGEST])
    trial = selection.trials[0]
    assert trial.kept and selection.postprocessing.structures[0].steps == ({"op": "largest_component",
                                                                           "connectivity": 26},)
    assert trial.before.mean_dice == pytest.approx(2000 / 2027)  # 2 TP / (2 TP + FP), FP = 27
    assert trial.after.mean_dice == 1.0 and trial.after.mean_hd95 == 0.0
    assert trial.before.mean_hd95 > 10  # the island is ~25 mm away: more than 5 % of the predicted surface
    assert np.array_equal(selection.final["organ"].dice, (1.0,))


def test_a_second_component_that_is_real_is_kept():
    """The reference has two parts; removing the smaller predicted part lowers Dice: rejected."""
    part = (slice(5, 8), slice(30, 34), slice(30, 34))
    reference = cube((20, 40, 40), (ORGAN, 1), (part, 1))
    selection = _select([CaseMaps("a", reference, reference.copy(), (1.0, 1.0, 1.0))], [LARGEST])
    trial = selection.trials[0]
    assert not trial.kept and "mean Dice -" in trial.reason
    assert trial.after.mean_dice == pytest.approx(2000 / 2048)  # FN = 48
    assert selection.postprocessing.structures[0].steps == ()


def test_a_step_that_raises_dice_but_worsens_hd95_is_rejected():
    """Removing a 7^3 blob that covers a real 3^3 part raises Dice (316 FP gone, 27 TP lost) but leaves the real part
    ~20 mm from the prediction: HD95 rises from ~3 mm to ~27 mm."""
    reference = cube((20, 40, 40), (ORGAN, 1), ((slice(8, 11), slice(30, 33), slice(30, 33)), 1))
    prediction = cube((20, 40, 40), (ORGAN, 1), ((slice(6, 13), slice(28, 35), slice(28, 35)), 1))
    selection = _select([CaseMaps("a", reference, prediction, (1.0, 1.0, 1.0))], [LARGEST])
    trial = selection.trials[0]
    assert trial.before.mean_dice == pytest.approx(2054 / 2370) and trial.after.mean_dice == pytest.approx(2000 / 2027)
    hd_before = case_scores(reference == 1, prediction == 1, (1.0, 1.0, 1.0))[1]
    assert trial.before.mean_hd95 == hd_before and trial.after.mean_hd95 > hd_before + 20
    assert not trial.kept and "HD95" in trial.reason


def test_cases_absent_in_both_leave_the_mean_as_in_nnunet():
    """A spurious island in a case with an empty reference scores Dice 0; once removed, reference and prediction are
    both empty, and the case leaves the mean (nnU-Net's nanmean): 0.5 -> 1.0, and no more infinite HD95."""
    good = cube((10, 20, 20), ((slice(2, 6), slice(2, 8), slice(2, 8)), 1))
    empty = np.zeros((10, 20, 20), np.uint8)
    spurious = cube((10, 20, 20), ((slice(3, 5), slice(10, 12), slice(10, 12)), 1))
    cases = [CaseMaps("good", good, good.copy(), (1.0, 1.0, 1.0)),
             CaseMaps("empty", empty, spurious, (1.0, 1.0, 1.0))]
    selection = _select(cases, [{"op": "remove_small", "min_voxels": 9}])
    trial = selection.trials[0]
    assert trial.before.dice == (1.0, 0.0) and trial.before.mean_dice == 0.5 and trial.before.infinite == 1
    assert trial.after.dice[0] == 1.0 and math.isnan(trial.after.dice[1]) and trial.after.mean_dice == 1.0
    assert trial.kept and trial.after.infinite == 0


def test_steps_are_tried_on_top_of_the_kept_ones_and_unions_take_removing_steps_only():
    reference = cube((20, 40, 40), (ORGAN, 1))
    holed = reference.copy()
    holed[6, 6, 6] = 0  # an inner hole
    holed[5:7, 30:32, 30:32] = 1  # and an island
    dataset = {"labels": {"background": 0, "organ": 1, "both": [1, 2]}, "file_ending": ".nii.gz"}
    steps = [LARGEST, {"op": "fill_holes"}, {"op": "remove_small", "min_voxels": 2}]
    selection = _select([CaseMaps("a", reference, holed, (1.0, 1.0, 1.0))], steps, dataset)
    organ = [t for t in selection.trials if t.structure == "organ"]
    assert [t.kept for t in organ] == [True, True, False]
    assert organ[1].on_top_of == ({"op": "largest_component", "connectivity": 26},)
    assert organ[2].reason == "changes no voxel"  # the island is gone already
    union = [t.step["op"] for t in selection.trials if t.structure == "both"]
    assert union == ["largest_component", "remove_small"]  # no hole filling: added voxels would have no label
    assert selection.final["organ"].dice == (1.0,)


@pytest.mark.parametrize(("before", "after", "kept", "needle"), [
    ((0.80, 5.0), (0.80 + MIN_DICE_GAIN / 2, 4.0), False, "needs >"),
    ((0.80, 5.0), (0.85, 5.5), False, "HD95 +0.50 mm"),
    ((0.80, 5.0), (0.85, 5.0), True, "mean Dice +0.0500, mean HD95 +0.00 mm"),
    ((0.80, 5.0), (0.90, math.inf), False, "HD95 infinite in 1 case"),
])
def test_decide(before, after, kept, needle):
    result = decide(Scores((before[0],), (before[1],)), Scores((after[0],), (after[1],)))
    assert result[0] is kept and needle in result[1], result
