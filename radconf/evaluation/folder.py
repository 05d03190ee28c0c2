"""Evaluate a folder of predictions against a folder of reference label images: :func:`evaluate_folders`.

Files follow nnU-Net naming (``CASE<file_ending>``, e.g. ``case_001.nii.gz``); any format SimpleITK reads works.
Every check fails loudly with the file and the fix, before any output is written: settings, the output location,
labels (a ``-l`` id that neither dataset.json nor any image has), confidence levels on a dataset that is not ordinal,
missing predictions (unless ``allow_missing``), truncated or NaN files, geometry mismatches, non-integer label images,
label ids absent from dataset.json, level values above K. Prediction files without a reference are reported with a
warning (and in summary.json) and not evaluated: prediction folders often hold more cases than are labelled. Inputs
are only read, never written; the outputs appear all at once (:func:`~radconf.evaluation.report
.write_evaluation_outputs`), so a failed evaluation leaves the output folder as it was.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radconf.errors import InvalidInput
from radconf.evaluation.checks import (
    Cases,
    Labels,
    Options,
    check_confidence_dataset,
    check_file_ending,
    check_folders,
    check_options,
    check_requested_labels,
    match_cases,
    resolve_labels,
    warn_absent_structures,
    warn_if_ordinal,
)
from radconf.evaluation.levels import calibration_from_joint
from radconf.evaluation.metrics import compute_metrics, metric_names
from radconf.evaluation.per_case import CaseOutput, CaseTask, run_case_tasks
from radconf.evaluation.report import check_output_folder, write_evaluation_outputs
from radconf.evaluation.result import (
    CONTINUOUS_METRICS,
    EvaluationResult,
    EvaluationWarning,
)
from radconf.evaluation.summary import mean_of_means, summarize
from radconf.io.cases import DEFAULT_FILE_ENDING
from radconf.io.dataset_json import find_dataset_json, load_dataset_json
from radconf.io.images import (
    DIRECTION_TOLERANCE,
    ORIGIN_TOLERANCE_MM,
    SPACING_RELATIVE_TOLERANCE,
)
from radconf.partial.evaluation import missing_for_evaluation, split_unknown
from radconf.partial.structures import MissingStructures

__all__ = ["CONTINUOUS_METRICS", "EvaluationResult", "EvaluationWarning", "evaluate_folders"]


def _empty_pair_metrics(tolerances_mm: Sequence[float], hd95_convention: str) -> dict[str, float]:
    """Metrics of a structure absent from both images (computed, not hard-coded, so conventions stay in one place)."""
    empty = np.zeros((1, 1, 1), dtype=bool)
    return compute_metrics(empty, empty, (1.0, 1.0, 1.0), tolerances_mm, hd95_convention=hd95_convention)


def evaluate_folders(
    *,
    reference_dir: str | os.PathLike,
    prediction_dir: str | os.PathLike,
    labels: Mapping[str, Any] | Sequence[int] | None = None,
    dataset_json: str | os.PathLike | None = None,
    tolerances_mm: Sequence[float] = (2.0, 3.0),
    output_dir: str | os.PathLike | None = None,
    allow_missing: bool = False,
    num_processes: int = 1,
    hd95_convention: str = "surface-distance",
    confidence_levels: int | None = None,
    file_ending: str | None = None,
    enlarge_fraction: float = 0.2,
    plots: bool = True,
    progress: bool = True,
    missing_structures: str | os.PathLike | None = None,
) -> EvaluationResult:
    """Evaluates every prediction in ``prediction_dir`` against the reference of the same case.

    Args:
        reference_dir: folder of reference label images (e.g. ``nnUNet_raw/Dataset501_Phantom/labelsTr``).
        prediction_dir: folder of predicted label images with the same case names.
        labels: structures to evaluate, ``{name: id}`` (or ``{name: [ids]}`` for a union) or a list of ids; default:
            the labels of dataset.json, else every nonzero id found in the images. An id must be declared in
            dataset.json or, without one, be present in some image; a declared structure absent from every image is
            evaluated as empty versus empty (NaN overlap and distances, with a warning).
        dataset_json: nnU-Net dataset.json (labels, ``file_ending``); default: ``reference_dir/../dataset.json`` if
            it exists. When one is used, every label id in the images must be listed in it.
        tolerances_mm: surface Dice tolerances (mm, > 0, each once).
        output_dir: where to write metrics_per_case.csv, summary.json, summary.md and plots/ (None: write nothing);
            it may not be or contain an input folder, and it may hold earlier outputs of an evaluation only.
        allow_missing: evaluate the cases that have predictions and list the missing ones instead of failing.
        num_processes: worker processes (>= 1; cases are evaluated in parallel).
        hd95_convention: ``"surface-distance"`` (default), ``"pooled"``, ``"unweighted"`` or ``"voxel"``.
        confidence_levels: K for integer confidence-level maps 0..K (per-level table, continuous metrics,
            calibration) instead of label maps; a dataset.json, when there is one, must declare the dataset ordinal
            with K levels.
        file_ending: image file ending; default: dataset.json ``file_ending``, else ``.nii.gz``.
        enlarge_fraction: growth of the reference box for the continuous metrics (0.2 = 20 %).
        plots: write PNG plots when ``output_dir`` is given.
        progress: show a tqdm progress bar over cases.
        missing_structures: structures the references do not annotate, per case (a ``case,missing`` CSV table, a
            dataset.json with the radconf entry or a ``radconf_partial_labels.json`` record); default: the
            dataset.json's radconf entry. Those case-structure pairs are unknown: left out of the rows and every mean,
            listed in summary.json (``settings.unknown_structures``).

    Returns:
        An :class:`EvaluationResult` (``rows``, ``summary``, ``mean_dice``, ...).

    Raises:
        FileNotFoundError: missing folders, no reference images, predictions missing (without ``allow_missing``).
        ValueError: geometry mismatch, non-integer images, unknown label ids, invalid settings (message names the
            file and the fix).
    """
    reference_dir, prediction_dir = Path(reference_dir), Path(prediction_dir)
    options = check_options(tolerances_mm, hd95_convention, confidence_levels, enlarge_fraction, num_processes)
    check_folders(reference_dir, prediction_dir, output_dir)
    if output_dir is not None:
        check_output_folder(Path(output_dir))
    label_info = _resolve_inputs(reference_dir, labels, dataset_json, file_ending, confidence_levels)
    if confidence_levels is not None and missing_structures is not None:
        raise InvalidInput("--missing names structures a reference does not annotate; confidence-level maps have "
                           "levels, not structures: drop --missing or --confidence.")
    missing, missing_source = (None, None) if confidence_levels is not None else missing_for_evaluation(
        missing_structures, label_info.dataset, label_info.dataset_path)
    cases = match_cases(reference_dir, prediction_dir, label_info.file_ending, allow_missing)
    num_threads = 2 if num_processes == 1 else 1
    tasks = [
        CaseTask(case, cases.references[case], cases.predictions[case], label_info.structures, label_info.allowed_ids,
                 label_info.source, options.tolerances_mm, options.hd95_convention, options.confidence_levels,
                 options.enlarge_fraction, num_threads)
        for case in cases.cases
    ]
    outputs = run_case_tasks(tasks, num_processes, progress)
    if options.confidence_levels is None:
        _check_found_labels(outputs, label_info)
    settings = _settings(reference_dir, prediction_dir, options, label_info)
    if missing_source is not None:
        settings["missing_structures_source"] = missing_source
    result = _collect(outputs, options, label_info, cases, settings, missing)
    if output_dir is not None:
        result.files = write_evaluation_outputs(result, Path(output_dir), plots=plots)
    return result


def _resolve_inputs(reference_dir: Path, labels: Mapping[str, Any] | Sequence[int] | None,
                    dataset_json: str | os.PathLike | None, file_ending: str | None,
                    confidence_levels: int | None) -> Labels:
    """Finds dataset.json, the file ending and the structures to evaluate."""
    dataset_path = Path(dataset_json) if dataset_json is not None else find_dataset_json(reference_dir)
    dataset = load_dataset_json(dataset_path) if dataset_path is not None else None
    if file_ending is not None:
        ending = check_file_ending(file_ending, "--file_ending")
    elif dataset is not None and dataset.get("file_ending") is not None:
        ending = check_file_ending(dataset["file_ending"], f"{dataset_path}: 'file_ending'")
    else:
        ending = DEFAULT_FILE_ENDING
    if confidence_levels is None:
        structures, allowed, source = resolve_labels(labels, dataset, dataset_path)
        warn_if_ordinal(dataset, dataset_path)
    else:
        check_confidence_dataset(dataset, dataset_path, confidence_levels, labels)
        structures, allowed, source = None, None, f"confidence levels 0..{confidence_levels}"
    return Labels(dataset_path, ending, structures, allowed, source, requested=labels is not None,
                  dataset=dataset)


def _check_found_labels(outputs: list[CaseOutput], label_info: Labels) -> None:
    """After reading every image, before writing: requested ids that no image holds (without dataset.json) are
    refused, declared structures absent from every image are reported, and only background is refused."""
    found = set().union(*(out.label_ids for out in outputs))
    structures = label_info.structures
    if structures is None:
        if not found - {0}:
            raise InvalidInput("Every reference and prediction holds only background (0): there is no structure to "
                               "evaluate. Pass -l with the structures' ids together with a dataset.json that declares "
                               "them (-djfile) to evaluate them as empty.")
        return
    if label_info.requested and label_info.allowed_ids is None:
        check_requested_labels(structures, found)
    warn_absent_structures(structures, found, len(outputs))


def _settings(reference_dir: Path, prediction_dir: Path, options: Options, label_info: Labels) -> dict[str, Any]:
    """The settings recorded in summary.json."""
    structures = label_info.structures
    return {
        "reference_dir": str(reference_dir.resolve()),
        "prediction_dir": str(prediction_dir.resolve()),
        "dataset_json": str(label_info.dataset_path) if label_info.dataset_path else None,
        "file_ending": label_info.file_ending,
        "labels": {name: list(ids) for name, ids in structures.items()} if structures else None,
        "label_source": label_info.source,
        "tolerances_mm": list(options.tolerances_mm),
        "hd95_convention": options.hd95_convention,
        "hd_percentile": 95.0,
        "confidence_levels": options.confidence_levels,
        "enlarge_fraction": options.enlarge_fraction,
        "geometry_tolerances": {"spacing_relative": SPACING_RELATIVE_TOLERANCE, "origin_mm": ORIGIN_TOLERANCE_MM,
                                "direction": DIRECTION_TOLERANCE},
        "surface_definition": "surfels (DeepMind surface-distance neighbour codes), distances in mm",
    }


def _collect(outputs: list[CaseOutput], options: Options, label_info: Labels, cases: Cases,
             settings: dict[str, Any], missing: MissingStructures | None = None) -> EvaluationResult:
    """Rows, summaries and (for confidence levels) continuous metrics and calibration of all cases."""
    rows = [row for out in outputs for row in out.rows]
    if label_info.structures is None and options.confidence_levels is None:
        rows = _fill_discovered(rows, outputs, options.tolerances_mm, options.hd95_convention)
    rows, unknown = split_unknown(rows, missing)
    if unknown:
        settings["unknown_structures"] = unknown
    metrics = metric_names(options.tolerances_mm)
    summary = summarize(rows, metrics)
    result = EvaluationResult(
        rows=rows, summary=summary, mean_dice=mean_of_means(summary, "dice"), cases=cases.cases,
        missing_cases=cases.missing, extra_predictions=cases.extra, metrics=metrics, settings=settings,
    )
    if options.confidence_levels is not None:
        result.continuous_rows = [out.continuous for out in outputs if out.continuous is not None]
        result.joint_counts = np.sum([out.joint_counts for out in outputs], axis=0)
        result.calibration = calibration_from_joint(result.joint_counts)
        result.summary.update(summarize(result.continuous_rows, CONTINUOUS_METRICS))
    return result


def _fill_discovered(
    rows: list[dict[str, Any]], outputs: list[CaseOutput], tolerances: tuple[float, ...], hd95_convention: str
) -> list[dict[str, Any]]:
    """With discovered labels, adds 'absent from both images' rows so every case has every structure."""
    all_ids = sorted({int(row["label"]) for row in rows})
    empty = _empty_pair_metrics(tolerances, hd95_convention)
    filled = []
    for out in outputs:
        have = {int(row["label"]): row for row in out.rows}
        for label in all_ids:
            filled.append(have.get(label) or {"case": out.case, "structure": str(label), "label": label, **empty})
    return filled

