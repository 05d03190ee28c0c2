"""Cumulative encoding/decoding, level weights and the level-weighted BCE, against hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from radconf.confidence.ordinal import (
    LevelWeightedBCE,
    cumulative_dataset_json,
    cumulative_from_softmax,
    cumulative_labels,
    decode_cumulative,
    encode_cumulative,
    level_dataset_json,
    level_labels,
    monotone,
    ordinal_levels,
)
from radconf.losses import reciprocal_frequency_weights

ORDINAL_JSON = {"channel_names": {"0": "CT"}, "labels": level_labels(3), "numTraining": 2, "file_ending": ".nii.gz",
                "radconf": {"ordinal": True, "levels": 3}}


def test_encode_is_nested_cumulative_vector():
    levels = np.array([0, 1, 2, 3])
    encoded = encode_cumulative(levels, 3)
    assert encoded.shape == (3, 4)
    # voxel with level k has k leading ones: (0,0,0), (1,0,0), (1,1,0), (1,1,1)
    assert encoded.T.astype(int).tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]]


@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_encode_decode_round_trip(k):
    levels = np.random.default_rng(k).integers(0, k + 1, size=(4, 5, 6)).astype(np.uint8)
    probabilities = encode_cumulative(levels, k).astype(np.float32)
    np.testing.assert_array_equal(decode_cumulative(probabilities), levels)
    decoded_torch = decode_cumulative(torch.from_numpy(probabilities))
    np.testing.assert_array_equal(decoded_torch.numpy(), levels)


def test_decoding_forces_monotone_probabilities():
    # channel 3 above 0.5 while channel 2 is below: nnU-Net's region decoding would say 3, radconf says 1
    p = np.array([[0.9], [0.4], [0.8]])
    np.testing.assert_allclose(monotone(p)[:, 0], [0.9, 0.4, 0.4])
    assert decode_cumulative(p).tolist() == [1]
    assert decode_cumulative(torch.tensor(p)).tolist() == [1]
    # thresholded masks of any decoded map are nested
    rng = np.random.default_rng(0)
    decoded = decode_cumulative(rng.random((5, 30, 30)))
    for level in range(1, 5):
        assert np.all((decoded >= level + 1) <= (decoded >= level))


def test_cumulative_from_softmax_by_hand():
    p = np.array([[0.1], [0.2], [0.3], [0.4]])  # P(level = 0..3)
    np.testing.assert_allclose(cumulative_from_softmax(p)[:, 0], [0.9, 0.7, 0.4])


def test_level_weights_by_hand():
    # counts 100, 10, 50, 0: inverse frequencies 160/100, 160/10, 160/50 -> 1.6, 16, 3.2 (sum 20.8); absent level 0
    weights = reciprocal_frequency_weights(np.array([100, 10, 50, 0]))
    np.testing.assert_allclose(weights, [1.6 / 20.8, 16 / 20.8, 3.2 / 20.8, 0.0])
    assert math.isclose(weights.sum(), 1.0)
    with pytest.raises(ValueError, match="positive sum"):
        reciprocal_frequency_weights(np.zeros(4))


def test_level_weighted_bce_by_hand():
    logits = torch.tensor([[[0.0], [2.0]], [[1.0], [-1.0]]]).reshape(2, 2, 1)  # batch 2, K = 2 channels, 1 voxel
    target = torch.tensor([[[1.0], [0.0]], [[1.0], [1.0]]]).reshape(2, 2, 1)  # levels 1 and 2
    weights = np.array([0.1, 0.3, 0.6])

    def bce(x, y):
        return -(y * math.log(1 / (1 + math.exp(-x))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-x))))

    voxel_a = (bce(0.0, 1) + bce(2.0, 0)) / 2
    voxel_b = (bce(1.0, 1) + bce(-1.0, 1)) / 2
    expected = (0.3 * voxel_a + 0.6 * voxel_b) / (0.3 + 0.6)
    assert LevelWeightedBCE(weights)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_equal_weights_reduce_to_plain_bce():
    rng = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 3, 5, 5, generator=rng)
    levels = torch.randint(0, 5, (2, 3, 5, 5), generator=rng)
    target = torch.stack([levels >= c for c in range(1, 5)], 1)
    plain = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.float())
    assert LevelWeightedBCE(np.full(5, 0.2))(logits, target).item() == pytest.approx(plain.item(), rel=1e-5)


def test_dataset_json_views_round_trip():
    cumulative = cumulative_dataset_json(ORDINAL_JSON)
    assert cumulative["labels"] == cumulative_labels(3)
    assert cumulative["labels"]["level>=2"] == [2, 3] and cumulative["regions_class_order"] == [1, 2, 3]
    assert cumulative_dataset_json(cumulative) == cumulative  # idempotent (resuming re-reads the converted json)
    assert level_dataset_json(cumulative)["labels"] == level_labels(3)
    assert "regions_class_order" not in level_dataset_json(cumulative)
    assert ORDINAL_JSON["labels"] == level_labels(3)  # input untouched


def test_non_ordinal_dataset_is_refused():
    with pytest.raises(ValueError, match="radconf_fuse_readers"):
        ordinal_levels({"labels": {"background": 0, "gtv": 1}})
    with pytest.raises(ValueError, match="K = 4"):
        ordinal_levels({**ORDINAL_JSON, "radconf": {"ordinal": True, "levels": 4}})
