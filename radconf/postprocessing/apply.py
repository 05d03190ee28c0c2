"""Applying a post-processing to a label map, a confidence level map, a prediction folder or a folder of maps.

The structures are processed in their order, and each structure's steps one at a time, on its mask as the map
stands:

- label maps: voxels a step removes become background (0), as in nnU-Net; voxels a step adds (hole filling,
  closing) get the structure's label where the map is background only, so a step never takes another structure's
  voxels;
- level maps, for ``c = 1..K``: the steps run on ``level >= c``; a voxel removed from it drops to ``c - 1`` (so it
  leaves every higher level too), a voxel added rises to ``c`` only where it is at ``c - 1`` already. The map stays
  nested: ``level >= c`` lies inside ``level >= c - 1`` after every step, as before. This is the nesting of
  :func:`radconf.contours.apply_to_levels` (each result intersected with the level below), for steps that differ
  from level to level (``apply_to_levels`` runs one operation on every level).

The work is done on the box around the foreground, enlarged by twice the largest radius (plus 2 voxels), which
changes no result and keeps the cost with the structures' size, not the image's. The same function serves the
selection (:mod:`radconf.postprocessing.selection`), so what was scored is what is applied.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.postprocessing.definition import PostProcessing, Structure
from radconf.postprocessing.steps import Step, apply_step, reach_mm

RECORD = "radconf_postprocessing.json"


def crop_box(maps: Sequence[np.ndarray], spacing: Sequence[float], reach: float) -> tuple[slice, ...]:
    """The box around the foreground (non-zero voxels) of ``maps``, enlarged by ``reach`` mm plus 2 voxels per axis
    and clipped to the image; one voxel at the origin when every map is empty."""
    foreground = np.zeros(maps[0].shape, dtype=bool)
    for array in maps:
        foreground |= array != 0
    if not foreground.any():
        return tuple(slice(0, 1) for _ in foreground.shape)
    box = []
    for axis, size in enumerate(foreground.shape):
        present = np.flatnonzero(foreground.any(axis=tuple(a for a in range(foreground.ndim) if a != axis)))
        margin = math.ceil(reach / float(spacing[axis])) + 2
        box.append(slice(max(0, int(present[0]) - margin), min(size, int(present[-1]) + 1 + margin)))
    return tuple(box)


def apply_label_structure(labels: np.ndarray, spacing: Sequence[float], structure: Structure, step: Step) -> None:
    """One step on one structure of a label map, in place (see the module's rule): a single label through
    :func:`radconf.contours.per_label` (which never paints over the labels it does not process), a union here."""
    from radconf.contours import per_label

    ids = structure.labels
    if len(ids) == 1:
        labels[...] = per_label(labels, lambda mask: apply_step(mask, spacing, step), labels=ids)
        return
    mask = np.isin(labels, ids)
    result = apply_step(mask, spacing, step)
    if np.any(result & ~mask):
        raise InvalidInput(f"{structure.name}: a union of labels takes only steps that remove voxels.")
    labels[mask & ~result] = 0


def apply_level_structure(levels: np.ndarray, spacing: Sequence[float], level: int, step: Step) -> None:
    """One step on the mask ``level >= c`` of a level map, in place, keeping the levels nested."""
    mask = levels >= level
    result = apply_step(mask, spacing, step)
    levels[mask & ~result] = level - 1
    levels[result & ~mask & (levels == level - 1)] = level


def apply_structure(array: np.ndarray, spacing: Sequence[float], kind: str, structure: Structure, step: Step) -> None:
    """One step of one structure on a label map (``kind`` ``labels``) or level map (``levels``), in place."""
    if kind == "levels":
        apply_level_structure(array, spacing, structure.level, step)
    else:
        apply_label_structure(array, spacing, structure, step)


def check_map(array: np.ndarray, postprocessing: PostProcessing, where: str) -> None:
    """Refuses a level map with values outside 0..K for a ``levels`` post-processing."""
    if postprocessing.kind == "levels" and array.size:
        top = int(array.max())
        if top > postprocessing.levels:
            raise InvalidInput(f"{where} holds the value {top}, but {postprocessing.source or 'the post-processing'} "
                               f"is for confidence levels 0..{postprocessing.levels}; give the level maps of that "
                               f"model (or a post-processing determined for these maps).")


def apply_postprocessing(array: np.ndarray, spacing: Sequence[float], postprocessing: PostProcessing, *,
                         where: str = "the map") -> np.ndarray:
    """A post-processed copy of a label map or confidence level map.

    Args:
        array: the map, numpy (z, y, x) order, non-negative integers; not modified.
        spacing: voxel spacing (mm) in the same order.
        postprocessing: what to apply (``levels``: the map's values must lie in 0..K).
        where: how messages name the map (e.g. its file).

    Returns:
        The post-processed map, same shape and dtype.

    Raises:
        InvalidInput: a level map with values above K.
    """
    array = np.asarray(array)
    check_map(array, postprocessing, where)
    result = array.copy()
    if not postprocessing.steps:
        return result
    box = crop_box([array], spacing, reach_mm(postprocessing.steps))
    crop = result[box].copy()
    for structure in postprocessing.structures:
        for step in structure.steps:  # one at a time: each step's result is written into the map before the next
            apply_structure(crop, spacing, postprocessing.kind, structure, step)
    result[box] = crop
    return result


def _process_file(source: Path, target: Path, postprocessing: PostProcessing) -> None:
    import SimpleITK as sitk

    from radconf.io.files import atomic_write_image
    from radconf.io.images import read_label_image

    array, geometry = read_label_image(source)
    result = apply_postprocessing(array, geometry.spacing_zyx, postprocessing, where=str(source))
    atomic_write_image(target, geometry.apply_to(sitk.GetImageFromArray(result)))


def postprocess_files(pairs: Sequence[tuple[Path, Path]], postprocessing: PostProcessing, *,
                      progress: bool = True) -> None:
    """Post-processes each ``(source, target)`` label file (target written atomically with the source's geometry;
    the same path is rewritten in place)."""
    from tqdm import tqdm

    for source, target in tqdm(pairs, desc="Post-processing", unit="case", disable=not progress or not pairs):
        _process_file(source, target, postprocessing)


def postprocess_predictions(folder: str | os.PathLike, cases: Sequence[str], file_ending: str,
                            postprocessing: PostProcessing, *, mask_levels: Sequence[int] = (),
                            progress: bool = True) -> None:
    """Post-processes the segmentations ``CASE<ending>`` of a prediction folder in place (``radconf_predict
    --postprocessing``), rewrites the masks ``level<L>_masks/CASE<ending>`` of a confidence model from the new level
    maps, and records what was applied in ``radconf_postprocessing.json``."""
    from radconf.io.files import atomic_write_json

    folder = Path(folder)
    files = [folder / f"{case}{file_ending}" for case in cases]
    postprocess_files([(path, path) for path in files], postprocessing, progress=progress)
    if mask_levels and postprocessing.kind == "levels":
        _rewrite_level_masks(folder, cases, file_ending, mask_levels)
    atomic_write_json(folder / RECORD, record(postprocessing))


def _rewrite_level_masks(folder: Path, cases: Sequence[str], file_ending: str, mask_levels: Sequence[int]) -> None:
    import SimpleITK as sitk

    from radconf.io.files import atomic_write_image

    for case in cases:
        image = sitk.ReadImage(str(folder / f"{case}{file_ending}"))
        levels = sitk.GetArrayFromImage(image)
        for level in mask_levels:
            mask = sitk.GetImageFromArray((levels >= level).astype(np.uint8))
            mask.CopyInformation(image)
            atomic_write_image(folder / f"level{level}_masks" / f"{case}{file_ending}", mask)


def record(postprocessing: PostProcessing) -> dict:
    """What a folder records about the post-processing applied to it (``radconf_postprocessing.json``)."""
    return {"applied_from": postprocessing.source, **postprocessing.as_json()}


def recorded_postprocessing(folder: str | os.PathLike) -> dict | None:
    """The applied part of a folder's ``radconf_postprocessing.json`` (None if there is none)."""
    from radconf.io.dataset_json import read_json_file

    path = Path(folder) / RECORD
    if not path.is_file():
        return None
    data = read_json_file(path, fix="or remove it")
    return {key: value for key, value in data.items() if key != "applied_from"} if isinstance(data, dict) else None


def check_same_postprocessing(folder: str | os.PathLike, postprocessing: PostProcessing | None,
                              file_ending: str) -> None:
    """Refuses to write into a folder whose maps ``CASE<ending>`` had another post-processing (or none, or one where
    none is given now), so that one folder never mixes post-processed and raw maps (``radconf_postprocessing.json``
    records what its maps had).

    Raises:
        InvalidInput: naming the folder, what its maps had and the way out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    recorded = recorded_postprocessing(folder)
    given = None if postprocessing is None else postprocessing.as_json()
    if recorded == given or not any(p.is_file() for p in folder.glob(f"*{file_ending}")):
        return
    had = "no post-processing" if recorded is None else f"another post-processing ({folder / RECORD})"
    now = "none" if postprocessing is None else postprocessing.source
    raise InvalidInput(f"The maps in {folder} had {had}, and this run's is {now}; one folder does not mix them. "
                       f"Write into a new folder (or empty this one first).")


def apply_to_folder(input_folder: str | os.PathLike, output_folder: str | os.PathLike,
                    postprocessing: PostProcessing, *, file_ending: str | None = None, progress: bool = True
                    ) -> list[str]:
    """Post-processes every map ``CASE<ending>`` of ``input_folder`` into ``output_folder``.

    Every input is checked first (whole, integer, values fitting the post-processing); the outputs are written
    atomically, with the input geometry, and a failure leaves ``output_folder`` as it was found.

    Args:
        input_folder: label or level maps ``CASE<ending>``; its dataset.json, if any, is checked against the
            post-processing and gives the file ending.
        output_folder: where the maps go (never the input folder, nor inside or around it).
        postprocessing: what to apply.
        file_ending: default: the input's dataset.json, else ``.nii.gz``.
        progress: tqdm progress bar.

    Returns:
        The cases written.

    Raises:
        InvalidInput, MissingInput: the output over the input, no maps, a damaged map, values above K, or a
            dataset.json the post-processing does not fit.
    """
    from radconf.io.cases import list_cases
    from radconf.io.dataset_json import read_json_file
    from radconf.io.files import atomic_write_json, removed_on_failure
    from radconf.io.images import check_image_file, read_label_image
    from radconf.io.locations import check_output_location
    from radconf.postprocessing.definition import check_fits

    source, output = Path(input_folder), Path(output_folder)
    if not source.is_dir():
        raise MissingInput(f"Input folder -i {source} does not exist or is not a folder; give the folder of label "
                           f"maps.")
    if output.exists() and not output.is_dir():
        raise InvalidInput(f"-o {output} is a file; give a folder for the post-processed maps.")
    check_output_location(output, [("the input folder -i", source)])
    dataset_json = read_json_file(source / "dataset.json") if (source / "dataset.json").is_file() else None
    if dataset_json is not None:
        check_fits(postprocessing, dataset_json, str(source / "dataset.json"))
    ending = file_ending or (dataset_json or {}).get("file_ending") or ".nii.gz"
    cases = list_cases(source, ending)
    if not cases:
        raise MissingInput(f"No CASE{ending} maps in {source}; give the folder of predicted label maps "
                           f"(or --file_ending).")
    check_same_postprocessing(output, postprocessing, ending)
    for path in cases.values():  # every input checked before the first output is written
        if postprocessing.kind == "levels":
            check_map(read_label_image(path)[0], postprocessing, str(path))
        else:
            check_image_file(path)
    with removed_on_failure(output):
        output.mkdir(parents=True, exist_ok=True)
        postprocess_files([(path, output / path.name) for path in cases.values()], postprocessing, progress=progress)
        atomic_write_json(output / RECORD, record(postprocessing))
    return list(cases)
