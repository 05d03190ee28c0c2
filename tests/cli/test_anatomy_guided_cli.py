"""Two-stage anatomy-guided multi-task workflow on the command line, on a tiny network on CPU:

organ model -> radconf_anatomy_dataset -> plan -> AG-MTN training (augmentation on, validation, ``--c``) ->
radconf_predict running the organ model first, with distance maps -> the same with precomputed organ masks.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

BIN = Path(sys.executable).parent
PLANS = "radconfCPUPlans"


def _run(command: list[str], env: dict[str, str], expect_failure: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True,
                            timeout=900)
    if (result.returncode != 0) != expect_failure:
        pytest.fail(f"{' '.join(command)} returned {result.returncode}:\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}")
    return result


def _train(dataset_id: int, trainer: str, fold: str, env: dict[str, str], *extra: str) -> None:
    _run(["radconf_train", str(dataset_id), "3d_fullres", fold, "-tr", trainer, "-p", PLANS, "-device", "cpu",
          "--iterations-per-epoch", "2", "--seed", "0", *extra], {**env, "nnUNet_n_proc_DA": "0"})


def _image(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing()) and \
        np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetDirection(), b.GetDirection())


def test_organ_model_then_anatomy_guided_multi_task_model(tiny_phantom, nnunet_dirs, tmp_path):
    env = {**os.environ, **{k: str(v) for k, v in nnunet_dirs.items()}}
    raw, results = nnunet_dirs["nnUNet_raw"], nnunet_dirs["nnUNet_results"]
    _run(["radconf_plan_and_preprocess", "-d", "990", "--preset", "cpu", "-c", "3d_fullres", "-np", "1"], env)
    _train(990, "nnUNetTrainerNoDA", "all", env, "--epochs", "1", "--no-val")
    organ_spec = f"990:nnUNetTrainerNoDA:{PLANS}:3d_fullres:all"

    # target GTV, organs as CT-filled channels
    _run(["radconf_anatomy_dataset", "990", "-d", "991", "-n", "GTVAnatomy", "--target", "gtv", "--anatomy",
          "bladder", "rectum", "--encoding", "ct"], env)
    _run(["radconf_plan_and_preprocess", "-d", "991", "--preset", "cpu", "-c", "3d_fullres", "-np", "1"], env)
    plans = json.loads((nnunet_dirs["nnUNet_preprocessed"] / "Dataset991_GTVAnatomy" / f"{PLANS}.json").read_text())
    assert plans["configurations"]["3d_fullres"]["normalization_schemes"] == ["CTNormalization", "NoNormalization",
                                                                             "NoNormalization"]

    trainer = "AnatomyGuidedMultiTaskTrainer"  # with nnU-Net's augmentation, so the masks travel through it
    _train(991, trainer, "0", env, "--epochs", "1", "--distance_weight", "0.5")
    model = results / "Dataset991_GTVAnatomy" / f"{trainer}__{PLANS}__3d_fullres"
    fold = model / "fold_0"
    settings = json.loads((fold / "distance_head.json").read_text())
    assert settings == {"distance_weight": 0.5, "signed": False, "scale_mm": 20.0, "labels": ["gtv"]}
    validation = sorted((fold / "validation").glob("*.nii.gz"))
    assert validation and "distance MSE" in next(fold.glob("training_log_*.txt")).read_text()
    # resume without the flag: the recorded weight is kept
    _train(991, trainer, "0", env, "--epochs", "2", "--c", "--no-val")
    assert json.loads((fold / "distance_head.json").read_text())["distance_weight"] == 0.5
    log = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "Epoch 1" in log and "(weight 0.5)" in log

    # checkpoint round trip through radconf's predictor loader: same weights, three input channels, the head
    from radconf.trainers.anatomy_channels import AnatomyPredictor
    from radconf.trainers.distance_head import DistanceHeadNetwork

    from radconf.inference import load_predictor
    from radconf.models import ModelSpec
    from radconf.nnunet_compat.checkpoints import safe_load_checkpoint

    os.environ.update({k: str(v) for k, v in nnunet_dirs.items()})
    predictor = load_predictor(ModelSpec("991", trainer, PLANS, "3d_fullres", ("0",)), device="cpu")
    assert isinstance(predictor, AnatomyPredictor) and isinstance(predictor.network, DistanceHeadNetwork)
    assert next(m for m in predictor.network.modules() if isinstance(m, torch.nn.Conv3d)).in_channels == 3
    saved = safe_load_checkpoint(fold / "checkpoint_final.pth")["network_weights"]
    assert all(torch.equal(v, saved[k]) for k, v in predictor.network.state_dict().items())

    # two stages from the CT alone, with distance maps
    images = tiny_phantom.folder / "imagesTs"
    case = tiny_phantom.test_cases[0]
    ct = _image(images / f"{case}_0000.nii.gz")
    out = tmp_path / "two_stage"
    _run(["radconf_predict", "-i", str(images), "-o", str(out), "-d", "991", "-tr", trainer, "-p", PLANS, "-f", "0",
          "-device", "cpu", "--disable_tta", "-np", "1", "--anatomy_model", organ_spec, "--save_distance"], env)
    organs = _image(out / "anatomy_predictions" / f"{case}.nii.gz")
    segmentation = _image(out / f"{case}.nii.gz")
    assert _same_grid(organs, ct) and _same_grid(segmentation, ct)
    assert set(np.unique(sitk.GetArrayFromImage(segmentation))) <= {0, 1}
    distance = _image(out / "distance_maps" / f"{case}_gtv.nii.gz")
    values = sitk.GetArrayFromImage(distance)
    assert _same_grid(distance, ct) and values.dtype == np.float32
    assert np.isfinite(values).all() and values.min() >= 0
    assert not [p for p in out.iterdir() if p.name.startswith(".anatomy_inputs")]  # temporary inputs removed

    # precomputed organ masks instead of the organ model
    masks = tiny_phantom.folder / "labelsTs"
    _run(["radconf_predict", "-i", str(images), "-o", str(tmp_path / "given"), "-d", "991", "-tr", trainer, "-p",
          PLANS, "-f", "0", "-device", "cpu", "--disable_tta", "-np", "1", "--anatomy", str(masks)], env)
    assert _same_grid(_image(tmp_path / "given" / f"{case}.nii.gz"), ct)

    # errors: no organ source, and a masks folder without the case
    failed = _run(["radconf_predict", "-i", str(images), "-o", str(tmp_path / "none"), "-d", "991", "-tr", trainer,
                   "-p", PLANS, "-f", "0", "-device", "cpu"], env, expect_failure=True)
    assert failed.returncode == 2 and "--anatomy_model" in failed.stderr + failed.stdout
    empty = tmp_path / "no_masks"
    empty.mkdir()
    failed = _run(["radconf_predict", "-i", str(images), "-o", str(tmp_path / "missing"), "-d", "991", "-tr", trainer,
                   "-p", PLANS, "-f", "0", "-device", "cpu", "--anatomy", str(empty)], env, expect_failure=True)
    assert failed.returncode == 2 and case in failed.stderr + failed.stdout
