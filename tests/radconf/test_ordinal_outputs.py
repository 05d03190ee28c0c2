"""Post-processing of nnU-Net probability exports into level maps, probability maps and masks at a level."""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.confidence.outputs import (
    PROBABILITY_FOLDER,
    finish_level_predictions,
    level_mask_folder,
)


def _export(folder, case, probabilities, nnunet_segmentation):
    """What nnU-Net leaves in a prediction folder: CASE.nii.gz (its decoding), CASE.npz, CASE.pkl."""
    image = sitk.GetImageFromArray(nnunet_segmentation.astype(np.uint8))
    image.SetSpacing((0.8, 0.9, 2.5))
    image.SetOrigin((-10.0, 5.0, 3.0))
    sitk.WriteImage(image, str(folder / f"{case}.nii.gz"))
    np.savez_compressed(folder / f"{case}.npz", probabilities=probabilities.astype(np.float32))
    (folder / f"{case}.pkl").write_bytes(b"properties")


def test_cumulative_export_is_redecoded_monotonically(tmp_path):
    # voxel 0: (0.9, 0.4, 0.8) -> nnU-Net says 3 (last region above 0.5), radconf says 1
    # voxel 1: (0.9, 0.8, 0.7) -> 3; voxel 2: (0.2, 0.1, 0.0) -> 0
    p = np.array([[0.9, 0.9, 0.2], [0.4, 0.8, 0.1], [0.8, 0.7, 0.0]]).reshape(3, 1, 1, 3)
    _export(tmp_path, "case_a", p, np.array([3, 3, 0]).reshape(1, 1, 3))
    assert finish_level_predictions(tmp_path, 3, ".nii.gz", cumulative=True, probability_maps=True,
                                    mask_levels=[2]) == ["case_a"]
    levels = sitk.ReadImage(str(tmp_path / "case_a.nii.gz"))
    assert sitk.GetArrayFromImage(levels).ravel().tolist() == [1, 3, 0]
    assert levels.GetSpacing() == pytest.approx((0.8, 0.9, 2.5)) and levels.GetOrigin() == pytest.approx((-10, 5, 3))
    ge3 = sitk.ReadImage(str(tmp_path / PROBABILITY_FOLDER / "case_a_ge3.nii.gz"))
    np.testing.assert_allclose(sitk.GetArrayFromImage(ge3).ravel(), [0.4, 0.7, 0.0], rtol=1e-6)  # monotone
    assert ge3.GetSpacing() == pytest.approx((0.8, 0.9, 2.5))
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / level_mask_folder(2) / "case_a.nii.gz")))
    assert mask.ravel().tolist() == [0, 1, 0]
    assert not (tmp_path / "case_a.npz").exists() and not (tmp_path / "case_a.pkl").exists()


def test_softmax_export_keeps_argmax_and_sums_tails(tmp_path):
    p = np.array([[0.1, 0.7], [0.2, 0.1], [0.3, 0.1], [0.4, 0.1]]).reshape(4, 1, 1, 2)  # P(level = 0..3)
    _export(tmp_path, "case_b", p, np.array([3, 0]).reshape(1, 1, 2))
    finish_level_predictions(tmp_path, 3, ".nii.gz", cumulative=False, keep_npz=True, probability_maps=True)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "case_b.nii.gz"))).ravel().tolist() == [3, 0]
    ge1 = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / PROBABILITY_FOLDER / "case_b_ge1.nii.gz")))
    np.testing.assert_allclose(ge1.ravel(), [0.9, 0.3], rtol=1e-6)
    assert (tmp_path / "case_b.npz").exists()  # kept on request


def test_wrong_channel_count_and_level_are_refused(tmp_path):
    _export(tmp_path, "case_c", np.zeros((4, 1, 1, 2)), np.zeros((1, 1, 2)))
    with pytest.raises(ValueError, match="4 channels; a K = 3 cumulative model exports 3"):
        finish_level_predictions(tmp_path, 3, ".nii.gz", cumulative=True)
    with pytest.raises(ValueError, match="--level must be in 1..3"):
        finish_level_predictions(tmp_path, 3, ".nii.gz", cumulative=False, mask_levels=[4])
