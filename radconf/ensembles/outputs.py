"""What both ensemble paths write: the decoded case, its optional probabilities and disagreement map, the level
outputs of confidence ensembles, and ``ensemble.json`` (members, weights, output space)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radconf.confidence.ordinal import cumulative_dataset_json
from radconf.ensembles.space import OutputSpace, WeightedAccumulator, decode
from radconf.errors import InvalidInput
from radconf.io.files import atomic_write_image, atomic_write_json, atomic_write_with

DISAGREEMENT_FOLDER = "disagreement"


def write_case(output_folder: Path, case: str, ending: str, accumulator: WeightedAccumulator, space: OutputSpace,
                write_npz: bool, write_segmentation) -> None:
    """Decodes and writes one case: segmentation, optional npz and disagreement map (geometry of the segmentation)."""
    import SimpleITK as sitk

    mean = accumulator.mean()
    segmentation_file = output_folder / f"{case}{ending}"
    atomic_write_with(segmentation_file, lambda tmp: write_segmentation(decode(mean, space), tmp))
    if write_npz:
        atomic_write_with(output_folder / f"{case}.npz", lambda tmp: np.savez_compressed(tmp, probabilities=mean))
    if accumulator.track_disagreement:
        image = sitk.GetImageFromArray(accumulator.disagreement().astype(np.float32))
        image.CopyInformation(sitk.ReadImage(str(segmentation_file)))
        atomic_write_image(output_folder / DISAGREEMENT_FOLDER / f"{case}{ending}", image)


def space_levels(space: OutputSpace) -> int | None:
    """K of a confidence ensemble, None for any other output space."""
    return space.num_channels if space.kind == "cumulative" else None


def finish_outputs(output_folder: Path, space: OutputSpace, ending: str, save_probabilities: bool,
                   level_probabilities: bool, level_masks: Sequence[int], cases: Sequence[str] | None = None) -> None:
    """The level outputs of a confidence ensemble for ``cases`` (default: every ``CASE.npz`` of the folder)."""
    if space.kind == "cumulative":
        from radconf.confidence.outputs import finish_level_predictions

        finish_level_predictions(output_folder, space.num_channels, ending, cumulative=True,
                                 keep_npz=save_probabilities, probability_maps=level_probabilities,
                                 mask_levels=level_masks, cases=cases)
    elif level_probabilities or level_masks:
        raise InvalidInput("--level and --level_probabilities need confidence-level members.")


def write_ensemble_record(output_folder: Path, space: OutputSpace, dataset_json: dict, plans: dict,
                           members: Sequence[str], weights: np.ndarray) -> None:
    """``ensemble.json`` (members, weights), and dataset.json/plans.json describing the ensemble's outputs, so that
    the folder can itself be an input of ``radconf_ensemble``. Written once every case is done."""
    output_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output_folder / "ensemble.json", {
        "members": list(members), "weights": [float(w) for w in weights], "output_space": space.kind,
        "labels": {name: list(v) if isinstance(v, tuple) else v for name, v in space.labels}})
    described = cumulative_dataset_json(dataset_json) if space.kind == "cumulative" else dataset_json
    atomic_write_json(output_folder / "dataset.json", described)
    atomic_write_json(output_folder / "plans.json", plans)
