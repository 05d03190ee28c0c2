"""Ensemble output spaces, streaming accumulation, decoding, folder ensembling (nnU-Net's own ensemble as oracle)."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.ensembles.folders import ensemble_folders
from radconf.ensembles.space import (
    WeightedAccumulator,
    common_space,
    decode,
    member_space,
    reference_targets,
    to_space,
)
from radconf.ensembles.weights import match_weights

LABELS = {"background": 0, "bladder": 1, "gtv": 2}
ORDINAL = {"ordinal": True, "levels": 3}


def _dirichlet(rng, channels: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.moveaxis(rng.dirichlet(np.ones(channels), size=shape), -1, 0).astype(np.float32)


def test_streaming_accumulation_equals_in_memory_weighted_average():
    rng = np.random.default_rng(0)
    members = [_dirichlet(rng, 3, (4, 5, 6)) for _ in range(4)]
    weights = np.array([0.1, 0.0, 0.6, 0.3])
    space, _ = member_space({"labels": LABELS, "file_ending": ".nii.gz"})
    accumulator = WeightedAccumulator(space, track_disagreement=True)
    for member, weight in zip(members, weights):
        accumulator.add(member, weight)
    stack = np.stack(members)
    np.testing.assert_allclose(accumulator.mean(), np.average(stack, axis=0, weights=weights), atol=1e-6)
    foreground = 1 - stack[:, 0]  # weighted standard deviation of P(foreground) over members, computed directly
    mean = np.average(foreground, axis=0, weights=weights)
    expected = np.sqrt(np.average((foreground - mean) ** 2, axis=0, weights=weights))
    np.testing.assert_allclose(accumulator.disagreement(), expected, atol=1e-5)


def test_equal_weights_are_plain_averaging_and_identical_members_do_not_disagree():
    rng = np.random.default_rng(1)
    a, b = _dirichlet(rng, 3, (3, 3)), _dirichlet(rng, 3, (3, 3))
    space, _ = member_space({"labels": LABELS, "file_ending": ".nii.gz"})
    accumulator = WeightedAccumulator(space, track_disagreement=True)
    accumulator.add(a, 0.5)
    accumulator.add(b, 0.5)
    np.testing.assert_allclose(accumulator.mean(), (a + b) / 2, atol=1e-7)
    same = WeightedAccumulator(space, track_disagreement=True)
    same.add(a, 0.3)
    same.add(a, 0.7)
    np.testing.assert_allclose(same.disagreement(), 0.0, atol=1e-6)


def test_mismatched_member_shapes_and_weights_are_rejected():
    space, _ = member_space({"labels": LABELS, "file_ending": ".nii.gz"})
    accumulator = WeightedAccumulator(space)
    accumulator.add(np.full((3, 2, 2), 1 / 3, np.float32), 1.0)
    with pytest.raises(ValueError, match="same image grid"):
        accumulator.add(np.full((3, 2, 3), 1 / 3, np.float32), 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        accumulator.add(np.full((3, 2, 2), 1 / 3, np.float32), -0.1)
    with pytest.raises(ValueError, match="positive weight"):
        WeightedAccumulator(space).mean()


def test_members_must_predict_the_same_structures():
    first = {"labels": LABELS, "file_ending": ".nii.gz"}
    other = {"labels": {"background": 0, "rectum": 1, "gtv": 2}, "file_ending": ".nii.gz"}
    with pytest.raises(ValueError, match="same structures.*rectum"):
        common_space([first, other], ["A", "B"])
    with pytest.raises(ValueError, match="file types"):
        common_space([first, {**first, "file_ending": ".mha"}], ["A", "B"])


def test_confidence_members_mix_as_monotone_cumulative_probabilities():
    cumulative = {"labels": {"background": 0, "level>=1": [1, 2, 3], "level>=2": [2, 3], "level>=3": [3]},
                  "regions_class_order": [1, 2, 3], "radconf": ORDINAL, "file_ending": ".nii.gz"}
    softmax = {"labels": {"background": 0, "level_1": 1, "level_2": 2, "level_3": 3}, "radconf": ORDINAL,
               "file_ending": ".nii.gz"}
    space, kinds = common_space([cumulative, softmax], ["sigmoid", "softmax"])
    assert space.kind == "cumulative" and kinds == ["cumulative", "level_softmax"]
    # one voxel: a non-monotone sigmoid member (0.9, 0.95, 0.2) -> running minimum (0.9, 0.9, 0.2)
    sigmoid = to_space(np.array([0.9, 0.95, 0.2])[:, None], "cumulative", space)
    np.testing.assert_allclose(sigmoid[:, 0], [0.9, 0.9, 0.2], atol=1e-7)
    # P(level = 0..3) = (0.1, 0.2, 0.3, 0.4) -> P(level >= c) = (0.9, 0.7, 0.4)
    tails = to_space(np.array([0.1, 0.2, 0.3, 0.4])[:, None], "level_softmax", space)
    np.testing.assert_allclose(tails[:, 0], [0.9, 0.7, 0.4], atol=1e-6)
    mixed = 0.5 * sigmoid + 0.5 * tails  # (0.9, 0.8, 0.3) -> level 2
    assert decode(mixed, space).tolist() == [2]
    np.testing.assert_array_equal(reference_targets(np.array([0, 2, 3]), space),
                                  [[False, True, True], [False, True, True], [False, False, True]])


def test_region_members_decode_like_nnunet():
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    labels = {"background": 0, "whole": [1, 2], "core": [2]}
    dataset_json = {"labels": labels, "regions_class_order": [1, 2], "file_ending": ".nii.gz"}
    space, kinds = common_space([dataset_json], ["regions"])
    assert space.kind == "regions" and kinds == ["regions"]
    probabilities = np.random.default_rng(2).random((2, 6, 7)).astype(np.float32)
    manager = LabelManager(labels, regions_class_order=[1, 2])
    np.testing.assert_array_equal(decode(probabilities, space),
                                  manager.convert_probabilities_to_segmentation(probabilities))


def test_weights_are_matched_to_members_by_model_not_by_order():
    weights_file = {"members": ["501:A:P:3d_fullres:0,1,2,3,4", "501:B:P:3d_fullres:0,1,2,3,4"],
                    "weights": [0.25, 0.75]}
    assert match_weights(["Dataset501_Phantom:B:P:3d_fullres:0", "501:A:P:3d_fullres:all"],
                         weights_file).tolist() == [0.75, 0.25]
    with pytest.raises(ValueError, match="missing here: 501:B"):
        match_weights(["501:A:P:3d_fullres"], weights_file)
    with pytest.raises(ValueError, match="not in it: 501:C"):
        match_weights(["501:A:P:3d_fullres", "501:B:P:3d_fullres", "501:C:P:3d_fullres"], weights_file)


def _prediction_folder(folder: Path, probabilities: dict[str, np.ndarray], spacing=(2.0, 1.5, 1.0)) -> None:
    """A folder as nnU-Net's prediction writes it: CASE.npz, CASE.pkl, CASE.nii.gz, dataset.json, plans.json."""
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({"labels": LABELS, "file_ending": ".nii.gz",
                                                     "channel_names": {"0": "CT"}}))
    (folder / "plans.json").write_text(json.dumps({"image_reader_writer": "SimpleITKIO", "configurations": {},
                                                   "dataset_name": "Dataset990_Test", "plans_name": "P",
                                                   "original_median_spacing_after_transp": [1, 1, 1],
                                                   "original_median_shape_after_transp": [1, 1, 1],
                                                   "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
                                                   "foreground_intensity_properties_per_channel": {}}))
    for case, p in probabilities.items():
        np.savez_compressed(folder / f"{case}.npz", probabilities=p)
        image = sitk.GetImageFromArray(p.argmax(0).astype(np.uint8))
        image.SetSpacing(spacing[::-1])
        sitk.WriteImage(image, str(folder / f"{case}.nii.gz"))
        properties = {"sitk_stuff": {"spacing": image.GetSpacing(), "origin": image.GetOrigin(),
                                     "direction": image.GetDirection()}, "spacing": list(spacing)}
        with open(folder / f"{case}.pkl", "wb") as handle:
            pickle.dump(properties, handle)


def test_equal_weight_folder_ensemble_matches_nnunet_ensemble(tmp_path):
    from nnunetv2.ensembling.ensemble import ensemble_folders as nnunet_ensemble_folders

    rng = np.random.default_rng(3)
    cases = ["case_a", "case_b"]
    folders = [tmp_path / f"member{i}" for i in range(3)]
    for folder in folders:
        _prediction_folder(folder, {c: _dirichlet(rng, 3, (5, 6, 7)) for c in cases})
    ours, theirs = tmp_path / "ours", tmp_path / "nnunet"
    assert ensemble_folders(folders, ours, progress=False, save_probabilities=True) == cases
    nnunet_ensemble_folders([str(f) for f in folders], str(theirs), save_merged_probabilities=True,
                            num_processes=1, dataset_json_file_or_dict=str(folders[0] / "dataset.json"),
                            plans_json_file_or_dict=str(folders[0] / "plans.json"))
    for case in cases:
        ours_labels = sitk.GetArrayFromImage(sitk.ReadImage(str(ours / f"{case}.nii.gz")))
        np.testing.assert_array_equal(ours_labels, sitk.GetArrayFromImage(sitk.ReadImage(str(theirs / f"{case}.nii.gz"))))
        np.testing.assert_allclose(np.load(ours / f"{case}.npz")["probabilities"],
                                   np.load(theirs / f"{case}.npz")["probabilities"], atol=1e-6)
        assert sitk.ReadImage(str(ours / f"{case}.nii.gz")).GetSpacing() == (1.0, 1.5, 2.0)


def test_weighted_folder_ensemble_and_disagreement_map(tmp_path):
    rng = np.random.default_rng(4)
    members = [_dirichlet(rng, 3, (4, 5, 6)) for _ in range(2)]
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder, p in zip(folders, members):
        _prediction_folder(folder, {"case": p})
    out = tmp_path / "out"
    ensemble_folders(folders, out, [1.0, 3.0], save_disagreement=True, progress=False)
    expected = (0.25 * members[0] + 0.75 * members[1]).argmax(0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "case.nii.gz"))), expected)
    spread = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "disagreement" / "case.nii.gz")))
    fg = 1 - np.stack(members)[:, 0]
    np.testing.assert_allclose(spread, np.sqrt(0.25 * 0.75) * np.abs(fg[0] - fg[1]), atol=1e-5)
    record = json.loads((out / "ensemble.json").read_text())
    assert record["weights"] == [0.25, 0.75] and record["output_space"] == "softmax"


def test_folder_ensemble_refuses_missing_cases_and_other_grids(tmp_path):
    rng = np.random.default_rng(5)
    _prediction_folder(tmp_path / "a", {"x": _dirichlet(rng, 3, (3, 4, 5)), "y": _dirichlet(rng, 3, (3, 4, 5))})
    _prediction_folder(tmp_path / "b", {"x": _dirichlet(rng, 3, (3, 4, 5))})
    with pytest.raises(ValueError, match=r"b has no probabilities of 1 case\(s\).*y"):
        ensemble_folders([tmp_path / "a", tmp_path / "b"], tmp_path / "out", progress=False)
    _prediction_folder(tmp_path / "c", {"x": _dirichlet(rng, 3, (3, 4, 5)), "y": _dirichlet(rng, 3, (3, 4, 5))},
                       spacing=(3.0, 1.5, 1.0))
    with pytest.raises(ValueError, match="Case x: .* different image grids"):
        ensemble_folders([tmp_path / "a", tmp_path / "c"], tmp_path / "out2", progress=False)
    assert not (tmp_path / "out2" / "x.nii.gz").exists()
