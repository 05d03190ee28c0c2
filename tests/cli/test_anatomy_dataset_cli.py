"""radconf_anatomy_dataset on the tiny phantom, with anatomy cut from the phantom's own labels: the console script
once (the main path), then main(argv) in-process."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radconf.anatomy.channels import anatomy_of
from radconf.cli.anatomy_dataset import main
from radconf.raw.checks import check_raw_dataset

SCRIPT = Path(sys.executable).parent / "radconf_anatomy_dataset"


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_console_script_cuts_anatomy_from_the_phantom_labels(tiny_phantom, nnunet_dirs):
    source = tiny_phantom.folder
    before = hashes(source)
    result = subprocess.run([str(SCRIPT), "990", "-d", "992", "--anatomy", "bladder", "rectum"], capture_output=True,
                            text=True, env=dict(os.environ), timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = nnunet_dirs["nnUNet_raw"] / "Dataset992_PhantomAnatomy"
    out = result.stdout
    assert f"into {folder}" in out and "anatomy channels {1: bladder, 2: rectum} (labels: Dataset990_Phantom)" in out

    assert sorted(p.name for p in (folder / "imagesTs").iterdir()) == [f"phantom_005_{i:04d}.nii.gz" for i in range(3)]
    for case in tiny_phantom.train_cases:
        names = sorted(p.name for p in (folder / "imagesTr").glob(f"{case}_*"))
        assert names == [f"{case}_{i:04d}.nii.gz" for i in range(3)]
        ct = sitk.ReadImage(str(source / "imagesTr" / f"{case}_0000.nii.gz"))
        assert (folder / "imagesTr" / names[0]).read_bytes() == (source / "imagesTr" / names[0]).read_bytes()
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(source / "labelsTr" / f"{case}.nii.gz")))
        for channel, label in ((1, 1), (2, 2)):  # bladder = 1, rectum = 2 in the phantom's label map
            image = sitk.ReadImage(str(folder / "imagesTr" / f"{case}_{channel:04d}.nii.gz"))
            mask = sitk.GetArrayFromImage(image)
            assert mask.dtype == np.uint8 and np.array_equal(mask, (labels == label).astype(np.uint8))
            assert mask.any()
            assert image.GetSize() == ct.GetSize() and image.GetSpacing() == ct.GetSpacing()
            assert image.GetOrigin() == ct.GetOrigin() and image.GetDirection() == ct.GetDirection()
        target = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz")))
        expected = np.select([labels == 3, labels == 4], [1, 2], 0)  # gluteal_muscles 3 -> 1, gtv 4 -> 2
        assert target.dtype == np.uint8 and np.array_equal(target, expected) and target.max() == 2

    dataset = check_raw_dataset(folder)
    assert dataset["labels"] == {"background": 0, "gluteal_muscles": 1, "gtv": 2}
    assert dataset["channel_names"] == {"0": "CT", "1": "noNorm", "2": "noNorm"}
    assert dataset["radconf"]["anatomy"] == {
        "channels": {"1": "bladder", "2": "rectum"}, "encoding": "binary", "ct_channel": 0,
        "source_labels": {"bladder": 1, "rectum": 2}, "source": {"kind": "labels", "from": "Dataset990_Phantom"}}
    assert anatomy_of(dataset).indices == [1, 2]
    assert hashes(source) == before


def test_ctv_benchmark_datasets(tiny_phantom, nnunet_dirs):
    """The benchmark's pair: CT -> CTV (993), and the same with the phantom's organs as input channels (994)."""
    from radconf.datasets.phantom.ctv_dataset import write_ctv_dataset

    raw = nnunet_dirs["nnUNet_raw"]
    write_ctv_dataset(tiny_phantom.folder, raw, dataset_id=993)
    assert main(["993", "-d", "994", "--anatomy", "bladder", "rectum", "gluteal_muscles",
                 "--anatomy_dataset", "990"]) == 0
    folder = raw / "Dataset994_PhantomCTVAnatomy"
    dataset = check_raw_dataset(folder)
    assert dataset["labels"] == {"background": 0, "ctv": 1}
    assert anatomy_of(dataset).source == {"kind": "dataset", "from": "Dataset990_Phantom"}
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_phantom.folder / "labelsTs" / "phantom_005.nii.gz")))
    muscles = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "imagesTs" / "phantom_005_0003.nii.gz")))
    assert np.array_equal(muscles, (labels == 3).astype(np.uint8))
    ctv = sitk.GetArrayFromImage(sitk.ReadImage(str(tiny_phantom.folder / "ctvTr" / "phantom_000.nii.gz")))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "phantom_000.nii.gz"))), ctv)


def test_errors_exit_2_with_the_message(tiny_phantom, nnunet_dirs, capsys):
    assert main(["990", "-d", "992", "--anatomy", "bladder", "prostate"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("radconf: error: radconf_anatomy_dataset: 1 problem(s), nothing written")
    assert "anatomy structures ['prostate'] are not labels of" in error and "known: bladder, rectum" in error
    assert main(["990", "-d", "992", "--anatomy", "bladder", "--anatomy_model", "990:nnUNetTrainer"]) == 2
    error = capsys.readouterr().err  # no such model in nnUNet_results
    assert "Anatomy model 990:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4: nnUNet_results" in error
    assert "radconf_train 990 3d_fullres FOLD -tr nnUNetTrainer -p nnUNetPlans for FOLD in 0 1 2 3 4" in error
    assert main(["990", "-d", "990", "--anatomy", "bladder"]) == 2
    assert "Dataset id 990 is already used" in capsys.readouterr().err
    assert sorted(p.name for p in nnunet_dirs["nnUNet_raw"].iterdir()) == ["Dataset990_Phantom"]
    assert json.loads((tiny_phantom.folder / "dataset.json").read_text())["numTraining"] == 5
