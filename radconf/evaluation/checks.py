"""The checks of a folder evaluation that run before any image is read: settings, output location, label source,
confidence levels, file ending and case matching (:func:`~radconf.evaluation.folder.evaluate_folders`).

Messages name the command-line flag (``-l``, ``--confidence``, ...) next to the file, so that a user of
``radconf_evaluate`` and a caller of the API both see what to change.
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radconf.errors import InvalidInput, MissingInput
from radconf.evaluation.metrics import surface_dice_key
from radconf.evaluation.result import EvaluationWarning
from radconf.evaluation.surface import HD_CONVENTIONS
from radconf.io.cases import format_case_list, list_cases
from radconf.io.dataset_json import parse_labels
from radconf.io.locations import check_output_location
from radconf.raw.entry import RadconfEntry


@dataclass(frozen=True)
class Options:
    """The checked metric settings of one evaluation (shared by every case)."""

    tolerances_mm: tuple[float, ...]
    hd95_convention: str
    confidence_levels: int | None
    enlarge_fraction: float


@dataclass(frozen=True)
class Labels:
    """Where the labels come from: dataset.json (or none), file ending, structures, allowed ids, source text, and
    whether the structures were requested (``-l``) rather than read from dataset.json or discovered."""

    dataset_path: Path | None
    file_ending: str
    structures: dict[str, tuple[int, ...]] | None
    allowed_ids: frozenset[int] | None
    source: str
    requested: bool = False
    dataset: dict | None = None


@dataclass(frozen=True)
class Cases:
    """Reference and prediction files by case, the cases evaluated, and those left out."""

    references: dict[str, Path]
    predictions: dict[str, Path]
    cases: list[str]
    missing: list[str]
    extra: list[str]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_options(tolerances_mm: Sequence[float], hd95_convention: str, confidence_levels: int | None,
                  enlarge_fraction: float, num_processes: int) -> Options:
    """The checked settings; every problem names its flag (``--tolerance``, ``--hd95``, ``--confidence``, ``-np``)."""
    if hd95_convention not in HD_CONVENTIONS:
        raise InvalidInput(f"--hd95 {hd95_convention!r} is not a convention; choose one of {', '.join(HD_CONVENTIONS)}.")
    if confidence_levels is not None and (not _is_count(confidence_levels) or confidence_levels < 1):
        raise InvalidInput(f"--confidence (confidence_levels) must be an integer K >= 1, got {confidence_levels!r}.")
    if not _is_count(num_processes) or num_processes < 1:
        raise InvalidInput(f"-np (num_processes) must be an integer >= 1, got {num_processes!r}.")
    try:
        tolerances = tuple(float(t) for t in tolerances_mm)
    except (TypeError, ValueError):
        raise InvalidInput(f"--tolerance (tolerances_mm) must be numbers in mm, got {tolerances_mm!r}.") from None
    if not tolerances or not all(math.isfinite(t) and t > 0 for t in tolerances):
        raise InvalidInput(f"--tolerance (tolerances_mm) must be one or more finite numbers > 0 mm, got "
                           f"{list(tolerances_mm)}.")
    keys = [surface_dice_key(t) for t in tolerances]
    twice = next((t for t, key in zip(tolerances, keys) if keys.count(key) > 1), None)
    if twice is not None:
        raise InvalidInput(f"--tolerance gives {twice:g} mm twice; give each surface Dice tolerance once.")
    if not math.isfinite(float(enlarge_fraction)) or enlarge_fraction < 0:
        raise InvalidInput(f"enlarge_fraction must be a finite number >= 0, got {enlarge_fraction!r}.")
    return Options(tolerances, hd95_convention, confidence_levels, float(enlarge_fraction))


def check_folders(reference_dir: Path, prediction_dir: Path, output_dir: str | os.PathLike | None) -> None:
    """Refuses -ref equal to -pred and an output folder that is or contains an input folder (the command also
    refuses one inside an input: :func:`radconf.io.locations.check_output_location`)."""
    if reference_dir.resolve() == prediction_dir.resolve():
        raise InvalidInput(f"-ref and -pred are the same folder ({reference_dir}): every case would be compared with "
                           f"itself. Give the folder of the predictions with -pred.")
    if output_dir is None:
        return
    check_output_location(output_dir, [("the input folder -ref", reference_dir), ("the input folder -pred",
                                                                                 prediction_dir)],
                          relations=("is", "contains"), fix="Choose an output folder outside it (e.g. a sibling).")


def check_file_ending(ending: str, where: str) -> str:
    """An nnU-Net file ending starts with '.' (``.nii.gz``); without it case names would keep a trailing dot."""
    if not isinstance(ending, str) or not ending.startswith(".") or len(ending) < 2:
        raise InvalidInput(f"{where} {ending!r} is not a file ending: it must start with '.' (e.g. '.nii.gz', "
                           f"'.nrrd', '.png').")
    return ending


def _id_list(ids: frozenset[int] | set[int]) -> str:
    return ", ".join(str(i) for i in sorted(ids)) or "none"


def resolve_labels(labels: Mapping[str, Any] | Sequence[int] | None, dataset: dict | None,
                   dataset_path: Path | None) -> tuple[dict[str, tuple[int, ...]] | None, frozenset[int] | None, str]:
    """(structures or None to discover, allowed ids or None, description of the label source).

    Raises:
        InvalidInput: a requested (``-l``) id that dataset.json does not declare, naming the labels it has.
    """
    allowed = None
    source = "the ids found in the images"
    structures = None
    if dataset is not None:
        from_json = parse_labels(dataset["labels"], str(dataset_path))
        allowed = frozenset({0}.union(*from_json.values()))
        structures, source = from_json, str(dataset_path)
    if labels is not None:
        structures = parse_labels(labels, "the labels argument (-l)")
        if allowed is None:
            source = "the labels argument"
        else:
            for name, ids in structures.items():
                unknown = sorted(set(ids) - allowed)
                if unknown:
                    declared = ", ".join(f"{n}={'+'.join(map(str, i))}" for n, i in from_json.items())
                    raise InvalidInput(f"-l {name}: label id(s) {_id_list(set(unknown))} are not in {dataset_path} "
                                       f"(its labels: {declared}). Pass one of those ids, or add the label to "
                                       f"dataset.json.")
    return structures, allowed, source


def check_confidence_dataset(dataset: dict | None, dataset_path: Path | None, levels: int,
                             labels: object) -> None:
    """``--confidence K`` needs level maps: no ``-l``, and a dataset.json (when there is one) that is ordinal with
    K levels (``"radconf": {"ordinal": true, "levels": K}``, as radconf_fuse_readers writes it)."""
    if labels is not None:
        raise InvalidInput("-l and --confidence exclude each other: with --confidence K the structures are the levels "
                           ">= 1..K. Drop -l (or --confidence to evaluate label maps).")
    if dataset is None:
        return
    entry = RadconfEntry.of(dataset, str(dataset_path))
    if not entry.ordinal:
        raise InvalidInput(f"--confidence {levels}: {dataset_path} is not a confidence-level (ordinal) dataset (no "
                           f"'\"radconf\": {{\"ordinal\": true, \"levels\": K}}'), so its images are label maps, not "
                           f"levels 0..K. Drop --confidence to evaluate its labels, or pass -djfile with the "
                           f"dataset.json of the fused dataset (radconf_fuse_readers).")
    if entry.levels != levels:
        raise InvalidInput(f"--confidence {levels} but {dataset_path} declares K = {entry.levels} confidence levels; "
                           f"pass --confidence {entry.levels}.")


def warn_if_ordinal(dataset: dict | None, dataset_path: Path | None) -> None:
    """Level maps evaluated as label maps score each level alone (level == c), not the regions level >= c."""
    entry = (dataset or {}).get("radconf")
    if isinstance(entry, Mapping) and entry.get("ordinal") is True:
        warnings.warn(f"{dataset_path} declares confidence levels 0..{entry.get('levels')}: without --confidence each "
                      f"level is scored alone (level == c); pass --confidence {entry.get('levels')} for the regions "
                      f"level >= c, the continuous metrics and the calibration.", EvaluationWarning, stacklevel=4)


def check_requested_labels(structures: Mapping[str, tuple[int, ...]], found: set[int]) -> None:
    """Without dataset.json, an id given with ``-l`` that no image holds is a typo, not an empty structure."""
    for name, ids in structures.items():
        absent = sorted(set(ids) - found)
        if absent:
            raise InvalidInput(f"-l {name}: label id(s) {_id_list(set(absent))} are in no reference or prediction "
                               f"image (ids found: {_id_list(found - {0})}). Check the id, or pass -djfile with a "
                               f"dataset.json that declares it to evaluate it as an empty structure.")


def warn_absent_structures(structures: Mapping[str, tuple[int, ...]], found: set[int], num_cases: int) -> None:
    """A declared structure absent from every image is evaluated as empty versus empty (NaN overlap and distances):
    sound, and worth a word."""
    for name, ids in structures.items():
        if not set(ids) & found:
            warnings.warn(f"structure {name!r} (id {'+'.join(map(str, ids))}) is absent from every reference and "
                          f"prediction: its Dice and distances are undefined (NaN, empty versus empty) in all "
                          f"{num_cases} case(s).", EvaluationWarning, stacklevel=4)


def endings_in(folder: Path) -> list[str]:
    """The file endings (``.nii.gz``, ``.nrrd``, ...) of the visible files of a folder."""
    endings = set()
    for path in folder.iterdir():
        if path.is_file() and not path.name.startswith("."):
            suffixes = path.suffixes[-2:] if path.name.endswith(".gz") else path.suffixes[-1:]
            endings.add("".join(suffixes))
    return sorted(endings - {""})


def _ending_hint(folder: Path, ending: str) -> str:
    others = [e for e in endings_in(folder) if e != ending]
    return f" (it holds files ending {', '.join(others)}; pass --file_ending if that is the format)" if others else ""


def match_cases(reference_dir: Path, prediction_dir: Path, ending: str, allow_missing: bool) -> Cases:
    """Pairs references with predictions; fails on missing predictions (unless allowed), warns on left-out cases."""
    references = list_cases(reference_dir, ending)
    if not references:
        raise MissingInput(f"No '*{ending}' files in the reference folder -ref {reference_dir}"
                           f"{_ending_hint(reference_dir, ending)}. Check the folder, or set the file ending "
                           f"(--file_ending, dataset.json 'file_ending').")
    predictions = list_cases(prediction_dir, ending)
    missing = sorted(set(references) - set(predictions))
    extra = sorted(set(predictions) - set(references))
    if missing and not allow_missing:
        hint = _ending_hint(prediction_dir, ending) if not predictions else ""
        raise MissingInput(
            f"{len(missing)} of {len(references)} reference case(s) have no '{ending}' prediction in {prediction_dir}"
            f"{hint}: {format_case_list(missing)}. Predict them, or pass --allow_missing (allow_missing=True) to "
            "evaluate the others."
        )
    # stacklevel 3: the warnings point at the caller of evaluate_folders
    if missing:
        warnings.warn(f"allow_missing: {len(missing)} reference case(s) without prediction are NOT evaluated: "
                      f"{format_case_list(missing)}", EvaluationWarning, stacklevel=3)
    if extra:
        warnings.warn(f"{len(extra)} prediction(s) in {prediction_dir} have no reference in {reference_dir} and are "
                      f"not evaluated: {format_case_list(extra)}", EvaluationWarning, stacklevel=3)
    cases = sorted(set(references) & set(predictions))
    if not cases:
        raise MissingInput(f"No case has both a reference in {reference_dir} and a prediction in {prediction_dir}"
                           f"{_ending_hint(prediction_dir, ending)}.")
    return Cases(references, predictions, cases, missing, extra)
