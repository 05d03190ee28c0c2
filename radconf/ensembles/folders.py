"""Weighted ensembles of saved probabilities (``radconf_ensemble -i DIR ...``): each member folder holds
``CASE.npz`` (nnU-Net's ``--save_probabilities`` or a fold's ``validation/`` with ``--npz``) and ``CASE<ending>``, whose
geometry the output takes; files are read and written with nnU-Net's reader/writer of the members' plans.

Every member file is checked before anything is written: each ``CASE.npz`` from its archive directory and array
header (a truncated or corrupt archive, a missing array, a shape that does not fit), each ``CASE<ending>`` from its
header (whole, same grid in every member). A failed run leaves the output folder as it was found, and the record
files (``ensemble.json``, dataset.json, plans.json) are written last.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radconf.confidence.outputs import LevelOutputs
from radconf.ensembles.outputs import (
    DISAGREEMENT_FOLDER,
    finish_outputs,
    space_levels,
    write_case,
    write_ensemble_record,
)
from radconf.ensembles.space import (
    OutputSpace,
    WeightedAccumulator,
    common_space,
    to_space,
)
from radconf.ensembles.weights import check_weights, require_same_cases
from radconf.errors import InvalidInput, MissingInput
from radconf.io.cases import PredictedCases, split_done
from radconf.io.dataset_json import read_json_file
from radconf.io.files import removed_on_failure
from radconf.io.images import check_image_file, geometry_difference
from radconf.io.locations import check_output_location
from radconf.io.probabilities import load_probabilities, probability_shape


def find_model_files(folder: Path) -> tuple[dict, dict]:
    """dataset.json and plans.json of a prediction folder: in it (``radconf_predict``/``nnUNetv2_predict`` output)
    or up to two levels above (``fold_X/validation`` of a trained model)."""
    check_member_folders([folder])
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / "dataset.json").is_file() and (candidate / "plans.json").is_file():
            return read_member_json(candidate / "dataset.json"), read_member_json(candidate / "plans.json")
    raise MissingInput(f"No dataset.json/plans.json in {folder} or the two folders above it; use the output "
                       f"folder of radconf_predict --save_probabilities or a model's fold_X/validation "
                       f"(trained with --npz).")


def read_member_json(path: Path) -> dict:
    """dataset.json or plans.json of a member, refused with its name when malformed."""
    data = read_json_file(path, fix="or copy it again from the model folder")
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} is not an nnU-Net {path.name} (a JSON object); copy it again from the model "
                           f"folder.")
    if path.name == "dataset.json" and not all(key in data for key in ("labels", "file_ending")):
        raise InvalidInput(f"{path} has no 'labels' or 'file_ending'; it is not an nnU-Net dataset.json.")
    return data


def check_member_folders(folders: Sequence[Path], flag: str = "-i") -> None:
    """Each member folder exists, is a folder and is given once."""
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise InvalidInput(f"{flag} {folder} is a file; give the prediction folders that hold CASE.npz.")
        if not folder.is_dir():
            raise MissingInput(f"Member folder {flag} {folder} does not exist; check the path.")
    resolved = [f.resolve() for f in folders]
    repeated = [f for f, r in zip(folders, resolved) if resolved.count(r) > 1]
    if repeated:
        raise InvalidInput(f"{flag} names the folder {repeated[0]} twice; give each member once (weights set how much "
                           f"each one counts).")


def probability_cases(folders: Sequence[Path]) -> list[str]:
    """Cases with a ``CASE.npz`` in every folder.

    Raises:
        ValueError: a folder has none, or the folders hold different cases (naming them).
    """
    found = [{p.name[: -len(".npz")] for p in Path(f).glob("*.npz")} for f in folders]
    for folder, cases in zip(folders, found):
        if not cases:
            raise MissingInput(f"{folder} holds no CASE.npz probabilities; predict with --save_probabilities "
                               f"(or validate with --npz).")
    return require_same_cases({str(f): cases for f, cases in zip(folders, found)},
                              "All members must predict the same cases.")


def export_channels(kind: str, space: OutputSpace) -> int:
    """The channels of a member's exported probabilities of this kind (before conversion into ``space``)."""
    return space.num_channels + 1 if kind == "level_softmax" else space.num_channels


def check_case_probabilities(case: str, files: Sequence[Path], kinds: Sequence[str], space: OutputSpace
                             ) -> tuple[int, ...]:
    """Checks the members' ``CASE.npz`` of one case (whole, the member's channels, one spatial shape); returns it."""
    shapes = [probability_shape(path) for path in files]
    for path, shape, kind in zip(files, shapes, kinds):
        if len(shape) < 2 or shape[0] != export_channels(kind, space):
            raise InvalidInput(f"{path} holds probabilities of shape {shape}; this member exports "
                               f"{export_channels(kind, space)} channels (labels {dict(space.labels)}). Is it a "
                               f"prediction of this model?")
        if shape[1:] != shapes[0][1:]:
            raise InvalidInput(f"Case {case}: {path} has probabilities on a grid of shape {shape[1:]} but {files[0]} "
                               f"{shapes[0][1:]}; ensemble only predictions of the same images.")
    return shapes[0][1:]


def _check_members(folders: Sequence[Path], cases: Sequence[str], ending: str, kinds: Sequence[str],
                   space: OutputSpace) -> None:
    """Every member file of every case, before anything is written: probabilities (whole, channels, shape) and the
    segmentations that give the output its geometry (present, whole, one grid)."""
    for case in cases:
        shape = check_case_probabilities(case, [f / f"{case}.npz" for f in folders], kinds, space)
        references = [f / f"{case}{ending}" for f in folders]
        missing = [str(r) for r in references if not r.is_file()]
        if missing:
            raise MissingInput(f"Case {case}: {missing[0]} is missing; it gives the output its geometry.")
        grids = [check_image_file(path) for path in references]
        for path, grid in zip(references[1:], grids[1:]):
            difference = geometry_difference(grids[0], grid)
            if difference:
                raise InvalidInput(f"Case {case}: {path} and {references[0]} are on different image grids "
                                   f"({difference}); ensemble only predictions of the same images.")
        if sorted(shape) != sorted(grids[0].size):
            raise InvalidInput(f"Case {case}: probabilities of shape {shape} do not fit the image grid "
                               f"{grids[0].size} of {references[0]}; are these the same images?")


def ensemble_folders(input_folders: Sequence[str | Path], output_folder: str | Path,
                     weights: Sequence[float] | None = None, *, save_probabilities: bool = False,
                     save_disagreement: bool = False, overwrite: bool = True, level_probabilities: bool = False,
                     level_masks: Sequence[int] = (), progress: bool = True) -> PredictedCases:
    """Weighted ensemble of saved probabilities: the counterpart of ``nnUNetv2_ensemble``, with weights.

    Args:
        input_folders: prediction folders with ``CASE.npz`` and ``CASE<ending>`` (whose geometry the output takes),
            and dataset.json/plans.json in the folder or up to two levels above.
        output_folder: where the ensemble's segmentations go (never a member folder, nor inside or around one).
        weights: one per folder (normalised); None = equal weights.
        save_probabilities, save_disagreement, overwrite, level_probabilities, level_masks: as
            :func:`predict_ensemble`.
        progress: tqdm progress bar.

    Returns:
        The cases (``skipped``: those already ensembled, ``overwrite`` False).

    Raises:
        InvalidInput, MissingInput: any problem with the options or the member files, before anything is written.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folders, output_folder = [Path(f) for f in input_folders], Path(output_folder)
    check_member_folders(folders)
    if output_folder.exists() and not output_folder.is_dir():
        raise InvalidInput(f"-o {output_folder} is a file; give a folder for the ensemble.")
    check_output_location(output_folder, [(f"the member folder -i {f}", f) for f in folders])
    weights = check_weights(weights, len(folders))
    descriptions = [find_model_files(f) for f in folders]
    space, kinds = common_space([d for d, _ in descriptions], [str(f) for f in folders])
    levels = LevelOutputs(probabilities=level_probabilities, masks=tuple(level_masks))
    levels.check(space_levels(space), "these members")
    ending = descriptions[0][0]["file_ending"]
    cases = probability_cases(folders)
    _check_members(folders, cases, ending, kinds, space)
    todo, skipped = _split_done(cases, output_folder, overwrite, ending, save_probabilities, save_disagreement,
                                levels, space)
    # nnU-Net's own reader/writer of the members' plans, as radconf_predict -m uses: same geometry, same file format
    reader_writer = PlansManager(descriptions[0][1]).image_reader_writer_class()
    with removed_on_failure(output_folder):
        output_folder.mkdir(parents=True, exist_ok=True)
        _ensemble_cases(folders, output_folder, todo, weights, kinds, space, ending, reader_writer,
                        save_probabilities, save_disagreement, progress)
        if todo:
            finish_outputs(output_folder, space, ending, save_probabilities, level_probabilities, level_masks,
                           cases=todo)
        write_ensemble_record(output_folder, space, descriptions[0][0], descriptions[0][1], [str(f) for f in folders],
                              weights)
    return PredictedCases(cases, skipped)


def _split_done(cases, output_folder, overwrite, ending, save_probabilities, save_disagreement, levels, space):
    def outputs(case: str) -> list[str]:
        return [f"{case}{ending}", *([f"{case}.npz"] if save_probabilities else []),
                *levels.files(case, ending, space_levels(space)),
                *([f"{DISAGREEMENT_FOLDER}/{case}{ending}"] if save_disagreement else [])]

    return split_done(cases, output_folder, overwrite, outputs)


def _ensemble_cases(folders, output_folder, cases, weights, kinds, space, ending, reader_writer, save_probabilities,
                    save_disagreement, progress) -> None:
    from tqdm import tqdm

    for case in tqdm(cases, desc="Ensemble", unit="case", disable=not progress):
        references = [f / f"{case}{ending}" for f in folders]
        accumulator = WeightedAccumulator(space, track_disagreement=save_disagreement)
        for folder, weight, kind in zip(folders, weights, kinds):
            if weight > 0:
                accumulator.add(to_space(load_probabilities(folder / f"{case}.npz"), kind, space), float(weight))
        reference, properties = reader_writer.read_seg(str(references[0]))

        def write_segmentation(segmentation: np.ndarray, tmp: str) -> None:
            if segmentation.shape != reference.shape[1:]:
                raise InvalidInput(f"Case {case}: probabilities of shape {segmentation.shape} do not match the image "
                                   f"grid {reference.shape[1:]} of {references[0]}.")
            reader_writer.write_seg(segmentation, tmp, properties)

        write_case(output_folder, case, ending, accumulator, space, save_probabilities or space.kind == "cumulative",
                   write_segmentation)
