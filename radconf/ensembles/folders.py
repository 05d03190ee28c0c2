"""Weighted ensembles of saved probabilities (``radconf_ensemble -i DIR ...``): each member folder holds
``CASE.npz`` (nnU-Net's ``--save_probabilities`` or a fold's ``validation/`` with ``--npz``) and ``CASE<ending>``, whose
geometry the output takes; files are read and written with nnU-Net's reader/writer of the members' plans."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radconf.ensembles.outputs import finish_outputs, write_case, write_ensemble_record
from radconf.ensembles.space import WeightedAccumulator, common_space, to_space
from radconf.ensembles.weights import check_weights, require_same_cases
from radconf.errors import InvalidInput, MissingInput
from radconf.io.images import geometry_mismatch


def find_model_files(folder: Path) -> tuple[dict, dict]:
    """dataset.json and plans.json of a prediction folder: in it (``radconf_predict``/``nnUNetv2_predict`` output)
    or up to two levels above (``fold_X/validation`` of a trained model)."""
    for candidate in (folder, folder.parent, folder.parent.parent):
        if (candidate / "dataset.json").is_file() and (candidate / "plans.json").is_file():
            return (json.loads((candidate / "dataset.json").read_text()),
                    json.loads((candidate / "plans.json").read_text()))
    raise MissingInput(f"No dataset.json/plans.json in {folder} or the two folders above it; use the output "
                            f"folder of radconf_predict --save_probabilities or a model's fold_X/validation "
                            f"(trained with --npz).")


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


def _check_same_grid(case: str, files: Sequence[Path]) -> None:
    for path in files[1:]:
        difference = geometry_mismatch(files[0], path)
        if difference:
            raise InvalidInput(f"Case {case}: {path} and {files[0]} are on different image grids ({difference}); "
                               f"ensemble only predictions of the same images.")


def ensemble_folders(input_folders: Sequence[str | Path], output_folder: str | Path,
                     weights: Sequence[float] | None = None, *, save_probabilities: bool = False,
                     save_disagreement: bool = False, overwrite: bool = True, level_probabilities: bool = False,
                     level_masks: Sequence[int] = (), progress: bool = True) -> list[str]:
    """Weighted ensemble of saved probabilities: the counterpart of ``nnUNetv2_ensemble``, with weights.

    Args:
        input_folders: prediction folders with ``CASE.npz`` and ``CASE<ending>`` (whose geometry the output takes),
            and dataset.json/plans.json in the folder or up to two levels above.
        output_folder: where the ensemble's segmentations go.
        weights: one per folder (normalised); None = equal weights.
        save_probabilities, save_disagreement, overwrite, level_probabilities, level_masks: as
            :func:`predict_ensemble`.
        progress: tqdm progress bar.

    Returns:
        The cases ensembled.
    """
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
    from tqdm import tqdm

    folders = [Path(f) for f in input_folders]
    weights = check_weights(weights, len(folders))
    descriptions = [find_model_files(f) for f in folders]
    space, kinds = common_space([d for d, _ in descriptions], [str(f) for f in folders])
    ending = descriptions[0][0]["file_ending"]
    cases = probability_cases(folders)
    output_folder = Path(output_folder)
    # nnU-Net's own reader/writer of the members' plans, as radconf_predict -m uses: same geometry, same file format
    reader_writer = PlansManager(descriptions[0][1]).image_reader_writer_class()
    write_ensemble_record(output_folder, space, descriptions[0][0], descriptions[0][1], [str(f) for f in folders],
                           weights)
    for case in tqdm(cases, desc="Ensemble", unit="case", disable=not progress):
        if not overwrite and (output_folder / f"{case}{ending}").is_file():
            continue
        references = [f / f"{case}{ending}" for f in folders]
        missing = [str(r) for r in references if not r.is_file()]
        if missing:
            raise MissingInput(f"Case {case}: {missing[0]} is missing; it gives the output its geometry.")
        _check_same_grid(case, references)
        accumulator = WeightedAccumulator(space, track_disagreement=save_disagreement)
        for folder, weight, kind in zip(folders, weights, kinds):
            if weight > 0:
                with np.load(folder / f"{case}.npz") as npz:
                    accumulator.add(to_space(npz["probabilities"], kind, space), float(weight))
        reference, properties = reader_writer.read_seg(str(references[0]))

        def write_segmentation(segmentation: np.ndarray, tmp: str) -> None:
            if segmentation.shape != reference.shape[1:]:
                raise InvalidInput(f"Case {case}: probabilities of shape {segmentation.shape} do not match the image "
                                   f"grid {reference.shape[1:]} of {references[0]}.")
            reader_writer.write_seg(segmentation, tmp, properties)

        write_case(output_folder, case, ending, accumulator, space, save_probabilities or space.kind == "cumulative",
                    write_segmentation)
    finish_outputs(output_folder, space, ending, save_probabilities, level_probabilities, level_masks)
    return cases
