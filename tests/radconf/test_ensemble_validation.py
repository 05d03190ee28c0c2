"""Fitting weights from prediction folders: confidence members of both kinds, scores checked against direct IoU."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.ensembles.fitting import cross_validation_member, find_ensemble_weights
from radconf.models import ModelSpec

ORDINAL = {"ordinal": True, "levels": 2}
CUMULATIVE_JSON = {"labels": {"background": 0, "level>=1": [1, 2], "level>=2": [2]}, "regions_class_order": [1, 2],
                   "radconf": ORDINAL, "file_ending": ".nii.gz"}
SOFTMAX_JSON = {"labels": {"background": 0, "level_1": 1, "level_2": 2}, "radconf": ORDINAL,
                "file_ending": ".nii.gz"}


def _write(folder: Path, dataset_json: dict, probabilities: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    (folder / "plans.json").write_text("{}")
    for case, p in probabilities.items():
        np.savez_compressed(folder / f"{case}.npz", probabilities=p)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else float("nan")


def test_confidence_members_of_both_kinds_are_fitted_and_scored(tmp_path):
    rng = np.random.default_rng(0)
    shape = (6, 7, 8)
    cases = ["c1", "c2", "c3"]
    references = {c: rng.integers(0, 3, shape).astype(np.uint8) for c in cases}
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    for case, levels in references.items():
        sitk.WriteImage(sitk.GetImageFromArray(levels), str(reference_dir / f"{case}.nii.gz"))
    # a good sigmoid member (the reference, blurred by noise) and a poor softmax-on-levels member
    good = {c: np.clip(np.stack([r >= 1, r >= 2]).astype(np.float32) * 0.6 + rng.random((2, *shape)) * 0.39, 0, 1)
            for c, r in references.items()}
    poor = {c: np.moveaxis(rng.dirichlet(np.ones(3), size=shape), -1, 0).astype(np.float32) for c in cases}
    _write(tmp_path / "good", CUMULATIVE_JSON, good)
    _write(tmp_path / "poor", SOFTMAX_JSON, poor)

    result = find_ensemble_weights(tmp_path / "out", folders=[tmp_path / "good", tmp_path / "poor"],
                                   reference_dir=reference_dir, progress=False)
    assert result["output_space"] == "cumulative" and result["structures"] == ["level>=1", "level>=2"]
    assert result["validation_cases"] == cases
    weights = np.array(result["weights"])
    assert weights.min() >= 0 and np.isclose(weights.sum(), 1) and weights[0] > weights[1]
    for row, probabilities in (("good", good), ("poor", poor)):  # each member alone, by hand
        expected = []
        for case in cases:
            p = probabilities[case]
            if row == "poor":  # P(level >= c) from P(level = 0..2)
                p = np.stack([p[1] + p[2], p[2]])
            p = np.minimum.accumulate(p, axis=0)
            expected += [_iou(p[c] > 0.5, references[case] >= c + 1) for c in range(2)]
        name = str(tmp_path / row)
        assert result["validation"][name]["mean_iou"] == pytest.approx(np.nanmean(expected), abs=1e-9)
    assert result["validation"]["optimal ensemble"]["mean_iou"] >= result["validation"]["average ensemble"]["mean_iou"]
    for name in ("weights.json", "ensemble_validation.md", "ensemble_validation.csv", "ensemble_validation.png"):
        assert (tmp_path / "out" / name).is_file()


def test_reference_of_another_shape_and_missing_cases_are_refused(tmp_path):
    rng = np.random.default_rng(1)
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 6), np.uint8)), str(reference_dir / "a.nii.gz"))
    member = {"a": np.moveaxis(rng.dirichlet(np.ones(3), size=(3, 4, 5)), -1, 0).astype(np.float32)}
    _write(tmp_path / "x", SOFTMAX_JSON, member)
    _write(tmp_path / "y", SOFTMAX_JSON, {**member, "b": member["a"]})
    with pytest.raises(ValueError, match=r"x has no probabilities of 1 case\(s\).*b"):
        find_ensemble_weights(tmp_path / "out", folders=[tmp_path / "x", tmp_path / "y"],
                              reference_dir=reference_dir, progress=False)
    _write(tmp_path / "z", SOFTMAX_JSON, member)
    with pytest.raises(ValueError, match="Case a: .* shape"):
        find_ensemble_weights(tmp_path / "out", folders=[tmp_path / "x", tmp_path / "z"],
                              reference_dir=reference_dir, progress=False)


def test_cross_validation_member_refuses_fold_all_and_missing_exports(tmp_path):
    model = tmp_path / "Dataset990_Test" / "T__P__3d_fullres"
    (model / "fold_0" / "validation").mkdir(parents=True)
    (model / "dataset.json").write_text(json.dumps(SOFTMAX_JSON))
    with pytest.raises(ValueError, match="fold 'all' was trained on every case"):
        cross_validation_member(ModelSpec.parse("990:T:P:3d_fullres:all"), tmp_path)
    with pytest.raises(FileNotFoundError, match="--val --npz"):
        cross_validation_member(ModelSpec.parse("990:T:P:3d_fullres:0"), tmp_path)
    np.save(model / "fold_0" / "validation" / "unused.npy", np.zeros(1))
    for fold in ("0", "1"):
        folder = model / f"fold_{fold}" / "validation"
        folder.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(folder / "same_case.npz", probabilities=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="case same_case is in the validation of fold 1 and of another fold"):
        cross_validation_member(ModelSpec.parse("990:T:P:3d_fullres:0,1"), tmp_path)
