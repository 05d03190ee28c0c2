"""Inputs of the file-level reader fusion (``radconf_fuse_readers``): finding cases and masks, checking them.

Layout read (nnU-Net raw dataset plus a readers folder)::

    <source>/imagesTr/<case>_0000<ending>     (+ _0001 ... for more channels; imagesTs/ likewise, optional)
    <source>/readers/<case>/<mask><ending>    one binary mask of the structure per reader and trial,
                                              named <reader>_<trial> (reader = the part before the last "_")

Everything that can be checked from file headers (SimpleITK's ``ReadImageInformation``: no voxel data is decoded) is
checked for all cases before anything is written, and every problem is reported at once with the file and the fix.
Voxel values (binary or not) are checked when a mask is read.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.io.cases import DEFAULT_FILE_ENDING, case_channels
from radconf.io.images import (
    RESAMPLE_HINT,
    Geometry,
    geometry_difference,
    read_header,
)
from radconf.raw.checks import _source_name


def binarise(array: np.ndarray, path: Path, threshold: float | None = None) -> np.ndarray:
    """Binary mask (bool) of a mask file's voxels.

    Without ``threshold`` the values must be 0 and 1 only (an empty or full mask is fine); with it, ``value >
    threshold`` (for any dtype, e.g. 0/255 masks or probability maps).

    Raises:
        ValueError: other values, naming the file, the values found and the ``--threshold`` fix.
    """
    if threshold is not None:
        return array > threshold
    if array.dtype == bool:
        return array
    if array.size == 0:
        return array.astype(bool)
    if np.issubdtype(array.dtype, np.integer):
        binary = int(array.min()) >= 0 and int(array.max()) <= 1
    else:
        binary = bool(np.all((array == 0) | (array == 1)))
    if not binary:
        values = np.unique(array)
        shown = ", ".join(f"{v:g}" for v in values[:6].tolist()) + (", ..." if values.size > 6 else "")
        raise InvalidInput(f"Mask {path} is not binary: it holds the values {{{shown}}} ({array.dtype}), but masks must "
                         f"hold 0 and 1 only. Pass --threshold T (threshold=T) to use value > T, e.g. --threshold 0 "
                         f"for 0/255 masks or --threshold 0.5 for probability maps.")
    return array.view(bool) if array.dtype == np.uint8 else array != 0


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


def _images_of(folder: Path, ending: str) -> dict[str, list[str]]:
    """case -> sorted image file names ``<case>_XXXX<ending>`` in ``folder``."""
    if not folder.is_dir():
        return {}
    return {case: [f"{case}_{c:04d}{ending}" for c in channels]
            for case, channels in case_channels(folder, ending, strict=False).items()}


def scan_source(source: Path, readers_folder: Path | None = None) -> SourceDataset:
    """Finds cases, image channels and reader masks, and checks every header against its case's image.

    Raises:
        FileNotFoundError: the source has no imagesTr, or the readers folder does not exist.
        ValueError: all case-level problems found, one per line (case without masks, readers folder without image,
            missing channel, unreadable file, mask geometry differing from the image), each naming the file and fix.
    """
    dataset_json_path = source / "dataset.json"
    try:
        dataset_json = json.loads(dataset_json_path.read_text()) if dataset_json_path.is_file() else {}
    except ValueError as error:
        raise InvalidInput(f"{dataset_json_path} is not valid JSON ({error}); fix it (channel_names, file_ending) or "
                         f"remove it to use one CT channel and .nii.gz.") from None
    ending = dataset_json.get("file_ending", DEFAULT_FILE_ENDING)
    if not (source / "imagesTr").is_dir():
        raise MissingInput(f"{source / 'imagesTr'} does not exist; the source must be an nnU-Net raw dataset with "
                                f"imagesTr/<case>_0000{ending} (and optionally imagesTs/).")
    readers_folder = Path(readers_folder) if readers_folder is not None else source / "readers"
    if not readers_folder.is_dir():
        raise MissingInput(f"Readers folder {readers_folder} does not exist. Put each case's masks in "
                                f"readers/<case>/<reader>_<trial>{ending} inside the source dataset, or pass "
                                f"--readers DIR (readers_folder=...).")
    splits = {"train": _images_of(source / "imagesTr", ending), "test": _images_of(source / "imagesTs", ending)}
    problems: list[str] = []
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
    if problems:
        shown = problems[:30] + ([f"... and {len(problems) - 30} more"] if len(problems) > 30 else [])
        raise InvalidInput(f"Reader fusion input {source} has {len(problems)} problem(s):\n  " + "\n  ".join(shown))
    if not cases:
        raise InvalidInput(f"{source / 'imagesTr'} holds no images named <case>_0000{ending}; nothing to fuse.")
    return SourceDataset(source, _source_name(source), ending, dict(channel_names), readers_folder,
                         sorted(cases, key=lambda c: (c.split != "train", c.case)))


def _masks_of(folder: Path, ending: str, problems: list[str]) -> dict[str, Path] | None:
    case = folder.name
    if not folder.is_dir():
        problems.append(f"case {case} has no reader masks: {folder} does not exist. Add its masks as "
                        f"{folder}/<reader>_<trial>{ending}, or remove the case's image.")
        return None
    entries = [e for e in sorted(folder.iterdir()) if not e.name.startswith(".")]
    masks = {e.name[: -len(ending)]: e for e in entries if e.is_file() and e.name.endswith(ending)
             and len(e.name) > len(ending)}
    others = [e.name for e in entries if e not in masks.values()]
    if others:
        problems.append(f"case {case}: {folder} holds {others}, which are not masks named <reader>_<trial>{ending}; "
                        f"convert or remove them (all masks need the dataset's file ending {ending}).")
    if not masks:
        problems.append(f"case {case} has no reader masks: {folder} holds no <reader>_<trial>{ending} files. Add its "
                        f"masks, or remove the case's image.")
        return None
    return masks


def _check_headers(inputs: CaseInputs, problems: list[str]) -> None:
    try:
        image = Geometry.of(read_header(inputs.images[0]))
    except ValueError as error:
        problems.append(f"case {inputs.case}: {error}")
        return
    for path in inputs.masks.values():
        try:
            reader = read_header(path)
        except ValueError as error:
            problems.append(f"case {inputs.case}: {error}")
            continue
        if reader.GetNumberOfComponents() != 1:
            problems.append(f"case {inputs.case}: mask {path} has {reader.GetNumberOfComponents()} components per "
                            f"voxel; masks must be scalar binary images.")
            continue
        difference = geometry_difference(image, Geometry.of(reader))
        if difference:
            problems.append(f"case {inputs.case}: mask {path} does not match image {inputs.images[0].name}: "
                            f"{difference}. {RESAMPLE_HINT}")
