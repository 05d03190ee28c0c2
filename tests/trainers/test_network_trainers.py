"""The papers' networks as trainers (radconf.trainers.networks): each trains a step on the tiny phantom's cpu-preset
plans and predicts a case through radconf's predictor (nnU-Net's sliding window); 2D networks refuse 3D."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from radconf.errors import InvalidInput

from .conftest import PLANS


def test_2d_networks_refuse_a_3d_configuration(trainer_dirs, trainer_datasets):
    from radconf.training import TrainingOptions, train

    with pytest.raises(InvalidInput, match=r"ResNet34FPNTrainer is a 2D network.*\(-c 2d\)"):
        train(trainer_datasets.ids["plain"], "3d_fullres", 0, trainer="ResNet34FPNTrainer", plans=PLANS,
              device="cpu", options=TrainingOptions(epochs=1, iterations_per_epoch=1, validate=False))
    assert not any(trainer_dirs["nnUNet_results"].rglob("*.pth"))


@pytest.mark.parametrize("trainer, configuration", [("AttentionUNetTrainerNoDA", "3d_fullres"),
                                                    ("AttentionUNetTrainerNoDA", "2d"),
                                                    ("ResNet34FPNTrainerNoDA", "2d"),
                                                    ("DeepLabV3PlusTrainerNoDA", "2d")])
def test_trainer_trains_and_predicts_a_case(trainer, configuration, trainer_dirs, trainer_datasets, tmp_path):
    from radconf.inference import RunOptions, predict_model
    from radconf.models import ModelSpec
    from radconf.nnunet_compat.checkpoints import safe_load_checkpoint
    from radconf.training import TrainingOptions, train

    dataset = trainer_datasets.ids["plain"]
    if configuration not in trainer_datasets.configurations["plain"]:
        pytest.skip(f"{configuration} is not preprocessed for the plain dataset")
    torch.manual_seed(0)
    folder = train(dataset, configuration, 0, trainer=trainer, plans=PLANS, device="cpu",
                   options=TrainingOptions(epochs=1, iterations_per_epoch=1, validate=False))
    checkpoint = safe_load_checkpoint(folder / "checkpoint_final.pth")  # weights_only
    assert checkpoint["trainer_name"] == trainer
    raw = next(trainer_dirs["nnUNet_raw"].glob(f"Dataset{dataset}_*"))
    image = min((raw / "imagesTr").glob("*_0000.nii.gz"))
    images = tmp_path / "images"
    images.mkdir()
    (images / image.name).symlink_to(image)
    spec = ModelSpec(dataset=str(dataset), trainer=trainer, plans=PLANS, configuration=configuration, folds=("0",))
    predict_model(images, tmp_path / "out", spec, run=RunOptions(device="cpu", num_processes=1,
                                                                 use_mirroring=False))
    case = image.name[:-len("_0000.nii.gz")]
    prediction, source = sitk.ReadImage(str(tmp_path / "out" / f"{case}.nii.gz")), sitk.ReadImage(str(image))
    assert prediction.GetSize() == source.GetSize() and np.allclose(prediction.GetOrigin(), source.GetOrigin())
    labels = {int(v) for v in json.loads((raw / "dataset.json").read_text())["labels"].values()}
    assert set(np.unique(sitk.GetArrayFromImage(prediction)).tolist()) <= labels
