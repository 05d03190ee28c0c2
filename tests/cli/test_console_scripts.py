"""The console scripts that no other test in tests/cli runs as a child process: one cheap invocation each, proving the
entry point is installed and wired (their behaviour is tested in-process in tests/datasets and tests/evaluation).

The others run once each elsewhere in this folder: radconf_plan_and_preprocess, radconf_train, radconf_predict and
radconf_evaluate (test_end_to_end.py), radconf_fuse_readers (test_fuse_readers.py), radconf_anatomy_dataset
(test_anatomy_dataset_cli.py), radconf_find_ensemble_weights and radconf_ensemble (test_ensemble_cli.py),
radconf_demo (test_demo.py); radconf_import_dicom and radconf_export_dicom run here, as a pair, and so do
radconf_determine_postprocessing and radconf_apply_postprocessing; radconf_margin, radconf_calibrate and
radconf_crop_dataset run here once.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

BIN = Path(sys.executable).parent


def _script(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, env=env or dict(os.environ),
                          timeout=300, check=False)


def test_generate_phantom_writes_the_same_phantom_as_the_library(tmp_path, phantom_store):
    raw = tmp_path / "nnUNet_raw"
    result = _script("radconf_generate_phantom", "-d", "990", "--num_train", "5", "--num_test", "1", "--seed", "3",
                     "--spacing", "6", "4", "4", "-o", str(raw))
    assert result.returncode == 0, result.stdout + result.stderr
    folder = raw / "Dataset990_Phantom"
    assert f"radconf: phantom written: {folder} (5 training, 1 held-out cases)" in result.stdout
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["numTraining"] == 5
    # the session's phantom was written by radconf.datasets.phantom.writer with the same settings (conftest's TINY)
    library = phantom_store.phantom.folder
    for name in ("imagesTr/phantom_002_0000.nii.gz", "labelsTr/phantom_002.nii.gz", "labelsTs/phantom_005.nii.gz"):
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / name))),
                              sitk.GetArrayFromImage(sitk.ReadImage(str(library / name)))), name


def test_compare_refuses_missing_files_in_one_line(tmp_path):
    missing = [str(tmp_path / "a" / "metrics_per_case.csv"), str(tmp_path / "b" / "metrics_per_case.csv")]
    result = _script("radconf_compare", *missing)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("radconf: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and "metrics_per_case.csv" in result.stderr


def test_dicom_import_and_export_scripts_round_trip(tmp_path):
    from radconf.dicom.geometry import SeriesGeometry
    from radconf.dicom.identity import PatientStudy
    from radconf.dicom.tps_export import StructureSetContent, write_tps_export

    mask = np.zeros((3, 9, 11), bool)
    mask[1, 2:7, 3:9] = True
    geometry = SeriesGeometry(9, 11, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.5, 0.8),
                              [(-4.2, 3.3, z) for z in (0.0, 2.0, 4.0)])
    export = tmp_path / "export"
    write_tps_export(export, np.zeros(mask.shape, np.int16), geometry, PatientStudy("P", "N^M", "1.2.3"),
                     [StructureSetContent("clinical", {"Bladder": mask})])
    env = {**os.environ, "nnUNet_raw": str(tmp_path / "raw")}
    result = _script("radconf_import_dicom", str(export), "-d", "620", "-n", "Script", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    dataset = tmp_path / "raw" / "Dataset620_Script"
    assert "bladder: found in 1/1 cases" in result.stdout
    predictions = dataset / "labelsTr"
    result = _script("radconf_export_dicom", "-i", str(predictions), "--dicom", str(export), "-o",
                     str(tmp_path / "out"), "--dataset_json", str(dataset / "dataset.json"), "--key",
                     str(tmp_path / "raw" / "Dataset620_Script_key.csv"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1.0" in (tmp_path / "out" / "export_report.csv").read_text().splitlines()[1]


def test_postprocessing_scripts_determine_and_apply(tmp_path):
    def write(path: Path, island: bool) -> None:
        array = np.zeros((6, 12, 12), np.uint8)
        array[1:5, 1:6, 1:6] = 1
        if island:
            array[2:4, 9:11, 9:11] = 1
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(sitk.GetImageFromArray(array), str(path))

    for case in ("a", "b"):
        write(tmp_path / "pred" / f"{case}.nii.gz", island=True)
        write(tmp_path / "ref" / f"{case}.nii.gz", island=False)
    (tmp_path / "pred" / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "organ": 1},
                                                                "file_ending": ".nii.gz"}))
    (tmp_path / "search.json").write_text(json.dumps([{"op": "largest_component"}]))
    result = _script("radconf_determine_postprocessing", "-i", str(tmp_path / "pred"), "-ref", str(tmp_path / "ref"),
                     "-o", str(tmp_path / "pp"), "--search_space", str(tmp_path / "search.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "organ: largest_component (mean Dice" in result.stdout
    result = _script("radconf_apply_postprocessing", "-i", str(tmp_path / "pred"), "-o", str(tmp_path / "out"), "-pp",
                     str(tmp_path / "pp" / "postprocessing.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    for case in ("a", "b"):
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / f"{case}.nii.gz"))),
                              sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "ref" / f"{case}.nii.gz"))))


def test_margin_script_grows_a_point(tmp_path):
    array = np.zeros((7, 7, 7), np.uint8)
    array[3, 3, 3] = 1
    (tmp_path / "gtv").mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "gtv" / "a.nii.gz"))
    result = _script("radconf_margin", "-i", str(tmp_path / "gtv"), "-o", str(tmp_path / "ctv"), "--label", "1",
                     "--margin", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "radconf: grew 1 case(s) by 2 mm" in result.stdout
    # 1 + 6 + 12 + 8 + 6 voxel centres at 0, 1, sqrt(2), sqrt(3) and 2 mm
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "ctv" / "a.nii.gz"))).sum() == 33


def test_calibrate_script_is_wired_and_refuses_fold_all(tmp_path):
    env = {**os.environ, **{name: str(tmp_path / name) for name in ("nnUNet_raw", "nnUNet_preprocessed",
                                                                    "nnUNet_results")}}
    result = _script("radconf_calibrate", "-d", "990", "-tr", "T", "-p", "P", "-c", "3d_fullres", "-f", "all", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("radconf: error:") == 1, result.stderr


def test_crop_dataset_script_crops_the_phantom(tiny_phantom):
    result = _script("radconf_crop_dataset", "-d", "990", "-o", "996", "--around", "gtv", "--margin", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tiny_phantom.folder.parent / "Dataset996_PhantomCrop"
    assert f"radconf: wrote {folder} (6 cases cropped around gtv with 0 mm, 0 kept whole)" in result.stdout
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "phantom_001.nii.gz")))
    full = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_phantom.folder / "labelsTr" / "phantom_001.nii.gz")))
    # no margin: the crop is the gtv's bounding box, so the gtv touches every face of it
    assert (label == 4).sum() == (full == 4).sum() and label.size < full.size
    for axis in range(3):
        assert (np.take(label, 0, axis) == 4).any() and (np.take(label, -1, axis) == 4).any()
