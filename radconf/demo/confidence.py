"""The demo's confidence workflow: readers' GTV contours -> fused levels -> ConfidenceTrainer -> level maps.

Runs after the multi-structure part, on the same phantom: ``radconf_fuse_readers`` turns the simulated readers'
contours into a confidence-level dataset; ``radconf_crop_dataset`` cuts it to the readers' contours plus a margin
(the GTV needs no whole pelvis, and a crop trains in about half the time); the crops are planned and trained with
the ConfidenceTrainer. The held-out images are predicted localised: the multi-structure model finds the GTV, the
confidence model segments that box, and the level map (plus the level-3 mask) is pasted onto the whole image, which
is evaluated with the continuous Dice and the per-level table.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from radconf.demo.common import (
    CLINICAL_LEVEL,
    CONFIDENCE_TRAINER,
    CONFIGURATION,
    CROP_MARGIN_MM,
    FOLD,
    LOCALIZER_MARGIN_MM,
    PLANS,
    TRAINER,
    CommandContext,
    plan_dataset,
    predict_cases,
    run_command,
    train_model,
)

__all__ = ["CLINICAL_LEVEL", "CONFIDENCE_TRAINER", "ConfidenceResult", "run_confidence_workflow"]


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

    context = CommandContext(environment, log, device, settings)
    dataset_id = str(settings.confidence_dataset_id)
    raw = Path(environment["nnUNet_raw"])
    with stage("fuse_readers"):
        # --overwrite: a rerun of the demo fuses the same phantom again into its own folder (the same dataset)
        run_command(["radconf.cli.fuse_readers", str(phantom.folder), "-d", dataset_id, "-n", "PhantomConfidence",
                     "--structure", "GTV", "--overwrite"], environment, log)
    dataset = next(raw.glob(f"Dataset{settings.confidence_dataset_id:03d}_*"))
    k = int(json.loads((dataset / "dataset.json").read_text())["radconf"]["levels"])
    cropped = str(settings.confidence_crop_dataset_id)
    with stage("crop_confidence"):
        for earlier in raw.glob(f"Dataset{settings.confidence_crop_dataset_id:03d}_*"):
            shutil.rmtree(earlier)  # an earlier run of this demo's, in the demo's own folder: cropped again
        run_command(["radconf.cli.crop_dataset", "-d", dataset_id, "-o", cropped, "--around",
                     ",".join(str(level) for level in range(1, k + 1)), "--margin", str(CROP_MARGIN_MM)],
                    environment, log)
    with stage("plan_confidence"):
        plan_dataset(context, cropped)
    with stage("train_confidence"):
        train_model(context, cropped, CONFIDENCE_TRAINER)
    predictions = output / "confidence_predictions"
    localizer = f"{settings.dataset_id}:{TRAINER}:{PLANS}:{CONFIGURATION}:{FOLD}"
    with stage("predict_confidence"):
        predict_cases(context, dataset / "imagesTs", predictions, cropped, CONFIDENCE_TRAINER, passes=2, extra=(
            "--level", str(CLINICAL_LEVEL), "--localizer", localizer, "--localizer_labels", "gtv",
            "--crop_margin", str(LOCALIZER_MARGIN_MM), "--localizer_largest_component", "--fallback", "full"))
    with stage("evaluate_confidence"):
        evaluation = evaluate_folders(reference_dir=dataset / "labelsTs", prediction_dir=predictions,
                                      output_dir=output / "confidence_evaluation", confidence_levels=k)
    return _confidence_result(dataset, predictions, k, evaluation.summary, phantom.test_cases)


def _confidence_result(dataset: Path, predictions: Path, k: int, summary: dict, test_cases: list[str]
                       ) -> ConfidenceResult:
    from radconf.confidence.report import read_agreement_summary

    readers = read_agreement_summary(dataset, test_cases)
    return ConfidenceResult(
        dataset=dataset, predictions=predictions, num_levels=k,
        continuous_dice=summary["continuous"]["continuous_dice"]["mean"],
        continuous_dice_sd=summary["continuous"]["continuous_dice"]["sd"],
        level_dice={level: summary[f"level>={level}"]["dice"]["mean"] for level in range(1, k + 1)},
        reader_inter_dice=readers["inter_mean"], reader_inter_dice_sd=readers["inter_sd"])
