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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.evaluation.levels import check_level_map, evaluate_level_maps
from radconf.evaluation.metrics import compute_metrics, metric_names
from radconf.evaluation.summary import Summary, mean_of_means, summarize
from radconf.evaluation.surface import HD_CONVENTIONS
from radconf.io.cases import DEFAULT_FILE_ENDING, format_case_list, list_cases
from radconf.io.dataset_json import find_dataset_json, load_dataset_json, parse_labels
from radconf.io.images import check_same_geometry, label_ids_present, read_label_image

#: per-case metrics of the continuous (confidence-level) evaluation
CONTINUOUS_METRICS = (
    "continuous_dice",
    "continuous_accuracy",
    "continuous_sensitivity",
    "continuous_specificity",
    "mean_level_dice",
)


class EvaluationWarning(UserWarning):
    """Something the user should know about an evaluation that does not stop it (missing or extra cases)."""


@dataclass
class EvaluationResult:
    """What :func:`evaluate_folders` computed.

    Attributes:
        rows: one dict per case x structure (keys ``case``, ``structure``, ``label`` and every metric column).
        summary: ``{structure: {metric: {mean, sd, median, min, max, n, n_nan, n_inf, worst_case, worst_value}}}``.
        mean_dice: mean over structures of the per-structure mean Dice.
        cases: evaluated case ids.
        missing_cases: reference cases without a prediction (only with ``allow_missing``).
        extra_predictions: prediction cases without a reference (not evaluated).
        metrics: metric column names in order.
        settings: the settings used (recorded in summary.json).
        continuous_rows: confidence-level mode only: one dict per case with the continuous metrics.
        calibration: confidence-level mode only: pooled calibration table (one dict per predicted level).
        joint_counts: confidence-level mode only: pooled (K+1)x(K+1) counts ``[predicted level, reference level]``.
        files: output files written (name -> path), empty without ``output_dir``.
    """

    rows: list[dict[str, Any]]
    summary: Summary
    mean_dice: float
    cases: list[str]
    missing_cases: list[str]
    extra_predictions: list[str]
    metrics: list[str]
    settings: dict[str, Any]
    continuous_rows: list[dict[str, Any]] = field(default_factory=list)
    calibration: list[dict[str, float]] = field(default_factory=list)
    joint_counts: np.ndarray | None = None
    files: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class _CaseTask:
    case: str
    reference_path: Path
    prediction_path: Path
    structures: dict[str, tuple[int, ...]] | None
    allowed_ids: frozenset[int] | None
    labels_source: str
    tolerances_mm: tuple[float, ...]
    hd95_convention: str
    confidence_levels: int | None
    enlarge_fraction: float
    geometry_tolerance: float
    num_threads: int


@dataclass
class _CaseOutput:
    case: str
    rows: list[dict[str, Any]]
    continuous: dict[str, Any] | None = None
    joint_counts: np.ndarray | None = None


def _label_text(ids: tuple[int, ...]) -> int | str:
    return ids[0] if len(ids) == 1 else "+".join(str(i) for i in ids)


def _evaluate_case(task: _CaseTask) -> _CaseOutput:
    """Reads one reference/prediction pair and computes its rows (runs in worker processes)."""
    ref, ref_geometry = read_label_image(task.reference_path)
    pred, pred_geometry = read_label_image(task.prediction_path)
    check_same_geometry(ref_geometry, pred_geometry, task.reference_path, task.prediction_path, task.geometry_tolerance)
    spacing = ref_geometry.spacing_zyx
    if task.confidence_levels is not None:
        k = task.confidence_levels
        ref = check_level_map(ref, k, f"reference {task.reference_path}")
        pred = check_level_map(pred, k, f"prediction {task.prediction_path}")
        levels = evaluate_level_maps(
            ref, pred, k, spacing, task.tolerances_mm, enlarge_fraction=task.enlarge_fraction,
            hd95_convention=task.hd95_convention, num_threads=task.num_threads,
        )
        rows = [
            {"case": task.case, "structure": f"level>={int(r['level'])}", "label": int(r["level"]),
             **{key: value for key, value in r.items() if key != "level"}}
            for r in levels.per_level
        ]
        continuous = {"case": task.case, "structure": "continuous", **levels.continuous,
                      "mean_level_dice": levels.mean_level_dice}
        return _CaseOutput(task.case, rows, continuous, levels.joint_counts)

    present = {path: label_ids_present(arr) for path, arr in ((task.reference_path, ref), (task.prediction_path, pred))}
    if task.allowed_ids is not None:
        for path, ids in present.items():
            unknown = sorted(ids - task.allowed_ids)
            if unknown:
                raise InvalidInput(
                    f"{path} contains label id(s) {unknown} that are not in {task.labels_source} (known ids: "
                    f"{sorted(task.allowed_ids)}). Add them to the 'labels' of dataset.json, or fix the image."
                )
    structures = task.structures
    if structures is None:
        found = sorted(set().union(*present.values()) - {0})
        structures = {str(i): (i,) for i in found}
    rows = []
    for name, ids in structures.items():
        ref_mask = ref == ids[0] if len(ids) == 1 else np.isin(ref, ids)
        pred_mask = pred == ids[0] if len(ids) == 1 else np.isin(pred, ids)
        metrics = compute_metrics(
            ref_mask, pred_mask, spacing, task.tolerances_mm, hd95_convention=task.hd95_convention,
            num_threads=task.num_threads,
        )
        rows.append({"case": task.case, "structure": name, "label": _label_text(ids), **metrics})
    return _CaseOutput(task.case, rows)


def _run_tasks(tasks: list[_CaseTask], num_processes: int, progress: bool) -> list[_CaseOutput]:
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="radconf_evaluate", unit="case", disable=not progress)
    outputs: list[_CaseOutput] = []
    try:
        if num_processes <= 1:
            for task in tasks:
                bar.set_postfix_str(task.case)
                outputs.append(_evaluate_case(task))
                bar.update()
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=num_processes, mp_context=context) as pool:
                futures = {pool.submit(_evaluate_case, task): task for task in tasks}
                try:
                    for future in as_completed(futures):
                        outputs.append(future.result())
                        bar.update()
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    return sorted(outputs, key=lambda out: out.case)


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
    geometry_tolerance: float = 1e-3,
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
        geometry_tolerance: largest allowed difference of spacing/origin (mm) and direction cosines.
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
    if hd95_convention not in HD_CONVENTIONS:
        raise InvalidInput(f"Unknown hd95_convention {hd95_convention!r}; choose one of {HD_CONVENTIONS}.")
    if confidence_levels is not None and (not isinstance(confidence_levels, int) or confidence_levels < 1):
        raise InvalidInput(f"confidence_levels (K) must be an integer >= 1, got {confidence_levels!r}.")
    tolerances = tuple(float(t) for t in tolerances_mm)
    if output_dir is not None and Path(output_dir).resolve() in (reference_dir.resolve(), prediction_dir.resolve()):
        raise InvalidInput(
            f"output_dir {output_dir} is an input folder; radconf never writes into the image folders, choose another "
            "(e.g. a sibling folder)."
        )

    dataset_path = Path(dataset_json) if dataset_json is not None else find_dataset_json(reference_dir)
    dataset = load_dataset_json(dataset_path) if dataset_path is not None else None
    ending = file_ending or (dataset or {}).get("file_ending") or DEFAULT_FILE_ENDING
    if confidence_levels is None:
        structures, allowed, source = _resolve_labels(labels, dataset, dataset_path)
    else:
        structures, allowed, source = None, None, f"confidence levels 0..{confidence_levels}"

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
    if missing:
        warnings.warn(
            f"allow_missing: {len(missing)} reference case(s) without prediction are NOT evaluated: "
            f"{format_case_list(missing)}", EvaluationWarning, stacklevel=2,
        )
    if extra:
        warnings.warn(
            f"{len(extra)} prediction(s) in {prediction_dir} have no reference in {reference_dir} and are not "
            f"evaluated: {format_case_list(extra)}", EvaluationWarning, stacklevel=2,
        )
    cases = sorted(set(references) & set(predictions))
    if not cases:
        raise MissingInput(
            f"No case has both a reference in {reference_dir} and a prediction in {prediction_dir}."
        )

    num_processes = max(1, int(num_processes))
    tasks = [
        _CaseTask(case, references[case], predictions[case], structures, allowed, source, tolerances,
                  hd95_convention, confidence_levels, enlarge_fraction, geometry_tolerance,
                  2 if num_processes == 1 else 1)
        for case in cases
    ]
    outputs = _run_tasks(tasks, num_processes, progress)

    rows = [row for out in outputs for row in out.rows]
    if structures is None and confidence_levels is None:
        rows = _fill_discovered(rows, outputs, tolerances, hd95_convention)
    metrics = metric_names(tolerances)
    summary = summarize(rows, metrics)
    settings = {
        "reference_dir": str(reference_dir.resolve()),
        "prediction_dir": str(prediction_dir.resolve()),
        "dataset_json": str(dataset_path) if dataset_path else None,
        "file_ending": ending,
        "labels": {name: list(ids) for name, ids in structures.items()} if structures else None,
        "label_source": source,
        "tolerances_mm": list(tolerances),
        "hd95_convention": hd95_convention,
        "hd_percentile": 95.0,
        "confidence_levels": confidence_levels,
        "enlarge_fraction": enlarge_fraction,
        "geometry_tolerance": geometry_tolerance,
        "surface_definition": "surfels (DeepMind surface-distance neighbour codes), distances in mm",
    }
    result = EvaluationResult(
        rows=rows, summary=summary, mean_dice=mean_of_means(summary, "dice"), cases=cases, missing_cases=missing,
        extra_predictions=extra, metrics=metrics, settings=settings,
    )
    if confidence_levels is not None:
        from radconf.evaluation.levels import calibration_from_joint

        result.continuous_rows = [out.continuous for out in outputs if out.continuous is not None]
        result.joint_counts = np.sum([out.joint_counts for out in outputs], axis=0)
        result.calibration = calibration_from_joint(result.joint_counts)
        result.summary.update(summarize(result.continuous_rows, CONTINUOUS_METRICS))
    if output_dir is not None:
        from radconf.evaluation.report import write_evaluation_outputs

        result.files = write_evaluation_outputs(result, Path(output_dir), plots=plots)
    return result


def _fill_discovered(
    rows: list[dict[str, Any]], outputs: list[_CaseOutput], tolerances: tuple[float, ...], hd95_convention: str
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

