"""Training with nnU-Net's loop and checkpoint logic; trainers are resolved in radconf and in nnU-Net."""
from __future__ import annotations

import json
from pathlib import Path

from radconf.devices import make_device
from radconf.errors import InvalidInput, MissingInput
from radconf.nnunet_compat.checkpoints import restore_trainer_state, safe_load_checkpoint, unwrap_network
from radconf.paths import require_nnunet_paths
from radconf.raw.checks import find_dataset_name
from radconf.registry import find_class


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


def train(dataset: str | int, configuration: str, fold: int | str, *, trainer: str = "nnUNetTrainer",
          plans: str = "nnUNetPlans", device: str | None = None, continue_training: bool = False,
          only_validation: bool = False, export_npz: bool = False, pretrained_weights: str | None = None,
          epochs: int | None = None, iterations_per_epoch: int | None = None, validate: bool = True,
          disable_checkpointing: bool = False, seed: int | None = None,
          distance_weight: float | None = None, class_weights: list[float] | None = None) -> Path:
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
        export_npz: save validation probabilities (``--npz``).
        pretrained_weights: checkpoint whose weights initialise the network.
        epochs: overrides the trainer's number of epochs.
        iterations_per_epoch: overrides training iterations per epoch; validation iterations per epoch become
            a fifth of it (at least 1), nnU-Net's default ratio.
        validate: run nnU-Net's final validation on the fold's validation cases.
        disable_checkpointing: do not write checkpoints.
        seed: seeds Python's, numpy's and torch's generators before the network is built (nnU-Net does not seed).
            Runs repeat exactly only with single-process augmentation (``nnUNet_n_proc_DA=0``) on the same machine
            and software.
        distance_weight: weight (lambda) of a distance-map head's MSE term; None keeps the trainer's (or, with
            ``continue_training``, the one recorded in ``distance_head.json``).
        class_weights: class-weighted cross-entropy trainers: one weight per class, background first; None keeps
            the one recorded by a resumed run, else the reciprocal training-set frequencies.

    Returns:
        The fold's output folder.
    """
    if continue_training and only_validation:
        raise InvalidInput("--c and --val exclude each other: --c resumes training, --val only validates.")
    if continue_training and pretrained_weights:
        raise InvalidInput("Pretrained weights only initialise a new training; drop -pretrained_weights with --c.")
    if seed is not None:
        seed_everything(seed)
    nnunet_trainer = build_trainer(dataset, configuration, fold, trainer=trainer, plans=plans, device=device,
                                   continue_training=continue_training)
    if epochs is not None:
        nnunet_trainer.num_epochs = int(epochs)
    if iterations_per_epoch is not None:
        nnunet_trainer.num_iterations_per_epoch = int(iterations_per_epoch)
        nnunet_trainer.num_val_iterations_per_epoch = max(1, int(iterations_per_epoch) // 5)
    nnunet_trainer.disable_checkpointing = disable_checkpointing
    if distance_weight is not None:
        if not hasattr(nnunet_trainer, "distance_weight"):
            raise InvalidInput(f"--distance_weight applies to trainers with a distance-map head (e.g. "
                             f"DistanceMapTrainer, AnatomyGuidedMultiTaskTrainer), not to {trainer}.")
        if distance_weight < 0:
            raise InvalidInput(f"--distance_weight must be >= 0, got {distance_weight}.")
        nnunet_trainer.distance_weight = float(distance_weight)
    if class_weights is not None:
        if not hasattr(nnunet_trainer, "class_weights"):
            raise InvalidInput(f"--ce_weights applies to class-weighted cross-entropy trainers (e.g. "
                             f"WeightedCELossTrainer), not to {trainer}.")
        nnunet_trainer.class_weights = [float(w) for w in class_weights]
    output_folder = Path(nnunet_trainer.output_folder)
    _record_overrides(output_folder, epochs, iterations_per_epoch)

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

    if nnunet_trainer.device.type == "cuda":
        from torch.backends import cudnn

        cudnn.deterministic = False
        cudnn.benchmark = True
    if not only_validation:
        nnunet_trainer.run_training()
    if validate or only_validation:
        nnunet_trainer.perform_actual_validation(export_npz)
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


def _record_overrides(output_folder: Path, epochs: int | None, iterations_per_epoch: int | None) -> None:
    if epochs is None and iterations_per_epoch is None:
        return
    from radconf.io.files import atomic_write_json

    output_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output_folder / "radconf_training_overrides.json",
                      {"epochs": epochs, "iterations_per_epoch": iterations_per_epoch})
    print(f"radconf: training length overridden: {json.dumps({'epochs': epochs, 'iterations': iterations_per_epoch})}")
