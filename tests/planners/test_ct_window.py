"""radconf_plan_and_preprocess --ct_window and --clahe: the schemes recorded in nnU-Net's own plans and applied by its
preprocessing; refusals before anything is written."""
from __future__ import annotations

import json

import numpy as np
import pytest

from radconf.cli import plan_and_preprocess
from tests.conftest import planning_as_threads

NAME = "Dataset990_Phantom"


def test_window_planned_and_preprocessed(tiny_phantom, in_process, monkeypatch, capsys):
    planning_as_threads(monkeypatch)
    assert plan_and_preprocess.main(["-d", "990", "--preset", "cpu", "-np", "1", "--ct_window", "-800", "800"]) == 0
    folder = in_process["nnUNet_preprocessed"] / NAME
    plans = json.loads((folder / "radconfCPUPlans_CTw-800_800.json").read_text())
    configuration = plans["configurations"]["3d_fullres"]
    assert configuration["normalization_schemes"] == ["CTNormalization"]
    assert plans["foreground_intensity_properties_per_channel"]["0"] == {
        "percentile_00_5": -800.0, "percentile_99_5": 800.0, "mean": 0.0, "std": 800.0}
    assert plans["radconf_intensity"]["0"] == {"scheme": "ct_window", "window": [-800.0, 800.0]}
    fingerprint = json.loads((folder / "dataset_fingerprint.json").read_text())
    assert fingerprint["foreground_intensity_properties_per_channel"]["0"]["mean"] != 0.0  # untouched
    data_folder = folder / configuration["data_identifier"]
    assert "CTw-800_800" in data_folder.name and not (folder / "nnUNetPlans_3d_fullres").exists()
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    dataset = infer_dataset_class(str(data_folder))(str(data_folder))
    data = np.asarray(dataset.load_case(dataset.identifiers[0])[0][:])
    # the phantom holds air (-1000 HU) and bone (> 800 HU after blur? at least well above soft tissue): both clipped
    assert data.min() == pytest.approx(-1.0, abs=1e-6) and data.max() <= 1.0 + 1e-6
    assert "CTw-800_800" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--ct_window", "800", "-800"], "LO < HI"),
    (["--ct_window", "0", "0"], "LO < HI"),
    (["--window_channels", "0"], "needs --ct_window"),
    (["--ct_window", "-800", "800", "--window_channels", "3"], "has channels 0"),
    (["-overwrite_target_spacing", "2", "2"], "expected 3 arguments"),
    (["--clahe", "0", "0"], "--clahe must be distinct"),
    (["--clahe", "1"], "--clahe 1:"),
    (["--clahe", "-1"], "-1 must be 0 or more"),
    (["--ct_window", "-800", "800", "-overwrite_plans_name", "radconfCPUPlans"], "without radconf's intensity"),
])
def test_bad_windows_refused_before_anything_is_written(tiny_phantom, in_process, capsys, argv, message):
    code = None
    try:
        code = plan_and_preprocess.main(["-d", "990", "--preset", "cpu", "-np", "1", *argv])
    except SystemExit as stopped:  # argparse
        code = stopped.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert not any((in_process["nnUNet_preprocessed"]).iterdir())


def test_clahe_planned_trained_and_predicted_with_the_same_preprocessing(tiny_phantom, in_process, monkeypatch,
                                                                           train_in_process, capsys):
    """--ct_window with --clahe: recorded in the plans, preprocessed by radconf's preprocessor, and radconf_predict's
    predictor preprocesses a raw case exactly as training did."""
    from radconf.cli import predict
    from radconf.inference import load_predictor
    from radconf.models import ModelSpec
    from radconf.nnunet_compat.intensity import RadconfCLAHEPreprocessor

    planning_as_threads(monkeypatch)
    argv = ["-d", "990", "--preset", "cpu", "-np", "1", "--ct_window", "-800", "800", "--clahe"]
    assert plan_and_preprocess.main(argv) == 0
    assert "CLAHE recorded" in capsys.readouterr().out
    folder = in_process["nnUNet_preprocessed"] / NAME
    plans_name = "radconfCPUPlans_CTw-800_800_CLAHE"
    plans = json.loads((folder / f"{plans_name}.json").read_text())
    configuration = plans["configurations"]["3d_fullres"]
    assert configuration["normalization_schemes"] == ["RadconfCLAHE"]
    assert configuration["preprocessor_name"] == "RadconfCLAHEPreprocessor"
    assert plans["radconf_intensity"]["0"] == {"scheme": "clahe", "window": [-800.0, 800.0], "window_from": "window",
                                               "clip_limit": 0.01}
    assert configuration["data_identifier"].endswith("CTw-800_800_CLAHE")
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    data_folder = folder / configuration["data_identifier"]
    dataset = infer_dataset_class(str(data_folder))(str(data_folder))
    case = tiny_phantom.train_cases[0]
    trained_on = np.asarray(dataset.load_case(case)[0][:])
    assert trained_on.min() >= -1 and trained_on.max() <= 1 and len(np.unique(trained_on)) > 50

    train_in_process(["990", "3d_fullres", "all", "-tr", "nnUNetTrainerNoDA", "-p", plans_name, "-device", "cpu",
                      "--epochs", "1", "--iterations_per_epoch", "1", "--no_val"])
    predictor = load_predictor(ModelSpec("990", "nnUNetTrainerNoDA", plans_name, "3d_fullres", ("all",)),
                               device="cpu")
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    assert type(preprocessor) is RadconfCLAHEPreprocessor
    image = tiny_phantom.folder / "imagesTr" / f"{case}_0000.nii.gz"
    at_prediction, _, _ = preprocessor.run_case([str(image)], None, predictor.plans_manager,
                                                predictor.configuration_manager, predictor.dataset_json)
    np.testing.assert_array_equal(at_prediction, trained_on)
    images = tiny_phantom.folder / "imagesTs"
    output = in_process["nnUNet_results"].parent / "clahe_predictions"
    model = f"990:nnUNetTrainerNoDA:{plans_name}:3d_fullres:all"
    assert predict.main(["-i", str(images), "-o", str(output), "-m", model, "-device", "cpu"]) == 0
    assert sorted(p.name for p in output.glob("*.nii.gz")) == sorted(f"{c}.nii.gz" for c in tiny_phantom.test_cases)


def test_clahe_alone_clips_to_nnunets_percentiles(tiny_phantom, in_process, monkeypatch):
    planning_as_threads(monkeypatch)
    assert plan_and_preprocess.main(["-d", "990", "--preset", "cpu", "-np", "1", "--clahe", "0", "--no_pp"]) == 0
    folder = in_process["nnUNet_preprocessed"] / NAME
    plans = json.loads((folder / "radconfCPUPlans_CLAHE.json").read_text())
    fingerprint = json.loads((folder / "dataset_fingerprint.json").read_text())
    percentiles = fingerprint["foreground_intensity_properties_per_channel"]["0"]
    assert plans["radconf_intensity"]["0"]["window"] == [percentiles["percentile_00_5"],
                                                         percentiles["percentile_99_5"]]
    assert plans["radconf_intensity"]["0"]["window_from"] == "labelled-voxel percentiles"
    assert plans["foreground_intensity_properties_per_channel"]["0"] == percentiles
