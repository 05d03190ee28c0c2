"""The optimiser, learning rate, weight decay and last epochs' loss of any trainer (``radconf.optimisation``).

The settings land in the optimiser nnU-Net builds, are recorded, and a resume (``--c``) keeps them: the learning
rate of the resumed epoch is checked against nnU-Net's poly schedule by hand.
"""
from __future__ import annotations

import json

import pytest
import torch

from radconf.errors import InvalidInput
from radconf.training_options import TrainingOptions

PLANS = "radconfCPUPlans"


@pytest.mark.parametrize("settings, flag", [
    ({"optimizer_name": "rmsprop"}, "--optimizer"), ({"initial_lr": 0.0}, "--initial_lr"),
    ({"initial_lr": float("nan")}, "--initial_lr"), ({"weight_decay": -1e-3}, "--weight_decay"),
    ({"final_loss": "focal"}, "--final_loss"), ({"final_epochs": 3}, "--final_loss sqrt_dice"),
    ({"final_loss": "sqrt_dice", "final_epochs": 0}, "--final_epochs"),
])
def test_bad_values_are_refused_naming_the_flag(settings, flag):
    with pytest.raises(InvalidInput, match=flag):
        TrainingOptions(settings=settings)


def test_more_final_epochs_than_epochs_is_refused():
    with pytest.raises(InvalidInput, match="--final_epochs 12 is more than --epochs 5"):
        TrainingOptions(epochs=5, settings={"final_loss": "sqrt_dice", "final_epochs": 12})


def test_every_trainer_accepts_the_common_settings():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from radconf.trainers.confidence import ConfidenceTrainer

    from radconf.training_options import COMMON_SETTINGS, accepted_settings, check_settings

    for trainer in (nnUNetTrainer, ConfidenceTrainer):
        assert accepted_settings(trainer)[:len(COMMON_SETTINGS)] == COMMON_SETTINGS
        check_settings(trainer, {"optimizer_name": "adam", "initial_lr": 1e-3, "final_loss": "sqrt_dice"})


def _fold(nnunet_dirs, trainer="nnUNetTrainer"):
    return next(nnunet_dirs["nnUNet_results"].glob("Dataset990_*")) / f"{trainer}__{PLANS}__3d_fullres" / "fold_0"


def test_adam_lands_in_the_optimiser_and_survives_resume(planned_phantom, train_in_process, nnunet_dirs):
    from radconf.cli import train

    base = ["990", "3d_fullres", "0", "-p", PLANS, "-device", "cpu", "--iterations_per_epoch", "1", "--no_val"]
    train_in_process([*base, "--epochs", "2", "--optimizer", "adam", "--initial_lr", "5e-4", "--weight_decay",
                      "1e-4", "--seed", "0"])
    fold = _fold(nnunet_dirs)
    record = json.loads((fold / "radconf_training_settings.json").read_text())
    assert record["settings"]["optimizer_name"] == "adam" and record["settings"]["initial_lr"] == 5e-4
    assert record["settings"]["weight_decay"] == 1e-4
    assert record["optimizer"]["name"] == "adam" and record["optimizer"]["weight_decay"] == 1e-4
    state = torch.load(fold / "checkpoint_final.pth", weights_only=False, map_location="cpu")["optimizer_state"]
    assert "exp_avg" in next(iter(state["state"].values()))  # Adam's moments, not SGD's momentum buffer
    assert state["param_groups"][0]["lr"] == pytest.approx(5e-4 * (1 - 1 / 2) ** 0.9)  # epoch 1 of 2

    resume = [*base, "--c"]
    assert train.main([*resume, "--optimizer", "sgd"]) != 0  # the checkpoint holds Adam's state
    assert train.main([*resume, "--initial_lr", "1e-2"]) != 0  # contradicts the record without --change_settings
    train_in_process([*resume, "--epochs", "3", "--change_settings"])
    state = torch.load(fold / "checkpoint_final.pth", weights_only=False, map_location="cpu")["optimizer_state"]
    group = state["param_groups"][0]
    assert group["lr"] == pytest.approx(5e-4 * (1 - 2 / 3) ** 0.9) and group["weight_decay"] == 1e-4
    assert "exp_avg" in next(iter(state["state"].values()))
    record = json.loads((fold / "radconf_training_settings.json").read_text())
    assert record["epochs"] == 3 and record["settings"]["optimizer_name"] == "adam"


def test_final_loss_switches_the_dice_term_for_the_last_epochs(planned_phantom, nnunet_dirs):
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    from radconf.losses import SqrtDiceLoss
    from radconf.optimisation import install_final_loss
    from radconf.training import build_trainer, configure_trainer

    trainer = build_trainer(990, "3d_fullres", 0, trainer="nnUNetTrainer", plans=PLANS, device="cpu")
    configure_trainer(trainer, TrainingOptions(epochs=4, settings={"final_loss": "sqrt_dice", "final_epochs": 2,
                                                                   "optimizer_name": "adamw"}))
    trainer.initialize()
    install_final_loss(trainer)
    assert type(trainer.optimizer) is torch.optim.AdamW and trainer.optimizer.defaults["lr"] == 1e-3

    def dice_terms():
        return [type(m) for m in trainer.loss.modules() if isinstance(m, (MemoryEfficientSoftDiceLoss, SqrtDiceLoss))]

    for epoch, expected in ((0, MemoryEfficientSoftDiceLoss), (1, MemoryEfficientSoftDiceLoss), (2, SqrtDiceLoss),
                            (3, SqrtDiceLoss)):
        trainer.current_epoch = epoch
        trainer.on_train_epoch_start()
        assert dice_terms() == [expected], epoch
    with open(trainer.log_file) as log:
        assert log.read().count("the loss is sqrt_dice in place of the Dice term (the last 2 epochs)") == 1


def test_final_loss_is_refused_by_a_loss_without_a_dice_term(planned_phantom, nnunet_dirs):
    from radconf.optimisation import install_final_loss
    from radconf.training import build_trainer, configure_trainer

    trainer = build_trainer(990, "3d_fullres", 0, trainer="CELossTrainer", plans=PLANS, device="cpu")
    configure_trainer(trainer, TrainingOptions(epochs=3, settings={"final_loss": "sqrt_dice", "final_epochs": 1}))
    trainer.initialize()
    with pytest.raises(InvalidInput, match="no nnU-Net Dice term for --final_loss sqrt_dice"):
        install_final_loss(trainer)
