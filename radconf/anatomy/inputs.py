"""Inputs of two-stage prediction: image channels + anatomy masks cut from an organ model's label maps.

An anatomy model (:mod:`radconf.anatomy`) reads ``num_channels`` channels per case: the image channels
(``AnatomyChannels.image_channels``) and one binary organ mask per anatomy channel. At inference the masks come from
the label maps a first (organ) model predicted. :func:`assemble_anatomy_inputs` writes images and masks into one
folder that the anatomy model reads; :func:`split_channels_present` tells whether a folder already holds them all.
Masks are uint8 0/1 written with the case's first image channel's geometry, as ``radconf_anatomy_dataset`` writes them
for training.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.anatomy.channels import AnatomyChannels, anatomy_of, masks_from_label_map
from radconf.errors import InvalidInput, MissingInput
from radconf.io.cases import case_channels, list_cases
from radconf.io.files import atomic_write_bytes, atomic_write_image
from radconf.io.images import (
    RESAMPLE_HINT,
    Geometry,
    check_image_file,
    geometry_difference,
    read_geometry,
    read_label_image,
)
from radconf.models import ModelFiles, ModelSpec, find_model


@dataclass(frozen=True)
class AnatomyInputs:
    """Where an anatomy-channel model gets its organ masks when the input folder holds only the images.

    Attributes:
        folder: label maps ``CASE<ending>`` with the organ labels the model was trained with (ids as in its
            dataset.json's ``source_labels``).
        model: the organ model to run first (two-stage prediction); its segmentations are kept in
            ``<output>/anatomy_predictions`` and its labels are matched by name.
    """

    folder: str | os.PathLike | None = None
    model: ModelSpec | None = None

    @property
    def given(self) -> bool:
        return self.folder is not None or self.model is not None


def split_channels_present(images_dir: str | os.PathLike, file_ending: str, anatomy: AnatomyChannels,
                           num_channels: int) -> bool:
    """Whether ``images_dir`` holds every channel (True: give it to the model as it is) or only the image channels
    (False: assemble the anatomy channels first).

    Raises:
        FileNotFoundError: the folder is missing or holds no images.
        ValueError: a case with other channels, or a folder mixing both kinds of cases.
    """
    if max(anatomy.indices) >= num_channels:
        raise InvalidInput(f"Anatomy channels {anatomy.indices} do not fit a model with {num_channels} input channels.")
    found = case_channels(images_dir, file_ending)
    if not found:
        raise MissingInput(f"No CASE_XXXX{file_ending} images in {images_dir}.")
    every, images = list(range(num_channels)), anatomy.image_channels(num_channels)
    complete = {case: channels == every for case, channels in found.items() if channels in (every, images)}
    wrong = [case for case in found if case not in complete]
    if wrong:
        raise InvalidInput(f"{images_dir}: case {wrong[0]} has channels {found[wrong[0]]} ({len(wrong)} case(s) "
                         f"affected); the anatomy model expects either its image channels {images} (the anatomy "
                         f"channels {anatomy.indices} are then cut from predicted label maps) or all channels {every}.")
    if len(set(complete.values())) > 1:
        with_masks = [case for case, full in complete.items() if full]
        raise InvalidInput(f"{images_dir} mixes cases with anatomy channels ({', '.join(with_masks[:5])}) and cases "
                         f"without; keep one kind per folder.")
    return next(iter(complete.values()))


def grid_problem(case: str, image: Geometry, image_name: str, path: Path, what: str) -> str | None:
    """A problem line when the file ``path`` cannot be read, is truncated or holds NaN, or is not on ``image``'s grid;
    None when it matches."""
    try:
        difference = geometry_difference(image, check_image_file(path))
    except ValueError as error:
        return f"case {case}: {error}"
    if difference:
        return f"case {case}: {what} {path} does not match image {image_name}: {difference}. {RESAMPLE_HINT}"
    return None


def write_on_grid(array: np.ndarray, geometry: Geometry, path: Path) -> Path:
    """Writes ``array`` (numpy (z, y, x)) atomically with ``geometry``'s spacing, origin and direction."""
    import SimpleITK as sitk

    return atomic_write_image(path, geometry.apply_to(sitk.GetImageFromArray(array)))


def cut_masks(label_map: Path, label_ids: Mapping[str, int], names: Sequence[str]) -> list[np.ndarray]:
    """Binary uint8 masks of ``names`` cut from a label map file, one per name, in order."""
    array, _ = read_label_image(label_map)
    return masks_from_label_map(array, label_ids, names, where=str(label_map))


@dataclass(frozen=True)
class AnatomySource:
    """Where an anatomy-channel model's organ masks come from, checked before any prediction.

    Attributes:
        anatomy: the model's anatomy declaration.
        folder: label maps ``CASE<ending>`` (``--anatomy``), or None.
        model: the organ model to run first (``--anatomy_model``), or None.
        label_ids: structure name -> label id in those label maps.
    """

    anatomy: AnatomyChannels
    folder: Path | None
    model: ModelFiles | None
    label_ids: dict[str, int]


def check_anatomy_source(images_dir: Path, cases: Sequence[str], dataset_json: dict, inputs: AnatomyInputs,
                         num_channels: int) -> AnatomySource | None:
    """What an anatomy-channel model needs besides the images, checked (None: the folder holds every channel, or the
    model has no anatomy channels).

    Raises:
        InvalidInput: options that do not apply to the model, an organ model that does not fit, label maps that are
            missing, truncated or off-grid (all listed).
    """
    anatomy = anatomy_of(dataset_json, where="the model's dataset.json")
    ending = dataset_json["file_ending"]
    if anatomy is None:
        if inputs.given:
            raise InvalidInput("--anatomy/--anatomy_model only apply to models trained with anatomy channels; this "
                               "model's dataset declares none.")
        return None
    if inputs.folder is not None and inputs.model is not None:
        raise InvalidInput("Give either --anatomy DIR (precomputed organ masks) or --anatomy_model SPEC, not both.")
    if split_channels_present(images_dir, ending, anatomy, num_channels):
        if inputs.given:
            raise InvalidInput(f"{images_dir} already holds the anatomy channels {anatomy.names}; drop "
                               f"--anatomy/--anatomy_model or pass the images only.")
        return None
    if inputs.model is not None:
        organ = find_model(inputs.model)
        return AnatomySource(anatomy, None, organ, _organ_label_ids(organ, anatomy, ending, num_channels))
    if inputs.folder is None:
        raise InvalidInput(f"The model takes the organ masks {anatomy.names} as input channels, but {images_dir} "
                           f"holds only the images. Pass --anatomy_model SPEC (the organ model to run first) or "
                           f"--anatomy DIR (label maps CASE{ending} with the ids {dict(anatomy.source_labels)}).")
    label_ids = dict(anatomy.source_labels)
    check_label_maps(images_dir, Path(inputs.folder), cases, anatomy, ending, num_channels, label_ids)
    return AnatomySource(anatomy, Path(inputs.folder), None, label_ids)


def _organ_label_ids(organ: ModelFiles, anatomy: AnatomyChannels, ending: str, num_channels: int) -> dict[str, int]:
    """The organ model's label ids of the anatomy structures; it must read the image channels and write ``ending``."""
    images = len(anatomy.image_channels(num_channels))
    if organ.num_channels != images or organ.file_ending != ending:
        raise InvalidInput(f"--anatomy_model {organ.spec} reads {organ.num_channels} channel(s) of {organ.file_ending} "
                           f"files, but the images of this model are {images} channel(s) of {ending}; give the organ "
                           f"model trained on these images.")
    if anatomy_of(organ.dataset_json, where=f"{organ.folder}/dataset.json") is not None:
        raise InvalidInput(f"--anatomy_model {organ.spec} itself takes anatomy channels; give an organ model that "
                           f"reads the images alone.")
    label_ids = {name: int(value) for name, value in organ.dataset_json["labels"].items()
                 if not isinstance(value, list)}
    unknown = [name for name in anatomy.names if name not in label_ids]
    if unknown:
        raise InvalidInput(f"--anatomy_model {organ.spec} does not predict {unknown} (its labels: "
                           f"{', '.join(label_ids)}); give the organ model whose labels include {anatomy.names}.")
    return label_ids


def check_label_maps(images_dir: Path, label_maps_dir: Path, cases: Sequence[str], anatomy: AnatomyChannels,
                     file_ending: str, num_channels: int, label_ids: Mapping[str, int]) -> dict[str, Path]:
    """Every case's label map: present, whole and on the grid of its first image channel; returns case -> file.

    Raises:
        MissingInput: the folder, or label maps of cases (all listed), missing.
        InvalidInput: structures without a label id; label maps truncated or off-grid (all listed).
    """
    unknown = [name for name in anatomy.names if name not in label_ids]
    if unknown:
        raise InvalidInput(f"Anatomy structures {unknown} have no label id in the label maps' table {dict(label_ids)}; "
                           f"pass label_ids (structure name -> id of the organ model's labels).")
    if label_maps_dir.exists() and not label_maps_dir.is_dir():
        raise InvalidInput(f"--anatomy {label_maps_dir} is a file; give the folder of label maps CASE{file_ending}.")
    if not label_maps_dir.is_dir():
        raise MissingInput(f"Label-map folder {label_maps_dir} does not exist; predict the anatomy first (the "
                           f"organ model, e.g. radconf_predict) into it.")
    maps = list_cases(label_maps_dir, file_ending)
    missing = [case for case in cases if case not in maps]
    if missing:
        raise MissingInput(f"{len(missing)} case(s) of {images_dir} have no label map {label_maps_dir}/"
                           f"CASE{file_ending}: {', '.join(missing)}. Predict their anatomy with the organ model "
                           f"first, or remove their images.")
    first = anatomy.image_channels(num_channels)[0]
    problems = []
    for case in cases:
        image = images_dir / f"{case}_{first:04d}{file_ending}"
        try:
            grid = read_geometry(image)
        except ValueError as error:
            problems.append(f"case {case}: {error}")
            continue
        problem = grid_problem(case, grid, image.name, maps[case], "label map")
        if problem:
            problems.append(problem)
    if problems:
        raise InvalidInput(f"Anatomy inputs have {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return {case: maps[case] for case in cases}


def assemble_anatomy_inputs(images_dir: str | os.PathLike, label_maps_dir: str | os.PathLike,
                            output_dir: str | os.PathLike, anatomy: AnatomyChannels, file_ending: str,
                            num_channels: int, label_ids: Mapping[str, int] | None = None) -> list[str]:
    """Writes each case's image channels and the anatomy masks cut from its label map into ``output_dir``.

    Args:
        images_dir: ``CASE_XXXX<ending>`` files holding exactly the image channels ``anatomy.image_channels``.
        label_maps_dir: ``CASE<ending>`` label maps, e.g. an organ model's predictions.
        output_dir: where ``CASE_XXXX<ending>`` for all ``num_channels`` channels go (created if needed).
        anatomy: the anatomy model's declaration (its dataset.json, via :func:`radconf.anatomy.anatomy_of`).
        file_ending: file ending of images and label maps, e.g. ``.nii.gz``.
        num_channels: input channels of the anatomy model.
        label_ids: structure name -> label id in the label maps (default ``anatomy.source_labels``).

    Returns:
        The case identifiers written.

    Raises:
        FileNotFoundError: a folder missing, or cases without a label map (all listed).
        ValueError: structures without a label id, an images folder already holding anatomy channels or other
            channels, or label maps whose geometry differs from the image (all listed), each naming file and fix.
    """
    images_dir, label_maps_dir, output_dir = Path(images_dir), Path(label_maps_dir), Path(output_dir)
    label_ids = dict(anatomy.source_labels if label_ids is None else label_ids)
    unknown = [name for name in anatomy.names if name not in label_ids]
    if unknown:
        raise InvalidInput(f"Anatomy structures {unknown} have no label id in the label maps' table {label_ids}; pass "
                           f"label_ids (structure name -> id of the organ model's labels).")
    if output_dir.resolve() in (images_dir.resolve(), label_maps_dir.resolve()):
        raise InvalidInput(f"Output folder {output_dir} must differ from the images and label-map folders.")
    if split_channels_present(images_dir, file_ending, anatomy, num_channels):
        raise InvalidInput(f"{images_dir} already holds the anatomy channels {anatomy.indices}; give it to the model "
                           f"as it is (no assembly needed), or remove those files to cut them from label maps.")
    cases = list(case_channels(images_dir, file_ending))
    maps = check_label_maps(images_dir, label_maps_dir, cases, anatomy, file_ending, num_channels, label_ids)
    first = anatomy.image_channels(num_channels)[0]
    for case in cases:
        grid = read_geometry(images_dir / f"{case}_{first:04d}{file_ending}")
        for channel in anatomy.image_channels(num_channels):
            name = f"{case}_{channel:04d}{file_ending}"
            atomic_write_bytes(output_dir / name, (images_dir / name).read_bytes())
        for index, mask in zip(anatomy.indices, cut_masks(maps[case], label_ids, anatomy.names)):
            write_on_grid(mask, grid, output_dir / f"{case}_{index:04d}{file_ending}")
    return cases
