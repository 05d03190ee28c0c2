"""Training with nnU-Net's loop and checkpoint logic; trainers are resolved in radconf and in nnU-Net.

Everything a run needs is checked before anything is built or written (arguments, plans, preprocessed data, the
checkpoint to resume or validate from, pretrained weights); a start that still fails (e.g. a trainer refusing its
settings while it initialises) leaves ``nnUNet_results`` as it found it. Each run records what shapes it in
``radconf_training_settings.json`` (epochs, iterations per epoch, the trainer's settings). ``--c`` resumes with
those and refuses a contradicting value unless ``change_settings`` is set: nnU-Net's poly learning rate is
``initial_lr * (1 - epoch / num_epochs) ** 0.9``, so a resume with another number of epochs continues on another
schedule (e.g. at nearly the initial rate).
"""
from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radconf.devices import make_device
from radconf.errors import InvalidInput, MissingInput, OutputExists
from radconf.io.dataset_json import read_json_file
from radconf.nnunet_compat.checkpoints import (
    LEGACY_OVERRIDES_FILE,
    SETTINGS_FILE,
    check_checkpoint_origin,
    checkpoint_weights,
    describe_checkpoint,
    fold_checkpoints,
    fold_folder_as_found,
    fold_note,
    load_pretrained_weights,  # noqa: F401 (part of this module's API)
    other_runs,
    plain,
    read_record,
    restore_trainer_state,
    resume_checkpoint,
    resumed_values,
    safe_load_checkpoint,
    transfer_pretrained_weights,
    validation_checkpoint,
)
from radconf.nnunet_compat.distributed import initialised_on
from radconf.optimisation import (
    apply_optimizer_settings,
    check_optimizer_kept,
    install_final_loss,
    optimizer_record,
    restore_weight_decay,
)
from radconf.paths import require_nnunet_paths
from radconf.raw.checks import find_dataset_name
from radconf.registry import find_class
from radconf.scale.ranks import check_weights_agree, is_rank_zero, rank, world_size
from radconf.training_options import (  # noqa: F401 (part of this module's API)
    TrainingOptions,
    accepted_settings,
    check_fold,
    check_settings,
    declared_settings,
)

if TYPE_CHECKING:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

def configure_trainer(nnunet_trainer: nnUNetTrainer, options: TrainingOptions) -> None:
    """Applies the training length, checkpointing and the (checked) trainer settings of ``options``."""
    check_settings(type(nnunet_trainer), options.settings)
    if options.epochs is not None:
        nnunet_trainer.num_epochs = int(options.epochs)
    if options.iterations_per_epoch is not None:
        nnunet_trainer.num_iterations_per_epoch = int(options.iterations_per_epoch)
        nnunet_trainer.num_val_iterations_per_epoch = max(1, int(options.iterations_per_epoch) // 5)
    nnunet_trainer.disable_checkpointing = options.disable_checkpointing
    for name, value in options.settings.items():
        setattr(nnunet_trainer, name, value)  # an instance attribute: the trainer tells it from its class default
    apply_optimizer_settings(nnunet_trainer, options.settings)


@dataclass(frozen=True)
class _Data:
    """What a fold trains on, checked: dataset folder name, plans, dataset.json, the fold and its output folder."""

    name: str
    configuration: str
    plans: dict
    dataset_json: dict
    fold: int | str
    folder: Path
    notes: tuple[str, ...]


def _read_json(path: Path) -> dict:
    return read_json_file(path, fix="or run radconf_plan_and_preprocess again")


def _check_data(dataset: str | int, configuration: str, fold: int | str, trainer_class: type,
                plans: str) -> _Data:
    """Finds and checks plans, configuration, preprocessed data and fold; reads files only.

    Raises:
        MissingInput: the dataset, plans or preprocessed data (or a cascade's previous stage) do not exist.
        InvalidInput: an unknown configuration, a bad fold, too few cases for nnU-Net's split.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    fold = check_fold(fold)
    paths = require_nnunet_paths()
    name = find_dataset_name(dataset, paths.preprocessed, paths.raw)
    plans_file = paths.preprocessed / name / f"{plans}.json"
    if not plans_file.is_file():
        available = sorted(p.stem for p in (paths.preprocessed / name).glob("*Plans*.json"))
        raise MissingInput(f"Plans {plans_file} not found (available: {', '.join(available) or 'none'}). Run "
                           f"radconf_plan_and_preprocess -d {name} first, and pass -p with the plans name.")
    plans_dict = _read_json(plans_file)
    if configuration not in plans_dict["configurations"]:
        raise InvalidInput(f"Configuration {configuration!r} is not in {plans_file.name}; available: "
                           f"{', '.join(plans_dict['configurations'])}. Pass one of them as the configuration.")
    manager = PlansManager(plans_dict).get_configuration(configuration)
    data = paths.preprocessed / name / manager.data_identifier
    if not data.is_dir() or not any(data.iterdir()):
        raise MissingInput(f"Configuration {configuration} of {plans} is not preprocessed ({data} "
                           f"{'is empty' if data.is_dir() else 'does not exist'}). Run radconf_plan_and_preprocess "
                           f"-d {name} -c {configuration} with these plans first.")
    model = f"{trainer_class.__name__}__{plans_dict['plans_name']}__"
    results = paths.results / plans_dict.get("dataset_name", name)  # nnU-Net's output folder uses the plans' name
    if manager.previous_stage_name is not None:
        previous = results / f"{model}{manager.previous_stage_name}" / "predicted_next_stage"
        if not (previous / configuration).is_dir():
            raise MissingInput(f"{configuration} is a cascade stage: it needs the predictions of "
                               f"{manager.previous_stage_name} in {previous / configuration}. Train (and validate) "
                               f"all folds of {manager.previous_stage_name} first.")
    dataset_json = _read_json(paths.preprocessed / name / "dataset.json")
    note = fold_note(fold, paths.preprocessed / name / "splits_final.json", int(dataset_json.get("numTraining", 0)))
    folder = results / f"{model}{configuration}" / f"fold_{fold}"
    return _Data(name, configuration, plans_dict, dataset_json, fold, folder, (note,) if note else ())


def _check_class_weights(settings: Mapping[str, Any], data: _Data) -> None:
    """Refuses ``--ce_weights`` with another count than the dataset's classes (before a trainer is built)."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    if settings.get("class_weights") is None:
        return
    labels = PlansManager(data.plans).get_label_manager(data.dataset_json)
    weights = plain(settings["class_weights"])
    count = len(weights) if isinstance(weights, list) else 1
    if not labels.has_regions and count != labels.num_segmentation_heads:
        raise InvalidInput(f"--ce_weights takes {labels.num_segmentation_heads} weights, one per class, background "
                           f"first ({', '.join(data.dataset_json['labels'])}); got {count}.")


def _check_dimensions(trainer_class: type, data: _Data) -> None:
    """Refuses a configuration whose dimensionality the trainer's network cannot take (``radconf_dimensions``)."""
    allowed = getattr(trainer_class, "radconf_dimensions", (2, 3))
    dimensions = len(data.plans["configurations"][data.configuration]["patch_size"])
    if dimensions not in allowed:
        raise InvalidInput(f"{trainer_class.__name__} is a {'/'.join(map(str, allowed))}D network; configuration "
                           f"{data.configuration} is {dimensions}D. Train it on a 2d configuration (-c 2d).")


def build_trainer(dataset: str | int, configuration: str, fold: int | str, *, trainer: str = "nnUNetTrainer",
                  plans: str = "nnUNetPlans", device: str | None = None, continue_training: bool = False):
    """Instantiates a trainer exactly as nnU-Net does, with radconf's class lookup and clear errors."""
    trainer_class = find_class(trainer, "trainer")
    torch_device = make_device(device)
    data = _check_data(dataset, configuration, fold, trainer_class, plans)
    plans_dict = {**data.plans, "continue_training": continue_training}  # nnU-Net's trainer pops this key
    return trainer_class(plans=plans_dict, configuration=configuration, fold=data.fold,
                         dataset_json=data.dataset_json, device=torch_device)


@dataclass(frozen=True)
class _Start:
    """A checked start: the trainer class, the data, the options in effect, what to load and what to log."""

    trainer_class: type
    device: Any
    data: _Data
    options: TrainingOptions
    checkpoint: tuple[Path, dict] | None = None
    pretrained: Mapping[str, Any] | None = None
    record: dict | None = None
    notes: tuple[str, ...] = ()


def _check_modes(continue_training: bool, only_validation: bool, options: TrainingOptions) -> None:
    """Refuses flags that exclude each other, or that would do nothing unseen."""
    validates = options.validate or only_validation
    for refused, message in [
        (continue_training and only_validation, "--c resumes training and --val only validates: pass one of them."),
        (options.pretrained_weights and (continue_training or only_validation),
         "-pretrained_weights only initialises a new training: drop it with --c or --val."),
        (only_validation and not options.validate, "--val only validates: drop --no_val (or --val)."),
        (options.export_npz and not validates, "--npz saves the validation's probabilities: drop it with --no_val."),
        (options.validate_with_best and not validates,
         "--val_best chooses the validation's checkpoint: drop it with --no_val."),
        (options.validate_with_best and options.disable_checkpointing,
         "--val_best validates checkpoint_best.pth, which --disable_checkpointing does not write: drop one of them."),
        (options.change_settings and not continue_training,
         "--change_settings changes what a resumed run recorded: use it with --c."),
    ]:
        if refused:
            raise InvalidInput(message)


def check_start(dataset, configuration, fold, trainer, plans, device, continue_training, only_validation,
                 options: TrainingOptions) -> _Start:
    """Checks everything a run needs, reading files only; returns what to start with."""
    _check_modes(continue_training, only_validation, options)
    trainer_class = find_class(trainer, "trainer")
    check_settings(trainer_class, options.settings)
    torch_device = make_device(device)
    data = _check_data(dataset, configuration, fold, trainer_class, plans)
    _check_dimensions(trainer_class, data)
    _check_class_weights(options.settings, data)
    start = _Start(trainer_class, torch_device, data, options, notes=data.notes)
    if only_validation:
        path, checkpoint = validation_checkpoint(data.folder, options.validate_with_best)
        return _resumed_from(start, path, checkpoint, "--val validates", configuration)
    if continue_training:
        return _check_resume(start, configuration)
    if fold_checkpoints(data.folder):
        names = ", ".join(p.name for p in fold_checkpoints(data.folder))
        raise OutputExists(f"{data.folder} already holds {names}: resume it with --c, only validate it with --val, "
                           f"or move the folder away to train the fold again.")
    if options.pretrained_weights:
        path = Path(options.pretrained_weights)
        if not path.is_file():
            raise MissingInput(f"Pretrained weights {path} not found; check the -pretrained_weights path.")
        fix = "Copy it again, or point -pretrained_weights at another checkpoint."
        return replace(start, pretrained=checkpoint_weights(safe_load_checkpoint(path, fix), path))
    return start


def _check_resume(start: _Start, configuration: str) -> _Start:
    folder = start.data.folder
    found = resume_checkpoint(folder)
    if found is None:
        runs = other_runs(folder)
        warnings.warn(f"--c: {folder} holds no checkpoint (checkpoint_final/latest/best.pth); starting a new "
                      f"training, as nnU-Net does." + (f" Checkpoints of this fold exist for {'; '.join(runs)}: pass "
                                                       f"those -tr/-p to resume one of them." if runs else ""),
                      stacklevel=4)
        return start
    return _resumed_from(start, *found, "--c resumes from", configuration)


def _resumed_from(start: _Start, path: Path, checkpoint: dict, verb: str, configuration: str) -> _Start:
    """``start`` with the checkpoint to load, the recorded settings in effect and a note naming the checkpoint."""
    check_checkpoint_origin(checkpoint, path, start.trainer_class.__name__, start.data.plans["plans_name"],
                            configuration)
    record, source = read_record(path.parent)
    options = start.options
    given = {"epochs": options.epochs, "iterations_per_epoch": options.iterations_per_epoch, **options.settings}
    check_optimizer_kept(given, record, source)
    values, notes = resumed_values(given, record, source, options.change_settings)
    options = replace(options, epochs=values.pop("epochs"), iterations_per_epoch=values.pop("iterations_per_epoch"),
                      settings={n: v for n, v in values.items() if v is not None})
    notes = [f"{verb} {describe_checkpoint(path, checkpoint)} in {path.parent}", *notes]
    return replace(start, options=options, checkpoint=(path, checkpoint), record=record,
                   notes=(*start.notes, *notes))


def _start(start: _Start, continue_training: bool, only_validation: bool) -> nnUNetTrainer:
    """Builds, configures and initialises the trainer, and loads its checkpoint or pretrained weights."""
    data, options = start.data, start.options
    nnunet_trainer = start.trainer_class(plans={**data.plans, "continue_training": continue_training},
                                         configuration=data.configuration, fold=data.fold,
                                         dataset_json=data.dataset_json, device=start.device)
    configure_trainer(nnunet_trainer, options)
    if start.record and start.options.iterations_per_epoch == start.record.get("iterations_per_epoch") \
            and start.record.get("val_iterations_per_epoch"):
        nnunet_trainer.num_val_iterations_per_epoch = int(start.record["val_iterations_per_epoch"])
    with initialised_on(nnunet_trainer, start.device):  # a process group on CPU keeps the CPU (gloo)
        nnunet_trainer.initialize()
    install_final_loss(nnunet_trainer)
    if start.pretrained is not None:
        transfer_pretrained_weights(nnunet_trainer.network, start.pretrained, options.pretrained_weights)
    if start.checkpoint is not None:
        path, checkpoint = start.checkpoint
        done = int(checkpoint["current_epoch"])
        if not only_validation and done > nnunet_trainer.num_epochs:
            raise InvalidInput(f"--epochs {nnunet_trainer.num_epochs} ends before the {done} epochs {path.name} has "
                               f"trained; pass at least --epochs {done}.")
        restore_trainer_state(nnunet_trainer, checkpoint)
        restore_weight_decay(nnunet_trainer)
    for note in start.notes:
        nnunet_trainer.print_to_log_file(f"radconf: {note}")
    return nnunet_trainer


def _record_settings(nnunet_trainer: nnUNetTrainer, options: TrainingOptions) -> None:
    """Writes what shapes the run (read back by ``--c``); the old overrides file too, when they are given."""
    from radconf.io.files import atomic_write_json

    folder = Path(nnunet_trainer.output_folder)
    record = {"epochs": int(nnunet_trainer.num_epochs),
              "iterations_per_epoch": int(nnunet_trainer.num_iterations_per_epoch),
              "val_iterations_per_epoch": int(nnunet_trainer.num_val_iterations_per_epoch),
              "settings": {n: plain(getattr(nnunet_trainer, n, None)) for n in accepted_settings(type(nnunet_trainer))},
              "optimizer": optimizer_record(nnunet_trainer),
              "trainer": type(nnunet_trainer).__name__, "seed": options.seed, "processes": world_size()}
    if is_rank_zero():
        atomic_write_json(folder / SETTINGS_FILE, record)
        if options.epochs is not None or options.iterations_per_epoch is not None:
            atomic_write_json(folder / LEGACY_OVERRIDES_FILE, {"epochs": record["epochs"],
                                                               "iterations_per_epoch": record["iterations_per_epoch"]})
    nnunet_trainer.print_to_log_file(f"radconf: training settings {json.dumps(record)} (recorded in {SETTINGS_FILE})")


def train(dataset: str | int, configuration: str, fold: int | str, *, trainer: str = "nnUNetTrainer",
          plans: str = "nnUNetPlans", device: str | None = None, continue_training: bool = False,
          only_validation: bool = False, options: TrainingOptions = TrainingOptions()) -> Path:
    """Trains (or resumes, or only validates) one fold, like ``nnUNetv2_train``.

    Args:
        dataset: dataset id or name.
        configuration: plans configuration, e.g. ``3d_fullres``.
        fold: ``"all"`` or a fold number (0-4: nnU-Net's cross-validation; beyond the splits: a seeded 80:20 split).
        trainer: trainer class name (radconf's or nnU-Net's).
        plans: plans identifier.
        device: ``cpu``, ``cuda`` or ``mps``; None picks cuda when available, else cpu.
        continue_training: resume from nnU-Net's checkpoint (final, else latest, else best; nnU-Net's ``--c``) with
            the settings the run recorded.
        only_validation: only run the final validation of a finished training (``--val``).
        options: training length, seed, validation, pretrained weights and the trainer's own settings.

    Returns:
        The fold's output folder.

    Raises:
        InvalidInput: exclusive modes combined, a bad value, a setting the trainer does not declare, a resume with
            other settings than recorded, a corrupt checkpoint.
        MissingInput: plans, preprocessed data, a checkpoint or pretrained weights that do not exist.
        OutputExists: a new training into a fold folder that holds checkpoints.
    """
    start = check_start(dataset, configuration, fold, trainer, plans, device, continue_training, only_validation,
                         options)
    if options.seed is not None:  # rank r of a multi-GPU run: seed + r (the ranks draw different patches)
        seed_everything(options.seed + rank())
    with fold_folder_as_found(start.data.folder):
        nnunet_trainer = _start(start, continue_training, only_validation)
    output_folder = Path(nnunet_trainer.output_folder)
    if nnunet_trainer.device.type == "cuda":
        from torch.backends import cudnn

        cudnn.deterministic = False
        cudnn.benchmark = True
    if not only_validation:
        if start.checkpoint is None or start.options.change_settings or start.record is None:
            _record_settings(nnunet_trainer, start.options)
        if nnunet_trainer.current_epoch >= nnunet_trainer.num_epochs:
            nnunet_trainer.print_to_log_file(
                f"radconf: the training has finished ({nnunet_trainer.current_epoch} of {nnunet_trainer.num_epochs} "
                f"epochs): nothing to train (to train longer: --c --epochs N --change_settings).")
        else:
            nnunet_trainer.run_training()
            check_weights_agree(nnunet_trainer)
    if options.validate or only_validation:
        if options.validate_with_best and not only_validation:
            restore_trainer_state(nnunet_trainer, validation_checkpoint(output_folder, best=True)[1])
        nnunet_trainer.perform_actual_validation(options.export_npz)
    return output_folder


def training_label_counts(trainer, num_labels: int):
    """Voxels per label 0..num_labels-1 over a trainer's training split (its preprocessed segmentations), and the
    training case keys; ignore-label voxels and labels >= num_labels are not counted."""
    import numpy as np
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    train_keys, _ = trainer.do_split()
    folder = trainer.preprocessed_dataset_folder
    dataset = infer_dataset_class(folder)(folder, train_keys)
    counts = np.zeros(num_labels, dtype=np.int64)
    for key in train_keys:
        seg = np.asarray(dataset.load_case(key)[1][:])
        counts += np.bincount(seg[(seg >= 0) & (seg < num_labels)].ravel(), minlength=num_labels)
    return counts, train_keys


def seed_everything(seed: int) -> None:
    """Seeds ``random``, numpy and torch (all devices)."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
