"""radconf_plan_and_preprocess --ct_window: the window recorded in nnU-Net's own plans and applied by its
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
