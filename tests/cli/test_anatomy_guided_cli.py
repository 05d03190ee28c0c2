"""Two-stage anatomy-guided multi-task workflow through the command-line entry points, on a tiny network on CPU:

organ model (the session's, ``organ_model``) -> radconf_anatomy_dataset -> plan -> AG-MTN training (augmentation on,
validation, ``--c``) -> radconf_predict running the organ model first, with distance maps -> the same with
precomputed organ masks. Every command runs in-process as ``radconf.cli.<name>.main(argv)`` (the console scripts
themselves run in test_end_to_end.py and test_anatomy_dataset_cli.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

PLANS = "radconfCPUPlans"


def _image(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def _same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing()) and \
        np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetDirection(), b.GetDirection())


def test_organ_model_then_anatomy_guided_multi_task_model(organ_model, in_process, train_in_process, tmp_path,
                                                          capsys):
    from radconf.cli import anatomy_dataset, plan_and_preprocess, predict

    nnunet_dirs = in_process
    phantom, results = organ_model.phantom, nnunet_dirs["nnUNet_results"]

    def train(dataset_id: int, trainer: str, fold: str, *extra: str) -> None:
        train_in_process([str(dataset_id), "3d_fullres", fold, "-tr", trainer, "-p", PLANS, "-device", "cpu",
                          "--iterations_per_epoch", "2", "--seed", "0", *extra])

    # target GTV, organs as CT-filled channels
    assert anatomy_dataset.main(["990", "-d", "991", "-n", "GTVAnatomy", "--target", "gtv", "--anatomy", "bladder",
                                 "rectum", "--encoding", "ct"]) == 0
    assert plan_and_preprocess.main(["-d", "991", "--preset", "cpu", "-c", "3d_fullres", "-np", "1"]) == 0
    plans = json.loads((nnunet_dirs["nnUNet_preprocessed"] / "Dataset991_GTVAnatomy" / f"{PLANS}.json").read_text())
    assert plans["configurations"]["3d_fullres"]["normalization_schemes"] == ["CTNormalization", "NoNormalization",
                                                                             "NoNormalization"]

    trainer = "AnatomyGuidedMultiTaskTrainer"  # with nnU-Net's augmentation, so the masks travel through it
    train(991, trainer, "0", "--epochs", "1", "--distance_weight", "0.5")
    model = results / "Dataset991_GTVAnatomy" / f"{trainer}__{PLANS}__3d_fullres"
    fold = model / "fold_0"
    settings = json.loads((fold / "distance_head.json").read_text())
    assert settings == {"distance_weight": 0.5, "signed": False, "scale_mm": 20.0, "labels": ["gtv"]}
    validation = sorted((fold / "validation").glob("*.nii.gz"))
    assert validation and "distance MSE" in next(fold.glob("training_log_*.txt")).read_text()
    # resume without the flag: the recorded weight is kept
    train(991, trainer, "0", "--epochs", "2", "--c", "--change_settings", "--no_val")
    assert json.loads((fold / "distance_head.json").read_text())["distance_weight"] == 0.5
    log = "".join(p.read_text() for p in fold.glob("training_log_*.txt"))
    assert "Epoch 1" in log and "(weight 0.5)" in log

    # checkpoint round trip through radconf's predictor loader: same weights, three input channels, the head
    from radconf.trainers.anatomy_channels import AnatomyPredictor
    from radconf.trainers.distance_head import DistanceHeadNetwork

    from radconf.inference import load_predictor
    from radconf.models import ModelSpec
    from radconf.nnunet_compat.checkpoints import safe_load_checkpoint

    predictor = load_predictor(ModelSpec("991", trainer, PLANS, "3d_fullres", ("0",)), device="cpu")
    assert isinstance(predictor, AnatomyPredictor) and isinstance(predictor.network, DistanceHeadNetwork)
    assert next(m for m in predictor.network.modules() if isinstance(m, torch.nn.Conv3d)).in_channels == 3
    saved = safe_load_checkpoint(fold / "checkpoint_final.pth")["network_weights"]
    assert all(torch.equal(v, saved[k]) for k, v in predictor.network.state_dict().items())

    # two stages from the CT alone, with distance maps
    images = phantom.folder / "imagesTs"
    case = phantom.test_cases[0]
    ct = _image(images / f"{case}_0000.nii.gz")
    out = tmp_path / "two_stage"
    model_args = ["-d", "991", "-tr", trainer, "-p", PLANS, "-f", "0", "-device", "cpu"]
    assert predict.main(["-i", str(images), "-o", str(out), *model_args, "--disable_tta", "-np", "1",
                         "--anatomy_model", organ_model.spec, "--save_distance"]) == 0
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
    masks = phantom.folder / "labelsTs"
    assert predict.main(["-i", str(images), "-o", str(tmp_path / "given"), *model_args, "--disable_tta", "-np", "1",
                         "--anatomy", str(masks)]) == 0
    assert _same_grid(_image(tmp_path / "given" / f"{case}.nii.gz"), ct)

    # errors: no organ source, and a masks folder without the case
    capsys.readouterr()
    assert predict.main(["-i", str(images), "-o", str(tmp_path / "none"), *model_args]) == 2
    error = capsys.readouterr().err
    assert error.startswith("radconf: error: ") and "--anatomy_model" in error
    empty = tmp_path / "no_masks"
    empty.mkdir()
    assert predict.main(["-i", str(images), "-o", str(tmp_path / "missing"), *model_args, "--anatomy",
                         str(empty)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("radconf: error: ") and case in error
