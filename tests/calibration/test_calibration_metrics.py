"""ReliabilityHistogram: ECE, adaptive ECE, MCE and Brier by hand, streaming, soft references; the near region."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from radconf.calibration import ReliabilityHistogram, compute_calibration, near_structure_box

# 10 probabilities: 5 in [0, 0.5) and 5 in [0.5, 1]
P = np.array([0.1, 0.2, 0.3, 0.4, 0.45, 0.6, 0.7, 0.8, 0.9, 0.95])
Y = np.array([0, 0, 1, 0, 0, 1, 1, 0, 1, 1])


def direct_ece(p: np.ndarray, y: np.ndarray, n_bins: int) -> tuple[float, float]:
    """ECE and MCE with equal-width bins straight from the voxels (the textbook definition)."""
    index = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece, mce = 0.0, 0.0
    for b in np.unique(index):
        gap = abs(y[index == b].mean() - p[index == b].mean())
        ece += (index == b).sum() / p.size * gap
        mce = max(mce, gap)
    return ece, mce


def test_hand_example_in_two_bins():
    histogram = ReliabilityHistogram().add(P, Y)
    # bin [0, 0.5): conf 1.45 / 5 = 0.29, observed 1 / 5 = 0.2; bin [0.5, 1]: conf 3.95 / 5 = 0.79, observed 0.8
    assert histogram.ece(2) == pytest.approx(0.5 * 0.09 + 0.5 * 0.01, abs=1e-12)
    assert histogram.mce(2) == pytest.approx(0.09, abs=1e-12)
    assert histogram.brier() == pytest.approx(1.805 / 10, abs=1e-12)
    # equal mass, 5 bins = sorted pairs: |0 - .15|, |.5 - .35|, |.5 - .525|, |.5 - .75|, |1 - .925|
    assert histogram.adaptive_ece(5) == pytest.approx((0.15 + 0.15 + 0.025 + 0.25 + 0.075) / 5, abs=1e-12)
    table = histogram.reliability_table(2)
    assert [(b.low, b.high, b.count) for b in table] == [(0.0, 0.5, 5.0), (0.5, 1.0, 5.0)]
    assert table[0].mean_confidence == pytest.approx(0.29) and table[0].observed_frequency == pytest.approx(0.2)
    assert table[1].mean_confidence == pytest.approx(0.79) and table[1].observed_frequency == pytest.approx(0.8)
    assert compute_calibration(P, Y, n_bins=2) == pytest.approx(
        {"ece": 0.05, "adaptive_ece": histogram.adaptive_ece(2), "mce": 0.09, "brier": 0.1805, "voxels": 10.0})


def test_streaming_in_two_halves_equals_one_call():
    rng = np.random.default_rng(0)
    p, y = rng.random(5000), rng.random(5000) < 0.4
    whole = ReliabilityHistogram().add(p, y)
    halves = ReliabilityHistogram().add(p[:2000], y[:2000]).add(p[2000:], y[2000:])
    merged = ReliabilityHistogram().add(p[:2000], y[:2000]).merge(ReliabilityHistogram().add(p[2000:], y[2000:]))
    for other in (halves, merged):
        for name in ("ece", "adaptive_ece", "mce"):
            assert getattr(other, name)(15) == pytest.approx(getattr(whole, name)(15), abs=1e-12)
        assert other.brier() == pytest.approx(whole.brier(), abs=1e-12)
    assert whole.ece(10) == pytest.approx(direct_ece(p, y, 10)[0], abs=1e-12)  # 10 divides 10 000: exact
    assert whole.mce(50) == pytest.approx(direct_ece(p, y, 50)[1], abs=1e-12)
    assert whole.ece(15) == pytest.approx(direct_ece(p, y, 15)[0], abs=2e-3)  # edges k/15 moved by <= 5e-5
    assert whole.brier() == pytest.approx(np.mean((p - y) ** 2), abs=1e-12)


def test_adaptive_bins_hold_near_equal_counts():
    rng = np.random.default_rng(1)
    p = rng.beta(0.5, 3.0, 100_000)  # most voxels at low p: equal-width bins are very unequal
    histogram = ReliabilityHistogram().add(p, rng.random(p.size) < p)
    counts = [b.count for b in histogram.reliability_table(15, adaptive=True)]
    largest_fine_bin = histogram.count.max()
    assert sum(counts) == p.size
    assert max(counts) - min(counts) <= 2 * largest_fine_bin + 1
    assert max(b.count for b in histogram.reliability_table(15)) > 5 * min(counts)
    edges = [b.low for b in histogram.reliability_table(15, adaptive=True)]
    assert edges == sorted(edges) and edges[0] == 0.0


def test_calibrated_sample_has_small_ece_and_distorted_one_large():
    rng = np.random.default_rng(2)
    p = rng.random(1_000_000)
    y = rng.random(p.size) < p  # y ~ Bernoulli(p): calibrated by construction
    calibrated = ReliabilityHistogram().add(p, y)
    assert calibrated.ece() < 0.01 and calibrated.adaptive_ece() < 0.01
    distorted = ReliabilityHistogram().add(p ** 0.3, y)  # says 0.5 where the frequency is 0.1
    assert distorted.ece() > 0.2 and distorted.mce() > 0.3
    assert distorted.brier() > calibrated.brier() + 0.05


def test_soft_references_and_weights():
    p = np.array([0.2, 0.2, 0.8, 0.8])
    soft = np.array([0.5, 0.0, 1.0, 0.5])  # e.g. the fraction of readers
    histogram = ReliabilityHistogram().add(p, soft)
    assert histogram.ece(2) == pytest.approx(0.05, abs=1e-12)  # |0.25 - 0.2| and |0.75 - 0.8|
    assert histogram.brier() == pytest.approx((0.09 + 0.04 + 0.04 + 0.09) / 4, abs=1e-12)
    weighted = ReliabilityHistogram().add(P, Y, weight=np.where(np.arange(10) == 3, 2.0, 1.0))
    repeated = ReliabilityHistogram().add(np.append(P, P[3]), np.append(Y, Y[3]))
    assert weighted.ece(2) == pytest.approx(repeated.ece(2), abs=1e-12)
    assert weighted.brier() == pytest.approx(repeated.brier(), abs=1e-12) and weighted.total == 11


def test_invalid_values_and_empty_histogram():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ReliabilityHistogram().add(np.array([0.5, 1.2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        ReliabilityHistogram().add(np.array([np.nan]), np.array([0]))
    with pytest.raises(ValueError, match="shape"):
        ReliabilityHistogram().add(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="n_bins"):
        ReliabilityHistogram().ece(0)
    empty = ReliabilityHistogram()
    assert np.isnan(empty.ece()) and np.isnan(empty.brier()) and np.isnan(empty.adaptive_ece())


def test_near_region_by_hand_with_anisotropic_spacing():
    reference = np.zeros((10, 10, 10), bool)
    reference[5, 5, 5] = True
    predicted = np.zeros_like(reference)
    spacing = (2.0, 1.0, 1.0)  # z voxels are 2 mm: a 2 mm margin is 1 voxel in z, 2 in y and x
    assert near_structure_box(reference, predicted, spacing, 2.0) == (slice(4, 7), slice(3, 8), slice(3, 8))
    predicted[5, 8, 6] = True  # the predicted mask widens the box; the image edge clips it
    assert near_structure_box(reference, predicted, spacing, 2.0) == (slice(4, 7), slice(3, 10), slice(3, 9))
    assert near_structure_box(reference, predicted, spacing, 0.0) == (slice(5, 6), slice(5, 9), slice(5, 7))
    assert near_structure_box(reference, predicted, spacing, 1.9) == (slice(5, 6), slice(4, 10), slice(4, 8))
    assert near_structure_box(np.zeros_like(reference), np.zeros_like(reference), spacing, 2.0) is None


def test_near_region_matches_a_box_dilation():
    rng = np.random.default_rng(3)
    reference = rng.random((9, 14, 16)) > 0.995
    predicted = rng.random(reference.shape) > 0.997
    spacing, margin = (2.5, 1.1, 0.8), 3.0
    pads = [int(margin // s) for s in spacing]  # 1, 2, 3 voxels
    box = np.zeros(reference.shape, bool)
    box[ndimage.find_objects((reference | predicted).astype(int))[0]] = True
    expected = ndimage.find_objects(ndimage.binary_dilation(box, np.ones([2 * p + 1 for p in pads], bool)).astype(int))
    assert near_structure_box(reference, predicted, spacing, margin) == expected[0]
