"""Ensembling end to end on the tiny phantom: two residual-encoder U-Nets (cpu_resenc preset) of different loss
(nnU-Net's Dice + CE, class-weighted CE), weights fitted on fold 0's validation, the
ensemble run from images and from the saved validation probabilities (same labels), the leakage warning and the
refusals.

radconf_find_ensemble_weights and radconf_ensemble run as console scripts (their one child-process check each);
planning, training and prediction run in-process (``radconf.cli.<name>.main(argv)``).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).parent))
from test_end_to_end import _run, console_environment

PLAIN = "990:nnUNetTrainer:radconfCPUResEncPlans:3d_fullres:0"
RESENC_WCE = "990:WeightedCELossTrainer:radconfCPUResEncPlans:3d_fullres:0"


def _labels(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_fit_weights_predict_and_ensemble(tiny_phantom, in_process, train_in_process, tmp_path, capsys):
    from radconf.cli import find_ensemble_weights, plan_and_preprocess, predict

    nnunet_dirs = in_process
    env = console_environment(nnunet_dirs)
    raw = tiny_phantom.folder
    assert plan_and_preprocess.main(["-d", "990", "--preset", "cpu_resenc", "-c", "3d_fullres", "-np", "1"]) == 0
    for spec in (PLAIN, RESENC_WCE):
        _, trainer, plans, _, _ = spec.split(":")
        train_in_process(["990", "3d_fullres", "0", "-tr", trainer, "-p", plans, "-device", "cpu", "--epochs", "1",
                          "--iterations_per_epoch", "2", "--npz"])
    results = nnunet_dirs["nnUNet_results"] / raw.name
    class_weights = json.loads((results / "WeightedCELossTrainer__radconfCPUResEncPlans__3d_fullres" / "fold_0" /
                                "class_weights.json").read_text())
    # reciprocal frequency: background, the most frequent class, weighs least
    weights = np.array(class_weights["weights"])
    assert np.isclose(weights.sum(), 1) and weights.argmin() == 0 and "reciprocal" in class_weights["source"]
    plans = json.loads((results / "WeightedCELossTrainer__radconfCPUResEncPlans__3d_fullres" / "plans.json")
                       .read_text())
    assert plans["configurations"]["3d_fullres"]["architecture"]["network_class_name"].endswith("ResidualEncoderUNet")

    fitted = tmp_path / "weights"
    _run(["radconf_find_ensemble_weights", "-m", PLAIN, RESENC_WCE, "-o", str(fitted)], env)
    record = json.loads((fitted / "weights.json").read_text())
    assert record["members"] == [PLAIN, RESENC_WCE] and np.isclose(sum(record["weights"]), 1)
    assert min(record["weights"]) >= 0 and len(record["validation_cases"]) == 1  # fold 0 of 5 cases
    validation = record["validation"]
    assert validation["optimal ensemble"]["mean_iou"] >= max(validation[m]["mean_iou"] for m in record["members"])
    assert (fitted / "ensemble_validation.md").is_file() and (fitted / "ensemble_validation.png").is_file()

    # the ensemble from images, on a held-out case and on the validation case (whose fitted weights draw a warning)
    validation_case = record["validation_cases"][0]
    case = tiny_phantom.test_cases[0]
    images = tmp_path / "images"
    images.mkdir()
    for name, folder in ((case, raw / "imagesTs"), (validation_case, raw / "imagesTr")):
        (images / f"{name}_0000.nii.gz").symlink_to(folder / f"{name}_0000.nii.gz")
    ensemble = tmp_path / "ensemble"
    with pytest.warns(UserWarning, match=r"1 of the 2 case\(s\) were used to fit these ensemble weights"):
        assert predict.main(["-i", str(images), "-o", str(ensemble), "-m", PLAIN, RESENC_WCE, "--weights",
                             str(fitted / "weights.json"), "--save_disagreement", "-device", "cpu", "-np", "1"]) == 0
    reference = sitk.ReadImage(str(raw / "labelsTs" / f"{case}.nii.gz"))
    output = sitk.ReadImage(str(ensemble / f"{case}.nii.gz"))
    assert output.GetSize() == reference.GetSize() and np.allclose(output.GetSpacing(), reference.GetSpacing())
    spread = _labels(ensemble / "disagreement" / f"{case}.nii.gz")
    assert spread.shape == _labels(ensemble / f"{case}.nii.gz").shape and 0 <= spread.min() and spread.max() <= 0.5

    # the same ensemble from the members' saved validation probabilities: the same labels
    validation_folders = [results / f"{s.split(':')[1]}__{s.split(':')[2]}__3d_fullres" / "fold_0" / "validation"
                          for s in (PLAIN, RESENC_WCE)]
    from_files = tmp_path / "from_files"
    ensembled = _run(["radconf_ensemble", "-i", *map(str, validation_folders), "-o", str(from_files), "--weights",
                      str(fitted / "weights.json")], env)
    assert "used to fit these ensemble weights" in ensembled.stderr
    np.testing.assert_array_equal(_labels(from_files / f"{validation_case}.nii.gz"),
                                  _labels(ensemble / f"{validation_case}.nii.gz"))

    # refusals, in-process
    capsys.readouterr()
    assert predict.main(["-i", str(images), "-o", str(tmp_path / "bad"), "-m", PLAIN, "--weights",
                         str(fitted / "weights.json")]) == 2
    assert "missing here" in capsys.readouterr().err
    assert find_ensemble_weights.main(["-m", PLAIN.replace(":0", ":all"), RESENC_WCE, "-o", str(tmp_path / "w2")]) == 2
    assert "fold 'all'" in capsys.readouterr().err
