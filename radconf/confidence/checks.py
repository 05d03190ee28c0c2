"""Inputs of the file-level reader fusion (``radconf_fuse_readers``): finding cases and masks, checking them.

Layout read (nnU-Net raw dataset plus a readers folder)::

    <source>/imagesTr/<case>_0000<ending>     (+ _0001 ... for more channels; imagesTs/ likewise, optional)
    <source>/readers/<case>/<mask><ending>    one binary mask of the structure per reader and trial,
                                              named <reader>_<trial> (reader = the part before the last "_")

Every file is checked for all cases before anything is written (:func:`radconf.io.images.check_volume_file`: whole,
finite, 2D/3D, one value per voxel; then the grid against the case's image), mask names follow ``NAMING_RULE``
(copies such as ``reader1_trial1 (1)``, names without ``_`` and a mask saved twice are refused, since each would
count as another reader or trial), and every problem is reported at once with the file and the fix. Voxel values
(binary or not, what ``--threshold`` selects) are checked when a mask is read.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.io.cases import DEFAULT_FILE_ENDING
from radconf.io.dataset_json import read_json_file
from radconf.io.images import RESAMPLE_HINT, check_volume_file, geometry_difference
from radconf.raw.checks import _source_name, byte_copies, looks_like_image, scan_image_folder

# <reader>_<trial>: letters, digits and '-' in parts joined by '_'; the reader is the part before the last '_'
MASK_NAME = re.compile(r"[A-Za-z0-9-]+(?:_[A-Za-z0-9-]+)+")
NAMING_RULE = ("<reader>_<trial>{ending} (letters, digits and '-' joined by '_', e.g. reader1_trial1{ending}; the "
               "reader is the part before the last '_')")


def binarise(array: np.ndarray, path: Path, threshold: float | None = None) -> np.ndarray:
    """Binary mask (bool) of a mask file's voxels.

    Without ``threshold`` the values must be 0 and 1 only (an empty or full mask is fine); with it, ``value >
    threshold`` (for any dtype, e.g. 0/255 masks or probability maps), see :func:`apply_threshold`.

    Raises:
        ValueError: other values, naming the file, the values found and the ``--threshold`` fix.
    """
    if threshold is not None:
        return apply_threshold(array, path, threshold)
    if array.dtype == bool:
        return array
    if array.size == 0:
        return array.astype(bool)
    if np.issubdtype(array.dtype, np.integer):
        binary = int(array.min()) >= 0 and int(array.max()) <= 1
    else:
        binary = bool(np.all((array == 0) | (array == 1)))
    if not binary:
        raise InvalidInput(f"Mask {path} is not binary: it holds the values {{{_shown_values(array)}}} "
                           f"({array.dtype}), but masks must hold 0 and 1 only. Pass --threshold T (threshold=T) to "
                           f"use value > T, e.g. --threshold 0 for 0/255 masks or --threshold 0.5 for probability "
                           f"maps.")
    return array.view(bool) if array.dtype == np.uint8 else array != 0


def _shown_values(array: np.ndarray) -> str:
    values = np.unique(array)
    return ", ".join(f"{v:g}" for v in values[:6].tolist()) + (", ..." if values.size > 6 else "")


def apply_threshold(array: np.ndarray, path: Path, threshold: float) -> np.ndarray:
    """``array > threshold``, refused where the threshold cannot be what was meant.

    A threshold below the mask's smallest value selects every voxel, the background too (``--threshold -1``). A
    mask of two values (0/1, 0/255) is a coded contour: the threshold must lie between them, else the contour
    vanishes. A map of more values (a probability map) that stays below the threshold is an empty contour.

    Raises:
        InvalidInput: either refusal, naming the file, its values and the fix.
    """
    if array.size == 0:
        return np.zeros(array.shape, bool)
    low, high = float(array.min()), float(array.max())
    if threshold < low:
        raise InvalidInput(f"--threshold {threshold:g} selects every voxel of mask {path} (its values range {low:g} to "
                           f"{high:g}), the background too. Use a threshold at or above the background value, e.g. "
                           f"--threshold 0 for 0/1 or 0/255 masks, --threshold 0.5 for probability maps.")
    binary = array > threshold
    if threshold >= high > low and np.unique(array).size == 2:
        raise InvalidInput(f"--threshold {threshold:g} does not separate the two values {{{low:g}, {high:g}}} of mask "
                           f"{path}: value > {threshold:g} selects nothing, so the reader's contour would be dropped. "
                           f"Use a threshold from {low:g} to below {high:g}, e.g. --threshold {low:g}.")
    return binary


@dataclass(frozen=True)
class CaseInputs:
    """One case of the source dataset: its image channels and its reader masks (name -> file)."""

    case: str
    split: str  # "train" or "test"
    images: tuple[Path, ...]  # channel 0 first
    masks: Mapping[str, Path]


@dataclass(frozen=True)
class SourceDataset:
    folder: Path
    name: str  # the part after DatasetXXX_ (or the folder name)
    file_ending: str
    channel_names: dict[str, str]
    readers_folder: Path
    cases: list[CaseInputs]


def scan_source(source: Path, readers_folder: Path | None = None) -> SourceDataset:
    """Finds cases, image channels and reader masks, and checks every header against its case's image.

    Raises:
        FileNotFoundError: the source has no imagesTr, or the readers folder does not exist.
        ValueError: all case-level problems found, one per line (case without masks, readers folder without image,
            missing channel, unreadable file, mask geometry differing from the image), each naming the file and fix.
    """
    dataset_json_path = source / "dataset.json"
    dataset_json = read_json_file(dataset_json_path) if dataset_json_path.is_file() else {}
    _check_fields(dataset_json, dataset_json_path)
    ending = dataset_json.get("file_ending", DEFAULT_FILE_ENDING)
    if not (source / "imagesTr").is_dir():
        raise MissingInput(f"{source / 'imagesTr'} does not exist; the source must be an nnU-Net raw dataset with "
                           f"imagesTr/<case>_0000{ending} (and optionally imagesTs/).")
    readers_folder = Path(readers_folder) if readers_folder is not None else source / "readers"
    if not readers_folder.is_dir():
        raise MissingInput(f"Readers folder {readers_folder} does not exist. Put each case's masks in "
                           f"readers/<case>/<reader>_<trial>{ending} inside the source dataset, or pass "
                           f"--readers DIR (readers_folder=...).")
    problems: list[str] = []
    splits = {split: {case: [f"{case}_{c:04d}{ending}" for c in channels]
                      for case, channels in scan_image_folder(source / sub, ending, problems).items()}
              for split, sub in (("train", "imagesTr"), ("test", "imagesTs"))}
    channel_names = dataset_json.get("channel_names")
    if channel_names is None:
        found = max((len(files) for split in splits.values() for files in split.values()), default=1)
        if found > 1:
            raise InvalidInput(f"{source} has {found} image channels per case but no dataset.json; add a dataset.json "
                               f"with channel_names (and file_ending) so that the channels can be named.")
        channel_names = {"0": "CT"}
    expected_channels = len(channel_names)
    both = sorted(set(splits["train"]) & set(splits["test"]))
    problems += [f"case {case} is in both imagesTr and imagesTs; keep it in one of them." for case in both]
    cases: list[CaseInputs] = []
    for split, images in splits.items():
        folder = source / ("imagesTr" if split == "train" else "imagesTs")
        for case, files in images.items():
            expected = [f"{case}_{c:04d}{ending}" for c in range(expected_channels)]
            if files != expected:
                problems.append(f"case {case}: {folder} holds {files} but dataset.json declares {expected_channels} "
                                f"channel(s); expected {expected}.")
            masks = _masks_of(readers_folder / case, ending, problems)
            if masks is not None and files == expected:
                cases.append(CaseInputs(case, split, tuple(folder / f for f in files), masks))
    known = set(splits["train"]) | set(splits["test"])
    for entry in sorted(readers_folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and entry.name not in known:
            problems.append(f"{entry} has no image {entry.name}_0000{ending} in imagesTr or imagesTs; add the image or "
                            f"remove (or rename) the readers folder.")
        elif entry.is_file() and entry.name.endswith(ending):
            problems.append(f"{entry} lies directly in the readers folder; masks go into readers/<case>/"
                            f"<reader>_<trial>{ending}.")
    for inputs in cases:
        _check_headers(inputs, problems)
    by_case = {inputs.case: inputs.images[0] for inputs in cases}
    problems += [f"case {copy}: {by_case[copy]} is a byte copy of case {first}'s image {by_case[first]}; a case "
                 f"counted twice leaks between cross-validation folds. Remove the copy." for first, copy in
                 byte_copies(by_case)]
    if problems:
        shown = problems[:30] + ([f"... and {len(problems) - 30} more"] if len(problems) > 30 else [])
        raise InvalidInput(f"Reader fusion input {source} has {len(problems)} problem(s):\n  " + "\n  ".join(shown))
    if not cases:
        raise InvalidInput(f"{source / 'imagesTr'} holds no images named <case>_0000{ending}; nothing to fuse.")
    return SourceDataset(source, _source_name(source), ending, dict(channel_names), readers_folder,
                         sorted(cases, key=lambda c: (c.split != "train", c.case)))


def _check_fields(dataset_json, path: Path) -> None:
    """The fields fusion reads from the source's dataset.json (optional), checked for type."""
    if not isinstance(dataset_json, dict):
        raise InvalidInput(f"{path} must hold a JSON object {{...}} (channel_names, file_ending); fix it.")
    channels = dataset_json.get("channel_names", {"0": "CT"})
    if not isinstance(channels, dict) or not channels or set(channels) != {str(i) for i in range(len(channels))}:
        raise InvalidInput(f"{path}: channel_names must map \"0\", \"1\", ... to one name per image channel (e.g. "
                           f"{{\"0\": \"CT\"}}), got {channels!r}; fix it.")
    ending = dataset_json.get("file_ending", DEFAULT_FILE_ENDING)
    if not isinstance(ending, str) or not ending.startswith(".") or len(ending) < 2:
        raise InvalidInput(f"{path}: file_ending must be the images' ending such as \".nii.gz\", got {ending!r}; "
                           f"fix it.")


def _image_stem(name: str) -> str:
    """A file name without its image ending (``r1_t1.nii`` -> ``r1_t1``)."""
    lower = name.lower()
    return next((name[: -len(s)] for s in (".nii.gz", ".nii", ".mha", ".nrrd", ".mhd", ".nhdr") if lower.endswith(s)),
                name)


def _masks_of(folder: Path, ending: str, problems: list[str]) -> dict[str, Path] | None:
    """The masks of one case (name -> file), or None; misnamed, duplicated and foreign files go into ``problems``."""
    case = folder.name
    if not folder.is_dir():
        state = "is a file, not a folder" if folder.exists() else "does not exist"
        problems.append(f"case {case} has no reader masks: {folder} {state}. Add its masks as "
                        f"{folder}/<reader>_<trial>{ending}, or remove the case's image.")
        return None
    entries = [e for e in sorted(folder.iterdir()) if not e.name.startswith(".")]
    masks = {e.name[: -len(ending)]: e for e in entries if e.is_file() and e.name.endswith(ending)
             and len(e.name) > len(ending)}
    others = [e.name for e in entries if e not in masks.values()]
    twins = [name for name in others if looks_like_image(name) and _image_stem(name) in masks]
    if twins:
        stems = [_image_stem(name) for name in twins]
        problems.append(f"case {case}: {folder} holds {twins}, second copies of masks {stems} in another format; "
                        f"each would count as one more trial. Keep one file per mask, with the ending {ending}.")
    others = [name for name in others if name not in twins]
    if others:
        problems.append(f"case {case}: {folder} holds {others}, which are not masks named <reader>_<trial>{ending}; "
                        f"convert or remove them (all masks need the dataset's file ending {ending}).")
    rule = NAMING_RULE.format(ending=ending)
    misnamed = [f"{name}{ending}" for name in masks if not MASK_NAME.fullmatch(name)]
    if misnamed:
        problems.append(f"case {case}: {folder} holds {misnamed}, which do not follow the naming rule {rule}; rename "
                        f"or remove them (a copy such as 'reader1_trial1 (1)' would count as one more trial, a name "
                        f"without '_' as one more reader).")
    by_lower: dict[str, list[str]] = {}
    for name in masks:
        by_lower.setdefault(name.lower(), []).append(f"{name}{ending}")
    problems += [f"case {case}: {folder} holds {names}, which differ only in upper/lower case (a copy?); each would "
                 f"count as another reader or trial. Remove the copy or rename it by the naming rule {rule}."
                 for names in by_lower.values() if len(names) > 1]
    if not masks:
        problems.append(f"case {case} has no reader masks: {folder} holds no <reader>_<trial>{ending} files. Add its "
                        f"masks, or remove the case's image.")
        return None
    return masks


def _check_headers(inputs: CaseInputs, problems: list[str]) -> None:
    """Every image channel and mask whole, finite, 2D/3D and scalar; channels and masks on channel 0's grid."""
    try:
        grids = [check_volume_file(path) for path in inputs.images]
    except ValueError as error:
        problems.append(f"case {inputs.case}: {error}")
        return
    image = grids[0]
    for path, grid in zip(inputs.images[1:], grids[1:]):
        difference = geometry_difference(image, grid)
        if difference:
            problems.append(f"case {inputs.case}: channel {path.name} does not match {inputs.images[0].name}: "
                            f"{difference}; resample it onto the grid of channel 0.")
    for path in inputs.masks.values():
        try:
            difference = geometry_difference(image, check_volume_file(path, "mask"))
        except ValueError as error:
            problems.append(f"case {inputs.case}: {error}")
            continue
        if difference:
            problems.append(f"case {inputs.case}: mask {path} does not match image {inputs.images[0].name}: "
                            f"{difference}. {RESAMPLE_HINT}")
