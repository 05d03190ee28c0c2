"""Fitting ensemble weights on validation predictions (``radconf_find_ensemble_weights``).

The members' probability exports of the same validation cases (their cross-validation ``fold_X/validation``
folders, validated with ``--npz``, or prediction folders of a separate validation split) are read one case at a
time, reduced to the statistics of ``radconf.ensemble_weights`` and dropped; the weights maximising the mean IoU
over structures are then searched, and each member, the average and the optimal ensemble are tabulated on those
validation cases. Only validation predictions enter: fold ``all`` (trained on every case) is refused, and
``weights.json`` lists the cases it was fitted on so that applying it to them later draws a warning.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.ensembles.folders import (
    check_case_probabilities,
    check_member_folders,
    find_model_files,
    read_member_json,
)
from radconf.ensembles.space import (
    OutputSpace,
    common_space,
    reference_targets,
    to_space,
)
from radconf.ensembles.weights import require_same_cases
from radconf.errors import InvalidInput, MissingInput
from radconf.io.files import removed_on_failure
from radconf.io.images import check_image_file, read_label_image
from radconf.io.locations import check_output_location
from radconf.io.probabilities import load_probabilities
from radconf.models import ModelSpec


@dataclass
class ValidationMember:
    """One member's validation probabilities: ``CASE -> CASE.npz``, with its dataset.json."""

    name: str
    files: dict[str, Path]
    dataset_json: dict


def cross_validation_member(spec: ModelSpec, results_root: Path) -> ValidationMember:
    """The ``fold_X/validation/*.npz`` of every fold of ``spec``; each case must come from exactly one fold.

    Raises:
        ValueError: fold ``all``, a fold without exports, a case validated by two folds.
    """
    if "all" in spec.folds:
        raise InvalidInput(f"{spec}: fold 'all' was trained on every case, so its validation predictions are training "
                         f"predictions; fit weights on cross-validation folds (e.g. 0,1,2,3,4) or a validation split.")
    model_folder = spec.model_folder(results_root)
    if not model_folder.is_dir():
        raise MissingInput(f"Model folder {model_folder} of {spec} does not exist; check the spec (-m "
                           f"DATASET:TRAINER:PLANS:CONFIGURATION:FOLDS), or train it with radconf_train.")
    files: dict[str, Path] = {}
    for fold in spec.folds:
        folder = model_folder / f"fold_{fold}" / "validation"
        exports = sorted(folder.glob("*.npz"))
        if not exports:
            raise MissingInput(f"{folder} holds no validation probabilities (*.npz). Export them with "
                                    f"radconf_train {spec.dataset} {spec.configuration} {fold} -tr {spec.trainer} "
                                    f"-p {spec.plans} --val --npz.")
        for path in exports:
            case = path.name[: -len(".npz")]
            if case in files:
                raise InvalidInput(f"{spec}: case {case} is in the validation of fold {fold} and of another fold; the "
                                 f"folds must come from one split.")
            files[case] = path
    return ValidationMember(str(spec), files, read_member_json(model_folder / "dataset.json"))


def folder_member(folder: Path) -> ValidationMember:
    """A prediction folder of validation cases (``CASE.npz``) with dataset.json in or above it."""
    check_member_folders([folder], flag="--folders")
    dataset_json, _ = find_model_files(folder)
    files = {p.name[: -len(".npz")]: p for p in sorted(folder.glob("*.npz"))}
    if not files:
        raise MissingInput(f"{folder} holds no CASE.npz probabilities; predict the validation cases with "
                                f"--save_probabilities.")
    return ValidationMember(str(folder), files, dataset_json)


def check_validation_files(members: Sequence[ValidationMember], kinds: Sequence[str], space: OutputSpace,
                           cases: Sequence[str], reference_dir: Path) -> None:
    """Every file the fit reads, before it starts: each member's ``CASE.npz`` (whole, its channels, one shape) and
    each reference label map (present, whole, on the probabilities' grid)."""
    ending = members[0].dataset_json["file_ending"]
    if not Path(reference_dir).is_dir():
        raise MissingInput(f"Reference folder {reference_dir} does not exist; give the validation cases' reference "
                           f"label maps CASE{ending} (--reference).")
    for case in cases:
        shape = check_case_probabilities(case, [m.files[case] for m in members], kinds, space)
        reference_file = Path(reference_dir) / f"{case}{ending}"
        if not reference_file.is_file():
            raise MissingInput(f"Reference {reference_file} of validation case {case} is missing.")
        size = check_image_file(reference_file).size
        if sorted(shape) != sorted(size):
            raise InvalidInput(f"Case {case}: {members[0].files[case]} has shape {shape} but the reference "
                               f"{reference_file} {tuple(reversed(size))}; are these the same images?")


def collect_statistics(members: Sequence[ValidationMember], reference_dir: Path, progress: bool = True):
    """Reads each validation case once and reduces it (``radconf.ensemble_weights.case_statistics``); every file is
    checked first (:func:`check_validation_files`).

    Returns:
        The statistics per case, the output space and the case identifiers.
    """
    from tqdm import tqdm

    from radconf.ensembles.statistics import case_statistics

    space, kinds = common_space([m.dataset_json for m in members], [m.name for m in members])
    ending = members[0].dataset_json["file_ending"]
    cases = require_same_cases({m.name: set(m.files) for m in members},
                               "Members must be validated on the same cases (same splits_final.json).")
    check_validation_files(members, kinds, space, cases, Path(reference_dir))
    statistics = []
    for case in tqdm(cases, desc="Validation cases", unit="case", disable=not progress):
        reference_file = Path(reference_dir) / f"{case}{ending}"
        reference, _ = read_label_image(reference_file)
        probabilities = []
        for member, kind in zip(members, kinds):
            p = to_space(load_probabilities(member.files[case]), kind, space)
            if p.shape[1:] != reference.shape:
                raise InvalidInput(f"Case {case}: {member.files[case]} has shape {p.shape[1:]} but the reference "
                                   f"{reference_file} {reference.shape}; are these the same images?")
            probabilities.append(p)
        statistics.append(case_statistics(probabilities, reference_targets(reference, space), space.decoding, case))
        del probabilities
    return statistics, space, cases


def ensemble_scores(weights: np.ndarray, statistics, space: OutputSpace) -> dict:
    """Mean IoU, mean Dice and per-structure Dice of the decoded mixture over the validation cases."""
    from radconf.ensembles.statistics import iou_table

    iou = iou_table(weights, statistics)  # (cases, structures), NaN where both are empty
    dice = 2 * iou / (1 + iou)
    per_structure = {name: float(np.nanmean(dice[:, s])) if np.isfinite(dice[:, s]).any() else float("nan")
                     for s, name in enumerate(space.structures)}
    worst = {name: float(np.nanmin(dice[:, s])) if np.isfinite(dice[:, s]).any() else float("nan")
             for s, name in enumerate(space.structures)}
    return {"mean_iou": float(np.nanmean(iou)), "mean_dice": float(np.nanmean(dice)), "dice": per_structure,
            "worst_dice": worst}


def find_ensemble_weights(output_dir: str | Path, *, members: Sequence[ModelSpec] = (),
                          folders: Sequence[str | Path] = (), reference_dir: str | Path | None = None,
                          objective: str = "hard", seed: int = 0, progress: bool = True) -> dict:
    """Fits the weights and writes ``weights.json``, ``ensemble_validation.md/.csv`` and ``ensemble_validation.png``.

    Args:
        output_dir: where the files go (created).
        members: model specs whose cross-validation exports are used (reference: the dataset's
            ``gt_segmentations`` in nnUNet_preprocessed).
        folders: instead of ``members``: prediction folders of the same validation cases (needs ``reference_dir``).
        reference_dir: reference label maps ``CASE<ending>`` for ``folders``.
        objective: ``hard`` (decoded mean IoU, searched from the soft optimum) or ``soft`` (soft IoU only).
        seed: seed of the random starts.
        progress: tqdm progress bars.

    Returns:
        The content of ``weights.json``.
    """
    from radconf.ensembles.optimiser import find_weights
    from radconf.io.files import atomic_write_json

    if bool(members) == bool(folders):
        raise InvalidInput("Give the members either as model specs (-m) or as validation prediction folders "
                           "(--folders with --reference), not both or neither.")
    if objective not in ("hard", "soft"):
        raise InvalidInput(f"--objective {objective!r} must be 'hard' or 'soft'.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput(f"--seed {seed!r} must be a whole number, 0 or more.")
    validation, reference_dir, inputs = _validation_members(members, folders, reference_dir)
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise InvalidInput(f"-o {output_dir} is a file; give a folder for weights.json and the tables.")
    check_output_location(output_dir, inputs)
    names = [m.name for m in validation]
    if len(validation) < 2:
        raise InvalidInput("An ensemble needs at least two members.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInput(f"Member {repeated[0]} is given twice; give each member once.")
    statistics, space, cases = collect_statistics(validation, reference_dir, progress=progress)
    search = find_weights(statistics, objective=objective, seed=seed, progress=progress)
    rows = {name: (np.eye(len(names))[i], ensemble_scores(np.eye(len(names))[i], statistics, space))
            for i, name in enumerate(names)}
    centre = np.full(len(names), 1.0 / len(names))
    rows["average ensemble"] = (centre, ensemble_scores(centre, statistics, space))
    rows["optimal ensemble"] = (search.weights, ensemble_scores(search.weights, statistics, space))
    result = {
        "members": names, "weights": [float(w) for w in search.weights], "objective": objective,
        "soft_iou_weights": [float(w) for w in search.soft_weights], "output_space": space.kind,
        "structures": space.structures, "validation_cases": cases, "reference": str(reference_dir),
        "validation": {name: {"weights": [float(w) for w in weights], **scores}
                       for name, (weights, scores) in rows.items()},
        "hard_evaluations": search.evaluations,
    }
    with removed_on_failure(output_dir):
        _write_table(output_dir / "ensemble_validation", rows, space, len(cases))
        _plot(output_dir / "ensemble_validation.png", rows, len(cases))
        atomic_write_json(output_dir / "weights.json", result)  # last: its presence means the fit is complete
    return result


def _validation_members(members: Sequence[ModelSpec], folders: Sequence[str | Path], reference_dir
                        ) -> tuple[list[ValidationMember], Path, list[tuple[str, Path]]]:
    """The members' validation probabilities, the reference folder and every folder read (for the output check)."""
    from radconf.ensembles.weights import folder_model

    if members:
        if reference_dir is not None:
            raise InvalidInput("--reference is for --folders; with -m the references are the dataset's "
                               "gt_segmentations in nnUNet_preprocessed. Drop --reference, or give --folders.")
        from radconf.paths import require_nnunet_paths
        from radconf.raw.checks import find_dataset_name

        paths = require_nnunet_paths()
        validation = [cross_validation_member(spec, paths.results) for spec in members]
        reference_dir = paths.preprocessed / find_dataset_name(members[0].dataset, paths.preprocessed) / \
            "gt_segmentations"
        inputs = [(f"the validation folder of {m.name}", folder) for m in validation
                  for folder in sorted({path.parent for path in m.files.values()})]
    else:
        if reference_dir is None:
            raise InvalidInput("--folders needs --reference DIR (the validation cases' reference label maps).")
        validation = [folder_member(Path(f)) for f in folders]
        inputs = [(f"the member folder --folders {m.name}", Path(m.name)) for m in validation]
        for member in validation:  # name a folder by its model where it can be told, so the weights can be matched
            member.name = folder_model(member.name) or member.name
    return validation, Path(reference_dir), [*inputs, ("the reference folder --reference", Path(reference_dir))]


def _write_table(stem: Path, rows: dict, space: OutputSpace, num_cases: int) -> None:
    import csv
    import io

    from radconf.io.files import atomic_write_text

    header = ["model", "weights", "mean IoU", "mean Dice", *[f"Dice {s}" for s in space.structures],
              *[f"worst Dice {s}" for s in space.structures]]
    records = []
    for name, (weights, scores) in rows.items():
        records.append([name, " ".join(f"{w:.3f}" for w in weights), f"{scores['mean_iou']:.4f}",
                        f"{scores['mean_dice']:.4f}", *[f"{scores['dice'][s]:.4f}" for s in space.structures],
                        *[f"{scores['worst_dice'][s]:.4f}" for s in space.structures]])
    lines = [f"Ensemble weights fitted on {num_cases} validation case(s); scores on those cases.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *["| " + " | ".join(r) + " |" for r in records]]
    atomic_write_text(stem.with_suffix(".md"), "\n".join(lines) + "\n")
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(header)
    writer.writerows(records)
    atomic_write_text(stem.with_suffix(".csv"), table.getvalue())


def _plot(path: Path, rows: dict, num_cases: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radconf.io.files import atomic_save_figure

    names = list(rows)
    members = len(names) - 2
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    left.barh(range(len(names)), [rows[n][1]["mean_iou"] for n in names],
              color=["tab:gray"] * members + ["tab:blue", "tab:orange"])
    left.set_yticks(range(len(names)), [n if len(n) < 60 else "..." + n[-57:] for n in names], fontsize=7)
    left.set_xlabel(f"mean IoU over structures ({num_cases} validation cases)")
    low = min(rows[n][1]["mean_iou"] for n in names)
    left.set_xlim(max(0.0, low - 0.05), 1.0)
    left.invert_yaxis()
    right.bar(range(members), rows["optimal ensemble"][0], color="tab:orange")
    right.set_xticks(range(members), [str(i + 1) for i in range(members)])
    right.set_xlabel("member (order of the table)")
    right.set_ylabel("optimal weight")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)
