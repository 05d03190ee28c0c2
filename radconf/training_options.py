"""What a training run is asked to do, checked: the fold, :class:`TrainingOptions` and the trainer's own settings.

Every value is refused here, before anything is built or written (a count below 1, a seed outside numpy's range, a
NaN or negative weight, a setting the trainer does not declare).
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from radconf.errors import InvalidInput
from radconf.nnunet_compat.checkpoints import FLAGS, plain
from radconf.registry import radconf_classes

_MAX_SEED = 2**32 - 1  # numpy's limit
_DROPOUT_PLACES = ("encoder", "decoder", "both")  # radconf.uncertainty.dropout.WHERE, without importing torch
OPTIMIZER_NAMES = ("sgd", "adam", "adamw")  # radconf.nnunet_compat.optim.OPTIMIZERS, without importing torch
FINAL_LOSSES = ("sqrt_dice", "boundary_dice")  # the Dice term of the last epochs (radconf.losses)
#: settings every trainer accepts, radconf's or nnU-Net's: the optimiser and a loss switch for the last epochs
COMMON_SETTINGS = ("optimizer_name", "initial_lr", "weight_decay", "final_loss", "final_epochs")


def check_fold(fold: int | str) -> int | str:
    """``"all"`` or a fold number >= 0 (nnU-Net trains a number beyond its splits on a seeded random 80:20 split).

    Raises:
        InvalidInput: anything else (a negative number would silently pick a split from the end).
    """
    if fold == "all":
        return "all"
    if isinstance(fold, numbers.Integral) and not isinstance(fold, bool) and fold >= 0:
        return int(fold)
    if isinstance(fold, str) and fold.isascii() and fold.isdigit():
        return int(fold)
    raise InvalidInput(f"Fold must be 'all' or a fold number 0, 1, 2, ... (0-4 are nnU-Net's 5 cross-validation "
                       f"folds; a number beyond the splits trains on a seeded random 80:20 split), got {fold!r}.")


def _check_count(name: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum
            or (maximum is not None and value > maximum)):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise InvalidInput(f"{FLAGS.get(name, '--' + name)} must be an integer {bound}, got {value!r}.")


def _check_setting_value(name: str, value: Any) -> None:
    """Refuses values of radconf's known settings that no trainer can use (NaN, negative, a zero sum)."""
    def finite_non_negative(number) -> bool:
        return isinstance(number, numbers.Real) and not isinstance(number, bool) and math.isfinite(number) \
            and number >= 0

    if name == "distance_weight" and not finite_non_negative(value):
        raise InvalidInput(f"--distance_weight must be a finite number >= 0, got {value!r}.")
    if name == "class_weights":
        values = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "tolist") else [value]
        if not values or not all(finite_non_negative(v) for v in values) or sum(values) <= 0:
            raise InvalidInput(f"--ce_weights must be finite numbers >= 0 with a positive sum (one per class, "
                               f"background first), got {plain(value)!r}.")
    if name == "hard_negative_share" and not (finite_non_negative(value) and 0 < value <= 1):
        raise InvalidInput(f"--hard_negative_share must be a number in (0, 1] (the share of training patches "
                           f"centred on false positives), got {value!r}.")
    if name == "dropout_rate" and not (finite_non_negative(value) and value < 1):
        raise InvalidInput(f"--dropout must be a number in [0, 1) (the share of activations dropped; 0 switches "
                           f"dropout off), got {value!r}.")
    if name == "dropout_where" and value not in _DROPOUT_PLACES:
        raise InvalidInput(f"--dropout_in must be one of {', '.join(_DROPOUT_PLACES)}, got {value!r}.")
    if name == "dropblock_size" and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0):
        raise InvalidInput(f"--dropblock_size must be a whole number >= 0 (the DropBlock size in voxels; 0 = "
                           f"element-wise dropout), got {value!r}.")
    _check_training_setting(name, value, finite_non_negative)
    if name == "hard_negatives_from" and value is not None and not Path(value).is_dir():
        raise InvalidInput(f"--hard_negatives_from {value} is not a folder: pass a model's training output folder "
                           f"(fold_*/validation/) or a folder of predicted label files named like the raw cases.")


def _check_training_setting(name: str, value: Any, finite_non_negative) -> None:
    """The common settings: optimiser, learning rate, weight decay, the last epochs' loss."""
    if name == "optimizer_name" and value not in OPTIMIZER_NAMES:
        raise InvalidInput(f"--optimizer must be one of {', '.join(OPTIMIZER_NAMES)}, got {value!r}.")
    if name == "initial_lr" and not (finite_non_negative(value) and value > 0):
        raise InvalidInput(f"--initial_lr must be a finite number > 0, got {value!r}.")
    if name == "weight_decay" and not finite_non_negative(value):
        raise InvalidInput(f"--weight_decay must be a finite number >= 0, got {value!r}.")
    if name == "final_loss" and value not in FINAL_LOSSES:
        raise InvalidInput(f"--final_loss must be one of {', '.join(FINAL_LOSSES)}, got {value!r}.")
    if name == "final_epochs":
        _check_count(name, value, 1)


@dataclass(frozen=True)
class TrainingOptions:
    """How one fold trains, whatever the trainer, plus the trainer's own settings.

    Attributes:
        epochs: overrides the trainer's number of epochs (with ``--c``: the number the run recorded).
        iterations_per_epoch: overrides training iterations per epoch; validation iterations per epoch become a
            fifth of it (at least 1), nnU-Net's default ratio.
        seed: seeds Python's, numpy's and torch's generators before the network is built (nnU-Net does not seed).
            Runs repeat exactly only with single-process augmentation (``nnUNet_n_proc_DA=0``) on the same machine
            and software.
        validate: run nnU-Net's final validation on the fold's validation cases.
        validate_with_best: validate with ``checkpoint_best.pth`` instead of the final network (``--val_best``).
        export_npz: save validation probabilities (``--npz``).
        pretrained_weights: checkpoint whose weights initialise the network.
        disable_checkpointing: do not write checkpoints.
        change_settings: with ``--c``, allow epochs, iterations or settings other than those the run recorded.
        settings: trainer-specific settings by name, each one the trainer declares in ``radconf_settings`` (e.g.
            ``distance_weight`` of a distance-map head, ``class_weights`` of a class-weighted cross-entropy); a
            setting left out keeps the trainer's default (or what a resumed run recorded).

    Raises:
        InvalidInput: a count below 1, a seed outside 0..2**32-1, a NaN or negative weight.
    """

    epochs: int | None = None
    iterations_per_epoch: int | None = None
    seed: int | None = None
    validate: bool = True
    validate_with_best: bool = False
    export_npz: bool = False
    pretrained_weights: str | Path | None = None
    disable_checkpointing: bool = False
    change_settings: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))
        _check_count("epochs", self.epochs, 1)
        _check_count("iterations_per_epoch", self.iterations_per_epoch, 1)
        _check_count("seed", self.seed, 0, _MAX_SEED)
        for name, value in self.settings.items():
            _check_setting_value(name, value)
        if "final_epochs" in self.settings and "final_loss" not in self.settings:
            raise InvalidInput("--final_epochs counts the last epochs trained with --final_loss: add --final_loss "
                               "sqrt_dice (or drop --final_epochs).")
        final = self.settings.get("final_epochs")
        if final is not None and self.epochs is not None and final > self.epochs:
            raise InvalidInput(f"--final_epochs {final} is more than --epochs {self.epochs}: the loss switch would "
                               f"never happen. Pass at most --final_epochs {self.epochs}.")


def declared_settings(trainer_class: type) -> tuple[str, ...]:
    """The settings a trainer accepts: the ``radconf_settings`` of the classes along its MRO, in MRO order."""
    names: list[str] = []
    for klass in trainer_class.__mro__:
        names += [n for n in vars(klass).get("radconf_settings", ()) if n not in names]
    return tuple(names)


def accepted_settings(trainer_class: type) -> tuple[str, ...]:
    """What a trainer accepts: the common settings (optimiser, learning rate, weight decay, the last epochs' loss),
    then those it declares."""
    return COMMON_SETTINGS + tuple(n for n in declared_settings(trainer_class) if n not in COMMON_SETTINGS)


def check_settings(trainer_class: type, settings: Mapping[str, Any]) -> None:
    """Refuses settings that ``trainer_class`` does not declare, naming those it accepts and trainers that take them.

    Raises:
        InvalidInput: an undeclared setting.
    """
    accepted = accepted_settings(trainer_class)
    unknown = [name for name in settings if name not in accepted]
    if not unknown:
        return
    hints = []
    for name in unknown:
        takers = sorted(n for n, cls in radconf_classes("trainer").items() if name in declared_settings(cls))
        hints.append(f"{name}: e.g. {', '.join(takers[:3])}" if takers else f"{name}: no radconf trainer")
    own = [n for n in accepted if n not in COMMON_SETTINGS]
    raise InvalidInput(f"Trainer {trainer_class.__name__} does not accept the setting(s) {', '.join(unknown)}; it "
                       f"accepts {', '.join(own) or 'no radconf settings'} besides the common ones "
                       f"({', '.join(COMMON_SETTINGS)}). Trainers that take them: {'; '.join(hints)}.")
