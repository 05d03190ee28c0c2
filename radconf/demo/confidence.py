"""The demo's confidence workflow: readers' GTV contours -> fused levels -> ConfidenceTrainer -> level maps.

Runs after the multi-structure part, on the same phantom: ``radconf_fuse_readers`` turns the simulated readers'
contours into a confidence-level dataset, which is planned, trained with the ConfidenceTrainer, predicted (level map
plus the level-3 mask) and evaluated with the continuous Dice and the per-level table.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from radconf.demo.pipeline import PLANS, run_command, training_environment

CONFIDENCE_TRAINER = "ConfidenceTrainerNoDA"  # no augmentation, like the demo's first model (see TRAINER there)
CLINICAL_LEVEL = 3  # the paper's starting point for a CTV


@dataclass
class ConfidenceResult:
    dataset: Path
    predictions: Path
    num_levels: int
    continuous_dice: float
    continuous_dice_sd: float
    level_dice: dict[int, float]
    reader_inter_dice: float
    reader_inter_dice_sd: float
    overlays: list[Path] = field(default_factory=list)


def run_confidence_workflow(phantom, settings, environment: dict[str, str], log: Path, output: Path, device: str,
                            stage) -> ConfidenceResult:
    """Fuse -> plan -> train -> predict -> evaluate; ``stage(name)`` is a context manager that times a stage."""
    from radconf.evaluation import evaluate_folders

    dataset_id = str(settings.confidence_dataset_id)
    fold = "all"
    raw = Path(environment["nnUNet_raw"])
    with stage("fuse_readers"):
        run_command(["radconf.cli.fuse_readers", str(phantom.folder), "-d", dataset_id, "-n", "PhantomConfidence",
                     "--structure", "GTV"], environment, log)
    dataset = next(raw.glob(f"Dataset{settings.confidence_dataset_id:03d}_*"))
    with stage("plan_confidence"):
        run_command(["radconf.cli.plan_and_preprocess", "-d", dataset_id, "--preset", "cpu", "-c", "3d_fullres"],
                    environment, log)
    with stage("train_confidence"):
        run_command(["radconf.cli.train", dataset_id, "3d_fullres", fold, "-tr", CONFIDENCE_TRAINER, "-p", PLANS,
                     "-device", device, "--epochs", str(settings.epochs), "--iterations-per-epoch",
                     str(settings.iterations_per_epoch), "--no-val", "--c", "--seed", str(settings.seed)],
                    training_environment(environment), log,
                    progress=("training epochs", settings.epochs, r"Epoch time:"))
    predictions = output / "confidence_predictions"
    with stage("predict_confidence"):
        run_command(["radconf.cli.predict", "-i", str(dataset / "imagesTs"), "-o", str(predictions), "-d", dataset_id,
                     "-c", "3d_fullres", "-tr", CONFIDENCE_TRAINER, "-p", PLANS, "-f", fold, "-device", device,
                     "--level", str(CLINICAL_LEVEL)], environment, log,
                    progress=("predicting cases", settings.num_test, r"^Predicting "))
    with stage("evaluate_confidence"):
        import json

        k = int(json.loads((dataset / "dataset.json").read_text())["radconf"]["levels"])
        evaluation = evaluate_folders(reference_dir=dataset / "labelsTs", prediction_dir=predictions,
                                      output_dir=output / "confidence_evaluation", confidence_levels=k)
    summary = evaluation.summary
    from radconf.confidence.report import read_agreement_summary

    readers = read_agreement_summary(dataset, phantom.test_cases)
    return ConfidenceResult(
        dataset=dataset, predictions=predictions, num_levels=k,
        continuous_dice=summary["continuous"]["continuous_dice"]["mean"],
        continuous_dice_sd=summary["continuous"]["continuous_dice"]["sd"],
        level_dice={level: summary[f"level>={level}"]["dice"]["mean"] for level in range(1, k + 1)},
        reader_inter_dice=readers["inter_mean"], reader_inter_dice_sd=readers["inter_sd"])
