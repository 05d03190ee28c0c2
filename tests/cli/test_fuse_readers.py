"""radconf_fuse_readers on the tiny phantom: the console script end to end, then main(argv) for errors."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli.fuse_readers import main
from radconf.confidence.fusion import fuse_masks
from radconf.raw.checks import check_raw_dataset


def test_console_script_fuses_the_phantom(tiny_phantom, nnunet_dirs):
    script = Path(sys.executable).parent / "radconf_fuse_readers"
    result = subprocess.run([str(script), "990", "-d", "991", "--staple"], capture_output=True, text=True,
                            env=dict(os.environ), timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = nnunet_dirs["nnUNet_raw"] / "Dataset991_PhantomConfidence"
    assert f"into {folder}" in result.stdout and "inter-reader Dice 0." in result.stdout
    assert "radconf_fuse_readers: 100%" in result.stderr  # tqdm over cases

    dataset = check_raw_dataset(folder)  # a valid nnU-Net raw dataset: channels, geometry, declared label values
    assert dataset["numTraining"] == len(tiny_phantom.train_cases) == 5
    assert dataset["radconf"]["ordinal"] is True and dataset["radconf"]["levels"] == 5
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == ["phantom_005.nii.gz"]
    assert len(list((folder / "consensus_staple").iterdir())) == 6

    # the written levels are radconf.fusion's levels of the case's reader masks
    case = "phantom_001"
    readers = sorted((tiny_phantom.folder / "readers" / case).iterdir())
    masks = [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in readers]
    levels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / f"{case}.nii.gz")))
    assert np.array_equal(levels, fuse_masks(masks).levels) and levels.max() == 5
    rows = {r["case"]: r for r in csv.DictReader((folder / "agreement_cases.csv").open())}
    assert int(rows[case]["n_masks"]) == len(readers) and rows["phantom_005"]["split"] == "test"
    assert 0.5 < float(rows[case]["mean_inter_dice"]) < 1.0


def test_errors_exit_2_with_one_line(tiny_phantom, nnunet_dirs, capsys):
    mask = next((tiny_phantom.folder / "readers" / "phantom_002").iterdir())
    image = sitk.ReadImage(str(mask))
    image.SetSpacing([s * 1.1 for s in image.GetSpacing()])
    sitk.WriteImage(image, str(mask))
    assert main(["990", "-d", "991", "-n", "Fused"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("radconf: error: ") and f"mask {mask} does not match image phantom_002_0000" in error
    assert "spacing" in error and not (nnunet_dirs["nnUNet_raw"] / "Dataset991_Fused").exists()

    with pytest.raises(SystemExit) as exit_info:  # argparse: before any work
        main(["990", "-d", "991", "-k", "1"])
    assert exit_info.value.code == 2 and "1 is not a highest level K: K is 2..255" in capsys.readouterr().err
    assert main(["990", "-d", "990"]) == 2  # the id of the source, another name
    assert "Dataset id 990 is already used" in capsys.readouterr().err
    assert main(["/nonexistent/Dataset5_X", "-d", "991"]) == 2
    assert "Source dataset /nonexistent/Dataset5_X does not exist" in capsys.readouterr().err
    assert json.loads((tiny_phantom.folder / "dataset.json").read_text())["numTraining"] == 5
