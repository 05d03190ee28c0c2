"""``ModelSpec``: one trained model (dataset, trainer, plans, configuration, folds) and where it lives; ``find_model``
checks that its files are there (no checkpoint is loaded) so that a command can refuse a missing fold or checkpoint
before any work starts."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from radconf.errors import InvalidInput, MissingInput
from radconf.io.dataset_json import read_json_file
from radconf.raw.checks import dataset_id_of, find_dataset_name

SPEC_FORMAT = "DATASET[:TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]]"
SPEC_EXAMPLE = "501:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4"


@dataclass(frozen=True)
class ModelSpec:
    """One trained model: ``(dataset, trainer, plans, configuration, folds)``.

    Folds are nnU-Net's fold names (``0``, ``1``, ... or ``all``); integers are accepted and kept as text.
    """

    dataset: str
    trainer: str = "nnUNetTrainer"
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"
    folds: tuple[str, ...] = ("0", "1", "2", "3", "4")
    checkpoint: str = "checkpoint_final.pth"

    def __post_init__(self):
        object.__setattr__(self, "dataset", str(self.dataset))
        dataset_id_of(self.dataset)  # refuses what is neither an id nor a DatasetXXX_Name
        folds = tuple(_fold_name(f) for f in (self.folds if isinstance(self.folds, (list, tuple)) else (self.folds,)))
        if not folds:
            raise InvalidInput(f"No folds given for model {self.dataset}; give at least one (e.g. -f 0 or 0,1,2,3,4).")
        duplicates = sorted({f for f in folds if folds.count(f) > 1})
        if duplicates:
            raise InvalidInput(f"Fold {duplicates[0]} is given twice; name each fold once (e.g. -f 0 1 2 3 4).")
        object.__setattr__(self, "folds", folds)
        if not self.checkpoint or Path(self.checkpoint).name != self.checkpoint:
            raise InvalidInput(f"-chk {self.checkpoint!r} must be a checkpoint file name inside each fold folder, "
                               f"e.g. checkpoint_final.pth or checkpoint_best.pth (not a path).")

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``DATASET[:TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]]``, folds comma-separated (``0,1,2`` or ``all``);
        empty or missing parts take the defaults, e.g. ``501:nnUNetTrainer:radconfCPUPlans:3d_fullres:all``."""
        parts = text.split(":")
        if not parts[0] or len(parts) > 5:
            raise InvalidInput(f"Model spec {text!r} must look like {SPEC_FORMAT}, e.g. {SPEC_EXAMPLE}.")
        names = ("dataset", "trainer", "plans", "configuration", "folds")
        values = {name: part for name, part in zip(names, parts) if part}
        if "folds" in values:
            values["folds"] = tuple(f.strip() for f in values["folds"].split(","))
        try:
            return cls(**values)
        except InvalidInput as error:
            raise InvalidInput(f"Model spec {text!r}: {error}") from None

    def __str__(self) -> str:
        return ":".join([self.dataset, self.trainer, self.plans, self.configuration, ",".join(self.folds)])

    def model_folder(self, results_root: Path) -> Path:
        name = find_dataset_name(self.dataset, results_root)
        return results_root / name / f"{self.trainer}__{self.plans}__{self.configuration}"


def _fold_name(fold) -> str:
    text = str(fold).strip()
    if text == "all":
        return text
    if not text.isascii() or not text.isdigit():
        raise InvalidInput(f"Fold {text!r} is not a fold: use integers (0, 1, ...) or 'all'.")
    return str(int(text))


@dataclass(frozen=True)
class ModelFiles:
    """A trained model's folder with its dataset.json and plans, every fold's checkpoint checked to exist."""

    spec: ModelSpec
    folder: Path
    dataset_json: dict
    plans: dict

    @property
    def file_ending(self) -> str:
        return self.dataset_json["file_ending"]

    @property
    def num_channels(self) -> int:
        return len(self.dataset_json["channel_names"])

    def checkpoints(self) -> list[Path]:
        return [self.folder / f"fold_{fold}" / self.spec.checkpoint for fold in self.spec.folds]


def read_model_json(path: Path, what: str, keys: tuple[str, ...] = ()) -> dict:
    """A JSON file of a model folder (dataset.json, plans.json), refused with its name when missing or malformed."""
    if not path.is_file():
        raise MissingInput(f"{path} is missing; the model folder is incomplete (copy it again, or retrain).")
    data = read_json_file(path, fix=f"or restore the {what} of this model")
    missing = [key for key in keys if not isinstance(data, dict) or key not in data]
    if missing:
        raise InvalidInput(f"{path} has no {', '.join(missing)}; it is not an nnU-Net {what}.")
    return data


def find_model(spec: ModelSpec, results_root: Path | None = None) -> ModelFiles:
    """The files of ``spec``, checked: model folder, dataset.json, plans.json and each fold's checkpoint.

    Args:
        spec: the model.
        results_root: nnU-Net's results folder (default: ``nnUNet_results``).

    Raises:
        MissingInput: the model folder, a JSON file or a fold's checkpoint is missing, naming what exists.
        InvalidInput: dataset.json or plans.json is malformed.
    """
    if results_root is None:
        from radconf.paths import require_nnunet_paths

        results_root = require_nnunet_paths().results
    folder = spec.model_folder(results_root)
    if not folder.is_dir():
        trained = sorted(p.name for p in folder.parent.iterdir() if p.is_dir() and p.name.count("__") == 2) \
            if folder.parent.is_dir() else []
        raise MissingInput(f"Model folder {folder} does not exist (trained models of {folder.parent.name}: "
                           f"{', '.join(trained) or 'none'}). Check -tr/-p/-c, or train it with radconf_train "
                           f"{spec.dataset} {spec.configuration} FOLD -tr {spec.trainer} -p {spec.plans}.")
    dataset_json = read_model_json(folder / "dataset.json", "dataset.json", ("channel_names", "labels", "file_ending"))
    plans = read_model_json(folder / "plans.json", "plans", ("configurations",))
    if spec.configuration not in plans["configurations"]:
        raise InvalidInput(f"{folder / 'plans.json'} has no configuration {spec.configuration!r} (it has "
                           f"{', '.join(plans['configurations'])}); restore the plans this model was trained with.")
    files = ModelFiles(spec, folder, dataset_json, plans)
    for fold, path in zip(spec.folds, files.checkpoints()):
        if not path.is_file():
            raise MissingInput(_missing_checkpoint(spec, folder, fold, path))
    return files


def _missing_checkpoint(spec: ModelSpec, folder: Path, fold: str, path: Path) -> str:
    others = sorted(p.name for p in path.parent.glob("*.pth")) if path.parent.is_dir() else []
    if others:
        return (f"{path} not found; fold_{fold} holds {', '.join(others)}. Pass -chk with one of them, or finish "
                f"training fold {fold}.")
    trained = sorted(p.parent.name for p in folder.glob(f"fold_*/{spec.checkpoint}"))
    return (f"{path} not found (folds with {spec.checkpoint}: {', '.join(trained) or 'none'}). Pass -f with trained "
            f"folds, or finish training fold {fold}.")
