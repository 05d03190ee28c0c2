"""Fitting a model's temperature on its validation predictions (``radconf_calibrate``): the cross-validation folds'
``fold_X/validation/CASE.npz`` (never fold ``all``) or prediction folders of a separate validation split, checked
before fitting, and ``temperature.json`` written into the model folder (:mod:`radconf.calibration.temperature`)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from radconf.calibration.temperature import (
    SOFTMAX_KINDS,
    TEMPERATURE_FILE,
    channel_names,
    check_sampling,
    default_temperature_path,
    fit_sample,
    model_name,
    sample_scores,
    sample_voxels,
    scaling_of,
    write_temperature,
)
from radconf.errors import InvalidInput, MissingInput


def calibrate_model(spec, *, output: str | Path | None = None, per_structure: bool = False,
                    folders: Sequence[str | Path] | None = None, reference_dir: str | Path | None = None,
                    max_voxels: int = 2_000_000, seed: int = 0, progress: bool = True) -> dict:
    """Fits a model's temperature scaling on its validation probabilities and writes ``temperature.json``.

    Args:
        spec: the model (:class:`radconf.models.ModelSpec`): its folds' ``fold_X/validation/CASE.npz`` (never fold
            ``all``) against ``nnUNet_preprocessed/<dataset>/gt_segmentations``, else ``nnUNet_raw/.../labelsTr``.
        output: the file (default ``<model folder>/temperature.json``); only a temperature file is replaced.
        per_structure: one temperature per channel.
        folders: instead of the folds: prediction folders (``CASE.npz``, the model's dataset.json in or above them)
            of a separate validation split, with ``reference_dir`` (their ``CASE<ending>`` reference maps).
        reference_dir: see ``folders``.
        max_voxels, seed: as :func:`fit_temperature`.
        progress: a progress bar over the cases.

    Returns:
        The record written.

    Raises:
        InvalidInput, MissingInput: any problem with the inputs or the output, found before the fit.
    """
    from radconf.ensembles.space import member_space
    from radconf.models import find_model
    from radconf.paths import require_nnunet_paths

    if (folders is None) != (reference_dir is None):
        raise InvalidInput("--folders and -ref go together: prediction folders of validation cases and their "
                           "reference label maps (without both, the model's cross-validation folds are used).")
    if folders is None and "all" in spec.folds:
        raise InvalidInput(f"Fold 'all' of {model_name(spec)} was trained on every case, so its validation "
                           f"predictions are training predictions; calibrate on cross-validation folds (-f 0 1 2 3 4) "
                           f"or on a validation split (--folders DIR -ref LABELS).")
    check_sampling("softmax", max_voxels, seed)
    paths = require_nnunet_paths()
    model = find_model(spec, paths.results)
    space, kind = member_space(model.dataset_json)
    if folders is None:
        files, reference = _cross_validation_files(model), _reference_folder(model, paths)
    else:
        files, reference = _folder_files([Path(f) for f in folders], model), Path(reference_dir)
    output = Path(output) if output is not None else default_temperature_path(model)
    predictions = sorted({p.parent for p in files.values()})
    _check_output(output, [*predictions, reference], model)
    cases = sorted(files)
    references = _check_cases(files, reference, kind, space, model.file_ending)
    sample = sample_voxels(_read_cases(cases, files, references, kind, space, progress), kind, max_voxels, seed)
    temperatures = fit_sample(sample, kind, per_structure)
    (nll_before, ece_before), (nll_after, ece_after) = (sample_scores(sample, kind, t) for t in ([1.0], temperatures))
    record = {"model": model_name(spec), "trainer": spec.trainer, "plans": spec.plans,
              "configuration": spec.configuration, "dataset": model.folder.parent.name,
              "labels": model.dataset_json["labels"], "folds_fitted": list(spec.folds) if folders is None else [],
              "kind": kind, "per_structure": per_structure, "channels": channel_names(model.dataset_json, kind),
              "temperatures": [float(t) for t in temperatures], "nll_before": nll_before, "nll_after": nll_after,
              "ece_before": ece_before, "ece_after": ece_after, "cases": cases, "voxels": len(sample.targets),
              "predictions": [str(p) for p in predictions], "reference": str(reference)}
    write_temperature(output, record)
    return record


def _cross_validation_files(model) -> dict[str, Path]:
    """``CASE -> fold_X/validation/CASE.npz`` over the folds of the model; every fold without exports is named."""
    spec, files, missing = model.spec, {}, []
    for fold in spec.folds:
        validation = model.folder / f"fold_{fold}" / "validation"
        found = sorted(p for p in validation.glob("*.npz") if not p.name.startswith("."))
        missing += [] if found else [fold]
        for path in found:
            case = path.name[: -len(".npz")]
            if case in files:
                raise InvalidInput(f"{model_name(spec)}: case {case} is in the validation of fold {fold} and of "
                                   f"another fold; the folds must come from one split.")
            files[case] = path
    if missing:
        command = f"{spec.dataset} {spec.configuration} FOLD -tr {spec.trainer} -p {spec.plans} --val --npz"
        raise MissingInput(f"{model.folder}: fold(s) {', '.join(missing)} have no validation probabilities "
                           f"(fold_X/validation/*.npz); export them for each of these folds with radconf_train "
                           f"{command} (or nnUNetv2_train {command}).")
    return files


def _reference_folder(model, paths) -> Path:
    name = model.folder.parent.name
    candidates = (paths.preprocessed / name / "gt_segmentations", paths.raw / name / "labelsTr")
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise MissingInput(f"No references for {model_name(model.spec)}: neither {candidates[0]} nor {candidates[1]} "
                       f"exists; preprocess the dataset (radconf_plan_and_preprocess -d {model.spec.dataset}) or give "
                       f"--folders DIR -ref LABELS.")


def _folder_files(folders: list[Path], model) -> dict[str, Path]:
    from radconf.ensembles.fitting import folder_member

    files: dict[str, Path] = {}
    for folder in folders:
        member = folder_member(folder)
        if member.dataset_json["labels"] != model.dataset_json["labels"]:
            raise InvalidInput(f"--folders {folder}: its dataset.json labels {member.dataset_json['labels']} are not "
                               f"those of {model_name(model.spec)} ({model.dataset_json['labels']}); give "
                               f"predictions of this model.")
        repeated = sorted(set(files) & set(member.files))
        if repeated:
            raise InvalidInput(f"--folders {folder}: case {repeated[0]} is also in another folder; give each "
                               f"validation case once.")
        files.update(member.files)
    return files


def _check_output(output: Path, inputs: list[Path], model) -> None:
    from radconf.io.locations import check_output_location

    if output.is_dir():
        raise InvalidInput(f"-o {output} is a folder; give a file name, e.g. -o {output / TEMPERATURE_FILE}.")
    if not output.parent.is_dir():
        raise MissingInput(f"-o {output}: the folder {output.parent} does not exist; create it or choose another.")
    check_output_location(output, [("an input folder", folder) for folder in inputs], relations=("is", "lies inside"),
                          fix=f"Write it elsewhere, e.g. -o {default_temperature_path(model)}.")
    from radconf.io.dataset_json import read_json_file

    if output.exists():
        try:
            scaling_of(read_json_file(output), output, None, "")
        except InvalidInput:
            raise InvalidInput(f"-o {output} exists and is not a temperature file of radconf_calibrate; remove it or "
                               f"choose another file name.") from None


def _check_cases(files: dict[str, Path], reference: Path, kind: str, space, ending: str) -> dict[str, Path]:
    """Every probability file (whole, the model's channels) and reference (present, whole, same grid)."""
    from radconf.ensembles.folders import check_case_probabilities
    from radconf.io.images import check_image_file

    if not reference.is_dir():
        raise MissingInput(f"-ref {reference} does not exist or is not a folder; give the reference label maps "
                           f"CASE{ending} of the validation cases.")
    references = {}
    for case, path in sorted(files.items()):
        shape = check_case_probabilities(case, [path], [kind], space)
        references[case] = reference / f"{case}{ending}"
        if not references[case].is_file():
            raise MissingInput(f"Reference {references[case]} of validation case {case} ({path}) is missing; give "
                               f"the folder that holds every validation case's reference.")
        size = tuple(reversed(check_image_file(references[case]).size))
        if tuple(size) != tuple(shape):
            raise InvalidInput(f"Case {case}: {path} has probabilities of shape {shape} but the reference "
                               f"{references[case]} {size}; are these the same images?")
    return references


def _read_cases(cases, files, references, kind, space, progress) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from tqdm import tqdm

    from radconf.ensembles.space import reference_targets
    from radconf.io.images import read_label_image
    from radconf.io.probabilities import load_probabilities

    channels = len(space.labels) if kind == "softmax" else space.num_channels + 1
    for case in tqdm(cases, desc="Validation cases", unit="case", disable=not progress):
        probabilities = load_probabilities(files[case])
        labels, _ = read_label_image(references[case])
        if not np.isfinite(probabilities).all():
            raise InvalidInput(f"{files[case]} holds NaN or infinite probabilities; predict the case again.")
        if kind in SOFTMAX_KINDS and labels.size and labels.max() >= channels:
            raise InvalidInput(f"{references[case]} holds label {labels.max()} but the model has {channels} classes; "
                               f"is it a reference of this dataset?")
        yield probabilities, (labels if kind in SOFTMAX_KINDS else reference_targets(labels, space))
