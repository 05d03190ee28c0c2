"""nnU-Net fold folders: checkpoints (safe loading, which one to resume or validate, trainer-state restore), the
record of the settings a run started with, nnU-Net's rule for folds beyond the splits, and undoing a failed start.
Also the plain network under DDP/``torch.compile``.

``nnUNetTrainer.load_checkpoint`` accepts a path (then loads it with ``weights_only=False``) or, per its signature,
a dict - but the dict branch is broken in 2.8.1 (``checkpoint`` is never assigned). radconf loads checkpoints with
``weights_only=True`` and restores the trainer state here, attribute for attribute as nnU-Net does.
``tests/nnunet_compat/`` checks the attribute list against nnU-Net's ``save_checkpoint`` and the restore against
nnU-Net's own path-based one, so a change in nnU-Net fails loudly.
"""
from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from radconf.errors import InvalidInput, MissingInput
from radconf.io.dataset_json import read_json_file
from radconf.io.files import removed_on_failure

SETTINGS_FILE = "radconf_training_settings.json"
LEGACY_OVERRIDES_FILE = "radconf_training_overrides.json"  # written when --epochs/--iterations are given; read on --c
#: the radconf_train flag of each recorded value (the messages name flags)
FLAGS = {"epochs": "--epochs", "iterations_per_epoch": "--iterations_per_epoch",
         "distance_weight": "--distance_weight", "class_weights": "--ce_weights",
         "hard_negatives_from": "--hard_negatives_from", "hard_negative_share": "--hard_negative_share",
         "dropout_rate": "--dropout", "dropout_where": "--dropout_in", "dropblock_size": "--dropblock_size",
         "optimizer_name": "--optimizer", "initial_lr": "--initial_lr", "weight_decay": "--weight_decay",
         "final_loss": "--final_loss", "final_epochs": "--final_epochs"}


def _numpy_scalar_globals() -> list:
    """numpy's scalar reconstructor and dtype classes: plain data that nnU-Net's checkpoint logs contain."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")] if hasattr(np, "dtypes") else []
    return [scalar, np.dtype, *dtypes]


#: the checkpoints nnU-Net writes into a fold folder, in the order its ``--c`` resumes from them
CHECKPOINT_NAMES = ("checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth")


def fold_checkpoints(folder: str | Path) -> list[Path]:
    """The nnU-Net checkpoints that exist in a fold folder, in ``--c``'s order (final, latest, best)."""
    return [Path(folder) / name for name in CHECKPOINT_NAMES if (Path(folder) / name).is_file()]


def _first_line(error: BaseException) -> str:
    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return line if len(line) <= 120 else line[:117] + "..."


def _archive_problem(path: Path) -> str | None:
    """Why a checkpoint's zip archive (torch's format) is damaged: cut short, or a member that fails its CRC."""
    import zlib

    if not zipfile.is_zipfile(path):
        return "not a complete zip archive, which torch.save writes: cut short or not a checkpoint"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError) as error:
        return _first_line(error)
    return f"{bad} fails its checksum" if bad else None


def corrupt_checkpoint_fix(path: str | Path) -> str:
    """The way out of a corrupt checkpoint: copy it again, or the other checkpoints of its fold folder."""
    path = Path(path)
    others = [p.name for p in fold_checkpoints(path.parent) if p.name != path.name]
    if not others:
        return "Copy it again, or retrain the fold."
    return (f"Copy it again, or use the other checkpoint(s) in {path.parent}: {', '.join(others)} (move "
            f"{path.name} away, e.g. rename it to {path.name}.corrupt).")


def safe_load_checkpoint(path: str | Path, fix: str | None = None) -> dict:
    """Loads an nnU-Net checkpoint with ``weights_only=True`` (no arbitrary code runs from the file).

    nnU-Net's checkpoints hold tensors, plain containers and numpy scalars in their training log; only numpy's
    scalar and dtype reconstructors are allowed besides torch's defaults. The zip archive is checked first (each
    member's CRC), so a cut-short or damaged file is called corrupt, never untrusted.

    Args:
        path: the checkpoint.
        fix: what to do about a corrupt file (default: copy it again, or the other checkpoints of its folder).

    Raises:
        MissingInput: the file does not exist.
        InvalidInput: the file is corrupt, or needs more than tensors and plain data to load.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"Checkpoint {path} does not exist.")
    fix = fix or corrupt_checkpoint_fix(path)
    problem = _archive_problem(path)
    if problem is not None:
        raise InvalidInput(f"Checkpoint {path} is corrupt ({problem}). {fix}")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only load failed" in str(error).lower():  # a class torch will not rebuild without running code
            raise InvalidInput(f"{path} cannot be loaded safely (weights_only=True): {_first_line(error)}. The file "
                               f"is whole but holds more than tensors and plain data; only load checkpoints from "
                               f"sources you trust.") from None
        raise InvalidInput(f"Checkpoint {path} is corrupt ({_first_line(error)}). {fix}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:  # torch's reader, a bad pickle
        raise InvalidInput(f"Checkpoint {path} is corrupt ({_first_line(error)}). {fix}") from None


def checkpoint_weights(checkpoint: dict, path: str | Path) -> dict:
    """The ``network_weights`` of a loaded checkpoint.

    Raises:
        InvalidInput: the file is not an nnU-Net checkpoint (no network weights).
    """
    weights = checkpoint.get("network_weights") if isinstance(checkpoint, dict) else None
    if not isinstance(weights, dict):
        raise InvalidInput(f"{path} holds no 'network_weights': it is not an nnU-Net checkpoint. Use a "
                           f"checkpoint_final.pth (or _best/_latest) that nnU-Net or radconf_train wrote.")
    return weights


def transfer_pretrained_weights(network, pretrained: Mapping[str, Any], path: str | Path) -> list[str]:
    """Copies every parameter of ``pretrained`` (network weights of ``path``) except the final segmentation layers.

    Same rule as nnU-Net's ``load_pretrained_weights``: names and shapes must match everywhere but in
    ``.seg_layers.``, so a model pre-trained with other output classes can be fine-tuned.

    Returns:
        The names of the transferred tensors.

    Raises:
        InvalidInput: listing the tensors that are missing or have another shape.
    """
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


def load_pretrained_weights(network, path: str | Path) -> list[str]:
    """:func:`transfer_pretrained_weights` from a checkpoint file (loaded safely; a corrupt file is named)."""
    fix = "Copy it again, or point -pretrained_weights at another checkpoint."
    return transfer_pretrained_weights(network, checkpoint_weights(safe_load_checkpoint(path, fix), path), path)


#: what nnU-Net 2.8's ``nnUNetTrainer.save_checkpoint`` writes (tests/nnunet_compat checks it against nnU-Net)
CHECKPOINT_KEYS = frozenset({"network_weights", "optimizer_state", "grad_scaler_state", "logging", "_best_ema",
                             "current_epoch", "init_args", "trainer_name", "inference_allowed_mirroring_axes"})


def restore_trainer_state(trainer, checkpoint: dict) -> None:
    """Restores network, optimizer, grad scaler, epoch, logger and best EMA from a loaded checkpoint dict."""
    if not trainer.was_initialized:
        trainer.initialize()
    network = unwrap_network(trainer.network)
    own_keys = network.state_dict().keys()
    state = {(k[7:] if k not in own_keys and k.startswith("module.") else k): v
             for k, v in checkpoint["network_weights"].items()}
    trainer.my_init_kwargs = checkpoint["init_args"]
    trainer.current_epoch = checkpoint["current_epoch"]
    trainer.logger.load_checkpoint(checkpoint["logging"])
    trainer._best_ema = checkpoint["_best_ema"]
    trainer.inference_allowed_mirroring_axes = checkpoint.get("inference_allowed_mirroring_axes",
                                                              trainer.inference_allowed_mirroring_axes)
    network.load_state_dict(state)
    trainer.optimizer.load_state_dict(checkpoint["optimizer_state"])
    if trainer.grad_scaler is not None and checkpoint["grad_scaler_state"] is not None:
        trainer.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])


def unwrap_network(network):
    """The plain module under nnU-Net's wrappers: DDP's ``.module`` and ``torch.compile``'s ``._orig_mod``."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(network, DistributedDataParallel):
        network = network.module
    return getattr(network, "_orig_mod", network)


def describe_checkpoint(path: Path, checkpoint: dict) -> str:
    """E.g. ``checkpoint_final.pth (final, 4 epochs trained)``: which checkpoint of the fold, and its epoch."""
    kind = path.stem.removeprefix("checkpoint_")
    epochs = checkpoint.get("current_epoch")
    return f"{path.name} ({kind}, {epochs} epoch{'' if epochs == 1 else 's'} trained)"


def resume_checkpoint(folder: Path) -> tuple[Path, dict] | None:
    """The checkpoint nnU-Net's ``--c`` resumes from (final, else latest, else best), loaded; None if there is none.

    Raises:
        InvalidInput: that checkpoint is corrupt (the message names the others of the folder as the way out).
    """
    found = fold_checkpoints(folder)
    if not found:
        return None
    path, others = found[0], [p.name for p in found[1:]]
    fix = (f"Copy it again, or move it away (e.g. rename it to {path.name}.corrupt) and run --c again to continue "
           f"from {others[0]}." if others else "Copy it again, or move the fold folder away and train anew.")
    return path, safe_load_checkpoint(path, fix)


def validation_checkpoint(folder: Path, best: bool) -> tuple[Path, dict]:
    """The checkpoint ``--val`` validates (``checkpoint_final.pth``; ``checkpoint_best.pth`` with ``--val_best``).

    Raises:
        MissingInput: it does not exist (the message says what the folder holds instead).
        InvalidInput: it is corrupt.
    """
    path = folder / ("checkpoint_best.pth" if best else "checkpoint_final.pth")
    present = {p.name for p in fold_checkpoints(folder)}
    hints = []
    if not best and "checkpoint_best.pth" in present:
        hints.append("validate checkpoint_best.pth with --val --val_best")
    if "checkpoint_latest.pth" in present:
        hints.append("the training has not finished: continue it with --c")
    if not path.is_file():
        raise MissingInput(f"--val{' --val_best' if best else ''} needs {path}, which does not exist: "
                           f"{'; or '.join(hints) if hints else 'train the fold first (without --val)'}.")
    return path, safe_load_checkpoint(path, f"Copy it again{', or ' + '; or '.join(hints) if hints else ''}.")


def check_checkpoint_origin(checkpoint: dict, path: Path, trainer: str, plans: str, configuration: str) -> None:
    """Refuses a checkpoint another trainer, plans or configuration wrote (a copied or renamed fold folder).

    Raises:
        InvalidInput: naming what the checkpoint was written by.
    """
    init = checkpoint.get("init_args") or {}
    wrote = {"trainer (-tr)": (checkpoint.get("trainer_name"), trainer),
             "plans (-p)": ((init.get("plans") or {}).get("plans_name"), plans),
             "configuration": (init.get("configuration"), configuration)}
    differ = [f"{what} {theirs!r}, not {ours!r}" for what, (theirs, ours) in wrote.items()
              if theirs is not None and theirs != ours]
    if differ:
        raise InvalidInput(f"{path} was written with {'; '.join(differ)}: it belongs to another run (a copied or "
                           f"renamed folder). Resume it with the options it was trained with.")


def other_runs(folder: Path) -> list[str]:
    """``-tr X -p Y`` of the runs next to a fold folder with checkpoints of the same configuration and fold."""
    model = folder.parent
    configuration = model.name.rsplit("__", 1)[-1]
    runs = []
    for other in sorted(model.parent.glob(f"*__*__{configuration}/{folder.name}")):
        parts = other.parent.name.split("__")
        if other != folder and len(parts) == 3 and fold_checkpoints(other):
            runs.append(f"-tr {parts[0]} -p {parts[1]}")
    return runs


def fold_note(fold: int | str, splits_file: Path, cases: int) -> str | None:
    """What nnU-Net's ``do_split`` does with a fold that is not one of the splits (None for a fold of the splits).

    Without ``splits_final.json`` nnU-Net writes a 5-fold split; a fold beyond the splits trains on a random 80:20
    split seeded with ``12345 + fold``.

    Raises:
        InvalidInput: an unreadable splits file, or fewer than 5 cases without one (nnU-Net's split fails).
    """
    if fold == "all":
        return None
    if splits_file.is_file():
        splits = read_json_file(splits_file, fix="or remove it to let nnU-Net write its 5-fold split again")
        count = len(splits) if isinstance(splits, list) else 0
    elif cases < 5:
        raise InvalidInput(f"{splits_file.parent.name} has {cases} training cases but nnU-Net's 5-fold split needs at "
                           f"least 5. Train fold 'all', or put your own splits_final.json into {splits_file.parent}.")
    else:
        count = 5
    if fold < count:
        return None
    training = int(cases * 0.8)
    splits = str(splits_file) if splits_file.is_file() else f"the 5-fold split nnU-Net writes to {splits_file}"
    return (f"fold {fold} is beyond the {count} splits of {splits} (folds 0-{count - 1}): nnU-Net trains it on a "
            f"random 80:20 split of the {cases} cases ({training} training, {cases - training} validation), seeded "
            f"with 12345 + {fold} = {12345 + fold}, so the same fold number gives the same split")


def plain(value: Any) -> Any:
    """A setting as JSON holds it: numpy arrays and numbers as lists and Python numbers."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def read_record(folder: Path) -> tuple[dict | None, str]:
    """The settings a run in ``folder`` recorded (None: a run from before they were recorded) and their file."""
    for name in (SETTINGS_FILE, LEGACY_OVERRIDES_FILE):
        path = folder / name
        if path.is_file():
            record = read_json_file(path, fix="or remove it to resume with the trainer's defaults for what you do "
                                    "not pass")
            return {"settings": {}, **record}, str(path)
    return None, ""


def _show(value: Any) -> str:
    value = plain(value)
    if value is None:
        return "the trainer's default"
    if isinstance(value, list):
        return " ".join(_show(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def resumed_values(given: Mapping[str, Any], record: dict | None, source: str,
                   change: bool) -> tuple[dict[str, Any], list[str]]:
    """The values a resumed run uses: each given one (None = not given), else the recorded one; and notes.

    Args:
        given: ``epochs``, ``iterations_per_epoch`` and the trainer settings, as given now.
        record: what :func:`read_record` returned.
        source: the record's file, for the messages.
        change: whether a given value may differ from the recorded one (``--change_settings``).

    Raises:
        InvalidInput: one line naming the recorded and the given value of each contradiction, unless ``change``.
    """
    if record is None:
        return dict(given), ["no recorded settings (the run predates them): what is not given keeps the "
                             + "trainer's default"]
    recorded = {"epochs": record.get("epochs"), "iterations_per_epoch": record.get("iterations_per_epoch"),
                **record["settings"]}
    changed = [(name, recorded.get(name), value) for name, value in given.items()
               if value is not None and name in recorded and plain(recorded[name]) != plain(value)]
    if changed and not change:
        raise InvalidInput("; ".join(
            f"--c: this run was started with {FLAGS.get(n, n)} {_show(old)} (recorded in {source}), not {_show(new)}"
            for n, old, new in changed) + ". Drop the flag to resume with the recorded value, or add "
            "--change_settings to change it.")
    values = {name: value if value is not None else recorded.get(name) for name, value in given.items()}
    values.update({n: v for n, v in recorded.items() if n not in values and v is not None})
    return values, [f"--change_settings: {FLAGS.get(n, n)} {_show(old)} -> {_show(new)}" for n, old, new in changed]


@contextmanager
def fold_folder_as_found(folder: Path) -> Iterator[None]:
    """Undoes what a failed start wrote: what it created (:func:`radconf.io.files.removed_on_failure`), and the small
    JSON records of a fold folder that was there, restored."""
    records = {p.name: p.read_bytes() for p in folder.glob("*.json") if p.stat().st_size < 2**20} \
        if folder.is_dir() else {}
    try:
        with removed_on_failure(folder):
            yield
    except BaseException:
        for name, content in records.items():
            if not (folder / name).is_file() or (folder / name).read_bytes() != content:
                (folder / name).write_bytes(content)
        raise
