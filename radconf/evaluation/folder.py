"""Evaluate a folder of predictions against a folder of reference label images: :func:`evaluate_folders`.

Files follow nnU-Net naming (``CASE<file_ending>``, e.g. ``case_001.nii.gz``); any format SimpleITK reads works.
Every check fails loudly with the file and the fix: missing predictions (unless ``allow_missing``), geometry
mismatches, non-integer label images, label ids absent from dataset.json, level values above K. Prediction files
without a reference are reported with a warning (and in summary.json) and not evaluated: prediction folders often
hold more cases than are labelled. Inputs are only read, never written.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.evaluation.levels import calibration_from_joint
from radconf.evaluation.metrics import compute_metrics, metric_names
from radconf.evaluation.per_case import CaseOutput, CaseTask, run_case_tasks
from radconf.evaluation.report import write_evaluation_outputs
from radconf.evaluation.result import (
    CONTINUOUS_METRICS,
    EvaluationResult,
    EvaluationWarning,
)
from radconf.evaluation.summary import mean_of_means, summarize
from radconf.evaluation.surface import HD_CONVENTIONS
from radconf.io.cases import DEFAULT_FILE_ENDING, format_case_list, list_cases
from radconf.io.dataset_json import find_dataset_json, load_dataset_json, parse_labels
from radconf.io.images import (
    DIRECTION_TOLERANCE,
    ORIGIN_TOLERANCE_MM,
    SPACING_RELATIVE_TOLERANCE,
)

__all__ = ["CONTINUOUS_METRICS", "EvaluationResult", "EvaluationWarning", "evaluate_folders"]


@dataclass(frozen=True)
class _Options:
    """The checked metric settings of one evaluation (shared by every case)."""

    tolerances_mm: tuple[float, ...]
    hd95_convention: str
    confidence_levels: int | None
    enlarge_fraction: float


@dataclass(frozen=True)
class _Labels:
    """Where the labels come from: dataset.json (or none), file ending, structures, allowed ids, source text."""

    dataset_path: Path | None
    file_ending: str
    structures: dict[str, tuple[int, ...]] | None
    allowed_ids: frozenset[int] | None
    source: str


@dataclass(frozen=True)
class _Cases:
    """Reference and prediction files by case, the cases evaluated, and those left out."""

    references: dict[str, Path]
    predictions: dict[str, Path]
    cases: list[str]
    missing: list[str]
    extra: list[str]


def _empty_pair_metrics(tolerances_mm: Sequence[float], hd95_convention: str) -> dict[str, float]:
    """Metrics of a structure absent from both images (computed, not hard-coded, so conventions stay in one place)."""
    empty = np.zeros((1, 1, 1), dtype=bool)
    return compute_metrics(empty, empty, (1.0, 1.0, 1.0), tolerances_mm, hd95_convention=hd95_convention)


def _resolve_labels(
    labels: Mapping[str, Any] | Sequence[int] | None, dataset: dict | None, dataset_path: Path | None
) -> tuple[dict[str, tuple[int, ...]] | None, frozenset[int] | None, str]:
    """(structures or None to discover, allowed ids or None, description of the label source)."""
    allowed = None
    source = "the ids found in the images"
    structures = None
    if dataset is not None:
        from_json = parse_labels(dataset["labels"], str(dataset_path))
        allowed = frozenset({0}.union(*from_json.values()))
        structures, source = from_json, str(dataset_path)
    if labels is not None:
        structures = parse_labels(labels, "the labels argument")
        if allowed is None:
            source = "the labels argument"
    return structures, allowed, source


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
) -> EvaluationResult:
    """Evaluates every prediction in ``prediction_dir`` against the reference of the same case.

    Args:
        reference_dir: folder of reference label images (e.g. ``nnUNet_raw/Dataset501_Phantom/labelsTr``).
        prediction_dir: folder of predicted label images with the same case names.
        labels: structures to evaluate, ``{name: id}`` (or ``{name: [ids]}`` for a union) or a list of ids; default:
            the labels of dataset.json, else every nonzero id found in the images.
        dataset_json: nnU-Net dataset.json (labels, ``file_ending``); default: ``reference_dir/../dataset.json`` if
            it exists. When one is used, every label id in the images must be listed in it.
        tolerances_mm: surface Dice tolerances (mm).
        output_dir: where to write metrics_per_case.csv, summary.json, summary.md and plots/ (None: write nothing).
        allow_missing: evaluate the cases that have predictions and list the missing ones instead of failing.
        num_processes: worker processes (cases are evaluated in parallel).
        hd95_convention: ``"surface-distance"`` (default), ``"pooled"``, ``"unweighted"`` or ``"voxel"``.
        confidence_levels: K for integer confidence-level maps 0..K (per-level table, continuous metrics,
            calibration) instead of label maps.
        file_ending: image file ending; default: dataset.json ``file_ending``, else ``.nii.gz``.
        enlarge_fraction: growth of the reference box for the continuous metrics (0.2 = 20 %).
        plots: write PNG plots when ``output_dir`` is given.
        progress: show a tqdm progress bar over cases.

    Returns:
        An :class:`EvaluationResult` (``rows``, ``summary``, ``mean_dice``, ...).

    Raises:
        FileNotFoundError: missing folders, no reference images, predictions missing (without ``allow_missing``).
        ValueError: geometry mismatch, non-integer images, unknown label ids, invalid settings (message names the
            file and the fix).
    """
    reference_dir, prediction_dir = Path(reference_dir), Path(prediction_dir)
    options = _check_options(tolerances_mm, hd95_convention, confidence_levels, enlarge_fraction)
    _check_output_dir(output_dir, reference_dir, prediction_dir)
    label_info = _resolve_inputs(reference_dir, labels, dataset_json, file_ending, confidence_levels)
    cases = _match_cases(reference_dir, prediction_dir, label_info.file_ending, allow_missing)
    num_processes = max(1, int(num_processes))
    num_threads = 2 if num_processes == 1 else 1
    tasks = [
        CaseTask(case, cases.references[case], cases.predictions[case], label_info.structures, label_info.allowed_ids,
                 label_info.source, options.tolerances_mm, options.hd95_convention, options.confidence_levels,
                 options.enlarge_fraction, num_threads)
        for case in cases.cases
    ]
    outputs = run_case_tasks(tasks, num_processes, progress)
    result = _collect(outputs, options, label_info, cases, _settings(reference_dir, prediction_dir, options,
                                                                     label_info))
    if output_dir is not None:
        result.files = write_evaluation_outputs(result, Path(output_dir), plots=plots)
    return result


def _check_options(tolerances_mm: Sequence[float], hd95_convention: str, confidence_levels: int | None,
                   enlarge_fraction: float) -> _Options:
    if hd95_convention not in HD_CONVENTIONS:
        raise InvalidInput(f"Unknown hd95_convention {hd95_convention!r}; choose one of {HD_CONVENTIONS}.")
    if confidence_levels is not None and (not isinstance(confidence_levels, int) or confidence_levels < 1):
        raise InvalidInput(f"confidence_levels (K) must be an integer >= 1, got {confidence_levels!r}.")
    tolerances = tuple(float(t) for t in tolerances_mm)
    return _Options(tolerances, hd95_convention, confidence_levels, enlarge_fraction)


def _check_output_dir(output_dir: str | os.PathLike | None, reference_dir: Path, prediction_dir: Path) -> None:
    if output_dir is not None and Path(output_dir).resolve() in (reference_dir.resolve(), prediction_dir.resolve()):
        raise InvalidInput(
            f"output_dir {output_dir} is an input folder; radconf never writes into the image folders, choose another "
            "(e.g. a sibling folder)."
        )


def _resolve_inputs(reference_dir: Path, labels: Mapping[str, Any] | Sequence[int] | None,
                    dataset_json: str | os.PathLike | None, file_ending: str | None,
                    confidence_levels: int | None) -> _Labels:
    """Finds dataset.json, the file ending and the structures to evaluate."""
    dataset_path = Path(dataset_json) if dataset_json is not None else find_dataset_json(reference_dir)
    dataset = load_dataset_json(dataset_path) if dataset_path is not None else None
    ending = file_ending or (dataset or {}).get("file_ending") or DEFAULT_FILE_ENDING
    if confidence_levels is None:
        structures, allowed, source = _resolve_labels(labels, dataset, dataset_path)
    else:
        structures, allowed, source = None, None, f"confidence levels 0..{confidence_levels}"
    return _Labels(dataset_path, ending, structures, allowed, source)


def _match_cases(reference_dir: Path, prediction_dir: Path, ending: str, allow_missing: bool) -> _Cases:
    """Pairs references with predictions; fails on missing predictions (unless allowed), warns on left-out cases."""
    references = list_cases(reference_dir, ending)
    if not references:
        raise MissingInput(
            f"No '*{ending}' files in the reference folder {reference_dir}. Check the folder, or set the file ending "
            "(dataset.json 'file_ending', -djfile)."
        )
    predictions = list_cases(prediction_dir, ending)
    missing = sorted(set(references) - set(predictions))
    extra = sorted(set(predictions) - set(references))
    if missing and not allow_missing:
        raise MissingInput(
            f"{len(missing)} of {len(references)} reference case(s) have no '{ending}' prediction in {prediction_dir}: "
            f"{format_case_list(missing)}. Predict them, or pass --allow-missing (allow_missing=True) to evaluate "
            "the others."
        )
    # stacklevel 3: the warnings point at the caller of evaluate_folders
    if missing:
        warnings.warn(
            f"allow_missing: {len(missing)} reference case(s) without prediction are NOT evaluated: "
            f"{format_case_list(missing)}", EvaluationWarning, stacklevel=3,
        )
    if extra:
        warnings.warn(
            f"{len(extra)} prediction(s) in {prediction_dir} have no reference in {reference_dir} and are not "
            f"evaluated: {format_case_list(extra)}", EvaluationWarning, stacklevel=3,
        )
    cases = sorted(set(references) & set(predictions))
    if not cases:
        raise MissingInput(
            f"No case has both a reference in {reference_dir} and a prediction in {prediction_dir}."
        )
    return _Cases(references, predictions, cases, missing, extra)


def _settings(reference_dir: Path, prediction_dir: Path, options: _Options, label_info: _Labels) -> dict[str, Any]:
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


def _collect(outputs: list[CaseOutput], options: _Options, label_info: _Labels, cases: _Cases,
             settings: dict[str, Any]) -> EvaluationResult:
    """Rows, summaries and (for confidence levels) continuous metrics and calibration of all cases."""
    rows = [row for out in outputs for row in out.rows]
    if label_info.structures is None and options.confidence_levels is None:
        rows = _fill_discovered(rows, outputs, options.tolerances_mm, options.hd95_convention)
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

