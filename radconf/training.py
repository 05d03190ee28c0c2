"""Training with nnU-Net's loop and checkpoint logic; trainers are resolved in radconf and in nnU-Net."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from radconf.devices import make_device
from radconf.errors import InvalidInput, MissingInput
from radconf.nnunet_compat.checkpoints import (
    restore_trainer_state,
    safe_load_checkpoint,
    unwrap_network,
)
from radconf.paths import require_nnunet_paths
from radconf.raw.checks import find_dataset_name
from radconf.registry import find_class, radconf_classes

if TYPE_CHECKING:
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


def load_pretrained_weights(network, path: str | Path) -> list[str]:
    """Copies every parameter except the final segmentation layers from a checkpoint (loaded safely).

    Same rule as nnU-Net's ``load_pretrained_weights``: names and shapes must match everywhere but in
    ``.seg_layers.``, so a model pre-trained with other output classes can be fine-tuned.

    Returns:
        The names of the transferred tensors.

    Raises:
        ValueError: listing the tensors that are missing or have another shape.
    """
    pretrained = safe_load_checkpoint(path)["network_weights"]
    module = unwrap_network(network)
    own = module.state_dict()
    # heads a plain nnU-Net network does not have (e.g. a distance decoder) start from their initialisation
    optional = tuple(getattr(module, "pretrained_optional_prefixes", ()))
    transfer = [k for k in own if ".seg_layers." not in k and not (k.startswith(optional) and k not in pretrained)]
    bad = [f"{k} (missing)" if k not in pretrained else f"{k} {tuple(pretrained[k].shape)} != {tuple(own[k].shape)}"
           for k in transfer if k not in pretrained or pretrained[k].shape != own[k].shape]
    if bad:
        raise InvalidInput(f"Pretrained weights {path} do not fit this network ({len(bad)} tensors differ, e.g. "
                         f"{'; '.join(bad[:3])}). Pre-train with the same plans (architecture) as the fine-tuning.")
    # only the transferred names: a module shared under several names (e.g. the encoder, which decoders reference)
    # must not be overwritten again by a stale copy under a name the checkpoint lacks
    module.load_state_dict({k: pretrained[k] for k in transfer}, strict=False)
    print(f"radconf: loaded {len(transfer)} pretrained tensors from {path} (segmentation layers left as initialised)")
    return transfer


def build_trainer(dataset: str | int, configuration: str, fold: int | str, *, trainer: str = "nnUNetTrainer",
                  plans: str = "nnUNetPlans", device: str | None = None, continue_training: bool = False):
    """Instantiates a trainer exactly as nnU-Net does, with radconf's class lookup and clear errors."""
    from batchgenerators.utilities.file_and_folder_operations import load_json

    paths = require_nnunet_paths()
    trainer_class = find_class(trainer, "trainer")
    name = find_dataset_name(dataset, paths.preprocessed, paths.raw)
    plans_file = paths.preprocessed / name / f"{plans}.json"
    if not plans_file.is_file():
        available = sorted(p.stem for p in (paths.preprocessed / name).glob("*Plans*.json"))
        raise MissingInput(f"Plans {plans_file} not found (available: {', '.join(available) or 'none'}). Run "
                                f"radconf_plan_and_preprocess -d {name} first, and pass -p with the plans name.")
    plans_dict = load_json(str(plans_file))
    if configuration not in plans_dict["configurations"]:
        raise InvalidInput(f"Configuration {configuration!r} is not in {plans_file.name}; available: "
                         f"{', '.join(plans_dict['configurations'])}.")
    dataset_json = load_json(str(paths.preprocessed / name / "dataset.json"))
    if fold != "all":
        if not str(fold).isdigit():
            raise InvalidInput(f"Fold must be 0-4 or 'all', got {fold!r}.")
        fold = int(fold)
        cases = int(dataset_json.get("numTraining", 0))
        if cases < 5 and not (paths.preprocessed / name / "splits_final.json").is_file():
            raise InvalidInput(f"{name} has {cases} training cases but nnU-Net's 5-fold split needs at least 5. Train "
                             f"fold 'all', or put your own splits_final.json into {paths.preprocessed / name}.")
    plans_dict["continue_training"] = continue_training  # nnU-Net's trainer pops this key
    return trainer_class(plans=plans_dict, configuration=configuration, fold=fold, dataset_json=dataset_json,
                         device=make_device(device))


def _find_resume_checkpoint(output_folder: Path) -> Path | None:
    for name in ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth"):
        if (output_folder / name).is_file():
            return output_folder / name
    return None


@dataclass(frozen=True)
class TrainingOptions:
    """How one fold trains, whatever the trainer, plus the trainer's own settings.

    Attributes:
        epochs: overrides the trainer's number of epochs.
        iterations_per_epoch: overrides training iterations per epoch; validation iterations per epoch become a
            fifth of it (at least 1), nnU-Net's default ratio.
        seed: seeds Python's, numpy's and torch's generators before the network is built (nnU-Net does not seed).
            Runs repeat exactly only with single-process augmentation (``nnUNet_n_proc_DA=0``) on the same machine
            and software.
        validate: run nnU-Net's final validation on the fold's validation cases.
        export_npz: save validation probabilities (``--npz``).
        pretrained_weights: checkpoint whose weights initialise the network.
        disable_checkpointing: do not write checkpoints.
        settings: trainer-specific settings by name, each one the trainer declares in ``radconf_settings`` (e.g.
            ``distance_weight`` of a distance-map head, ``class_weights`` of a class-weighted cross-entropy); a
            setting left out keeps the trainer's default (or what a resumed run recorded).
    """

    epochs: int | None = None
    iterations_per_epoch: int | None = None
    seed: int | None = None
    validate: bool = True
    export_npz: bool = False
    pretrained_weights: str | Path | None = None
    disable_checkpointing: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))


def declared_settings(trainer_class: type) -> tuple[str, ...]:
    """The settings a trainer accepts: the ``radconf_settings`` of the classes along its MRO, in MRO order."""
    names: list[str] = []
    for klass in trainer_class.__mro__:
        names += [n for n in vars(klass).get("radconf_settings", ()) if n not in names]
    return tuple(names)


def check_settings(trainer_class: type, settings: Mapping[str, Any]) -> None:
    """Refuses settings that ``trainer_class`` does not declare, naming those it accepts and trainers that take them.

    Raises:
        InvalidInput: an undeclared setting.
    """
    accepted = declared_settings(trainer_class)
    unknown = [name for name in settings if name not in accepted]
    if not unknown:
        return
    hints = []
    for name in unknown:
        takers = sorted(n for n, cls in radconf_classes("trainer").items() if name in declared_settings(cls))
        hints.append(f"{name}: e.g. {', '.join(takers[:3])}" if takers else f"{name}: no radconf trainer")
    raise InvalidInput(f"Trainer {trainer_class.__name__} does not accept the setting(s) {', '.join(unknown)}; it "
                       f"accepts {', '.join(accepted) or 'no radconf settings'}. Trainers that take them: "
                       f"{'; '.join(hints)}.")


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


def train(dataset: str | int, configuration: str, fold: int | str, *, trainer: str = "nnUNetTrainer",
          plans: str = "nnUNetPlans", device: str | None = None, continue_training: bool = False,
          only_validation: bool = False, options: TrainingOptions = TrainingOptions()) -> Path:
    """Trains (or resumes, or only validates) one fold, like ``nnUNetv2_train``.

    Args:
        dataset: dataset id or name.
        configuration: plans configuration, e.g. ``3d_fullres``.
        fold: 0-4 or ``"all"``.
        trainer: trainer class name (radconf's or nnU-Net's).
        plans: plans identifier.
        device: ``cpu``, ``cuda`` or ``mps``; None picks cuda when available, else cpu.
        continue_training: resume from the latest checkpoint (nnU-Net's ``--c``).
        only_validation: only run the final validation of a finished training (``--val``).
        options: training length, seed, validation, pretrained weights and the trainer's own settings.

    Returns:
        The fold's output folder.

    Raises:
        InvalidInput: exclusive modes combined, or a setting the trainer does not declare.
        MissingInput: a checkpoint or pretrained weights that do not exist.
    """
    if continue_training and only_validation:
        raise InvalidInput("--c and --val exclude each other: --c resumes training, --val only validates.")
    if continue_training and options.pretrained_weights:
        raise InvalidInput("Pretrained weights only initialise a new training; drop -pretrained_weights with --c.")
    check_settings(find_class(trainer, "trainer"), options.settings)  # before anything is built or written
    if options.seed is not None:
        seed_everything(options.seed)
    nnunet_trainer = build_trainer(dataset, configuration, fold, trainer=trainer, plans=plans, device=device,
                                   continue_training=continue_training)
    configure_trainer(nnunet_trainer, options)
    output_folder = Path(nnunet_trainer.output_folder)
    _record_overrides(output_folder, options.epochs, options.iterations_per_epoch)
    _load_start_state(nnunet_trainer, output_folder, continue_training, only_validation, options.pretrained_weights)

    if nnunet_trainer.device.type == "cuda":
        from torch.backends import cudnn

        cudnn.deterministic = False
        cudnn.benchmark = True
    if not only_validation:
        nnunet_trainer.run_training()
    if options.validate or only_validation:
        nnunet_trainer.perform_actual_validation(options.export_npz)
    return output_folder


def _load_start_state(nnunet_trainer: nnUNetTrainer, output_folder: Path, continue_training: bool,
                      only_validation: bool, pretrained_weights: str | Path | None) -> None:
    """Restores the checkpoint to resume or validate from, or loads pretrained weights into a new network."""
    checkpoint = None
    if continue_training:
        checkpoint = _find_resume_checkpoint(output_folder)
        if checkpoint is None:
            print(f"radconf: no checkpoint in {output_folder} to continue from; starting a new training.")
    elif only_validation:
        checkpoint = output_folder / "checkpoint_final.pth"
        if not checkpoint.is_file():
            raise MissingInput(f"{checkpoint} not found: --val needs a finished training.")
    elif pretrained_weights:
        if not Path(pretrained_weights).is_file():
            raise MissingInput(f"Pretrained weights {pretrained_weights} not found.")
        nnunet_trainer.initialize()
        load_pretrained_weights(nnunet_trainer.network, pretrained_weights)
    if checkpoint is not None:
        restore_trainer_state(nnunet_trainer, safe_load_checkpoint(checkpoint))


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


def _record_overrides(output_folder: Path, epochs: int | None, iterations_per_epoch: int | None) -> None:
    if epochs is None and iterations_per_epoch is None:
        return
    from radconf.io.files import atomic_write_json

    output_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output_folder / "radconf_training_overrides.json",
                      {"epochs": epochs, "iterations_per_epoch": iterations_per_epoch})
    print(f"radconf: training length overridden: {json.dumps({'epochs': epochs, 'iterations': iterations_per_epoch})}")
