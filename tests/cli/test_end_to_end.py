"""The real command-line path on a tiny phantom: plan -> train (a few iterations) -> resume -> predict -> evaluate.

The console scripts radconf_plan_and_preprocess, radconf_train, radconf_predict and radconf_evaluate run once each
as child processes (this file's chain); resuming, the error messages and repeatable seeded training run in-process
through ``radconf.cli.<name>.main(argv)``.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

BIN = Path(sys.executable).parent


def _run(command: list[str], env: dict[str, str], expect_ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True, check=False,
                            timeout=600)
    if expect_ok and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}")
    return result


def console_environment(nnunet_dirs: dict[str, Path]) -> dict[str, str]:
    """The environment of a console-script child: the test's nnU-Net folders, and one nnU-Net worker process (its
    validation and export pools otherwise start 8 processes, each importing torch, on a 2-core machine)."""
    environment = {**os.environ, **{k: str(v) for k, v in nnunet_dirs.items()}, "nnUNet_def_n_proc": "1"}
    environment.pop("nnUNet_n_proc_DA", None)
    return environment


def _dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    both = int(reference.sum()) + int(prediction.sum())
    return 2.0 * int(np.logical_and(reference, prediction).sum()) / both if both else float("nan")


def test_plan_train_resume_predict_evaluate(tiny_phantom, in_process, tmp_path, capsys):
    from radconf.cli import train
    from radconf.nnunet_compat.checkpoints import safe_load_checkpoint

    nnunet_dirs = in_process
    env = console_environment(nnunet_dirs)
    raw = tiny_phantom.folder
    _run(["radconf_plan_and_preprocess", "-d", "990", "--preset", "cpu", "-np", "1"], env)
    plans = json.loads((nnunet_dirs["nnUNet_preprocessed"] / raw.name / "radconfCPUPlans.json").read_text())
    assert plans["experiment_planner_used"] == "CPUPresetPlanner"

    train_args = ["990", "3d_fullres", "0", "-p", "radconfCPUPlans", "-device", "cpu", "--iterations_per_epoch", "2"]
    # single-threaded augmentation for training (nnU-Net's planner needs it > 0)
    _run(["radconf_train", *train_args, "--epochs", "1"], {**env, "nnUNet_n_proc_DA": "0"})
    fold = nnunet_dirs["nnUNet_results"] / raw.name / "nnUNetTrainer__radconfCPUPlans__3d_fullres" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    assert json.loads((fold / "radconf_training_overrides.json").read_text())["iterations_per_epoch"] == 2
    summary = json.loads((fold / "validation" / "summary.json").read_text())  # nnU-Net's own final validation
    assert "mean" in summary
    assert sorted(p.name for p in (fold / "validation").glob("*.nii.gz")) == ["phantom_000.nii.gz"]  # fold 0 of 5

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as local:  # continues at epoch 1, trains one more
        local.setenv("nnUNet_n_proc_DA", "0")
        assert train.main([*train_args, "--epochs", "2", "--c", "--change_settings", "--no_val"]) == 0
    resumed = capsys.readouterr().out
    assert "Epoch 1" in resumed and "Epoch 0\n" not in resumed
    assert safe_load_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 2  # epochs 0 and 1 done

    predictions = tmp_path / "predictions"
    _run(["radconf_predict", "-i", str(raw / "imagesTs"), "-o", str(predictions), "-d", "990", "-c", "3d_fullres",
          "-p", "radconfCPUPlans", "-f", "0", "-device", "cpu", "--disable_tta", "-np", "1"], env)
    case = tiny_phantom.test_cases[0]
    prediction = sitk.ReadImage(str(predictions / f"{case}.nii.gz"))
    reference = sitk.ReadImage(str(raw / "labelsTs" / f"{case}.nii.gz"))
    assert prediction.GetSize() == reference.GetSize()
    assert np.allclose(prediction.GetSpacing(), reference.GetSpacing())
    assert np.allclose(prediction.GetOrigin(), reference.GetOrigin())
    assert np.allclose(prediction.GetDirection(), reference.GetDirection())
    predicted, expected = sitk.GetArrayFromImage(prediction), sitk.GetArrayFromImage(reference)
    assert set(np.unique(predicted)) <= {0, 1, 2, 3, 4}

    evaluation = tmp_path / "evaluation"
    _run(["radconf_evaluate", "-ref", str(raw / "labelsTs"), "-pred", str(predictions), "-o", str(evaluation),
          "-djfile", str(raw / "dataset.json")], env)
    assert (evaluation / "metrics_per_case.csv").is_file() and (evaluation / "summary.json").is_file()
    # the evaluation's numbers are those of the files: Dice of each structure recomputed here with numpy
    labels = {name: value for name, value in json.loads((raw / "dataset.json").read_text())["labels"].items()
              if name != "background"}
    rows = list(csv.DictReader((evaluation / "metrics_per_case.csv").open()))
    assert {r["case"] for r in rows} == {case}
    by_structure = {r["structure"]: r for r in rows}
    assert set(by_structure) == set(labels)
    written = json.loads((evaluation / "summary.json").read_text())
    assert written["cases"] == [case] and written["missing_cases"] == []
    dices = {}
    for name, value in labels.items():
        dices[name] = _dice(expected == value, predicted == value)
        assert (expected == value).any() and not np.isnan(dices[name])  # the test case holds every structure
        assert float(by_structure[name]["dice"]) == pytest.approx(dices[name], abs=1e-6), name
        # one case: the summary's mean is that case's value
        assert written["per_structure"][name]["dice"]["mean"] == pytest.approx(dices[name], abs=1e-6), name
    assert written["mean_dice"] == pytest.approx(np.mean(list(dices.values())), abs=1e-6)


def test_cli_errors_are_one_clear_line(tiny_phantom, nnunet_dirs, capsys):
    """User errors of radconf_train and radconf_plan_and_preprocess: exit 2, one ``radconf: error:`` line on stderr
    saying what to do, no traceback (in-process; the console scripts run in the chain above)."""
    from radconf.cli import plan_and_preprocess, train

    def error_of(main, argv: list[str]) -> str:
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.err.startswith("radconf: error: ") and "Traceback" not in captured.err
        assert len(captured.err.strip().splitlines()) == 1, captured.err
        return captured.err

    unknown_trainer = error_of(train.main, ["990", "3d_fullres", "0", "-tr", "NoSuchTrainer"])
    assert "Unknown trainer 'NoSuchTrainer'" in unknown_trainer
    assert "radconf_train --list_trainers" in unknown_trainer

    unknown_dataset = error_of(plan_and_preprocess.main, ["-d", "777", "--preset", "cpu"])
    assert "Dataset 777 not found" in unknown_dataset
    assert "Dataset990_Phantom" in unknown_dataset  # says what is there

    no_plans = error_of(train.main, ["990", "3d_fullres", "0", "-p", "radconfCPUPlans"])
    assert "radconf_plan_and_preprocess" in no_plans


def test_seeded_training_repeats_exactly(organ_model, train_in_process):
    """The session's organ model was trained with seed ``organ_model.seed``: the same command and seed gives the
    same network, another seed another one (in-process, single-threaded augmentation)."""
    import torch

    from radconf.nnunet_compat.checkpoints import safe_load_checkpoint

    checkpoint = organ_model.fold / "checkpoint_final.pth"
    weights = [safe_load_checkpoint(checkpoint)["network_weights"]]
    shutil.rmtree(organ_model.fold)
    for seed in (organ_model.seed, organ_model.seed + 1):
        train_in_process([*organ_model.train_args, "--seed", str(seed)])
        weights.append(safe_load_checkpoint(checkpoint)["network_weights"])
        shutil.rmtree(organ_model.fold)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # same seed: same network
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])  # another seed: another one
