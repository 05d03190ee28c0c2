"""Finding datasets by id and checking a raw nnU-Net dataset before anything is computed from it.

Every problem is reported with the file it concerns and how to fix it; nothing is modified.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, MissingInput, OutputExists
from radconf.io.cases import case_channels
from radconf.io.images import geometry_mismatch


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
        from radconf.raw.checks import find_dataset_name

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


def check_raw_dataset(folder: str | Path, check_label_values: bool = True) -> dict:
    """Checks a raw nnU-Net dataset (dataset.json, channels, geometry, label values).

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
    dataset_json = json.loads(dataset_json_path.read_text())
    missing_keys = [k for k in ("channel_names", "labels", "numTraining", "file_ending") if k not in dataset_json]
    if missing_keys:
        raise InvalidInput(f"{dataset_json_path} lacks {', '.join(missing_keys)}. Add them (see nnU-Net's "
                         f"dataset_format documentation).")
    for sub in ("imagesTr", "labelsTr"):
        if not (folder / sub).is_dir():
            raise MissingInput(f"{folder / sub} is missing; an nnU-Net raw dataset keeps training images in "
                                    f"imagesTr/CASE_XXXX{dataset_json['file_ending']} and labels in labelsTr/.")
    ending = dataset_json["file_ending"]
    n_channels = len(dataset_json["channel_names"])
    labels = sorted(p for p in (folder / "labelsTr").iterdir() if p.name.endswith(ending))
    cases = [p.name[: -len(ending)] for p in labels]
    problems: list[str] = []
    if len(cases) != dataset_json["numTraining"]:
        problems.append(f"{dataset_json_path}: numTraining is {dataset_json['numTraining']} but labelsTr holds "
                        f"{len(cases)} label files; set numTraining to {len(cases)}.")
    images = case_channels(folder / "imagesTr", ending, strict=False)
    allowed = _allowed_label_values(dataset_json)
    for case, label_path in zip(cases, labels):
        channels = [f"{case}_{c:04d}{ending}" for c in images.get(case, [])]
        expected = [f"{case}_{c:04d}{ending}" for c in range(n_channels)]
        if channels != expected:
            problems.append(f"case {case}: found image channels {channels or 'none'} but dataset.json declares "
                            f"{n_channels} channel(s) {list(dataset_json['channel_names'].values())}; expected "
                            f"{expected}.")
            continue
        for name in channels:
            mismatch = geometry_mismatch(folder / "imagesTr" / name, label_path)
            if mismatch:
                problems.append(f"case {case}: label {label_path.name} does not match image {name} ({mismatch}); "
                                f"resample the label onto the image grid.")
        if check_label_values and allowed is not None:
            unexpected = _unexpected_values(label_path, allowed)
            if unexpected:
                problems.append(f"case {case}: {label_path.name} contains label values {unexpected} that "
                                f"dataset.json does not declare ({sorted(allowed)}); add them to 'labels' or fix "
                                f"the label map.")
    if problems:
        raise InvalidInput(f"Dataset {folder.name} has {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return dataset_json


def _allowed_label_values(dataset_json: dict) -> set[int] | None:
    values: set[int] = set()
    for value in dataset_json["labels"].values():
        values.update(value if isinstance(value, list) else [value])
    return {int(v) for v in values}


def _unexpected_values(label_path: Path, allowed: set[int]) -> list[int]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(label_path))
    array = sitk.GetArrayViewFromImage(image)  # a view: ``image`` must stay referenced while it is used
    return [int(v) for v in np.unique(array) if int(v) not in allowed or v != int(v)]


def check_output_dataset(folder: Path, dataset_id: int, inputs: Sequence[Path], overwrite: bool, command: str,
                         written_by_command: Callable[[Path], bool]) -> None:
    """Refuses (FileExistsError, naming the fix) to write a derived dataset into ``folder`` when it would replace one
    of ``inputs``, when its id is used by another dataset, when it exists and ``written_by_command`` says it is not
    ``command``'s output, or when it is and ``overwrite`` is False."""
    resolved = folder.resolve()
    for other in inputs:
        if resolved == other or other in resolved.parents:
            raise OutputExists(f"The output {folder} would replace (or lie inside) the source dataset {other}; pick "
                                  f"another dataset id (-d) or name (-n).")
    others = [p for p in folder.parent.glob(f"Dataset{dataset_id:03d}_*")
              if p.is_dir() and p.name != folder.name and not p.name.endswith((".partial", ".replaced"))]
    if others:
        raise OutputExists(f"Dataset id {dataset_id} is already used by {others[0]} (another name); pick another "
                              f"id with -d, e.g. -d {dataset_id + 1}.")
    if folder.exists():
        if not written_by_command(folder):
            raise OutputExists(f"{folder} exists and was not written by {command}; it is left untouched. Pick "
                                  f"another dataset id or name.")
        if not overwrite:
            raise OutputExists(f"{folder} exists (an earlier {command} output). Pass --overwrite "
                                  f"(overwrite=True) to replace it, or pick another dataset id or name.")
