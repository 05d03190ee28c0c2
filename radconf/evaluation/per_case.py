"""One case of a folder evaluation: read a reference/prediction pair, check it, compute its rows; and the loop
(serial or a process pool) that runs every case of :func:`~radconf.evaluation.folder.evaluate_folders`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radconf.errors import InvalidInput
from radconf.evaluation.levels import check_level_map, evaluate_level_maps
from radconf.evaluation.metrics import compute_metrics
from radconf.io.images import check_same_geometry, label_ids_present, read_label_image


@dataclass(frozen=True)
class CaseTask:
    """Everything a worker process needs to evaluate one case."""

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
    num_threads: int


@dataclass
class CaseOutput:
    """Rows of one case (and, for confidence levels, its continuous metrics and joint counts) and the label ids
    present in its reference or prediction."""

    case: str
    rows: list[dict[str, Any]]
    label_ids: frozenset[int] = frozenset()
    continuous: dict[str, Any] | None = None
    joint_counts: np.ndarray | None = None


def label_text(ids: tuple[int, ...]) -> int | str:
    """The ``label`` column of a structure: its id, or ``"1+2"`` for a union."""
    return ids[0] if len(ids) == 1 else "+".join(str(i) for i in ids)


def evaluate_case(task: CaseTask) -> CaseOutput:
    """Reads one reference/prediction pair and computes its rows (runs in worker processes)."""
    ref, ref_geometry = read_label_image(task.reference_path)
    pred, pred_geometry = read_label_image(task.prediction_path)
    check_same_geometry(ref_geometry, pred_geometry, task.reference_path, task.prediction_path)
    if task.confidence_levels is not None:
        return _evaluate_level_case(task, ref, pred, ref_geometry.spacing_zyx)
    return _evaluate_label_case(task, ref, pred, ref_geometry.spacing_zyx)


def _evaluate_level_case(task: CaseTask, ref: np.ndarray, pred: np.ndarray, spacing: tuple[float, ...]) -> CaseOutput:
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
    return CaseOutput(task.case, rows, continuous=continuous, joint_counts=levels.joint_counts)


def _evaluate_label_case(task: CaseTask, ref: np.ndarray, pred: np.ndarray, spacing: tuple[float, ...]) -> CaseOutput:
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
        rows.append({"case": task.case, "structure": name, "label": label_text(ids), **metrics})
    return CaseOutput(task.case, rows, label_ids=frozenset(set().union(*present.values())))


def run_case_tasks(tasks: list[CaseTask], num_processes: int, progress: bool) -> list[CaseOutput]:
    """Evaluates every task (in this process, or in ``num_processes`` spawned workers); outputs sorted by case."""
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="radconf_evaluate", unit="case", disable=not progress)
    outputs: list[CaseOutput] = []
    try:
        if num_processes <= 1:
            for task in tasks:
                bar.set_postfix_str(task.case)
                outputs.append(evaluate_case(task))
                bar.update()
        else:
            outputs = _run_in_pool(tasks, num_processes, bar)
    finally:
        bar.close()
    return sorted(outputs, key=lambda out: out.case)


def _run_in_pool(tasks: list[CaseTask], num_processes: int, bar) -> list[CaseOutput]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    outputs: list[CaseOutput] = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=num_processes, mp_context=context) as pool:
        futures = {pool.submit(evaluate_case, task): task for task in tasks}
        try:
            for future in as_completed(futures):
                outputs.append(future.result())
                bar.update()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return outputs
