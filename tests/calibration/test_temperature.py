"""Temperature scaling: recovery of known over-confidence, hand-computed scaling, the voxel sample, temperature.json
refusals, and radconf_calibrate on a fake model folder."""
from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.special import expit, logit, softmax

from radconf.calibration.model import calibrate_model
from radconf.calibration.temperature import (
    TEMPERATURE_FILE,
    apply_temperature,
    fit_temperature,
    read_temperature,
    sample_scores,
    sample_voxels,
    write_temperature,
)
from radconf.cli import calibrate as calibrate_cli
from radconf.errors import InvalidInput, MissingInput
from radconf.models import ModelFiles, ModelSpec, find_model

LABELS = {"background": 0, "bladder": 1, "rectum": 2}
DATASET_JSON = {"labels": LABELS, "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}
MODEL = "Dataset990_Fake/T__P__3d_fullres"


def _categorical(p: np.ndarray, rng) -> np.ndarray:
    """One class per row of ``p`` (n, C), drawn with those probabilities."""
    return (rng.random((len(p), 1)) > np.cumsum(p, axis=1)).sum(axis=1)


def _sharpened(p: np.ndarray, temperatures) -> np.ndarray:
    """Probabilities q (n, C) with softmax(log q / T_c) = p exactly: log q_c = T_c (log p_c + k), k solving sum q = 1
    per row (bisection)."""
    t, log_p = np.asarray(temperatures, float), np.log(p)
    low, high = np.full(len(p), -60.0), np.full(len(p), 60.0)
    for _ in range(80):
        k = (low + high) / 2
        above = np.exp(t * (log_p + k[:, None])).sum(axis=1) > 1
        high, low = np.where(above, k, high), np.where(above, low, k)
    q = np.exp(t * (log_p + low[:, None]))
    return q / q.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------------------------------------ fitting
def test_sigmoid_over_confidence_is_undone():
    rng = np.random.default_rng(0)
    p = rng.random(100_000)
    y = rng.random(p.size) < p
    over = expit(3 * logit(p))[None]
    (t,) = fit_temperature([(over, y[None])], "regions")
    assert t == pytest.approx(3.0, rel=0.1)
    sample = sample_voxels([(over, y[None])], "cumulative")
    (nll_before, ece_before), (nll_after, ece_after) = (sample_scores(sample, "cumulative", x) for x in ([1.0], [t]))
    assert ece_after < ece_before / 3 and nll_after < nll_before


def test_softmax_over_confidence_is_undone():
    rng = np.random.default_rng(1)
    logits = rng.normal(0.0, 1.5, (100_000, 3))
    y = _categorical(softmax(logits, axis=1), rng)
    over = softmax(2.5 * logits, axis=1).T
    (t,) = fit_temperature([(over, y)], "softmax")
    assert t == pytest.approx(2.5, rel=0.1)
    sample = sample_voxels([(over, y)], "softmax")
    (nll_before, ece_before), (nll_after, ece_after) = (sample_scores(sample, "softmax", x) for x in ([1.0], [t]))
    assert ece_after < ece_before / 3 and nll_after < nll_before


def test_per_structure_temperatures_differ_where_the_classes_were_sharpened_differently():
    rng = np.random.default_rng(2)
    p = softmax(rng.normal(0.0, 1.5, (60_000, 3)), axis=1)
    y = _categorical(p, rng)
    fitted = fit_temperature([(_sharpened(p, [1.0, 3.0, 1.5]).T, y)], "level_softmax", per_structure=True)
    assert fitted == pytest.approx([1.0, 3.0, 1.5], rel=0.1) and fitted[1] / fitted[2] > 1.5
    channels = rng.random((2, 60_000))
    targets = rng.random(channels.shape) < channels
    over = expit(np.array([[3.0], [1.5]]) * logit(channels))
    assert fit_temperature([(over, targets)], "regions", per_structure=True) == pytest.approx([3.0, 1.5], rel=0.1)


def test_the_voxel_sample_is_the_padded_box_plus_as_many_voxels_outside_it():
    shape = (30, 30)
    index = np.arange(900).reshape(shape) / 1e4  # each voxel's probability tells where it is (all < 0.5)
    probabilities = np.stack([1 - index, index])
    labels = np.zeros(shape, np.uint8)
    labels[10:12, 10:12] = 1
    empty = (probabilities, np.zeros(shape, np.uint8))  # a case without any structure adds nothing
    sample = sample_voxels([empty, (probabilities, labels)], "softmax", seed=3)
    found = np.rint(sample.probabilities[:, 1].astype(np.float64) * 1e4).astype(int)
    box = set(np.arange(900).reshape(shape)[2:20, 2:20].ravel())  # rows and columns 10..11, padded by 8
    assert len(found) == len(set(found)) == 2 * len(box) and box <= set(found)
    assert sample.targets.tolist() == labels.ravel()[found].tolist()
    again = sample_voxels([(probabilities, labels)], "softmax", seed=3)
    other = sample_voxels([(probabilities, labels)], "softmax", seed=4)
    assert np.array_equal(again.probabilities, sample.probabilities)
    assert not np.array_equal(np.sort(other.probabilities[:, 1]), np.sort(sample.probabilities[:, 1]))
    capped = sample_voxels([(probabilities, labels)] * 3, "softmax", max_voxels=100, seed=3)
    assert capped.probabilities.shape == (100, 2)
    with pytest.raises(InvalidInput, match="No voxels to fit"):
        sample_voxels([empty], "softmax")
    with pytest.raises(InvalidInput, match="label map of shape"):
        sample_voxels([(probabilities, labels + 2)], "softmax")


# ------------------------------------------------------------------------------------------------ scaling
def test_apply_temperature_by_hand():
    p = np.array([[0.7, 0.2], [0.2, 0.5], [0.1, 0.3]])  # 3 classes, 2 voxels
    root = np.sqrt(p)
    assert np.allclose(apply_temperature(p, "softmax", 2.0), root / root.sum(axis=0), atol=1e-6)
    per_class = np.exp(np.log(p) / np.array([[1.0], [2.0], [4.0]]))
    assert np.allclose(apply_temperature(p, "softmax", [1, 2, 4]), per_class / per_class.sum(axis=0), atol=1e-6)
    sig = np.array([[0.9, 0.2]])
    expected = np.sqrt(sig) / (np.sqrt(sig) + np.sqrt(1 - sig))  # sigmoid(logit(p) / 2)
    scaled = apply_temperature(sig, "regions", [2.0])
    assert scaled.dtype == np.float32 and np.allclose(scaled, expected, atol=1e-6)
    assert scaled[0, 0] == pytest.approx(1 / (1 + math.exp(-math.log(9) / 2)), abs=1e-6)


def test_one_temperature_keeps_the_argmax_and_t1_is_the_identity():
    rng = np.random.default_rng(5)
    p = rng.dirichlet(np.ones(4), size=(5, 6, 7)).transpose(3, 0, 1, 2).astype(np.float32)
    assert np.allclose(apply_temperature(p, "softmax", 1.0), p, atol=1e-6)
    for t in (0.3, 7.0):
        scaled = apply_temperature(p, "softmax", t)
        assert np.allclose(scaled.sum(axis=0), 1, atol=1e-5)
        assert np.array_equal(scaled.argmax(axis=0), p.argmax(axis=0))
        assert np.array_equal(apply_temperature(p, "cumulative", t) > 0.5, p > 0.5)
    assert np.allclose(apply_temperature(p, "cumulative", [1.0]), p, atol=1e-6)


@pytest.mark.parametrize(("temperatures", "needle"), [(0.0, "greater than 0"), (float("nan"), "finite"),
                                                     ([1.0, 2.0], "2 temperatures do not fit")])
def test_apply_temperature_refuses(temperatures, needle):
    with pytest.raises(InvalidInput, match=needle):
        apply_temperature(np.full((3, 4), 1 / 3), "softmax", temperatures)


# ------------------------------------------------------------------------------------------------ temperature.json
def _model_files(tmp_path: Path) -> ModelFiles:
    spec = ModelSpec("990", "T", "P", "3d_fullres", ("0",))
    return ModelFiles(spec, tmp_path / MODEL, dict(DATASET_JSON), {"configurations": {"3d_fullres": {}}})


def _record(**changes) -> dict:
    record = {"model": "990:T:P:3d_fullres", "trainer": "T", "plans": "P", "configuration": "3d_fullres",
              "dataset": "Dataset990_Fake", "labels": LABELS, "folds_fitted": ["0"], "kind": "softmax",
              "per_structure": False, "temperatures": [1.7]}
    return {**record, **changes}


def test_read_temperature_gives_the_written_scaling(tmp_path):
    path = write_temperature(tmp_path / TEMPERATURE_FILE, _record(per_structure=True, temperatures=[1.0, 2.0, 3.0]))
    scaling = read_temperature(path, _model_files(tmp_path))
    assert (scaling.kind, scaling.temperatures, scaling.per_structure) == ("softmax", (1.0, 2.0, 3.0), True)
    p = np.full((3, 2), 1 / 3)
    assert np.array_equal(scaling.apply(p), apply_temperature(p, "softmax", [1.0, 2.0, 3.0]))


@pytest.mark.parametrize(("record", "needle"), [
    (_record(trainer="nnUNetTrainer"), "was fitted for model .*trainer differ"),
    (_record(dataset="Dataset991_Other"), "dataset differ"),
    (_record(labels={"background": 0, "prostate": 1, "rectum": 2}), "labels differ"),
    (_record(temperatures=[0]), "finite numbers greater than 0"),
    (_record(temperatures=[float("nan")]), "finite numbers greater than 0"),
    (_record(temperatures=[1.0, 2.0]), "holds 2 temperature.*needs 1"),
    (_record(per_structure=True, temperatures=[1.0, 2.0]), "holds 2 temperature.*needs 3"),
    (_record(kind="regions"), "scales regions probabilities but .* exports softmax"),
    ({"temperatures": [1.0]}, "not a temperature file .*no model"),
])
def test_read_temperature_refuses(tmp_path, record, needle):
    path = tmp_path / TEMPERATURE_FILE
    path.write_text(json.dumps(record))  # NaN is written as JSON's NaN token, which Python reads back
    with pytest.raises(InvalidInput, match=needle):
        read_temperature(path, _model_files(tmp_path))


def test_read_temperature_refuses_corrupt_json(tmp_path):
    path = tmp_path / TEMPERATURE_FILE
    path.write_text(json.dumps(_record())[:-5])
    with pytest.raises(InvalidInput, match=f"{TEMPERATURE_FILE} is not valid JSON.*radconf_calibrate -d 990"):
        read_temperature(path, _model_files(tmp_path))
    with pytest.raises(InvalidInput, match="cannot be written"):
        write_temperature(tmp_path / "new.json", _record(temperatures=[-1.0]))
    assert not (tmp_path / "new.json").exists()


# ------------------------------------------------------------------------------------------------ a model
def _fake_model(dirs: dict[str, Path], folds=(0, 1), scale: float = 2.5) -> Path:
    """A trained model's folder whose folds validated two over-confident cases each, and the references."""
    rng = np.random.default_rng(7)
    model = dirs["nnUNet_results"] / MODEL
    references = dirs["nnUNet_preprocessed"] / "Dataset990_Fake" / "gt_segmentations"
    references.mkdir(parents=True)
    model.mkdir(parents=True)
    (model / "dataset.json").write_text(json.dumps(DATASET_JSON))
    (model / "plans.json").write_text(json.dumps({"configurations": {"3d_fullres": {}}}))
    for fold in folds:
        (model / f"fold_{fold}" / "validation").mkdir(parents=True)
        (model / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"")
        for number in range(2):
            logits = rng.normal(0.0, 1.5, (3, 6, 20, 20))
            labels = _categorical(softmax(logits, axis=0).reshape(3, -1).T, rng).reshape(6, 20, 20)
            case = f"case_{fold}{number}"
            sitk.WriteImage(sitk.GetImageFromArray(labels.astype(np.uint8)), str(references / f"{case}.nii.gz"))
            np.savez_compressed(model / f"fold_{fold}" / "validation" / f"{case}.npz",
                                probabilities=softmax(scale * logits, axis=0).astype(np.float32))
    return model


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_calibrate_model_fits_the_cross_validation_folds(nnunet_dirs):
    model = _fake_model(nnunet_dirs)
    before = _tree(model)
    spec = ModelSpec("990", "T", "P", "3d_fullres", ("0", "1"))
    record = calibrate_model(spec, progress=False)
    assert record["temperatures"][0] == pytest.approx(2.5, rel=0.15)
    assert record["folds_fitted"] == ["0", "1"] and record["cases"] == ["case_00", "case_01", "case_10", "case_11"]
    assert record["voxels"] == 4 * 6 * 20 * 20 and record["kind"] == "softmax" and record["labels"] == LABELS
    assert record["nll_after"] < record["nll_before"] and record["ece_after"] < record["ece_before"] / 3
    assert json.loads((model / TEMPERATURE_FILE).read_text()) == record
    assert _tree(model) == {**before, TEMPERATURE_FILE: (model / TEMPERATURE_FILE).read_bytes()}
    scaling = read_temperature(model / TEMPERATURE_FILE, find_model(spec))
    assert scaling.temperatures == tuple(record["temperatures"])


def test_the_command_writes_temperature_json(nnunet_dirs, tmp_path, capsys):
    model = _fake_model(nnunet_dirs)
    base = ["-d", "990", "-tr", "T", "-p", "P", "-c", "3d_fullres"]
    assert calibrate_cli.main([*base, "-f", "0", "1", "--per_structure"]) == 0
    out = capsys.readouterr().out
    assert "fitted on 4 validation case(s)" in out and "rectum: T = " in out and "NLL " in out
    assert f"wrote {model / TEMPERATURE_FILE}" in out
    assert len(json.loads((model / TEMPERATURE_FILE).read_text())["temperatures"]) == 3
    folder, references = tmp_path / "split", nnunet_dirs["nnUNet_preprocessed"] / "Dataset990_Fake/gt_segmentations"
    shutil.copytree(model / "fold_1" / "validation", folder)
    for name in ("dataset.json", "plans.json"):
        shutil.copy(model / name, folder / name)
    assert calibrate_cli.main([*base, "-f", "0", "--folders", str(folder), "-ref", str(references),
                               "-o", str(tmp_path / "split.json")]) == 0
    assert json.loads((tmp_path / "split.json").read_text())["cases"] == ["case_10", "case_11"]
    capsys.readouterr()


@pytest.mark.parametrize(("argv", "needle"), [
    (["-f", "all"], "Fold 'all' of 990:T:P:3d_fullres was trained on every case"),
    (["-f", "0", "2", "3"], (r"fold\(s\) 2, 3 have no validation probabilities.*radconf_train 990 3d_fullres FOLD "
                             r"-tr T -p P --val --npz \(or nnUNetv2_train")),
    (["-f", "0", "-ref", "x"], "--folders and -ref go together"),
    (["-f", "0", "-o", "{model}/fold_0/validation/t.json"], "lies inside an input folder"),
    (["-f", "0", "-o", "{model}/dataset.json"], "exists and is not a temperature file"),
])
def test_the_command_refuses(nnunet_dirs, capsys, argv, needle):
    model = _fake_model(nnunet_dirs, folds=(0,))
    for fold in (2, 3):  # trained, validated without --npz
        (model / f"fold_{fold}" / "validation").mkdir(parents=True)
        (model / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"")
    before = _tree(nnunet_dirs["nnUNet_results"])
    code = calibrate_cli.main(["-d", "990", "-tr", "T", "-p", "P", *[a.format(model=model) for a in argv]])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("radconf: error: ")
    assert re.search(needle, err)
    assert _tree(nnunet_dirs["nnUNet_results"]) == before


def test_a_missing_reference_is_named(nnunet_dirs):
    _fake_model(nnunet_dirs, folds=(0,))
    (nnunet_dirs["nnUNet_preprocessed"] / "Dataset990_Fake" / "gt_segmentations" / "case_01.nii.gz").unlink()
    with pytest.raises(MissingInput, match="Reference .*case_01.nii.gz of validation case case_01"):
        calibrate_model(ModelSpec("990", "T", "P", "3d_fullres", ("0",)), progress=False)
