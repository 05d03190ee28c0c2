"""The real command-line path on a tiny phantom: plan -> train (a few iterations) -> resume -> predict -> evaluate."""
from __future__ import annotations

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
    result = subprocess.run([str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True,
                            timeout=600)
    if expect_ok and result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}")
    return result


def test_plan_train_resume_predict_evaluate(tiny_phantom, nnunet_dirs, tmp_path):
    env = {**os.environ, **{k: str(v) for k, v in nnunet_dirs.items()}}
    raw = tiny_phantom.folder
    _run(["radconf_plan_and_preprocess", "-d", "990", "--preset", "cpu", "-np", "1"], env)
    env["nnUNet_n_proc_DA"] = "0"  # single-threaded augmentation for training (nnU-Net's planner needs it > 0)
    plans = json.loads((nnunet_dirs["nnUNet_preprocessed"] / raw.name / "radconfCPUPlans.json").read_text())
    assert plans["experiment_planner_used"] == "CPUPresetPlanner"

    train = ["radconf_train", "990", "3d_fullres", "0", "-p", "radconfCPUPlans", "-device", "cpu",
             "--iterations-per-epoch", "2"]
    _run(train + ["--epochs", "1"], env)
    fold = nnunet_dirs["nnUNet_results"] / raw.name / "nnUNetTrainer__radconfCPUPlans__3d_fullres" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    assert json.loads((fold / "radconf_training_overrides.json").read_text())["iterations_per_epoch"] == 2
    summary = json.loads((fold / "validation" / "summary.json").read_text())  # nnU-Net's own final validation
    assert "mean" in summary

    _check_restore_matches_nnunet(fold / "checkpoint_final.pth", nnunet_dirs)

    resumed = _run(train + ["--epochs", "2", "--c", "--no-val"], env)  # continues at epoch 1, trains one more
    assert "Epoch 1" in resumed.stdout and "Epoch 0\n" not in resumed.stdout

    predictions = tmp_path / "predictions"
    _run(["radconf_predict", "-i", str(raw / "imagesTs"), "-o", str(predictions), "-d", "990", "-c", "3d_fullres",
          "-p", "radconfCPUPlans", "-f", "0", "-device", "cpu", "--disable_tta", "-np", "1"], env)
    case = tiny_phantom.test_cases[0]
    prediction = sitk.ReadImage(str(predictions / f"{case}.nii.gz"))
    reference = sitk.ReadImage(str(raw / "labelsTs" / f"{case}.nii.gz"))
    assert prediction.GetSize() == reference.GetSize()
    assert np.allclose(prediction.GetSpacing(), reference.GetSpacing())
    assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2, 3, 4}

    evaluation = tmp_path / "evaluation"
    _run(["radconf_evaluate", "-ref", str(raw / "labelsTs"), "-pred", str(predictions), "-o", str(evaluation),
          "-djfile", str(raw / "dataset.json")], env)
    assert (evaluation / "metrics_per_case.csv").is_file() and (evaluation / "summary.json").is_file()


def test_cli_errors_are_one_clear_line(nnunet_dirs, tiny_phantom):
    env = {**os.environ, **{k: str(v) for k, v in nnunet_dirs.items()}}
    unknown_trainer = _run(["radconf_train", "990", "3d_fullres", "0", "-tr", "NoSuchTrainer"], env,
                           expect_ok=False)
    assert unknown_trainer.returncode == 2
    assert "Unknown trainer 'NoSuchTrainer'" in unknown_trainer.stderr
    assert "nnUNetTrainer_5epochs" in unknown_trainer.stderr
    assert "Traceback" not in unknown_trainer.stderr

    unknown_dataset = _run(["radconf_plan_and_preprocess", "-d", "777", "--preset", "cpu"], env, expect_ok=False)
    assert unknown_dataset.returncode == 2 and "Dataset 777 not found" in unknown_dataset.stderr
    assert "Dataset990_Phantom" in unknown_dataset.stderr  # says what is there

    no_plans = _run(["radconf_train", "990", "3d_fullres", "0", "-p", "radconfCPUPlans"], env, expect_ok=False)
    assert no_plans.returncode == 2 and "radconf_plan_and_preprocess" in no_plans.stderr


def _check_restore_matches_nnunet(checkpoint, nnunet_dirs) -> None:
    """radconf's weights_only restore must leave the trainer exactly as nnU-Net's own path-based restore."""
    import torch

    from radconf.nnunet_compat.checkpoints import (
        restore_trainer_state,
        safe_load_checkpoint,
    )
    from radconf.training import build_trainer

    ours = build_trainer(990, "3d_fullres", 0, plans="radconfCPUPlans", device="cpu", continue_training=True)
    restore_trainer_state(ours, safe_load_checkpoint(checkpoint))
    theirs = build_trainer(990, "3d_fullres", 0, plans="radconfCPUPlans", device="cpu", continue_training=True)
    theirs.load_checkpoint(str(checkpoint))
    assert ours.current_epoch == theirs.current_epoch == 1
    assert ours._best_ema == theirs._best_ema
    assert ours.logger.get_checkpoint() == theirs.logger.get_checkpoint()
    for (k, a), (_, b) in zip(ours.network.state_dict().items(), theirs.network.state_dict().items()):
        assert torch.equal(a, b), k
    assert str(ours.optimizer.state_dict()) == str(theirs.optimizer.state_dict())


def test_seeded_training_repeats_exactly(tiny_phantom, nnunet_dirs):
    import torch

    from radconf.nnunet_compat.checkpoints import safe_load_checkpoint

    env = {**os.environ, **{k: str(v) for k, v in nnunet_dirs.items()}}
    _run(["radconf_plan_and_preprocess", "-d", "990", "--preset", "cpu", "-c", "3d_fullres", "-np", "1"], env)
    env["nnUNet_n_proc_DA"] = "0"
    fold = (nnunet_dirs["nnUNet_results"] / tiny_phantom.folder.name / "nnUNetTrainerNoDA__radconfCPUPlans__3d_fullres"
            / "fold_0")
    weights = []
    for seed in (7, 7, 8):
        _run(["radconf_train", "990", "3d_fullres", "0", "-tr", "nnUNetTrainerNoDA", "-p", "radconfCPUPlans",
              "-device", "cpu", "--epochs", "1", "--iterations-per-epoch", "2", "--no-val", "--seed", str(seed)], env)
        weights.append(safe_load_checkpoint(fold / "checkpoint_final.pth")["network_weights"])
        shutil.rmtree(fold)
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])  # same seed: same network
    assert not all(torch.equal(weights[0][k], weights[2][k]) for k in weights[0])  # another seed: another one
