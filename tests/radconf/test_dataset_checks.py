from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import SimpleITK as sitk

from radconf.raw.checks import check_raw_dataset, dataset_id_of, find_dataset_name


def _digest(folder) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def test_dataset_id_forms():
    assert dataset_id_of(501) == dataset_id_of("501") == dataset_id_of("Dataset501_Phantom") == 501
    with pytest.raises(ValueError, match="neither a dataset id"):
        dataset_id_of("Phantom")


def test_find_dataset_name_lists_what_exists(tiny_phantom, nnunet_dirs):
    assert find_dataset_name(990, nnunet_dirs["nnUNet_raw"]) == "Dataset990_Phantom"
    with pytest.raises(FileNotFoundError, match="Dataset990_Phantom"):
        find_dataset_name(12, nnunet_dirs["nnUNet_raw"])


def test_valid_phantom_passes(tiny_phantom):
    assert check_raw_dataset(tiny_phantom.folder)["numTraining"] == 5


def test_problems_are_reported_with_file_and_fix_and_nothing_changes(tiny_phantom, tmp_path):
    folder = tmp_path / "Dataset991_Broken"
    shutil.copytree(tiny_phantom.folder, folder)
    cases = tiny_phantom.train_cases
    # geometry mismatch: label with another spacing
    label = sitk.ReadImage(str(folder / "labelsTr" / f"{cases[0]}.nii.gz"))
    label.SetSpacing(tuple(s * 1.5 for s in label.GetSpacing()))
    sitk.WriteImage(label, str(folder / "labelsTr" / f"{cases[0]}.nii.gz"))
    # wrong channel count: a second channel for one case only
    shutil.copy(folder / "imagesTr" / f"{cases[1]}_0000.nii.gz", folder / "imagesTr" / f"{cases[1]}_0001.nii.gz")
    # undeclared label value
    label = sitk.ReadImage(str(folder / "labelsTr" / f"{cases[2]}.nii.gz"))
    array = sitk.GetArrayFromImage(label)
    array[0, 0, 0] = 9
    relabelled = sitk.GetImageFromArray(array)
    relabelled.CopyInformation(label)
    sitk.WriteImage(relabelled, str(folder / "labelsTr" / f"{cases[2]}.nii.gz"))
    before = _digest(folder)
    with pytest.raises(ValueError) as error:
        check_raw_dataset(folder)
    message = str(error.value)
    assert "3 problem(s)" in message
    assert f"case {cases[0]}" in message and "spacing" in message and "resample the label" in message
    assert f"case {cases[1]}" in message and "declares 1 channel" in message
    assert f"case {cases[2]}" in message and "[9]" in message
    assert _digest(folder) == before


def test_missing_pieces(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_raw_dataset(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="dataset.json is missing"):
        check_raw_dataset(tmp_path / "d")
    (tmp_path / "d" / "dataset.json").write_text(json.dumps({"labels": {"background": 0}}))
    with pytest.raises(ValueError, match="lacks channel_names, numTraining, file_ending"):
        check_raw_dataset(tmp_path / "d")
