"""``radconf_determine_postprocessing``: the post-processing chosen on validation predictions, and its files.

Validation predictions come from a model (its folds' ``fold_X/validation/CASE<ending>``, the cross-validation nnU-Net
itself chooses its post-processing on, against ``nnUNet_preprocessed/<dataset>/gt_segmentations``) or from a folder
with a folder of references. Every file is checked before the selection starts. Written into the output folder,
all or nothing: ``postprocessing_steps.csv`` and ``.md`` (every tried step: Dice and HD95 before and after, kept or
not, why) and, last, ``postprocessing.json`` (the kept steps, the rule, the search space, the scores, the sources).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from radconf.errors import InvalidInput, MissingInput
from radconf.postprocessing.definition import FORMAT, PostProcessing, structures_of
from radconf.postprocessing.selection import (
    HD95_TOLERANCE_MM,
    MIN_DICE_GAIN,
    CaseMaps,
    Selection,
    select_steps,
    trial_rows,
)
from radconf.postprocessing.steps import DEFAULT_SEARCH_SPACE, Step, check_steps, reach_mm, steps_text

OUTPUT_FILE = "postprocessing.json"
TABLE = "postprocessing_steps"
RULE = ("per structure, greedy: each step of the search space, in order, on top of the steps kept so far; kept if the "
        "mean Dice over the cases rises by more than min_dice_gain and the HD95 does not get worse (no more cases "
        "with an infinite HD95, and the mean HD95 of the cases finite before and after rises by at most "
        "hd95_tolerance_mm); cases where the structure is absent from reference and prediction are left out of "
        "the means (nnU-Net's nanmean)")


@dataclass(frozen=True)
class ValidationSet:
    """Validation predictions, their references and what describes them.

    Attributes:
        files: case -> predicted map.
        reference_dir: the reference maps ``CASE<ending>``.
        dataset_json: the dataset.json of the predictions (labels or levels, file ending).
        inputs: ``(what, folder)`` of every folder read, for the output check.
        sources: what ``postprocessing.json`` records about them.
        model_folder: the model's folder (``-m``), where the output may go.
    """

    files: dict[str, Path]
    reference_dir: Path
    dataset_json: dict
    inputs: list[tuple[str, Path]]
    sources: dict
    model_folder: Path | None = None


def read_dataset_json(path: Path) -> dict:
    """A dataset.json with ``labels`` and ``file_ending``, refused with its name otherwise."""
    from radconf.io.dataset_json import read_json_file

    if not path.is_file():
        raise MissingInput(f"{path} is missing; the model folder is incomplete (copy it again).")
    data = read_json_file(path, fix="or copy it again")
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict) or not data.get("file_ending"):
        raise InvalidInput(f"{path} has no 'labels' or 'file_ending'; it is not an nnU-Net dataset.json.")
    return data


def model_validation(spec, results: Path, preprocessed: Path) -> ValidationSet:
    """The cross-validation predictions of a model (``ModelSpec``): each fold's ``validation/CASE<ending>``.

    Raises:
        InvalidInput, MissingInput: fold ``all``, no model folder, a fold without validation predictions, a case in
            two folds, no references.
    """
    from radconf.raw.checks import find_dataset_name

    if "all" in spec.folds:
        raise InvalidInput(f"{spec}: fold 'all' was trained on every case, so its validation predictions are training "
                           f"predictions; give the cross-validation folds (e.g. {spec.dataset}:{spec.trainer}:"
                           f"{spec.plans}:{spec.configuration}:0,1,2,3,4).")
    folder = spec.model_folder(results)
    if not folder.is_dir():
        raise MissingInput(f"Model folder {folder} of {spec} does not exist; check the spec (-m "
                           f"DATASET:TRAINER:PLANS:CONFIGURATION:FOLDS), or train it with radconf_train.")
    dataset_json = read_dataset_json(folder / "dataset.json")
    ending = dataset_json["file_ending"]
    files: dict[str, Path] = {}
    inputs: list[tuple[str, Path]] = []
    for fold in spec.folds:
        validation = folder / f"fold_{fold}" / "validation"
        found = sorted(p for p in validation.glob(f"*{ending}") if not p.name.startswith(".")) \
            if validation.is_dir() else []
        if not found:
            raise MissingInput(f"{validation} holds no validation predictions (*{ending}); validate the fold with "
                               f"radconf_train {spec.dataset} {spec.configuration} {fold} -tr {spec.trainer} -p "
                               f"{spec.plans} --val.")
        for path in found:
            case = path.name[: -len(ending)]
            if case in files:
                raise InvalidInput(f"{spec}: case {case} is in the validation of fold {fold} and of another fold; the "
                                   f"folds must come from one split.")
            files[case] = path
        inputs.append((f"the validation folder of fold {fold}", validation))
    reference = preprocessed / find_dataset_name(spec.dataset, preprocessed) / "gt_segmentations"
    if not reference.is_dir():
        raise MissingInput(f"{reference} (the references nnU-Net validates on) does not exist; preprocess the dataset "
                           f"with radconf_plan_and_preprocess -d {spec.dataset}, or give -i and -ref.")
    sources = {"model": str(spec), "predictions": [str(p) for _, p in inputs], "reference": str(reference),
               "dataset_json": str(folder / "dataset.json")}
    return ValidationSet(files, reference, dataset_json, [*inputs, ("the reference folder", reference)], sources,
                         folder)


def folder_validation(prediction_dir: str | Path, reference_dir: str | Path,
                      dataset_json: str | Path | None = None) -> ValidationSet:
    """Predictions ``CASE<ending>`` of a folder and the references of another; the dataset.json is ``dataset_json``,
    else the prediction folder's (radconf_predict writes one), else the one beside the reference folder.

    Raises:
        MissingInput: a folder or the dataset.json is missing, or the prediction folder holds no maps.
    """
    from radconf.io.cases import list_cases
    from radconf.io.dataset_json import find_dataset_json

    predictions, reference = Path(prediction_dir), Path(reference_dir)
    for flag, folder in (("-i", predictions), ("-ref", reference)):
        if not folder.is_dir():
            raise MissingInput(f"{flag} {folder} does not exist or is not a folder; check the path.")
    candidates = [Path(dataset_json)] if dataset_json else [predictions / "dataset.json", find_dataset_json(reference)]
    found = next((c for c in candidates if c is not None and c.is_file()), None)
    if found is None:
        raise MissingInput(f"No dataset.json for {predictions} (looked in it and beside {reference}); give it with "
                           f"-djfile (it names the labels, or the confidence levels, and the file ending).")
    data = read_dataset_json(found)
    files = list_cases(predictions, data["file_ending"])
    if not files:
        raise MissingInput(f"No CASE{data['file_ending']} predictions in {predictions}; give the folder of predicted "
                           f"validation maps.")
    inputs = [("the prediction folder -i", predictions), ("the reference folder -ref", reference)]
    sources = {"model": None, "predictions": [str(predictions)], "reference": str(reference),
               "dataset_json": str(found)}
    return ValidationSet(files, reference, data, inputs, sources)


def check_output(output: Path, validation: ValidationSet) -> None:
    """The output may not be, lie inside or contain an input; with ``-m`` it may be the model folder itself (only
    new files are written there; the validation folders inside it are not touched). A ``postprocessing.json`` that
    radconf did not write (nnU-Net's) is never replaced."""
    from radconf.io.dataset_json import read_json_file
    from radconf.io.locations import check_output_location

    if output.exists() and not output.is_dir():
        raise InvalidInput(f"-o {output} is a file; give a folder for postprocessing.json and its tables.")
    model = validation.model_folder
    if model is not None and output.resolve() == model.resolve():
        check_output_location(output, [pair for pair in validation.inputs if pair[1] == validation.reference_dir])
    else:
        check_output_location(output, validation.inputs)
    existing = output / OUTPUT_FILE
    if existing.is_file():
        data = read_json_file(existing, fix="or choose another -o")
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidInput(f"{existing} was not written by radconf (nnU-Net writes a postprocessing.json too); "
                               f"radconf does not replace it. Choose another -o.")


def read_cases(validation: ValidationSet, structures: PostProcessing, search_space: Sequence[Step]
               ) -> list[CaseMaps]:
    """Every validation case read and checked (whole, integer, on its reference's grid, values the structures know),
    cropped to the box of its foreground plus the search space's reach."""
    from radconf.evaluation.levels import check_level_map
    from radconf.io.images import check_same_geometry, label_ids_present, read_label_image
    from radconf.postprocessing.apply import crop_box

    ending = validation.dataset_json["file_ending"]
    references = {p.name[: -len(ending)] for p in validation.reference_dir.glob(f"*{ending}")}
    missing = sorted(set(validation.files) - references)
    if missing:
        raise MissingInput(f"No reference for {len(missing)} prediction(s) in {validation.reference_dir} (e.g. "
                           f"{missing[0]}{ending}); give the references of every validation case.")
    unused = sorted(references - set(validation.files))
    if unused:
        warnings.warn(f"{len(unused)} reference case(s) in {validation.reference_dir} have no validation prediction "
                      f"and are left out (e.g. {unused[0]}); nnU-Net determines its post-processing on every case.",
                      stacklevel=2)
    known = {0, *(i for s in structures.structures for i in s.labels)}
    cases = []
    for case, path in sorted(validation.files.items()):
        reference_path = validation.reference_dir / f"{case}{ending}"
        prediction, geometry = read_label_image(path)
        reference, reference_geometry = read_label_image(reference_path)
        check_same_geometry(reference_geometry, geometry, reference_path, path)
        for array, where in ((prediction, path), (reference, reference_path)):
            if structures.kind == "levels":
                check_level_map(array, structures.levels, f"map {where}")
            elif label_ids_present(array) - known:
                raise InvalidInput(f"{where} holds label id(s) {sorted(label_ids_present(array) - known)} that "
                                   f"{validation.sources['dataset_json']} does not declare; fix the map or the labels.")
        spacing = geometry.spacing_zyx
        box = crop_box([reference, prediction], spacing, reach_mm(search_space))
        cases.append(CaseMaps(case, reference[box].copy(), prediction[box].copy(), spacing))
    return cases


def determine_postprocessing(output_dir: str | Path, validation: ValidationSet, *,
                             search_space: Sequence[Step] | None = None, progress: bool = True) -> Selection:
    """Chooses each structure's steps on ``validation`` and writes ``postprocessing.json`` and the tables.

    Args:
        output_dir: where the files go (:func:`check_output`).
        validation: :func:`model_validation` or :func:`folder_validation`.
        search_space: checked steps (default :data:`~radconf.postprocessing.steps.DEFAULT_SEARCH_SPACE`).
        progress: tqdm progress bar.

    Returns:
        The selection (kept steps, every trial, scores).

    Raises:
        InvalidInput, MissingInput: an output over an input, a damaged or mismatching map, before anything is
            written; a failure leaves the output folder as it was found.
    """
    from radconf.io.files import removed_on_failure

    output = Path(output_dir)
    steps = check_steps(list(DEFAULT_SEARCH_SPACE if search_space is None else search_space), "the search space")
    check_output(output, validation)
    structures = structures_of(validation.dataset_json, validation.sources["dataset_json"])
    cases = read_cases(validation, structures, steps)
    selection = select_steps(cases, structures, steps, progress=progress)
    with removed_on_failure(output):
        write_outputs(output, selection, steps, validation, [case.case for case in cases])
    return selection


def write_outputs(output: Path, selection: Selection, search_space: Sequence[Step], validation: ValidationSet,
                  cases: Sequence[str]) -> None:
    """The tables, then ``postprocessing.json`` (last: its presence means the selection is complete)."""
    from radconf.io.files import atomic_write_text
    from radconf.io.tables import write_csv, write_json

    rows = trial_rows(selection)
    columns = ["structure", "step", "on_top_of", "dice_before", "dice_after", "hd95_before_mm", "hd95_after_mm",
               "kept", "why"]
    output.mkdir(parents=True, exist_ok=True)
    write_csv(output / f"{TABLE}.csv", rows, columns)
    atomic_write_text(output / f"{TABLE}.md", markdown(selection, rows, len(cases)))
    scores = {name: {"raw": selection.raw[name].as_json(), "postprocessed": selection.final[name].as_json()}
              for name in selection.raw}
    write_json(output / OUTPUT_FILE, {
        **selection.postprocessing.as_json(),
        "rule": {"description": RULE, "min_dice_gain": MIN_DICE_GAIN, "hd95_tolerance_mm": HD95_TOLERANCE_MM,
                 "hd95_convention": "surface-distance"},
        "search_space": list(search_space),
        "scores": scores,
        "sources": {**validation.sources, "cases": list(cases)},
        "tables": [f"{TABLE}.csv", f"{TABLE}.md"],
    })


def _number(value: float, decimals: int) -> str:
    if math.isnan(value):
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.{decimals}f}"


def markdown(selection: Selection, rows: Sequence[dict], num_cases: int) -> str:
    """The per-structure summary and the table of every tried step."""
    lines = [f"# Post-processing chosen on {num_cases} validation case(s)", "",
             "| structure | kept steps | Dice raw | Dice post-processed | HD95 raw (mm) | HD95 post-processed (mm) |",
             "|---|---|--:|--:|--:|--:|"]
    for structure in selection.postprocessing.structures:
        raw, final = selection.raw[structure.name], selection.final[structure.name]
        lines.append(f"| {structure.name} | {steps_text(structure.steps)} | {_number(raw.mean_dice, 4)} | "
                     f"{_number(final.mean_dice, 4)} | {_number(raw.mean_hd95, 2)} | {_number(final.mean_hd95, 2)} |")
    lines += ["", "## Every step tried", "",
              "| structure | step | on top of | Dice before | Dice after | HD95 before (mm) | HD95 after (mm) | kept "
              "| why |",
              "|---|---|---|--:|--:|--:|--:|---|---|"]
    for row in rows:
        lines.append(f"| {row['structure']} | {row['step']} | {row['on_top_of']} | {_number(row['dice_before'], 4)} | "
                     f"{_number(row['dice_after'], 4)} | {_number(row['hd95_before_mm'], 2)} | "
                     f"{_number(row['hd95_after_mm'], 2)} | {row['kept']} | {row['why']} |")
    return "\n".join(lines) + "\n"
