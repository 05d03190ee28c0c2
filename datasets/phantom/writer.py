"""Writes the phantom as an nnU-Net raw dataset, plus CTV masks and the readers' contours.

Layout under ``<raw>/DatasetXXX_<name>/``::

    dataset.json                 nnU-Net dataset description (+ a "radconf" key describing the extras)
    imagesTr/<case>_0000.nii.gz  CT (int16 HU)              labelsTr/<case>.nii.gz  label map
    imagesTs/...                 held-out cases              labelsTs/...            their references
    ctvTr/<case>.nii.gz          CTV (binary)               ctvTs/...
    readers/<case>/<reader>_<trial>.nii.gz   simulated readers' GTV contours (binary; some trials missing)
    radconf_phantom.json         marker: the generator's parameters (lets a rerun reuse the dataset)

The dataset is built in a temporary sibling folder and renamed into place at the end, so an interrupted run never
leaves a half-written dataset. A folder not made by this generator is never modified. Every parameter is checked
before anything is written (:func:`check_phantom_config`, :func:`check_raw_root`).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from radconf.datasets.phantom import anatomy
from radconf.datasets.phantom.generator import PhantomConfig, generate_case
from tqdm import tqdm

from radconf.errors import InvalidInput, OutputExists
from radconf.io.files import (
    atomic_write_image,
    atomic_write_json,
    staged_folder,
)
from radconf.io.images import array_to_image
from radconf.raw.derived import check_dataset_id, check_dataset_name

MARKER = "radconf_phantom.json"
MIN_VOXELS_PER_AXIS = 8  # coarser grids leave the organs a voxel or two
MAX_VOXELS_PER_CASE = 50_000_000  # finer grids need several GB of memory per case (~0.4 mm isotropic)


@dataclass(frozen=True)
class PhantomDataset:
    folder: Path
    train_cases: list[str]
    test_cases: list[str]
    reused: bool


def dataset_folder_name(dataset_id: int, name: str) -> str:
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, int) or not 1 <= dataset_id <= 999:
        raise InvalidInput(f"Dataset id must be between 1 and 999, got {dataset_id!r}.")
    check_dataset_name(name, "--name")
    return f"Dataset{dataset_id:03d}_{name}"


def check_phantom_config(config: PhantomConfig) -> None:
    """Refuses (InvalidInput, naming the argument) parameters that cannot make a phantom: a spacing that is not
    positive, that leaves fewer than ``MIN_VOXELS_PER_AXIS`` voxels along an axis or more than
    ``MAX_VOXELS_PER_CASE`` voxels per case, a negative seed, no readers or no trials."""
    spacing, fov, jitter = config.spacing, config.field_of_view_mm, config.spacing_jitter
    shown = " ".join(f"{s:g}" for s in spacing)
    if len(spacing) != 3 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise InvalidInput(f"--spacing {shown}: the spacing must be three positive numbers (z y x, mm).")
    field = " x ".join(f"{f:g}" for f in fov)
    fewest = min(round(f / (s * (1 + jitter))) for f, s in zip(fov, spacing))
    if fewest < MIN_VOXELS_PER_AXIS:
        coarsest = " ".join(f"{f / (MIN_VOXELS_PER_AXIS * (1 + jitter)):.3g}" for f in fov)
        raise InvalidInput(f"--spacing {shown} samples the phantom's {field} mm (z y x) field of view with {fewest} "
                           f"voxel(s) along an axis; use at most {coarsest} mm (z y x) for {MIN_VOXELS_PER_AXIS} "
                           f"voxels per axis.")
    most = math.prod(f / (s * (1 - jitter)) for f, s in zip(fov, spacing))
    if most > MAX_VOXELS_PER_CASE:
        raise InvalidInput(f"--spacing {shown} samples the phantom's {field} mm field of view with up to {most:.3g} "
                           f"voxels per case (the limit is {MAX_VOXELS_PER_CASE:.0e}, several GB of memory per case); "
                           f"use a coarser spacing (the default is 3 2 2).")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise InvalidInput(f"--seed must be an integer of 0 or more, got {config.seed!r}.")
    if config.readers.n_readers < 1 or config.readers.n_trials < 1:
        raise InvalidInput(f"--readers and --trials must be at least 1, got {config.readers.n_readers} and "
                           f"{config.readers.n_trials}.")


def check_raw_root(raw_root: Path, flag: str = "-o") -> None:
    """Refuses an nnUNet_raw folder that is a file, or that is or lies inside a dataset folder (one holding a
    dataset.json next to imagesTr, or named DatasetXXX_NAME): the phantom would be written into another dataset."""
    if raw_root.exists() and not raw_root.is_dir():
        raise InvalidInput(f"{flag} {raw_root} is a file; {flag} is the nnUNet_raw folder that holds the "
                           f"DatasetXXX_NAME folders. Choose a folder.")
    resolved = raw_root.resolve()
    for folder in (resolved, *resolved.parents):
        if (folder / "dataset.json").is_file() and ((folder / "imagesTr").is_dir()
                                                    or re.fullmatch(r"Dataset\d{3}_\w+", folder.name)):
            relation = "is" if folder == resolved else "lies inside"
            raise InvalidInput(f"{flag} {raw_root} {relation} the dataset {folder}; {flag} is the nnUNet_raw folder "
                               f"that holds the DatasetXXX_NAME folders, e.g. {flag} {folder.parent}.")


def phantom_parameters(config: PhantomConfig, num_train: int, num_test: int) -> dict:
    """What the marker file records (and a rerun compares): the generator's parameters, as read back from JSON."""
    return json.loads(json.dumps({"config": config.to_dict(), "num_train": num_train, "num_test": num_test}))


def output_is_reusable(folder: Path, dataset_id: int, marker_name: str, params: dict, overwrite: bool, maker: str,
                       id_flag: str) -> bool:
    """Whether ``folder`` already holds this output (its marker file equals ``params``); False if it is to be
    written. Refuses (FileExistsError) an id used by another dataset, a folder not made by ``maker``, and one made with
    other parameters unless ``overwrite``."""
    check_dataset_id(folder, dataset_id, id_flag)
    if not folder.exists() and not folder.is_symlink():
        return False
    marker = folder / marker_name
    if folder.is_symlink() or not marker.is_file():
        raise OutputExists(f"{folder} exists and was not made by {maker}; it is left untouched. Choose another "
                              f"dataset id or nnUNet_raw folder.")
    if json.loads(marker.read_text()) == params:
        return True
    if not overwrite:
        raise OutputExists(f"{folder} was made by {maker} with other parameters. Pass overwrite=True "
                              f"(--overwrite) to write it again, or choose another dataset id.")
    return False


def _dataset_json(config: PhantomConfig, train: list[str], test: list[str]) -> dict:
    return {
        "channel_names": {"0": "CT"},
        "labels": dict(anatomy.labels_for(config.label_femoral_heads)),
        "numTraining": len(train),
        "file_ending": ".nii.gz",
        "name": "radconf pelvic phantom",
        "description": "Synthetic CT-like pelvis with organs-at-risk and a GTV; see radconf documentation/phantom.md",
        "radconf": {
            "generator": "radconf.datasets.phantom",
            "ctv_folders": {"train": "ctvTr", "test": "ctvTs"},
            "readers_folder": "readers",
            "readers": {"n_readers": config.readers.n_readers, "n_trials": config.readers.n_trials},
            "test_cases": test,
        },
    }


def _write_case(folder: Path, case, split: str) -> None:
    suffix = "Tr" if split == "train" else "Ts"
    spacing = case.spacing
    atomic_write_image(folder / f"images{suffix}" / f"{case.case_id}_0000.nii.gz", array_to_image(case.image, spacing))
    atomic_write_image(folder / f"labels{suffix}" / f"{case.case_id}.nii.gz", array_to_image(case.labels, spacing))
    atomic_write_image(folder / f"ctv{suffix}" / f"{case.case_id}.nii.gz", array_to_image(case.ctv, spacing))
    for name, mask in case.reader_masks.items():
        atomic_write_image(folder / "readers" / case.case_id / f"{name}.nii.gz", array_to_image(mask, spacing))


def write_phantom_dataset(raw_root: str | Path, *, dataset_id: int = 501, name: str = "Phantom",
                          num_train: int = 16, num_test: int = 4, config: PhantomConfig | None = None,
                          overwrite: bool = False, show_progress: bool = True) -> PhantomDataset:
    """Generates the phantom dataset into ``raw_root`` (an nnUNet_raw folder).

    Args:
        raw_root: the nnUNet_raw folder.
        dataset_id: nnU-Net dataset id (folder ``DatasetXXX_<name>``).
        name: dataset name.
        num_train: cases written to imagesTr/labelsTr.
        num_test: held-out cases written to imagesTs/labelsTs (case indices follow the training ones).
        config: generator parameters; defaults to ``PhantomConfig()``.
        overwrite: replace an existing phantom generated with different parameters.
        show_progress: tqdm progress bar over cases.

    Returns:
        Where the dataset is and which cases it holds; ``reused`` if an identical one was already there.

    Raises:
        FileExistsError: the folder exists and was not made by this generator, or was made with other parameters
            and ``overwrite`` is False, or its id is used by another dataset.
        ValueError: a parameter that cannot make a phantom, or a ``raw_root`` that is a file or a dataset folder.
    """
    config = config or PhantomConfig()
    if not (isinstance(num_train, int) and isinstance(num_test, int)) or num_train < 1 or num_test < 0:
        raise InvalidInput(f"--num_train must be at least 1 and --num_test 0 or more, got {num_train} and "
                           f"{num_test}.")
    check_phantom_config(config)
    raw_root = Path(raw_root)
    check_raw_root(raw_root)
    folder = raw_root / dataset_folder_name(dataset_id, name)
    train = [f"phantom_{i:03d}" for i in range(num_train)]
    test = [f"phantom_{i:03d}" for i in range(num_train, num_train + num_test)]
    params = phantom_parameters(config, num_train, num_test)

    if output_is_reusable(folder, dataset_id, MARKER, params, overwrite, "the radconf phantom generator", "-d"):
        return PhantomDataset(folder, train, test, reused=True)

    cases = [(i, "train") for i in range(num_train)] + [(num_train + i, "test") for i in range(num_test)]
    with staged_folder(folder) as staging:  # replaces only an output of ours (overwrite checked above)
        for index, split in tqdm(cases, desc="Generating phantom", unit="case", disable=not show_progress):
            _write_case(staging, generate_case(config, index), split)
        atomic_write_json(staging / "dataset.json", _dataset_json(config, train, test))
        atomic_write_json(staging / MARKER, params)
    return PhantomDataset(folder, train, test, reused=False)
