"""The optimiser and the last epochs' loss of any trainer: ``radconf_train --optimizer sgd|adam|adamw --initial_lr LR
--weight_decay WD`` and ``--final_loss sqrt_dice --final_epochs 10``.

Every trainer, radconf's or nnU-Net's, accepts these settings (``radconf.training_options.COMMON_SETTINGS``). Not
given, the trainer keeps its own optimiser (nnU-Net: SGD, momentum 0.99, Nesterov, lr 1e-2, weight decay 3e-5) and
loss. ``--optimizer adam``/``adamw`` without ``--initial_lr`` starts at 1e-3 (seeds 000, 002 and 003 train with
Adam at 1e-3 or below); the schedule stays nnU-Net's poly decay. The run records the settings and the optimiser it
built (``radconf_training_settings.json``); ``--c`` resumes with them, and never with another optimiser class (the
checkpoint holds that optimiser's state). ``--final_loss`` replaces the Dice term of nnU-Net's Dice + CE (or Dice +
BCE) loss, at every deep-supervision level, for the last ``--final_epochs`` epochs (seed 004: Dice, then the
sensitivity-oriented sqrt-Dice for the last 10 epochs); a trainer whose loss has no such Dice term refuses it before
training starts.
"""
from __future__ import annotations

import copy

from radconf.errors import InvalidInput
from radconf.nnunet_compat.checkpoints import plain
from radconf.nnunet_compat.optim import (
    DEFAULT_LR,
    describe_optimizer,
    set_weight_decay,
    switch_loss_at,
    use_optimizer,
)

DEFAULT_FINAL_EPOCHS = 10  # seed 004


def apply_optimizer_settings(trainer, settings) -> None:
    """Before ``trainer.initialize()``: the optimiser asked for (its default learning rate unless one is given)."""
    name = settings.get("optimizer_name")
    if name is None:
        return
    if settings.get("initial_lr") is None:
        trainer.initial_lr = DEFAULT_LR[name]
    use_optimizer(trainer, name)


def _final_dice_class(name: str) -> type:
    from radconf.losses import BoundaryWeightedDiceLoss, SqrtDiceLoss

    return {"sqrt_dice": SqrtDiceLoss, "boundary_dice": BoundaryWeightedDiceLoss}[name]


def install_final_loss(trainer) -> None:
    """After ``trainer.initialize()``: the switch to ``final_loss`` for the last ``final_epochs`` epochs.

    Raises:
        InvalidInput: more final epochs than epochs, or a loss without nnU-Net's Dice term.
    """
    from radconf.losses import swap_dice

    name = getattr(trainer, "final_loss", None)
    if name is None:
        return
    final_epochs = getattr(trainer, "final_epochs", None) or DEFAULT_FINAL_EPOCHS
    trainer.final_epochs = final_epochs
    if final_epochs > trainer.num_epochs:
        raise InvalidInput(f"--final_epochs {final_epochs} is more than the {trainer.num_epochs} epochs of the run: "
                           f"pass at most --final_epochs {trainer.num_epochs} (or more --epochs).")
    dice = _final_dice_class(name)
    try:
        swap_dice(copy.deepcopy(trainer.loss), dice)
    except (TypeError, AttributeError):
        raise InvalidInput(f"{type(trainer).__name__} trains with {type(trainer.loss).__name__}, which has no "
                           f"nnU-Net Dice term for --final_loss {name} to replace; use it with a Dice + CE or Dice + "
                           f"BCE trainer (e.g. nnUNetTrainer), or drop --final_loss.") from None
    first = trainer.num_epochs - final_epochs
    switch_loss_at(trainer, first, lambda loss: swap_dice(loss, dice),
                   f"{name} in place of the Dice term (the last {final_epochs} epochs)")


def restore_weight_decay(trainer) -> None:
    """After a checkpoint's optimiser state is loaded: the run's weight decay (``--change_settings`` may change it)."""
    set_weight_decay(trainer.optimizer, float(trainer.weight_decay))


def optimizer_record(trainer) -> dict:
    """The optimiser the run built, as recorded beside its checkpoints."""
    return describe_optimizer(trainer.optimizer)


def check_optimizer_kept(given: dict, record: dict | None, source: str) -> None:
    """A resumed run keeps its optimiser class: the checkpoint holds that optimiser's state.

    Raises:
        InvalidInput: ``--optimizer`` names another optimiser than the run was trained with.
    """
    asked = given.get("optimizer_name")
    if asked is None or record is None:
        return
    recorded = plain(record.get("settings", {}).get("optimizer_name")) or record.get("optimizer", {}).get("name")
    if recorded is not None and recorded != asked:
        raise InvalidInput(f"--c: this run trains with the {recorded} optimiser (recorded in {source}) and its "
                           f"checkpoint holds that optimiser's state, so --optimizer {asked} cannot take over; drop "
                           f"--optimizer, or start a new training from these weights with -pretrained_weights.")
