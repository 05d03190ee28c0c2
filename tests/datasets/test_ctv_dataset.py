"""The phantom's CT -> CTV dataset (radconf.datasets.phantom.ctv_dataset) and radconf_generate_phantom --ctv-dataset."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from radconf.datasets.phantom.ctv_dataset import MARKER, write_ctv_dataset

from radconf.cli.generate_phantom import build_parser
from radconf.cli.generate_phantom import main as generate_phantom
from radconf.raw.checks import check_raw_dataset


def read(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_ctv_dataset_of_the_tiny_phantom(tiny_phantom, nnunet_dirs):
    raw, phantom = nnunet_dirs["nnUNet_raw"], tiny_phantom.folder
    result = write_ctv_dataset(phantom, raw, dataset_id=993)
    folder = raw / "Dataset993_PhantomCTV"
    assert result.folder == folder and not result.reused
    assert result.train_cases == tiny_phantom.train_cases and result.test_cases == ["phantom_005"]
    dataset = check_raw_dataset(folder)
    assert dataset["labels"] == {"background": 0, "ctv": 1} and dataset["channel_names"] == {"0": "CT"}
    assert dataset["numTraining"] == 5 and dataset["file_ending"] == ".nii.gz"
    assert dataset["radconf"]["derived_from"] == "Dataset990_Phantom"
    assert dataset["radconf"]["test_cases"] == ["phantom_005"]
    for case, split in (("phantom_002", "Tr"), ("phantom_005", "Ts")):
        ct = f"images{split}/{case}_0000.nii.gz"
        assert (folder / ct).read_bytes() == (phantom / ct).read_bytes()
        ctv, labels = read(phantom / f"ctv{split}" / f"{case}.nii.gz"), read(folder / f"labels{split}/{case}.nii.gz")
        assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1} and np.array_equal(labels, ctv)
        gtv = read(phantom / f"labels{split}" / f"{case}.nii.gz") == 4
        assert np.all(labels[gtv] == 1)  # the CTV holds the GTV
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == ["phantom_005.nii.gz"]

    (folder / "note.txt").write_text("kept")
    assert write_ctv_dataset(phantom, raw, dataset_id=993).reused and (folder / "note.txt").exists()
    marker = json.loads((folder / MARKER).read_text())
    (folder / MARKER).write_text(json.dumps({**marker, "phantom": "Dataset000_Other"}))
    with pytest.raises(FileExistsError, match="with other parameters"):
        write_ctv_dataset(phantom, raw, dataset_id=993)
    assert not write_ctv_dataset(phantom, raw, dataset_id=993, overwrite=True).reused
    assert not (folder / "note.txt").exists()


def test_refusals(tiny_phantom, nnunet_dirs, tmp_path):
    raw, phantom = nnunet_dirs["nnUNet_raw"], tiny_phantom.folder
    with pytest.raises(FileExistsError, match="Dataset id 990 is already used by .*Dataset990_Phantom"):
        write_ctv_dataset(phantom, raw, dataset_id=990)
    foreign = raw / "Dataset994_PhantomCTV"
    foreign.mkdir()
    with pytest.raises(FileExistsError, match="was not made by radconf's phantom CTV writer"):
        write_ctv_dataset(phantom, raw, dataset_id=994)
    with pytest.raises(FileNotFoundError, match="is not a radconf phantom"):
        write_ctv_dataset(tmp_path, raw, dataset_id=995)
    (phantom / "ctvTr" / "phantom_001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks the CTV masks .*phantom_001\.nii\.gz"):
        write_ctv_dataset(phantom, raw, dataset_id=995)
    assert not (raw / "Dataset995_PhantomCTV").exists() and not (raw / "Dataset995_PhantomCTV.partial").exists()


def test_generate_phantom_writes_the_ctv_dataset(tmp_path, capsys):
    raw = tmp_path / "raw"
    argv = ["-o", str(raw), "-d", "996", "--num_train", "2", "--num_test", "1", "--spacing", "6", "4", "4",
            "--ctv_dataset", "997"]
    assert generate_phantom(argv) == 0
    assert "CTV dataset written: " in capsys.readouterr().out
    dataset = check_raw_dataset(raw / "Dataset997_PhantomCTV")
    assert dataset["numTraining"] == 2 and dataset["radconf"]["test_cases"] == ["phantom_002"]
    assert generate_phantom(argv) == 0
    assert "CTV dataset already present (same phantom), reused" in capsys.readouterr().out
    assert "--ctv_dataset ID" in build_parser().format_help()
