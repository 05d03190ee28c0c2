"""The end-to-end demo: phantom -> cpu-preset plans -> training -> prediction of held-out cases -> evaluation -> report.

Every stage after the phantom runs as the same ``radconf_*`` command a user would type, in a child process whose
nnU-Net folders point into the demo's output folder (a user's own nnU-Net folders are never touched).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radconf.demo.common import (
    CONFIGURATION,
    FOLD,
    LOG_FIRST_LINE,
    LOG_NAME,
    PLANS,
    TRAINER,
    CommandContext,
    DemoSettings,
    StageTimer,
    check_demo_output,
    plan_dataset,
    predict_cases,
    run_command,
    train_model,
    training_environment,
)
from radconf.demo.confidence import run_confidence_workflow
from radconf.demo.dicom import clinical_path_import, export_predictions
from radconf.demo.report import write_report

__all__ = ["PLANS", "TRAINER", "DemoResult", "DemoSettings", "run_command", "run_demo", "training_environment"]


@dataclass
class DemoResult:
    output: Path
    mean_dice: float
    per_structure: dict[str, dict[str, float]]
    timings_s: dict[str, float] = field(default_factory=dict)
    report: Path | None = None
    confidence: Any = None  # ConfidenceResult of the confidence workflow
    dicom: Any = None  # DicomResult of the clinical path (DICOM import and RTSTRUCT export)


def run_demo(output: str | Path = "radconf_demo", settings: DemoSettings | None = None,
             device: str = "cpu") -> DemoResult:
    """Runs the whole demo into ``output`` and returns its figures.

    Args:
        output: demo folder (new, empty or an earlier demo's); holds nnUNet_raw/preprocessed/results, predictions,
            evaluation and report.
        settings: dataset and training sizes (``DemoSettings.fast()`` for a smoke run).
        device: training/inference device.

    Returns:
        Mean Dice over structures, per-structure means, stage timings and the report path.

    Raises:
        InvalidInput: ``output`` is a file or a folder of the user's (:func:`check_demo_output`).
    """
    check_demo_output(output)
    from radconf.datasets.phantom import PhantomConfig
    from radconf.datasets.phantom.writer import write_phantom_dataset
    from radconf.paths import NnUNetPaths

    settings = settings or DemoSettings()
    output = Path(output).resolve()
    paths = NnUNetPaths(output / "nnUNet_raw", output / "nnUNet_preprocessed", output / "nnUNet_results", ())
    context = CommandContext(paths.as_environment(), output / LOG_NAME, device, settings)
    output.mkdir(parents=True, exist_ok=True)
    context.log.write_text(f"{LOG_FIRST_LINE}\n", encoding="utf-8")
    stage = StageTimer()
    dataset = str(settings.dataset_id)

    with stage("phantom"):
        config = PhantomConfig(spacing=settings.phantom_spacing) if settings.phantom_spacing else None
        phantom = write_phantom_dataset(paths.raw, dataset_id=settings.dataset_id, num_train=settings.num_train,
                                        num_test=settings.num_test, config=config)
    with stage("dicom_import"):
        dicom = clinical_path_import(phantom, context, output)
    with stage("plan_and_preprocess"):
        plan_dataset(context, dataset)
    with stage("train"):
        train_model(context, dataset, TRAINER)
    predictions = output / "predictions"
    with stage("predict"):
        predict_cases(context, phantom.folder / "imagesTs", predictions, dataset, TRAINER)
    with stage("export_dicom"):
        export_predictions(context, dicom.export, predictions, output,
                           f"{dataset}:{TRAINER}:{PLANS}:{CONFIGURATION}:{FOLD}", dicom)
    with stage("evaluate"):
        result, structures = _evaluate(phantom, predictions, output)
    result.timings_s = stage.timings
    result.dicom = dicom
    result.confidence = run_confidence_workflow(phantom, settings, context.environment, context.log, output, device,
                                                stage)
    with stage("report"):
        training_folder = (paths.results / phantom.folder.name / f"{TRAINER}__{PLANS}__{CONFIGURATION}"
                           / f"fold_{FOLD}")
        result.report = write_report(result, phantom, predictions, structures, training_folder, settings)
    return result


def _evaluate(phantom, predictions: Path, output: Path) -> tuple[DemoResult, dict[str, int]]:
    """Evaluates the held-out predictions; the demo's result (without timings) and the structures evaluated."""
    from radconf.datasets.phantom import LABELS
    from radconf.evaluation import evaluate_folders

    structures = {k: v for k, v in LABELS.items() if k != "background"}
    evaluation = evaluate_folders(reference_dir=phantom.folder / "labelsTs", prediction_dir=predictions,
                                  labels=structures, dataset_json=phantom.folder / "dataset.json",
                                  output_dir=output / "evaluation")
    summary = evaluation.summary
    per_structure = {name: {"dice": summary[name]["dice"]["mean"], "dice_sd": summary[name]["dice"]["sd"],
                            "hd95_mm": summary[name]["hd95_mm"]["mean"], "hd95_sd": summary[name]["hd95_mm"]["sd"]}
                     for name in structures}
    result = DemoResult(output=output, mean_dice=float(evaluation.mean_dice), per_structure=per_structure)
    return result, structures
