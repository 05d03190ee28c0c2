"""Anatomy datasets (radconf.anatomy_dataset) built from hand-made 4 x 5 x 6 raw datasets.

``Dataset201_Pelvis`` has two image channels (CT, MR) and labels bladder 1, rectum 2, ctv 3, gtv 4; cases ``caseA``,
``caseB`` (train) and ``caseT`` (test). ``caseB`` has no rectum, ``caseT`` no gtv. ``Dataset202_Organs`` holds other
organ maps of the same cases with rectum 5, bladder 7 (``caseT`` without bladder); the fake organ model
``202:nnUNetTrainer:radconfCPUPlans:3d_fullres:0,1`` validated caseA in fold 0 and caseB in fold 1 with those maps.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.anatomy.channels import anatomy_of
from radconf.anatomy.dataset import make_anatomy_dataset
from radconf.raw.checks import check_raw_dataset
from tests.images import read_image, write_image

SHAPE = (4, 5, 6)  # numpy (z, y, x)
SPACING = (0.8, 0.9, 2.5)
ORIGIN = (10.5, -20.25, 30.0)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
LABELS = {"background": 0, "bladder": 1, "rectum": 2, "ctv": 3, "gtv": 4}
SPEC = "202:nnUNetTrainer:radconfCPUPlans:3d_fullres:0,1"


def write(path: Path, array: np.ndarray, spacing=SPACING) -> Path:
    return write_image(path, array, spacing_xyz=spacing, origin=ORIGIN, direction=DIRECTION)


read = read_image


def source_labels() -> dict[str, np.ndarray]:
    a, b, t = (np.zeros(SHAPE, np.uint8) for _ in range(3))
    a[0, 0, 0:3], a[1, 2, :], a[2:4, 3:5, 4:6], a[3, 0, 0] = 1, 2, 3, 4
    b[1, 1, 1], b[0, 4, 5], b[2, 2, 2] = 1, 3, 4
    t[3, 4, 0:2], t[0, 0, 5], t[1, 1, 1:3] = 1, 2, 3
    return {"caseA": a, "caseB": b, "caseT": t}


def organ_labels() -> dict[str, np.ndarray]:
    a, b, t = (np.zeros(SHAPE, np.uint8) for _ in range(3))
    a[0, 1, 1], a[3, 3, 3] = 7, 5
    b[2, 0, 0:2], b[1, 4, 4] = 7, 5
    t[3, 3, :] = 5
    return {"caseA": a, "caseB": b, "caseT": t}


def split(case: str) -> str:
    return "Ts" if case == "caseT" else "Tr"


def dataset_json(labels: dict, channels: dict) -> str:
    return json.dumps({"channel_names": channels, "labels": labels, "numTraining": 2, "file_ending": ".nii.gz"})


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    source = tmp_path / "raw" / "Dataset201_Pelvis"
    for case, labels in source_labels().items():
        for channel in (0, 1):
            write(source / f"images{split(case)}" / f"{case}_{channel:04d}.nii.gz",
                  rng.integers(-1000, 1000, SHAPE).astype(np.int16))
        write(source / f"labels{split(case)}" / f"{case}.nii.gz", labels)
    (source / "dataset.json").write_text(dataset_json(LABELS, {"0": "CT", "1": "MR"}))
    organs = tmp_path / "raw" / "Dataset202_Organs"
    for case, labels in organ_labels().items():
        write(organs / f"labels{split(case)}" / f"{case}.nii.gz", labels)
    (organs / "dataset.json").write_text(dataset_json({"background": 0, "rectum": 5, "bladder": 7}, {"0": "CT"}))
    return tmp_path / "raw"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A fake organ model folder: dataset.json and cross-validation predictions, no checkpoints."""
    results = tmp_path / "results"
    folder = results / "Dataset202_Organs" / "nnUNetTrainer__radconfCPUPlans__3d_fullres"
    for fold, case in ((0, "caseA"), (1, "caseB")):
        write(folder / f"fold_{fold}" / "validation" / f"{case}.nii.gz", organ_labels()[case])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(dataset_json({"background": 0, "rectum": 5, "bladder": 7}, {"0": "CT"}))
    return results


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def build(raw: Path, **kwargs):
    kwargs.setdefault("progress", False)
    return make_anatomy_dataset(raw / "Dataset201_Pelvis", kwargs.pop("dataset_id", 203), raw_root=raw, **kwargs)


def test_anatomy_from_the_source_labels(raw: Path):
    before = hashes(raw / "Dataset201_Pelvis")
    result = build(raw, anatomy=["rectum", "bladder"])
    folder = raw / "Dataset203_PelvisAnatomy"
    assert result.folder == folder and result.train_cases == ["caseA", "caseB"] and result.test_cases == ["caseT"]
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        f"{c}_{i:04d}.nii.gz" for c in ("caseA", "caseB") for i in range(4)]
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [f"caseT_{i:04d}.nii.gz" for i in range(4)]
    for i in (0, 1):
        assert ((folder / "imagesTr" / f"caseA_{i:04d}.nii.gz").read_bytes()
                == (raw / "Dataset201_Pelvis" / "imagesTr" / f"caseA_{i:04d}.nii.gz").read_bytes())
    rectum, bladder = (read(folder / "imagesTr" / f"caseA_{i:04d}.nii.gz") for i in (2, 3))
    assert rectum.dtype == np.uint8 and bladder.dtype == np.uint8
    expected = np.zeros(SHAPE, np.uint8)
    expected[1, 2, :] = 1
    assert np.array_equal(rectum, expected)
    expected = np.zeros(SHAPE, np.uint8)
    expected[0, 0, 0:3] = 1
    assert np.array_equal(bladder, expected)
    assert not read(folder / "imagesTr" / "caseB_0002.nii.gz").any()  # no rectum in caseB: zero channel + warning
    assert result.warnings == [f"case caseB: rectum (label 2) is absent from "
                               f"{raw / 'Dataset201_Pelvis' / 'labelsTr' / 'caseB.nii.gz'}; its channel 2 is all zero."]
    assert np.array_equal(read(folder / "imagesTs" / "caseT_0003.nii.gz"), (source_labels()["caseT"] == 1) * 1)

    labels = read(folder / "labelsTr" / "caseA.nii.gz")  # ctv 3 -> 1, gtv 4 -> 2, organs -> 0
    expected = np.zeros(SHAPE, np.uint8)
    expected[2:4, 3:5, 4:6], expected[3, 0, 0] = 1, 2
    assert labels.dtype == np.uint8 and np.array_equal(labels, expected)
    expected = np.zeros(SHAPE, np.uint8)
    expected[1, 1, 1:3] = 1
    assert np.array_equal(read(folder / "labelsTs" / "caseT.nii.gz"), expected)
    for path in (folder / "imagesTr" / "caseB_0003.nii.gz", folder / "labelsTr" / "caseB.nii.gz"):
        image = sitk.ReadImage(str(path))
        assert image.GetSpacing() == pytest.approx(SPACING) and image.GetOrigin() == pytest.approx(ORIGIN)
        assert image.GetDirection() == pytest.approx(DIRECTION)

    dataset = check_raw_dataset(folder)
    assert dataset["channel_names"] == {"0": "CT", "1": "MR", "2": "noNorm", "3": "noNorm"}
    assert dataset["labels"] == {"background": 0, "ctv": 1, "gtv": 2} and dataset["numTraining"] == 2
    assert dataset["radconf"]["anatomy"] == {
        "channels": {"2": "rectum", "3": "bladder"}, "encoding": "binary", "ct_channel": 0,
        "source_labels": {"rectum": 2, "bladder": 1},
        "source": {"kind": "labels", "from": "Dataset201_Pelvis"}}
    assert dataset["radconf"]["derived_from"] == "Dataset201_Pelvis"
    assert dataset["radconf"]["imagesTs_channels"] == [0, 1, 2, 3]
    assert anatomy_of(dataset).names == ["rectum", "bladder"]
    assert hashes(raw / "Dataset201_Pelvis") == before


def test_targets_in_the_given_order(raw: Path):
    result = build(raw, anatomy=["bladder"], targets=["gtv", "ctv"], encoding="ct")
    assert result.targets == {"gtv": 1, "ctv": 2}
    expected = np.zeros(SHAPE, np.uint8)
    expected[2:4, 3:5, 4:6], expected[3, 0, 0] = 2, 1  # rectum (not a target) -> 0
    assert np.array_equal(read(result.folder / "labelsTr" / "caseA.nii.gz"), expected)
    dataset = json.loads((result.folder / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "gtv": 1, "ctv": 2}
    assert dataset["channel_names"] == {"0": "CT", "1": "MR", "2": "noNorm"}
    assert anatomy_of(dataset).encoding == "ct"


def test_anatomy_from_another_dataset(raw: Path):
    result = build(raw, anatomy=["bladder", "rectum"], anatomy_dataset="202")
    folder = result.folder
    for case, organs in organ_labels().items():
        images = folder / f"images{split(case)}"
        assert np.array_equal(read(images / f"{case}_0002.nii.gz"), (organs == 7).astype(np.uint8))
        assert np.array_equal(read(images / f"{case}_0003.nii.gz"), (organs == 5).astype(np.uint8))
    assert [w.split(":")[0] for w in result.warnings] == ["case caseT"] and "bladder (label 7)" in result.warnings[0]
    assert result.targets == {"ctv": 1, "gtv": 2}  # the source's own bladder/rectum are neither targets nor inputs
    entry = anatomy_of(check_raw_dataset(folder))
    assert entry.source_labels == {"bladder": 7, "rectum": 5}
    assert entry.source == {"kind": "dataset", "from": "Dataset202_Organs"}


def test_anatomy_from_cross_validated_predictions(raw: Path, model: Path):
    result = build(raw, anatomy=["rectum"], anatomy_model=SPEC, results_root=model)
    folder = result.folder
    assert np.array_equal(read(folder / "imagesTr" / "caseB_0002.nii.gz"), (organ_labels()["caseB"] == 5) * 1)
    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == ["caseT_0000.nii.gz", "caseT_0001.nii.gz"]
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == ["caseT.nii.gz"]
    dataset = check_raw_dataset(folder)
    assert anatomy_of(dataset).source == {"kind": "model", "from": SPEC}
    assert dataset["radconf"]["imagesTs_channels"] == [0, 1] and "two-stage" in dataset["radconf"]["inference"]
    assert dataset["labels"] == {"background": 0, "bladder": 1, "ctv": 2, "gtv": 3}


def test_incomplete_or_overlapping_cross_validation(raw: Path, model: Path):
    folder = model / "Dataset202_Organs" / "nnUNetTrainer__radconfCPUPlans__3d_fullres"
    shutil.copy(folder / "fold_0" / "validation" / "caseA.nii.gz", folder / "fold_1" / "validation")
    with pytest.raises(ValueError, match=r"case caseA is predicted in two folds"):
        build(raw, anatomy=["rectum"], anatomy_model=SPEC, results_root=model)
    shutil.rmtree(folder / "fold_1")
    with pytest.raises(ValueError, match=r"1 training case\(s\) have no cross-validated anatomy prediction in .*: "
                                         r"caseB\. Finish the organ model's cross-validation: radconf_train 202 "
                                         r"3d_fullres FOLD -tr nnUNetTrainer -p radconfCPUPlans for the fold\(s\) "
                                         r"without validation predictions \(1\)"):
        build(raw, anatomy=["rectum"], anatomy_model=SPEC, results_root=model)
    with pytest.raises(ValueError, match="fold 'all' saw every case"):
        build(raw, anatomy=["rectum"], anatomy_model="202:nnUNetTrainer:radconfCPUPlans:3d_fullres:all",
              results_root=model)
    assert not (raw / "Dataset203_PelvisAnatomy").exists()


def test_problems_are_reported_together_and_nothing_is_written(raw: Path):
    source = raw / "Dataset201_Pelvis"
    write(source / "labelsTr" / "caseB.nii.gz", source_labels()["caseB"], spacing=(0.8, 0.9, 3.0))
    (source / "labelsTs" / "caseT.nii.gz").unlink()
    before = hashes(source)
    with pytest.raises(ValueError) as error:
        build(raw, anatomy=["bladder", "prostate"])
    message = str(error.value)
    assert "3 problem(s), nothing written" in message
    assert "anatomy structures ['prostate'] are not labels of" in message
    assert "known: bladder, rectum, ctv, gtv" in message
    assert (f"case caseB: target label map {source / 'labelsTr' / 'caseB.nii.gz'} does not match image "
            f"caseB_0000.nii.gz: spacing") in message and "Resample" in message
    assert f"case caseT: anatomy label map missing ({source / 'labelsTs' / 'caseT.nii.gz'})" in message
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset201_Pelvis", "Dataset202_Organs"]
    assert hashes(source) == before


def test_target_and_label_errors(raw: Path):
    with pytest.raises(ValueError, match=r"--target labels \['tumour'\] are not labels of"):
        build(raw, anatomy=["bladder"], targets=["tumour"])
    with pytest.raises(ValueError, match=r"\['bladder'\] are both anatomy structures and targets"):
        build(raw, anatomy=["bladder"], targets=["bladder", "ctv"])
    with pytest.raises(ValueError, match=r"--anatomy names \['bladder'\] more than once"):
        build(raw, anatomy=["bladder", "bladder"])
    (raw / "Dataset201_Pelvis" / "dataset.json").write_text(dataset_json({**LABELS, "organs": [1, 2]}, {"0": "CT",
                                                                                                       "1": "MR"}))
    with pytest.raises(ValueError, match=r"target labels \['organs'\] are regions"):
        build(raw, anatomy=["bladder"])
    with pytest.raises(ValueError, match=r"anatomy structures \['organs'\] are regions"):
        build(raw, anatomy=["organs"], targets=["ctv"])
    with pytest.raises(ValueError, match="either from a dataset"):
        build(raw, anatomy=["bladder"], anatomy_dataset="202", anatomy_model=SPEC)


def test_output_refusals_and_overwrite(raw: Path):
    with pytest.raises(ValueError, match="Dataset201_Pelvis is the source dataset .*never writes into or around"):
        build(raw, anatomy=["bladder"], dataset_id=201, name="Pelvis")
    with pytest.raises(FileExistsError, match="Dataset id 202 is already used by .*Dataset202_Organs"):
        build(raw, anatomy=["bladder"], dataset_id=202)
    foreign = raw / "Dataset203_PelvisAnatomy"
    foreign.mkdir()
    (foreign / "dataset.json").write_text("{}")
    with pytest.raises(FileExistsError, match="was not written by radconf_anatomy_dataset"):
        build(raw, anatomy=["bladder"])
    shutil.rmtree(foreign)
    first = build(raw, anatomy=["bladder"])
    (first.folder / "stale.txt").write_text("x")
    with pytest.raises(FileExistsError, match="Pass --overwrite"):
        build(raw, anatomy=["bladder"])
    second = build(raw, anatomy=["rectum"], overwrite=True)
    assert second.folder == first.folder and not (first.folder / "stale.txt").exists()
    assert anatomy_of(json.loads((first.folder / "dataset.json").read_text())).names == ["rectum"]
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset201_Pelvis", "Dataset202_Organs",
                                                     "Dataset203_PelvisAnatomy"]
