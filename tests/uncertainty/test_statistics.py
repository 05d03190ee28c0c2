"""Streaming sample statistics against in-memory numpy on the stacked samples, and by hand."""
from __future__ import annotations

import numpy as np
import pytest

from radconf.ensembles.space import OutputSpace
from radconf.errors import InvalidInput
from radconf.uncertainty.statistics import (
    SampleAccumulator,
    entropy,
    structure_masks,
    weighted_quantiles,
)

SOFTMAX = OutputSpace("softmax", (("background", 0), ("bladder", 1), ("rectum", 2)))
CUMULATIVE = OutputSpace("cumulative", (("background", 0), ("level>=1", (1, 2)), ("level>=2", (2,))))
REGIONS = OutputSpace("regions", (("background", 0), ("a", (1, 2)), ("b", (2,))), (1, 2))


def _softmax_samples(rng, n, shape=(4, 5, 6)):
    logits = rng.normal(size=(n, 3, *shape)) * 2
    logits[:, 1, :2] += 3  # a bladder-ish region most samples agree on
    e = np.exp(logits)
    return (e / e.sum(1, keepdims=True)).astype(np.float32)


def _accumulate(samples, space, weights=None, voxel_mm3=1.0):
    accumulator = SampleAccumulator(space, voxel_volume_mm3=voxel_mm3)
    for index, sample in enumerate(samples):
        accumulator.add(sample, 1.0 if weights is None else weights[index])
    return accumulator


@pytest.mark.parametrize("weighted", [False, True])
def test_streaming_equals_in_memory(weighted):
    rng = np.random.default_rng(0)
    samples = _softmax_samples(rng, 30)
    weights = rng.uniform(0.2, 2.0, size=30) if weighted else np.ones(30)
    accumulator = _accumulate(samples, SOFTMAX, weights)
    mean = np.average(samples, axis=0, weights=weights)
    variance = np.average((samples - mean) ** 2, axis=0, weights=weights)
    np.testing.assert_allclose(accumulator.mean(), mean, atol=2e-6)
    np.testing.assert_allclose(accumulator.variance(), variance, atol=2e-6)
    # entropies: categorical, nats
    h_mean = -(mean * np.log(mean)).sum(0)
    h_each = -(samples * np.log(samples)).sum(1)
    expected = np.average(h_each, axis=0, weights=weights)
    np.testing.assert_allclose(accumulator.predictive_entropy(), h_mean, atol=1e-5)
    np.testing.assert_allclose(accumulator.expected_entropy(), expected, atol=1e-5)
    np.testing.assert_allclose(accumulator.mutual_information(), np.clip(h_mean - expected, 0, None), atol=1e-5)
    # inclusion shares, bounds and the pooled quality score
    labels = samples.argmax(1)
    mean_labels = mean.argmax(0)
    inner, outer = accumulator.bounds()
    for index, label in enumerate((1, 2)):
        share = np.average(labels == label, axis=0, weights=weights)
        np.testing.assert_allclose(accumulator.inclusion_share()[index], share, atol=1e-6)
        np.testing.assert_array_equal(inner[index], share >= 0.975 - 1e-6)
        np.testing.assert_array_equal(outer[index], share >= 0.025 - 1e-6)
        m = mean_labels == label
        intersections = np.array([(lab == label)[m].sum() for lab in labels])
        sizes = np.array([(lab == label).sum() for lab in labels])
        pooled = (weights * 2 * intersections).sum() / (weights * (sizes + m.sum())).sum()
        assert accumulator.quality()[index] == pytest.approx(pooled, abs=1e-6)
        # close to seed 004's mean of per-sample Dice when volumes are alike
        mean_dice = np.average(2 * intersections / (sizes + m.sum()), weights=weights)
        assert abs(accumulator.quality()[index] - mean_dice) < 0.05


def test_bounds_and_quality_by_hand():
    """Four samples of a 1 x 1 x 6 line; sample k covers voxels 0..k+1 (k = 0..3)."""
    samples = []
    for k in range(4):
        mask = np.zeros((1, 1, 6), bool)
        mask[..., :k + 2] = True
        samples.append(np.stack([~mask, mask]).astype(np.float32))
    space = OutputSpace("softmax", (("background", 0), ("gtv", 1)))
    accumulator = _accumulate(samples, space, voxel_mm3=2000.0)  # 2 cm^3 per voxel
    inner, outer = accumulator.bounds()
    # voxel shares: 1, 1, 3/4, 2/4, 1/4, 0 -> inner (>= 97.5 %) voxels 0-1, outer (>= 2.5 %) voxels 0-4
    assert inner[0].ravel().tolist() == [True, True, False, False, False, False]
    assert outer[0].ravel().tolist() == [True, True, True, True, True, False]
    # mean probability 1, 1, .75, .5, .25, 0 -> argmax: voxels 0-2 (0.5 ties go to background)
    assert structure_masks(accumulator.mean(), space)[0].ravel().tolist() == [1, 1, 1, 0, 0, 0]
    # |S_k & M| = 2, 3, 3, 3; |S_k| = 2, 3, 4, 5; |M| = 3: pooled = 2 * 11 / (14 + 12)
    assert accumulator.quality()[0] == pytest.approx(22 / 26)
    summary = accumulator.summaries()[0]
    assert summary.volume_mean == pytest.approx(2 * 3.5)
    assert summary.volume_of_mean == pytest.approx(6.0)
    assert (summary.volume_inner, summary.volume_outer) == (pytest.approx(4.0), pytest.approx(10.0))
    low, high = np.percentile([4, 6, 8, 10], [2.5, 97.5], method="hazen")
    assert (summary.volume_low, summary.volume_high) == (pytest.approx(low), pytest.approx(high))


def test_entropy_and_mutual_information_by_hand():
    """Two samples that disagree completely: each certain, the mean 50/50 -> MI = log 2, expected entropy 0."""
    space = OutputSpace("softmax", (("background", 0), ("gtv", 1)))
    a = np.array([1.0, 0.0], np.float32).reshape(2, 1, 1, 1)
    accumulator = _accumulate([a, a[::-1].copy()], space)
    assert accumulator.predictive_entropy().item() == pytest.approx(np.log(2), abs=1e-6)
    assert accumulator.expected_entropy().item() == pytest.approx(0.0, abs=1e-6)
    assert accumulator.mutual_information().item() == pytest.approx(np.log(2), abs=1e-6)
    assert accumulator.variance()[1].item() == pytest.approx(0.25)
    # agreeing uncertain samples: all aleatoric
    b = np.array([0.5, 0.5], np.float32).reshape(2, 1, 1, 1)
    same = _accumulate([b, b], space)
    assert same.mutual_information().item() == pytest.approx(0.0, abs=1e-6)
    assert same.expected_entropy().item() == pytest.approx(np.log(2), abs=1e-6)


def test_level_and_region_entropies():
    # cumulative P(>=1) = 0.8, P(>=2) = 0.3 -> levels 0.2, 0.5, 0.3
    p = np.array([0.8, 0.3], np.float32).reshape(2, 1, 1, 1)
    levels = np.array([0.2, 0.5, 0.3])
    assert entropy(p, CUMULATIVE).item() == pytest.approx(-(levels * np.log(levels)).sum(), abs=1e-6)
    binary = -sum(q * np.log(q) + (1 - q) * np.log(1 - q) for q in (0.8, 0.3))
    assert entropy(p, REGIONS).item() == pytest.approx(binary, abs=1e-6)
    masks = structure_masks(p, CUMULATIVE)
    assert masks.ravel().tolist() == [True, False]


def test_weighted_quantiles_equal_hazen_with_equal_weights():
    values = np.random.default_rng(3).normal(size=17)
    ours = weighted_quantiles(values, np.ones(17), (0.025, 0.5, 0.975))
    np.testing.assert_allclose(ours, np.percentile(values, [2.5, 50, 97.5], method="hazen"))
    # a weight of 2 is the value counted twice
    doubled = weighted_quantiles([1.0, 2.0, 3.0], [1, 2, 1], (0.5,))
    assert doubled == pytest.approx(np.percentile([1, 2, 2, 3], 50, method="hazen"))


def test_refusals():
    accumulator = SampleAccumulator(SOFTMAX)
    with pytest.raises(InvalidInput, match="at least 1"):
        accumulator.mean()
    with pytest.raises(InvalidInput, match="channels"):
        accumulator.add(np.zeros((2, 2, 2, 2), np.float32))
    accumulator.add(np.full((3, 2, 2, 2), 1 / 3, np.float32))
    with pytest.raises(InvalidInput, match="same image grid"):
        accumulator.add(np.full((3, 2, 2, 3), 1 / 3, np.float32))
    with pytest.raises(InvalidInput, match="weight"):
        accumulator.add(np.full((3, 2, 2, 2), 1 / 3, np.float32), weight=0.0)


def test_confidence_levels_keep_their_nesting_in_bounds_and_frequencies():
    """Cumulative samples P(level >= 1) >= P(level >= 2): every level's bounds nest inside the level below."""
    rng = np.random.default_rng(5)
    accumulator = SampleAccumulator(CUMULATIVE)
    for _ in range(12):
        first = rng.uniform(size=(3, 8, 8)).astype(np.float32)
        second = first * rng.uniform(size=(3, 8, 8)).astype(np.float32)  # never above the first
        accumulator.add(np.stack([first, second]))
    inner, outer = accumulator.bounds()
    share = accumulator.inclusion_share()
    assert np.all(share[1] <= share[0] + 1e-6)
    assert np.all(inner[1] <= inner[0]) and np.all(outer[1] <= outer[0]) and np.all(inner <= outer)
    names = [summary.name for summary in accumulator.summaries()]
    assert names == ["level>=1", "level>=2"]
