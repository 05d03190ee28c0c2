"""Ensemble weights: simplex projection, the exact per-case reduction, IoU conventions and the weight search."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from radconf.ensembles.optimiser import WeightSearch, find_weights, project_to_simplex
from radconf.ensembles.statistics import (
    CaseStatistics,
    case_statistics,
    confusion_counts,
    iou_table,
    mean_iou,
    mean_soft_iou,
)


def _dirichlet_field(rng: np.random.Generator, classes: int, shape: tuple) -> np.ndarray:
    """(classes, *shape) float32 softmax-like probabilities, independent per voxel."""
    return np.moveaxis(rng.dirichlet(np.ones(classes), size=shape), -1, 0).astype(np.float32)


def _mixture(weights, members: list[np.ndarray]) -> np.ndarray:
    return sum(w * p.astype(np.float64) for w, p in zip(weights, members))


def _direct_counts(predicted: np.ndarray, truth: np.ndarray) -> list[int]:
    return [int(np.sum(predicted & truth)), int(np.sum(predicted & ~truth)), int(np.sum(~predicted & truth))]


def _split(members: list[np.ndarray], reference: np.ndarray, decoding: str, cases: int) -> list[CaseStatistics]:
    """Cut the last axis into cases and reduce each."""
    pieces = np.array_split(np.arange(reference.shape[-1]), cases)
    return [case_statistics([p[..., idx] for p in members], reference[..., idx], decoding, case=f"case_{n}")
            for n, idx in enumerate(pieces)]


def _assert_on_simplex(w: np.ndarray):
    assert w.ndim == 1 and np.all(w >= 0) and abs(w.sum() - 1) < 1e-9


# ---- projection -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("vector, expected", [
    ([0.5, 0.5], [0.5, 0.5]),
    ([2.0, 0.0], [1.0, 0.0]),
    ([0.4, 0.3, -1.0], [0.55, 0.45, 0.0]),
    ([0.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]),
    ([3.0], [1.0]),
])
def test_project_to_simplex_by_hand(vector, expected):
    projected = project_to_simplex(vector)
    np.testing.assert_allclose(projected, expected, atol=1e-12)
    _assert_on_simplex(projected)


def test_project_to_simplex_is_the_closest_point():
    rng = np.random.default_rng(0)
    for _ in range(10):
        v = rng.normal(scale=2.0, size=int(rng.integers(2, 7)))
        projected = project_to_simplex(v)
        _assert_on_simplex(projected)
        result = minimize(lambda x: np.sum((x - v) ** 2), np.full(v.size, 1 / v.size), method="SLSQP",
                          bounds=[(0, 1)] * v.size, constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}],
                          options={"ftol": 1e-12, "maxiter": 500})
        np.testing.assert_allclose(projected, result.x, atol=1e-5)
        assert np.sum((projected - v) ** 2) <= result.fun + 1e-9


def test_project_to_simplex_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        project_to_simplex(np.ones((2, 2)))
    with pytest.raises(ValueError, match="1-D"):
        project_to_simplex([np.nan, 1.0])


# ---- exact reduction --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_argmax_reduction_is_exact(seed):
    rng = np.random.default_rng(seed)
    members = [_dirichlet_field(rng, 3, (300,)) for _ in range(3)]
    members[1][:, :150] = members[0][:, :150]  # some agreement so both kinds of voxels occur
    members[2][:, :150] = members[0][:, :150] * 0.9 + 0.1 / 3
    reference = rng.integers(0, 3, size=300)
    statistics = _split(members, reference, "argmax", 3)
    assert 0 < sum(s.disputed_voxels for s in statistics) < 300
    for w in [rng.dirichlet(np.ones(3)) for _ in range(5)] + [np.array([0.0, 1.0, 0.0])]:
        mixture = _mixture(w, members)
        predicted = mixture.argmax(0)
        counts = confusion_counts(w, statistics)
        pieces = np.array_split(np.arange(300), 3)
        expected = [[_direct_counts(predicted[idx] == c, reference[idx] == c) for c in (1, 2)] for idx in pieces]
        np.testing.assert_array_equal(counts, expected)
        expected = np.array(expected, dtype=float)
        np.testing.assert_allclose(iou_table(w, statistics), expected[..., 0] / expected.sum(-1))
        # soft IoU straight from the full mixture
        soft = []
        for idx in pieces:
            for c in (1, 2):
                y = reference[idx] == c
                intersection = mixture[c, idx][y].sum()
                soft.append(intersection / (mixture[c, idx].sum() + y.sum() - intersection))
        np.testing.assert_allclose(mean_soft_iou(w, statistics), np.mean(soft), rtol=1e-9)


def test_threshold_reduction_is_exact():
    rng = np.random.default_rng(2)
    members = [rng.random((3, 400)).astype(np.float32) for _ in range(3)]
    members[1][:, :200] = np.clip(members[0][:, :200] + 0.05 * np.sign(members[0][:, :200] - 0.5), 0, 1)
    members[2][:, :200] = members[0][:, :200]
    reference = rng.random((3, 400)) > 0.6
    reference[2, 200:] = False  # an empty region in one case
    statistics = _split(members, reference, "threshold", 2)
    assert 0 < sum(s.disputed_voxels for s in statistics) < 3 * 400
    for w in [rng.dirichlet(np.ones(3)) for _ in range(5)]:
        mixture = _mixture(w, members)
        pieces = np.array_split(np.arange(400), 2)
        expected = [[_direct_counts(mixture[s, idx] > 0.5, reference[s, idx]) for s in range(3)] for idx in pieces]
        np.testing.assert_array_equal(confusion_counts(w, statistics), expected)
        soft = []
        for idx in pieces:
            for s in range(3):
                y = reference[s, idx]
                if y.any():
                    intersection = mixture[s, idx][y].sum()
                    soft.append(intersection / (mixture[s, idx].sum() + y.sum() - intersection))
        assert len(soft) == 5
        np.testing.assert_allclose(mean_soft_iou(w, statistics), np.mean(soft), rtol=1e-9)


def test_identical_members_leave_nothing_disputed():
    rng = np.random.default_rng(3)
    probabilities = _dirichlet_field(rng, 4, (5, 6))
    statistics = case_statistics([probabilities, probabilities.copy()], rng.integers(0, 4, (5, 6)), "argmax")
    assert statistics.disputed_voxels == 0
    assert statistics.soft_intersection.shape == (2, 3) and statistics.fixed_counts.shape == (3, 3)


# ---- IoU conventions by hand ------------------------------------------------------------------------------------

def test_hard_iou_by_hand_argmax():
    # one member, 3 classes, 4 voxels: predicted 1, 1, 0, 0; reference 1, 0, 0, 0
    # class 1: tp 1, fp 1 -> IoU 0.5; class 2: empty in both -> NaN
    probabilities = np.array([[0.2, 0.3, 0.8, 0.9], [0.7, 0.6, 0.1, 0.05], [0.1, 0.1, 0.1, 0.05]], np.float32)
    statistics = [case_statistics([probabilities], np.array([1, 0, 0, 0]), "argmax", case="a")]
    np.testing.assert_array_equal(confusion_counts([1.0], statistics), [[[1, 1, 0], [0, 0, 0]]])
    table = iou_table([1.0], statistics)
    assert table[0, 0] == 0.5 and np.isnan(table[0, 1])
    assert mean_iou([1.0], statistics) == 0.5
    # reference holds class 2 where nothing predicts it -> 0, not NaN
    statistics.append(case_statistics([probabilities], np.array([1, 0, 2, 0]), "argmax", case="b"))
    np.testing.assert_array_equal(iou_table([1.0], statistics)[1], [0.5, 0.0])
    assert mean_iou([1.0], statistics) == pytest.approx((0.5 + 0.5 + 0.0) / 3)


def test_hard_iou_by_hand_threshold_two_members():
    # channel 0: members disagree on voxel 1 (0.9 vs 0.2); the mixture decides. channel 1: empty everywhere.
    first = np.array([[0.9, 0.9, 0.1], [0.1, 0.2, 0.3]], np.float32)
    second = np.array([[0.8, 0.2, 0.1], [0.4, 0.1, 0.0]], np.float32)
    reference = np.array([[True, False, False], [False, False, False]])
    statistics = [case_statistics([first, second], reference, "threshold")]
    assert statistics[0].disputed_voxels == 1
    # w = (0.5, 0.5): voxel 1 -> 0.55 > 0.5, a false positive -> IoU 1/2
    np.testing.assert_array_equal(confusion_counts([0.5, 0.5], statistics), [[[1, 1, 0], [0, 0, 0]]])
    # w = (0.2, 0.8): voxel 1 -> 0.34, correct -> IoU 1
    table = iou_table([0.2, 0.8], statistics)
    assert table[0, 0] == 1.0 and np.isnan(table[0, 1])
    # empty reference: a false positive gives 0; nothing predicted anywhere gives NaN (and no soft IoU terms)
    empty = np.zeros((2, 3), bool)
    np.testing.assert_array_equal(iou_table([1.0], [case_statistics([first], empty, "threshold")]), [[0.0, np.nan]])
    quiet = [case_statistics([np.full((2, 3), 0.5, np.float32)], empty, "threshold")]  # 0.5 is not above 0.5
    assert np.isnan(mean_iou([1.0], quiet)) and np.isnan(mean_soft_iou([1.0], quiet))
    # a disputed voxel whose mixture is exactly 0.5 is off, as for the decoder
    tie = [case_statistics([np.array([[0.75]], np.float32), np.array([[0.25]], np.float32)], [[True]], "threshold")]
    np.testing.assert_array_equal(confusion_counts([0.5, 0.5], tie), [[[0, 0, 1]]])
    np.testing.assert_array_equal(confusion_counts([0.75, 0.25], tie), [[[1, 0, 0]]])


# ---- weight search ----------------------------------------------------------------------------------------------

def _recovery_problem(decoding: str, true_weights, seed: int = 0, voxels: int = 5000):
    rng = np.random.default_rng(seed)
    if decoding == "argmax":
        members = [_dirichlet_field(rng, 3, (voxels,)) for _ in range(3)]
        reference = _mixture(true_weights, members).argmax(0)
    else:
        members = [rng.random((3, voxels)).astype(np.float32) for _ in range(3)]
        reference = _mixture(true_weights, members) > 0.5
    return _split(members, reference, decoding, 4)


@pytest.mark.parametrize("decoding, true_weights", [("argmax", [0.7, 0.3, 0.0]), ("threshold", [0.2, 0.8, 0.0])])
def test_find_weights_recovers_known_weights(decoding, true_weights):
    statistics = _recovery_problem(decoding, true_weights)
    # decoded IoU is 1 only within ~1/voxels of w*: a finer final step than the default 1/1024 reaches it
    search = find_weights(statistics, random_starts=2, min_step=1 / 4096)
    assert isinstance(search, WeightSearch)
    _assert_on_simplex(search.weights)
    _assert_on_simplex(search.soft_weights)
    assert search.mean_iou >= 0.999
    np.testing.assert_allclose(search.weights, true_weights, atol=0.05)
    assert search.weights[2] <= 0.02
    assert search.mean_iou == mean_iou(search.weights, statistics)
    assert search.mean_soft_iou == pytest.approx(mean_soft_iou(search.weights, statistics))
    assert search.evaluations > 0


def test_soft_optimum_is_a_perfect_member():
    rng = np.random.default_rng(4)
    reference = rng.integers(0, 3, size=600)
    perfect = np.eye(3, dtype=np.float32)[reference].T
    members = [_dirichlet_field(rng, 3, (600,)), perfect, _dirichlet_field(rng, 3, (600,))]
    statistics = _split(members, reference, "argmax", 3)
    search = find_weights(statistics, objective="soft")
    np.testing.assert_allclose(search.soft_weights, [0.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_array_equal(search.weights, search.soft_weights)
    assert search.mean_soft_iou == pytest.approx(1.0, abs=1e-6)
    assert search.mean_iou == 1.0


def test_soft_stage_finds_an_interior_optimum():
    # member 0 is good on class 1 only, member 1 on class 2 only, member 2 is noise: the soft optimum mixes 0 and 1
    rng = np.random.default_rng(11)
    reference = rng.integers(0, 3, 600)
    one_hot = np.eye(3)[reference].T
    members = []
    for noisy_class in (2, 1):
        member = 0.6 * one_hot + 0.4 * _dirichlet_field(rng, 3, (600,))
        member[noisy_class] *= _dirichlet_field(rng, 3, (600,))[noisy_class]
        members.append((member / member.sum(0)).astype(np.float32))
    members.append(_dirichlet_field(rng, 3, (600,)))
    statistics = _split(members, reference, "argmax", 2)
    search = find_weights(statistics, objective="soft", tolerance=1e-8, random_starts=0)
    best = minimize(lambda w: -mean_soft_iou(project_to_simplex(w), statistics), np.full(3, 1 / 3), method="SLSQP",
                    bounds=[(0, 1)] * 3, constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}])
    assert 0.2 < search.soft_weights[0] < 0.8 and search.soft_weights[2] == 0.0
    np.testing.assert_allclose(search.soft_weights, project_to_simplex(best.x), atol=0.01)
    assert search.mean_soft_iou >= -best.fun - 1e-6
    assert search.mean_soft_iou > max(mean_soft_iou(vertex, statistics) for vertex in np.eye(3)) + 1e-3


def test_hard_start_beats_an_overconfident_soft_optimum():
    # member 0 is right everywhere but unsure (0.45 vs 0.275), member 1 is one-hot and right on 75 % of the voxels:
    # the soft IoU prefers member 1, the decoded IoU member 0; with no sweeps the start alone must pick member 0
    rng = np.random.default_rng(12)
    reference = rng.integers(0, 3, 600)
    unsure = np.where(np.eye(3)[reference].T > 0, 0.45, 0.275).astype(np.float32)
    confident = np.where(rng.random(600) < 0.75, reference, (reference + rng.integers(1, 3, 600)) % 3)
    statistics = _split([unsure, np.eye(3, dtype=np.float32)[confident].T], reference, "argmax", 2)
    search = find_weights(statistics, min_step=1.0)
    np.testing.assert_array_equal(search.soft_weights, [0.0, 1.0])
    np.testing.assert_array_equal(search.weights, [1.0, 0.0])
    assert search.mean_iou == 1.0 and search.evaluations == 3


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_search_is_never_worse_than_centre_or_single_members(seed):
    # noisy members around a reference, with one good but overconfident member that the soft IoU may over-weight
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 3, size=900)
    one_hot = np.eye(3)[reference].T
    members = [(0.6 * one_hot + 0.4 * _dirichlet_field(rng, 3, (900,)) ** 3) for _ in range(3)]
    members = [(m / m.sum(0)).astype(np.float32) for m in members]
    members.append(_dirichlet_field(rng, 3, (900,)) ** 0.2)
    statistics = _split(members, reference, "argmax", 3)
    search = find_weights(statistics, random_starts=1, max_iterations=300)
    _assert_on_simplex(search.weights)
    baselines = [mean_iou(np.full(4, 0.25), statistics)] + [mean_iou(vertex, statistics) for vertex in np.eye(4)]
    assert search.mean_iou >= max(baselines) - 1e-12


def test_single_member_and_exact_zeros():
    rng = np.random.default_rng(8)
    reference = rng.integers(0, 3, size=50)
    statistics = [case_statistics([_dirichlet_field(rng, 3, (50,))], reference, "argmax")]
    search = find_weights(statistics)
    np.testing.assert_array_equal(search.weights, [1.0])
    # a useless member gets exactly zero
    statistics = _recovery_problem("argmax", [0.7, 0.3, 0.0], seed=1, voxels=1200)
    weights = find_weights(statistics, random_starts=0).weights
    assert weights[2] == 0.0


# ---- errors -----------------------------------------------------------------------------------------------------

def test_case_statistics_rejects_bad_input():
    rng = np.random.default_rng(9)
    good = _dirichlet_field(rng, 3, (4, 4))
    labels = rng.integers(0, 3, (4, 4))
    with pytest.raises(ValueError, match="different shapes"):
        case_statistics([good, _dirichlet_field(rng, 3, (4, 5))], labels, "argmax", case="p01")
    with pytest.raises(ValueError, match="p01.*unknown decoding"):
        case_statistics([good], labels, "softmax", case="p01")
    with pytest.raises(ValueError, match="outside 0..2"):
        case_statistics([good], labels + 1, "argmax")
    with pytest.raises(ValueError, match="outside 0..2"):
        case_statistics([good], labels - 1, "argmax")
    with pytest.raises(ValueError, match="shape"):
        case_statistics([good], labels[:3], "argmax")
    with pytest.raises(ValueError, match="bool"):
        case_statistics([good], np.full((3, 4, 4), 2), "threshold")
    with pytest.raises(ValueError, match="no member"):
        case_statistics([], labels, "argmax")
    with pytest.raises(ValueError, match="NaN"):
        case_statistics([np.full((3, 4, 4), np.nan, np.float32)], labels, "argmax")


def test_search_and_metrics_reject_bad_input():
    rng = np.random.default_rng(10)
    labels = rng.integers(0, 3, (20,))
    two = case_statistics([_dirichlet_field(rng, 3, (20,)) for _ in range(2)], labels, "argmax", case="a")
    three = case_statistics([_dirichlet_field(rng, 3, (20,)) for _ in range(3)], labels, "argmax", case="b")
    with pytest.raises(ValueError, match="unknown objective"):
        find_weights([two], objective="dice")
    with pytest.raises(ValueError, match="at least one case"):
        find_weights([])
    with pytest.raises(ValueError, match="same members"):
        find_weights([two, three])
    with pytest.raises(ValueError, match="simplex"):
        mean_iou([0.7, 0.7], [two])
    with pytest.raises(ValueError, match="one per member"):
        confusion_counts([1.0], [two])
