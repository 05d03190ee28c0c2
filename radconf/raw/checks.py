"""Finding datasets by id and checking a raw nnU-Net dataset before anything is computed from it.

:func:`check_raw_dataset` reads every file nnU-Net's planning and radconf's commands will read (imagesTr, labelsTr,
imagesTs, labelsTs): each is checked whole (a truncated file would be read with zeros), finite (SimpleITK reads NaN
as 0), 2D or 3D, on its case's grid, and label maps for integer, declared values. File names are checked against
nnU-Net's naming (``CASE_XXXX<file_ending>`` images, ``CASE<file_ending>`` label maps); copies of a file under a
second name are found by content. Every problem is reported with the file it concerns and how to fix it; nothing
is modified.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import TypeVar

from radconf.errors import InvalidInput, MissingInput
from radconf.io.cases import split_image_name
from radconf.io.dataset_json import read_json_file
from radconf.io.images import check_volume_file, geometry_difference, label_ids_present, read_label_image

# endings of files that are images of some format: one with another ending than file_ending is named, not skipped
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".nhdr", ".png", ".tif", ".tiff", ".bmp", ".gipl",
                  ".hdr", ".img")
REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
MAX_SHOWN = 30
Key = TypeVar("Key", bound=Hashable)


def _source_name(folder: Path) -> str:
    match = re.fullmatch(r"Dataset\d{3}_(.+)", folder.name)
    return match.group(1) if match else folder.name


def resolve_source_folder(source: str | os.PathLike, raw_root: Path | None) -> Path:
    """The source dataset folder: an existing folder, or a dataset id/name looked up in ``raw_root`` (nnUNet_raw).

    Raises:
        FileNotFoundError: neither, naming what was tried.
    """
    path = Path(str(source)).expanduser()
    if path.is_dir():
        return path.resolve()
    if re.fullmatch(r"(?:Dataset)?\d{1,3}(?:_\w+)?", str(source)) and raw_root is not None:
        return (raw_root / find_dataset_name(str(source), raw_root)).resolve()
    raise MissingInput(f"Source dataset {source} does not exist: give an existing dataset folder, or a dataset "
                       f"id/name (e.g. 501 or Dataset501_Phantom) present in nnUNet_raw ({raw_root}).")


def dataset_id_of(dataset: str | int) -> int:
    """``501``, ``"501"`` or ``"Dataset501_Phantom"`` -> 501.

    Raises:
        ValueError: not an id nor a DatasetXXX_Name.
    """
    match = re.fullmatch(r"(?:Dataset)?(\d{1,3})(?:_\w+)?", str(dataset))
    if not match:
        raise InvalidInput(f"{dataset!r} is neither a dataset id (e.g. 501) nor a dataset name "
                           f"(e.g. Dataset501_Phantom).")
    return int(match.group(1))


def find_dataset_name(dataset: str | int, *roots: Path) -> str:
    """The ``DatasetXXX_Name`` folder name for an id, looked up in the given nnU-Net folders (first hit wins).

    Raises:
        FileNotFoundError: no folder with that id, listing what the folders hold.
    """
    dataset_id = dataset_id_of(dataset)
    for root in roots:
        hits = sorted(p.name for p in Path(root).glob(f"Dataset{dataset_id:03d}_*") if p.is_dir())
        if hits:
            return hits[0]
    present = sorted({p.name for root in roots if Path(root).is_dir() for p in Path(root).glob("Dataset*_*")})
    raise MissingInput(
        f"Dataset {dataset_id} not found in {', '.join(str(r) for r in roots)} "
        f"(present: {', '.join(present) or 'none'}). Put it in nnUNet_raw as Dataset{dataset_id:03d}_<Name>, or "
        f"generate the phantom: radconf_generate_phantom -d {dataset_id}.")


# ------------------------------------------------------------------------------------------------ dataset.json
def label_id_problem(name: str, value) -> str | None:
    """What is wrong with a ``labels`` entry of a dataset.json (None: a non-negative integer or a list of them)."""
    ids = value if isinstance(value, list) else [value]
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        return (f"label {name!r} has id {value!r}, but label ids are non-negative integers (or lists of them for "
                f"regions)")
    return None


def check_dataset_json(path: Path) -> dict:
    """Reads a raw dataset's dataset.json and checks the fields nnU-Net needs (presence and type).

    Raises:
        InvalidInput: invalid JSON (line and fix) or missing/ill-typed fields, naming the file.
    """
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path} must hold a JSON object {{...}} with {', '.join(REQUIRED_KEYS)}.")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise InvalidInput(f"{path} lacks {', '.join(missing)}. Add them (see nnU-Net's dataset_format "
                           f"documentation).")
    problems = []
    channels = data["channel_names"]
    if not isinstance(channels, dict) or not channels or set(channels) != {str(i) for i in range(len(channels))}:
        problems.append(f"channel_names must map \"0\", \"1\", ... to one name per image channel (e.g. "
                        f"{{\"0\": \"CT\"}}), got {channels!r}")
    labels = data["labels"]
    if not isinstance(labels, dict) or labels.get("background") != 0:
        problems.append(f"labels must map names to label ids with \"background\": 0 (e.g. {{\"background\": 0, "
                        f"\"gtv\": 1}}), got {labels!r}")
    else:
        problems += [p for p in (label_id_problem(n, v) for n, v in labels.items()) if p]
    count = data["numTraining"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        problems.append(f"numTraining must be the number of training cases (an integer), got {count!r}")
    ending = data["file_ending"]
    if not isinstance(ending, str) or not ending.startswith(".") or len(ending) < 2:
        problems.append(f"file_ending must be the images' ending such as \".nii.gz\", got {ending!r}")
    if problems:
        raise InvalidInput(f"{path}: " + "; ".join(problems) + ". Fix these fields (see nnU-Net's dataset_format "
                           "documentation).")
    return data


# ------------------------------------------------------------------------------------------------ file names
def looks_like_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def scan_image_folder(folder: Path, ending: str, problems: list[str]) -> dict[str, list[int]]:
    """Case -> sorted channels of the ``CASE_XXXX<ending>`` files in ``folder`` (hidden files skipped); image files
    with another ending or without the ``_XXXX`` channel suffix (e.g. a copy ``a_0000 (1).nii.gz``) go into
    ``problems``."""
    channels: dict[str, list[int]] = {}
    for name in sorted(os.listdir(folder)) if folder.is_dir() else []:
        if name.startswith(".") or not (folder / name).is_file():
            continue
        if not name.endswith(ending):
            if looks_like_image(name):
                problems.append(f"{folder / name} does not end with the dataset's file_ending {ending} "
                                f"(dataset.json); convert it to {ending} or remove it.")
            continue
        parsed = split_image_name(name, ending)
        if parsed is None:
            problems.append(f"{folder / name} is not named CASE_XXXX{ending} (XXXX = the 4-digit channel, e.g. "
                            f"CASE_0000{ending}); rename it, or remove it if it is a copy.")
            continue
        channels.setdefault(parsed[0], []).append(parsed[1])
    return {case: sorted(found) for case, found in sorted(channels.items())}


def scan_label_folder(folder: Path, ending: str, problems: list[str]) -> dict[str, Path]:
    """Case -> label map ``CASE<ending>`` in ``folder``; label files with another ending go into ``problems``."""
    labels: dict[str, Path] = {}
    for name in sorted(os.listdir(folder)) if folder.is_dir() else []:
        if name.startswith(".") or not (folder / name).is_file():
            continue
        if name.endswith(ending) and len(name) > len(ending):
            labels[name[: -len(ending)]] = folder / name
        elif looks_like_image(name):
            problems.append(f"{folder / name} does not end with the dataset's file_ending {ending} (dataset.json); "
                            f"convert it to {ending} or remove it.")
    return labels


def byte_copies(paths: Mapping[Key, Path]) -> list[tuple[Key, Key]]:
    """Pairs ``(first, copy)`` of keys whose files hold the same bytes (only files of equal size are read)."""
    by_size: dict[int, list[Key]] = {}
    for key, path in paths.items():
        by_size.setdefault(path.stat().st_size, []).append(key)
    pairs = []
    for keys in by_size.values():
        seen: dict[str, Key] = {}
        for key in keys if len(keys) > 1 else []:
            digest = hashlib.sha256(paths[key].read_bytes()).hexdigest()
            if digest in seen:
                pairs.append((seen[digest], key))
            else:
                seen[digest] = key
    return pairs


# ------------------------------------------------------------------------------------------------ the dataset
def check_raw_dataset(folder: str | Path, check_label_values: bool = True) -> dict:
    """Checks a raw nnU-Net dataset: dataset.json, file names, and every image and label file (whole, finite, 2D/3D,
    channels and label on one grid, label values integer and declared).

    Args:
        folder: ``nnUNet_raw/DatasetXXX_Name``.
        check_label_values: also read every label map and compare its values with ``dataset.json``.

    Returns:
        The parsed dataset.json.

    Raises:
        FileNotFoundError: missing folder, dataset.json, imagesTr/labelsTr.
        ValueError: all problems found, one per line, each naming the file and the fix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInput(f"Raw dataset folder {folder} does not exist. Check nnUNet_raw and the dataset id.")
    dataset_json_path = folder / "dataset.json"
    if not dataset_json_path.is_file():
        raise MissingInput(f"{dataset_json_path} is missing. Every nnU-Net raw dataset needs one "
                           f"(channel_names, labels, numTraining, file_ending).")
    dataset_json = check_dataset_json(dataset_json_path)
    ending = dataset_json["file_ending"]
    for sub in ("imagesTr", "labelsTr"):
        if not (folder / sub).is_dir():
            raise MissingInput(f"{folder / sub} is missing; an nnU-Net raw dataset keeps training images in "
                               f"imagesTr/CASE_XXXX{ending} and labels in labelsTr/.")
    problems: list[str] = []
    allowed = _allowed_label_values(dataset_json) if check_label_values else None
    train = _check_split(folder, "Tr", dataset_json, allowed, problems)
    if train is not None and train != dataset_json["numTraining"]:
        problems.append(f"{dataset_json_path}: numTraining is {dataset_json['numTraining']} but imagesTr and labelsTr "
                        f"hold {train} cases; set numTraining to {train}.")
    if (folder / "imagesTs").is_dir() or (folder / "labelsTs").is_dir():
        _check_split(folder, "Ts", dataset_json, allowed, problems)
    problems += _copied_cases(folder, ending)
    if problems:
        shown = problems[:MAX_SHOWN] + ([f"... and {len(problems) - MAX_SHOWN} more"]
                                        if len(problems) > MAX_SHOWN else [])
        raise InvalidInput(f"Dataset {folder.name} has {len(problems)} problem(s):\n  " + "\n  ".join(shown))
    return dataset_json


def _check_split(folder: Path, suffix: str, dataset_json: dict, allowed: set[int] | None,
                 problems: list[str]) -> int | None:
    """Checks images<suffix> and labels<suffix>; returns the number of cases (None if files are missing or misnamed)."""
    ending, n_channels = dataset_json["file_ending"], len(dataset_json["channel_names"])
    images_folder, labels_folder = folder / f"images{suffix}", folder / f"labels{suffix}"
    before = len(problems)
    images = scan_image_folder(images_folder, ending, problems)
    labels = scan_label_folder(labels_folder, ending, problems)
    if suffix == "Tr" and not images:
        problems.append(f"{images_folder} holds no images named CASE_0000{ending}; put the training images there "
                        f"(one file per channel, CASE_0000{ending}, CASE_0001{ending}, ...).")
    for case in sorted(set(labels) - set(images)):
        problems.append(f"case {case}: {labels[case]} has no image {case}_0000{ending} in {images_folder}; add the "
                        f"image(s) or remove the label map.")
    for case in images if suffix == "Tr" else []:  # held-out cases may lack a reference
        if case not in labels:
            problems.append(f"case {case}: its label map {labels_folder / (case + ending)} is missing; add it or "
                            f"remove the case's images.")
    names_ok = len(problems) == before
    expected = _expected_channels(dataset_json, suffix)
    for case, channels in images.items():
        if channels != expected:
            found = [f"{case}_{c:04d}{ending}" for c in channels]
            problems.append(f"case {case}: found image channels {found} in {images_folder} but dataset.json declares "
                            f"{n_channels} channel(s) {list(dataset_json['channel_names'].values())}; expected "
                            f"{[f'{case}_{c:04d}{ending}' for c in expected]}.")
            continue
        _check_case(case, [images_folder / f"{case}_{c:04d}{ending}" for c in expected], labels.get(case), allowed,
                    problems)
    return len(images) if names_ok else None


def _copied_cases(folder: Path, ending: str) -> list[str]:
    """A problem line per case whose first image is a byte copy of another case's (in imagesTr or imagesTs)."""
    firsts = {images / f"{case}_0000{ending}": case for images in (folder / "imagesTr", folder / "imagesTs")
              for case, channels in scan_image_folder(images, ending, []).items() if 0 in channels}
    return [f"case {firsts[copy]}: {copy} is a byte copy of {first} (case {firsts[first]}); a case counted twice "
            f"leaks between cross-validation folds, or from training into the held-out cases. Remove the copy."
            for first, copy in byte_copies({path: path for path in firsts})]


def _expected_channels(dataset_json: dict, suffix: str) -> list[int]:
    """The channels every case of images<suffix> has: all declared ones, except in the imagesTs of a dataset whose
    "radconf" entry lists fewer (held-out cases of an anatomy dataset cut from an organ model's predictions)."""
    every = list(range(len(dataset_json["channel_names"])))
    entry = dataset_json.get("radconf")
    listed = entry.get("imagesTs_channels") if suffix == "Ts" and isinstance(entry, dict) else None
    if isinstance(listed, list) and listed and all(isinstance(c, int) and c in every for c in listed):
        return sorted(listed)
    return every


def _check_case(case: str, images: list[Path], label: Path | None, allowed: set[int] | None,
                problems: list[str]) -> None:
    try:
        grids = [check_volume_file(path) for path in images]
    except ValueError as error:
        problems.append(f"case {case}: {error}")
        return
    for path, grid in zip(images[1:], grids[1:]):
        difference = geometry_difference(grids[0], grid)
        if difference:
            problems.append(f"case {case}: channel {path.name} does not match {images[0].name} ({difference}); "
                            f"resample it onto the grid of channel 0 (nnU-Net stacks the channels voxel by voxel).")
    if label is None:
        return
    try:
        if allowed is None:
            label_grid, values = check_volume_file(label, "label map"), set()
        else:
            array, label_grid = read_label_image(label)
            values = label_ids_present(array)
    except ValueError as error:
        problems.append(f"case {case}: {error}")
        return
    difference = geometry_difference(grids[0], label_grid)
    if difference:
        problems.append(f"case {case}: label {label.name} does not match image {images[0].name} ({difference}); "
                        f"resample the label onto the image grid.")
    unexpected = sorted(values - allowed) if allowed is not None else []
    if unexpected:
        problems.append(f"case {case}: {label.name} contains label values {unexpected} that dataset.json does not "
                        f"declare ({sorted(allowed)}); add them to 'labels' or fix the label map.")


def _allowed_label_values(dataset_json: dict) -> set[int]:
    values: set[int] = set()
    for value in dataset_json["labels"].values():
        values.update(value if isinstance(value, list) else [value])
    return {int(v) for v in values}
