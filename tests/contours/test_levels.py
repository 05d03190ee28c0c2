"""Operations on label maps (overlap rule) and on confidence level maps (nesting kept)."""
from __future__ import annotations

import numpy as np
import pytest

from radconf.contours import apply_to_levels, dilate, largest_component, opening, per_label
from radconf.errors import InvalidInput

pytestmark = pytest.mark.filterwarnings("ignore:margin .* is larger than the image")


def test_per_label_overlap_rule_original_label_then_lowest_id():
    labels = np.zeros((1, 1, 9), dtype=np.uint8)
    labels[0, 0, 1] = 3
    labels[0, 0, 3] = 2
    labels[0, 0, 6] = 5
    labels[0, 0, 8] = 7  # not selected below
    grown = per_label(labels, lambda m: dilate(m, (1, 1, 1), 2.0), labels=[2, 3, 5])
    # 3 grows over 0..3, 2 over 1..5, 5 over 4..8: originals keep their label, overlaps go to the lowest id,
    # the unselected label 7 is never painted over
    assert grown.dtype == np.uint8
    assert grown[0, 0].tolist() == [3, 3, 2, 2, 2, 2, 5, 5, 7]
    assert per_label(labels, lambda m: dilate(m, (1, 1, 1), 2.0))[0, 0].tolist() == [3, 3, 2, 2, 2, 2, 5, 5, 7]
    shrunk = per_label(labels, lambda m: np.zeros_like(m), labels=[3])
    assert shrunk[0, 0].tolist() == [0, 0, 0, 2, 0, 0, 5, 0, 7]
    assert np.array_equal(labels[0, 0], [0, 3, 0, 2, 0, 0, 5, 0, 7])  # not modified


def test_per_label_checks():
    labels = np.zeros((2, 2, 2), dtype=np.int16)
    labels[0, 0, 0] = 1
    assert np.array_equal(per_label(np.zeros((2, 2, 2), np.uint8), lambda m: ~m), np.zeros((2, 2, 2)))
    with pytest.raises(InvalidInput, match="negative"):
        per_label(-labels, lambda m: m)
    with pytest.raises(InvalidInput, match="integers"):
        per_label(labels.astype(float), lambda m: m)
    with pytest.raises(InvalidInput, match="positive"):
        per_label(labels, lambda m: m, labels=[0])
    with pytest.raises(InvalidInput, match="operation's result"):
        per_label(labels, lambda m: m[0])


def test_levels_are_re_nested_after_an_operation_that_breaks_nesting():
    # level >= 1: blob A (3 x 3 x 3) and blob B (2 x 2 x 2); level >= 2: one voxel of A and all of B
    level = np.zeros((4, 4, 10), dtype=np.uint8)
    level[0:3, 0:3, 0:3] = 1
    level[1, 1, 1] = 2
    level[0:2, 0:2, 6:8] = 2
    independent = [largest_component(level >= k) for k in (1, 2)]
    assert independent[0].sum() == 27 and independent[1].sum() == 8
    assert not (independent[1] & independent[0]).any()  # applied independently, level 2 would lie outside level 1
    result = apply_to_levels(level, largest_component)
    assert result.dtype == np.uint8
    assert np.array_equal(result, independent[0].astype(np.uint8))  # level 2 result intersected with level 1's


def test_increasing_operations_give_the_independent_results():
    rng = np.random.default_rng(0)
    level = np.minimum(rng.integers(0, 4, (8, 9, 10)), np.indices((8, 9, 10))[2] // 3).astype(np.uint8)
    opened = apply_to_levels(level, lambda m: opening(m, (1, 1, 1), 1.0))
    for k in (1, 2, 3):
        assert np.array_equal(opened >= k, opening(level >= k, (1, 1, 1), 1.0))
    assert (opened > 0).any() and not np.array_equal(opened, level)


def test_re_nesting_where_an_operation_would_break_it():
    level = np.zeros((1, 1, 10), dtype=np.int32)
    level[0, 0, 0:10] = 1
    level[0, 0, 6:10] = 2

    def right_half(m):
        xs = np.flatnonzero(m[0, 0])
        out = np.zeros_like(m)
        out[0, 0, xs[xs.size // 2]:xs[-1] + 1] = True
        return out

    def first_two(m):
        out = np.zeros_like(m)
        out[0, 0, np.flatnonzero(m[0, 0])[:2]] = True
        return out

    # right_half: level >= 1 -> x 5..9, level >= 2 -> x 8..9 (nested)
    assert apply_to_levels(level, right_half)[0, 0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]
    # first_two: level >= 1 -> {0, 1}, level >= 2 -> {6, 7}, not nested: re-nested, level 2 is empty
    assert apply_to_levels(level, first_two)[0, 0].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    calls = []
    gapped = np.zeros((1, 1, 4), dtype=np.uint8)
    gapped[0, 0, 1:3] = 3  # levels 1 and 2 absent: the masks level >= 1, 2, 3 are equal
    out = apply_to_levels(gapped, lambda m: calls.append(1) or m)
    assert len(calls) == 1 and np.array_equal(out, gapped)
    assert not apply_to_levels(np.zeros((2, 2, 2), np.uint8), lambda m: ~m).any()
