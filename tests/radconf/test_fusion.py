from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.confidence.fusion import (
    agreement,
    count_masks,
    dice,
    fuse_masks,
    level_lookup,
    reader_of,
    staple,
)


def test_level_tables_by_hand():
    assert level_lookup(1, 5).tolist() == [0, 5]  # one mask: plain binary segmentation
    assert level_lookup(2, 5).tolist() == [0, 3, 5]  # half agreement -> middle level
    assert level_lookup(4, 5).tolist() == [0, 2, 3, 4, 5]
    assert level_lookup(12, 5).tolist() == [0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5]
    assert level_lookup(3, 2).tolist() == [0, 1, 1, 2]


@pytest.mark.parametrize("n", range(1, 21))
@pytest.mark.parametrize("k", [2, 3, 5, 8])
def test_rule_holds_for_every_n(n, k):
    table = level_lookup(n, k)
    assert table[0] == 0 and table[n] == k
    assert np.all(np.diff(table.astype(int)) >= 0)
    assert np.all((table[1:n] >= 1) & (table[1:n] <= k - 1))


def test_invalid_arguments():
    with pytest.raises(ValueError, match="at least one mask"):
        level_lookup(0)
    with pytest.raises(ValueError, match="2..255"):
        level_lookup(3, 1)
    with pytest.raises(ValueError, match="at least one mask"):
        count_masks([])
    with pytest.raises(ValueError, match="share a grid"):
        fuse_masks([np.zeros((2, 2)), np.zeros((2, 3))])


def test_fusion_edge_cases():
    shape = (3, 4)
    ones, zeros = np.ones(shape, np.uint8), np.zeros(shape, bool)
    assert np.all(fuse_masks([ones] * 7).levels == 5)  # all agree
    assert np.all(fuse_masks([zeros] * 7).levels == 0)  # none
    single = fuse_masks([np.eye(3, 4, dtype=bool)])
    assert set(np.unique(single.levels)) == {0, 5}
    masks = [np.array([i < c for c in range(5)]) for i in range(4)]  # voxel c is included by c of the 4 masks
    fused = fuse_masks(masks)
    assert fused.counts.tolist() == [0, 1, 2, 3, 4]
    assert fused.levels.tolist() == [0, 2, 3, 4, 5]
    assert fused.majority.tolist() == [False, False, False, True, True]  # 2 of 4 is not a majority
    for level in range(1, 6):  # thresholded masks are nested
        assert np.all(fused.at_level(level) <= fused.at_level(level - 1))


def test_missing_trials_change_n_per_case():
    full = [np.array([1, 1, 0]), np.array([1, 0, 0]), np.array([1, 1, 1])]
    assert fuse_masks(full).levels.tolist() == [5, 3, 2]
    assert fuse_masks(full[:2]).levels.tolist() == [5, 3, 0]


def test_majority_equals_simpleitk_label_voting():
    rng = np.random.default_rng(0)
    masks = [(rng.random((6, 7, 8)) < 0.5).astype(np.uint8) for _ in range(5)]
    voted = sitk.GetArrayFromImage(sitk.LabelVoting([sitk.GetImageFromArray(m) for m in masks], 255))
    assert np.array_equal(fuse_masks(masks).majority, voted == 1)


def test_staple_of_identical_masks_is_the_mask():
    mask = np.zeros((5, 6, 7), np.uint8)
    mask[1:4, 2:5, 1:6] = 1
    assert np.array_equal(staple([mask, mask, mask]), mask.astype(bool))


def test_agreement_splits_readers_and_trials():
    a = np.array([1, 1, 1, 1, 0, 0], bool)
    b = np.array([1, 1, 0, 0, 0, 0], bool)
    c = np.array([0, 0, 0, 0, 1, 1], bool)
    result = agreement({"reader1_trial1": a, "reader1_trial2": b, "reader2_trial1": c})
    assert result.intra_reader == [("reader1_trial1", "reader1_trial2", pytest.approx(2 * 2 / 6))]
    assert [d for *_, d in result.inter_reader] == [0.0, 0.0]
    assert result.mean_intra == pytest.approx(2 / 3) and result.mean_inter == 0.0
    assert reader_of("dr_smith_trial2") == "dr_smith" and reader_of("solo") == "solo"
    assert np.isnan(dice(np.zeros(3), np.zeros(3)))


def test_phantom_readers_fuse_into_plausible_confidence_map():
    from radconf.datasets.phantom import PhantomConfig, generate_case
    from radconf.datasets.phantom.anatomy import GTV_LABEL

    case = generate_case(PhantomConfig(seed=1, spacing=(4.0, 2.5, 2.5)), 0)
    fused = fuse_masks(list(case.reader_masks.values()))
    gtv = case.labels == GTV_LABEL
    assert fused.n_masks == len(case.reader_masks) >= 4
    assert 0.8 < dice(fused.majority, gtv) <= 1.0
    # the unanimous core lies inside the truth, the any-reader hull outside it
    assert fused.at_level(5).sum() < gtv.sum() < fused.at_level(1).sum()
    stats = agreement(case.reader_masks)
    assert 0.7 < stats.mean_inter < 0.99 and stats.mean_intra >= stats.mean_inter - 0.05
