"""``ModelSpec``: one trained model (dataset, trainer, plans, configuration, folds) and where it lives."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from radconf.errors import InvalidInput
from radconf.raw.checks import find_dataset_name


@dataclass(frozen=True)
class ModelSpec:
    """One trained model: ``(dataset, trainer, plans, configuration, folds)``."""

    dataset: str
    trainer: str = "nnUNetTrainer"
    plans: str = "nnUNetPlans"
    configuration: str = "3d_fullres"
    folds: tuple[str, ...] = ("0", "1", "2", "3", "4")
    checkpoint: str = "checkpoint_final.pth"

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """``DATASET[:TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]]``, folds comma-separated (``0,1,2`` or ``all``);
        empty or missing parts take the defaults, e.g. ``501:nnUNetTrainer:radconfCPUPlans:3d_fullres:all``."""
        parts = text.split(":")
        if not parts[0] or len(parts) > 5:
            raise InvalidInput(f"Model spec {text!r} must look like DATASET[:TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]], "
                             f"e.g. 501:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4.")
        names = ("dataset", "trainer", "plans", "configuration", "folds")
        values = {name: part for name, part in zip(names, parts) if part}
        if "folds" in values:
            values["folds"] = tuple(f for f in values["folds"].split(",") if f)
        return cls(**values)

    def __str__(self) -> str:
        return ":".join([self.dataset, self.trainer, self.plans, self.configuration, ",".join(self.folds)])

    def model_folder(self, results_root: Path) -> Path:
        name = find_dataset_name(self.dataset, results_root)
        return results_root / name / f"{self.trainer}__{self.plans}__{self.configuration}"
