"""Calibration of a folder of probability maps against reference label maps (and readers):
:func:`evaluate_probabilities`.

Inputs: ``CASE.npz`` (nnU-Net's ``--save_probabilities`` / ``--npz``: ``probabilities``, channels first, on the image
grid) next to ``CASE<ending>``; references ``CASE<ending>`` in the reference folder; optionally reader masks
``<readers>/<case>/<mask><ending>``. What a channel means comes from dataset.json
(:func:`radconf.ensembles.space.member_space`): softmax classes (channel = label id), region sigmoids (channel order =
label order without background) or the P(level >= c) channels of a confidence model.

Every file is checked before any voxel is read (archives, channel counts, headers, grids, reader masks); voxel
problems (label ids, probabilities outside [0, 1]) are found while reading, before anything is written. A failed run
leaves the output folder as it was.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radconf.calibration.metrics import FINE_BINS, ReliabilityHistogram, calibration_metrics, near_structure_box
from radconf.calibration.plots import write_calibration_outputs
from radconf.calibration.structures import Structure, probability_structures, select_structure
from radconf.errors import InvalidInput, MissingInput
from radconf.evaluation.checks import check_file_ending
from radconf.io.cases import DEFAULT_FILE_ENDING, format_case_list, list_cases
from radconf.io.dataset_json import find_dataset_json, load_dataset_json
from radconf.io.images import (
    RESAMPLE_HINT,
    Geometry,
    check_image_file,
    check_same_geometry,
    check_volume_file,
    geometry_difference,
    label_ids_present,
    read_label_image,
)
from radconf.io.locations import check_output_location
from radconf.io.probabilities import PROBABILITY_FIX, load_probabilities, probability_shape

REGIONS = ("whole_image", "near_structure")
REFERENCE, FRACTION, POOLED, READER = "reference", "readers_fraction", "readers_pooled", "reader:"
_SLACK = 1e-3  # float16/float32 rounding accepted above 1 and below 0 (then clipped)


class CalibrationWarning(UserWarning):
    """Cases left out of a calibration (no probabilities, no reference, no reader masks)."""


@dataclass
class CalibrationResult:
    """What :func:`evaluate_probabilities` computed: one row per structure x region x reference kind."""

    rows: list[dict[str, Any]]
    cases: list[str]
    missing_cases: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class _Plan:
    probabilities_dir: Path
    reference_dir: Path
    dataset_path: Path
    ending: str
    export_kind: str
    space: Any
    structures: tuple[Structure, ...]
    reader_structure: Structure | None
    allowed_ids: frozenset[int]
    cases: tuple[str, ...]
    missing: tuple[str, ...]
    geometries: Mapping[str, Geometry]
    readers_dir: Path | None
    readers: Mapping[str, Mapping[str, Path]]
    without_readers: tuple[str, ...]


def evaluate_probabilities(
    probabilities_dir: str | os.PathLike, reference_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
    dataset_json: str | os.PathLike | None = None, structures: Sequence[str | int] | None = None, n_bins: int = 15,
    reader_bins: int = 50, margin_mm: float = 10.0, readers_dir: str | os.PathLike | None = None,
    reader_structure: str | int | None = None, file_ending: str | None = None, plots: bool = True,
    allow_missing: bool = False, progress: bool = True,
) -> CalibrationResult:
    """Calibration (ECE, adaptive ECE, MCE, Brier) of every structure's probability map, over the whole image and
    near the structure, against the reference label maps and, optionally, several readers' masks of one structure.

    Args:
        probabilities_dir: folder of ``CASE.npz`` (and ``CASE<ending>``, whose grid must be the reference's).
        reference_dir: folder of reference label maps ``CASE<ending>``.
        output_dir: where ``calibration_probabilities.csv``/``.json`` and ``plots/`` go (not in or around an input).
        dataset_json: default ``<probabilities_dir>/dataset.json``, else ``<reference_dir>/../dataset.json``.
        structures: names (or label ids) of the structures to evaluate; default all.
        n_bins: equal-width (and equal-mass) bins against the reference label maps.
        reader_bins: bins against the readers (50, as CURVAS).
        margin_mm: margin around the box of reference | prediction (p >= 0.5) of the "near the structure" region.
        readers_dir: folder of ``<case>/<mask><ending>`` binary masks (one per reader, or reader and trial).
        reader_structure: the structure (name or id) the reader masks contour; required with ``readers_dir``.
        file_ending: default dataset.json ``file_ending``, else ``.nii.gz``.
        plots: write ``plots/reliability_<structure>.png``.
        allow_missing: evaluate the cases that have probabilities (and reader masks) and list the others.
        progress: tqdm progress bar over cases.

    Returns:
        A :class:`CalibrationResult`.

    Raises:
        InvalidInput, MissingInput: any problem with the arguments or the files, naming it, before anything is written.
    """
    from radconf.io.files import removed_on_failure

    plan, output = _check_inputs(Path(probabilities_dir), Path(reference_dir), Path(output_dir), dataset_json,
                                 structures, n_bins, reader_bins, margin_mm, readers_dir, reader_structure,
                                 file_ending, allow_missing)
    histograms, counts = _accumulate(plan, float(margin_mm), progress)
    rows, tables = _rows(plan, histograms, counts, n_bins, reader_bins)
    result = CalibrationResult(rows, list(plan.cases), list(plan.missing))
    record = {"settings": _settings(plan, n_bins, reader_bins, float(margin_mm)), "cases": result.cases,
              "missing_cases": result.missing_cases, "cases_without_readers": list(plan.without_readers)}
    with removed_on_failure(output):
        result.files = write_calibration_outputs(output, rows, tables, record, plots)
    return result


# ----------------------------------------------------------------------------------------------------- checks
def _check_inputs(prob_dir: Path, ref_dir: Path, output: Path, dataset_json, structures, n_bins, reader_bins,
                  margin_mm, readers_dir, reader_structure, file_ending, allow_missing) -> tuple[_Plan, Path]:
    for flag, value in (("--bins (n_bins)", n_bins), ("reader_bins", reader_bins)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidInput(f"{flag} must be an integer >= 1, got {value!r}.")
    if isinstance(margin_mm, bool) or not isinstance(margin_mm, (int, float)) or not (
            math.isfinite(margin_mm) and margin_mm >= 0):
        raise InvalidInput(f"--calibration_margin (margin_mm) must be a finite number of mm >= 0, got {margin_mm!r}.")
    if (readers_dir is None) != (reader_structure is None):
        raise InvalidInput("--readers and --reader_structure go together: give the readers' folder and the structure "
                           "their masks contour (e.g. --readers DIR --reader_structure gtv).")
    readers = Path(readers_dir) if readers_dir is not None else None
    for flag, folder in (("--probabilities", prob_dir), ("-ref", ref_dir), ("--readers", readers)):
        if folder is not None and not folder.is_dir():
            raise MissingInput(f"{flag} {folder} is not a folder; check the path.")
    if prob_dir.resolve() == ref_dir.resolve():
        raise InvalidInput(f"--probabilities and -ref are the same folder ({ref_dir}); give the folder of the "
                           f"reference label maps with -ref.")
    if output.exists() and not output.is_dir():
        raise InvalidInput(f"-o {output} is a file; give a folder for the calibration outputs.")
    check_output_location(output, [("the probability folder --probabilities", prob_dir),
                                   ("the reference folder -ref", ref_dir), ("the readers folder --readers", readers)])
    dataset_path = _dataset_path(prob_dir, ref_dir, dataset_json)
    dataset = load_dataset_json(dataset_path)
    ending = _file_ending(file_ending, dataset, dataset_path)
    space, kind, every, allowed, channels = probability_structures(dataset, str(dataset_path))
    chosen = tuple(every) if structures is None else tuple(select_structure(every, s, "-l") for s in structures)
    for_readers = None if reader_structure is None else select_structure(every, reader_structure, "--reader_structure")
    cases, missing = _match_cases(prob_dir, ref_dir, ending, allow_missing)
    geometries = {case: _check_case_files(prob_dir, ref_dir, case, ending, channels) for case in cases}
    masks, without = ({}, ()) if readers is None else _scan_readers(readers, cases, ending, geometries, allow_missing)
    plan = _Plan(prob_dir, ref_dir, dataset_path, ending, kind, space, chosen, for_readers,
                 frozenset(allowed), tuple(cases), tuple(missing), geometries, readers, masks, tuple(without))
    return plan, output


def _dataset_path(prob_dir: Path, ref_dir: Path, dataset_json: str | os.PathLike | None) -> Path:
    if dataset_json is not None or (prob_dir / "dataset.json").is_file():
        return Path(dataset_json) if dataset_json is not None else prob_dir / "dataset.json"
    found = find_dataset_json(ref_dir)
    if found is None:
        raise MissingInput(f"No dataset.json in {prob_dir} or next to {ref_dir}: it tells what each probability "
                           f"channel is. Pass the model's dataset.json with -djfile.")
    return found


def _file_ending(file_ending: str | None, dataset: Mapping, dataset_path: Path) -> str:
    if file_ending is not None:
        return check_file_ending(file_ending, "--file_ending")
    return check_file_ending(dataset.get("file_ending", DEFAULT_FILE_ENDING), f"{dataset_path}: 'file_ending'")


def _match_cases(prob_dir: Path, ref_dir: Path, ending: str, allow_missing: bool) -> tuple[list[str], list[str]]:
    references = list_cases(ref_dir, ending)
    if not references:
        raise MissingInput(f"No '*{ending}' files in the reference folder -ref {ref_dir}; check the folder or the file "
                           f"ending (--file_ending, dataset.json 'file_ending').")
    archives = set(list_cases(prob_dir, ".npz"))
    missing = sorted(set(references) - archives)
    if missing and not allow_missing:
        raise MissingInput(f"{len(missing)} of {len(references)} reference case(s) have no probabilities in "
                           f"{prob_dir} ({prob_dir / missing[0]}.npz is missing): {format_case_list(missing)}. Predict "
                           f"them with --save_probabilities, or pass --allow_missing to evaluate the others.")
    if missing:
        warnings.warn(f"allow_missing: {len(missing)} case(s) without probabilities are NOT evaluated: "
                      f"{format_case_list(missing)}", CalibrationWarning, stacklevel=4)
    extra = sorted(archives - set(references))
    if extra:
        warnings.warn(f"{len(extra)} probability file(s) in {prob_dir} have no reference in {ref_dir} and are not "
                      f"evaluated: {format_case_list(extra)}", CalibrationWarning, stacklevel=4)
    cases = sorted(archives & set(references))
    if not cases:
        raise MissingInput(f"No case has both a reference in {ref_dir} and a CASE.npz in {prob_dir}.")
    return cases, missing


def _check_case_files(prob_dir: Path, ref_dir: Path, case: str, ending: str, channels: int) -> Geometry:
    """The reference's grid, after checking the archive (whole, channels, grid) and the segmentation next to it."""
    archive, reference = prob_dir / f"{case}.npz", ref_dir / f"{case}{ending}"
    shape = probability_shape(archive)
    if len(shape) < 2 or shape[0] != channels:
        raise InvalidInput(f"{archive} holds probabilities of shape {shape}, but this model has {channels} channel(s) "
                           f"(dataset.json labels); is it a prediction of this model? Else pass its -djfile.")
    grid = check_image_file(reference)
    segmentation = prob_dir / f"{case}{ending}"
    if segmentation.is_file():
        check_same_geometry(grid, check_image_file(segmentation), reference, segmentation)
    if _spatial(shape[1:], grid) is None:
        raise InvalidInput(f"{archive} has probabilities on a grid of shape {shape[1:]} (z, y, x) but the reference "
                           f"{reference} has size {grid.size} (x, y, z); {PROBABILITY_FIX}.")
    return grid


def _spatial(shape: tuple[int, ...], grid: Geometry) -> tuple[int, ...] | None:
    """The probability grid as the reference's array shape (2D exports carry a leading axis of 1), or None."""
    expected = tuple(reversed(grid.size))
    return expected if shape == expected or shape == (1, *expected) else None


def _scan_readers(readers: Path, cases: Sequence[str], ending: str, geometries: Mapping[str, Geometry],
                  allow_missing: bool) -> tuple[dict[str, dict[str, Path]], list[str]]:
    masks, without = {}, []
    for case in cases:
        found = list_cases(readers / case, ending) if (readers / case).is_dir() else {}
        if not found:
            without.append(case)
            continue
        for path in found.values():
            difference = geometry_difference(geometries[case], check_volume_file(path, "mask"))
            if difference:
                raise InvalidInput(f"Reader mask {path} is not on the grid of its case's image ({difference}). "
                                   f"{RESAMPLE_HINT}")
        masks[case] = found
    if without and not allow_missing:
        raise MissingInput(f"{len(without)} case(s) have no reader masks {readers}/<case>/<mask>{ending}: "
                           f"{format_case_list(without)}. Add them, or pass --allow_missing to leave them out of the "
                           f"reader rows.")
    if not masks:
        raise MissingInput(f"No evaluated case has reader masks in {readers} (<case>/<mask>{ending}); check --readers.")
    if without:
        warnings.warn(f"allow_missing: {len(without)} case(s) without reader masks are left out of the reader rows: "
                      f"{format_case_list(without)}", CalibrationWarning, stacklevel=4)
    return masks, without


# --------------------------------------------------------------------------------------------------- reading
def _accumulate(plan: _Plan, margin_mm: float, progress: bool):
    """Histograms and case counts by (structure, region, reference kind), one case in memory at a time."""
    from tqdm import tqdm

    histograms: dict[tuple[str, str, str], ReliabilityHistogram] = {}
    cases: dict[tuple[str, str, str], set[str]] = {}

    def add(key: tuple[str, str, str], p: np.ndarray, y: np.ndarray, weight: float | None = None) -> None:
        histograms.setdefault(key, ReliabilityHistogram()).add(p, y, weight)
        cases.setdefault(key, set()).add(case)

    for case in tqdm(plan.cases, desc="radconf_evaluate --probabilities", unit="case", disable=not progress):
        reference, spacing = _read_reference(plan, case)
        probabilities = _read_probabilities(plan, case)
        for structure in plan.structures:
            p = probabilities[structure.channel]
            _add_regions(add, structure.name, REFERENCE, p, np.isin(reference, structure.ids), spacing, margin_mm)
        if plan.reader_structure is not None and case in plan.readers:
            _add_readers(add, plan, case, probabilities[plan.reader_structure.channel], spacing, margin_mm)
    return histograms, {key: len(found) for key, found in cases.items()}


def _add_regions(add, name: str, kind: str, p: np.ndarray, y: np.ndarray, spacing, margin_mm: float,
                 near_mask: np.ndarray | None = None, weight: float | None = None) -> None:
    add((name, REGIONS[0], kind), p, y, weight)
    box = near_structure_box(y if near_mask is None else near_mask, p >= 0.5, spacing, margin_mm)
    if box is not None:
        add((name, REGIONS[1], kind), p[box], y[box], weight)


def _add_readers(add, plan: _Plan, case: str, p: np.ndarray, spacing, margin_mm: float) -> None:
    """Against the reader fraction, each mask, and all masks pooled (each case's masks share the case's weight)."""
    masks = {name: _read_mask(path) for name, path in plan.readers[case].items()}
    union = np.logical_or.reduce(list(masks.values()))
    fraction = np.mean(list(masks.values()), axis=0)
    name = plan.reader_structure.name
    _add_regions(add, name, FRACTION, p, fraction, spacing, margin_mm, union)
    for mask_name, mask in masks.items():
        _add_regions(add, name, READER + mask_name, p, mask, spacing, margin_mm, union)
        _add_regions(add, name, POOLED, p, mask, spacing, margin_mm, union, 1.0 / len(masks))


def _read_reference(plan: _Plan, case: str) -> tuple[np.ndarray, tuple[float, ...]]:
    path = plan.reference_dir / f"{case}{plan.ending}"
    reference, grid = read_label_image(path)
    unknown = sorted(label_ids_present(reference) - plan.allowed_ids)
    if unknown:
        raise InvalidInput(f"{path} holds label id(s) {', '.join(map(str, unknown))} that {plan.dataset_path} does not "
                           f"declare (ids {sorted(plan.allowed_ids)}); is it a reference of this dataset?")
    return reference, grid.spacing_zyx


def _read_probabilities(plan: _Plan, case: str) -> np.ndarray:
    from radconf.ensembles.space import to_space

    path = plan.probabilities_dir / f"{case}.npz"
    values = np.asarray(load_probabilities(path), dtype=np.float32)
    values = values.reshape(values.shape[0], *_spatial(values.shape[1:], plan.geometries[case]))
    low, high = float(values.min()), float(values.max())  # NaN when any value is NaN
    if not (-_SLACK <= low and high <= 1 + _SLACK):
        raise InvalidInput(f"{path} holds values from {low:g} to {high:g}, not probabilities in [0, 1]; "
                           f"{PROBABILITY_FIX}.")
    return to_space(np.clip(values, 0.0, 1.0, out=values), plan.export_kind, plan.space)


def _read_mask(path: Path) -> np.ndarray:
    import SimpleITK as sitk

    values = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
    if values.size and not np.all((values == 0) | (values == 1)):
        shown = ", ".join(f"{v:g}" for v in np.unique(values)[:6].tolist())
        raise InvalidInput(f"Reader mask {path} is not binary (values {shown}); reader masks hold 0 and 1 only.")
    return values.astype(bool)


# --------------------------------------------------------------------------------------------------- outputs
def _kind_order(kind: str) -> tuple[int, str]:
    return ({REFERENCE: 0, FRACTION: 1, POOLED: 2}.get(kind, 3), kind)


def _rows(plan: _Plan, histograms, counts, n_bins: int, reader_bins: int):
    """The rows (structure x region x reference kind) and their reliability tables."""
    kinds = {s.name: [REFERENCE] for s in plan.structures}
    if plan.reader_structure is not None:
        found = {key[2] for key in histograms if key[2] != REFERENCE} | {FRACTION, POOLED}
        kinds.setdefault(plan.reader_structure.name, []).extend(sorted(found, key=_kind_order))
    rows, tables = [], []
    for name, region in ((name, region) for name in kinds for region in REGIONS):
        for kind in kinds[name]:
            histogram = histograms.get((name, region, kind), ReliabilityHistogram())
            bins = n_bins if kind == REFERENCE else reader_bins
            metrics = calibration_metrics(histogram, bins)
            metrics["voxels"] = round(metrics["voxels"])
            rows.append({"structure": name, "region": region, "reference": kind, "bins": bins,
                         "cases": counts.get((name, region, kind), 0), **metrics})
            tables.append([b.as_dict() for b in histogram.reliability_table(bins)])
    return rows, tables


def _settings(plan: _Plan, n_bins: int, reader_bins: int, margin_mm: float) -> dict[str, Any]:
    return {
        "probabilities_dir": str(plan.probabilities_dir.resolve()), "reference_dir": str(plan.reference_dir.resolve()),
        "dataset_json": str(plan.dataset_path), "file_ending": plan.ending, "probability_kind": plan.export_kind,
        "n_bins": n_bins, "reader_bins": reader_bins, "fine_bins": FINE_BINS, "margin_mm": margin_mm,
        "regions": {"whole_image": "every voxel of the image",
                    "near_structure": f"bounding box of reference | (p >= 0.5), grown by {margin_mm:g} mm"},
        "readers_dir": None if plan.readers_dir is None else str(plan.readers_dir.resolve()),
        "reader_structure": None if plan.reader_structure is None else plan.reader_structure.name,
    }
