"""Writes the phantom as an nnU-Net raw dataset, plus CTV masks and the readers' contours.

Layout under ``<raw>/DatasetXXX_<name>/``::

    dataset.json                 nnU-Net dataset description (+ a "radconf" key describing the extras)
    imagesTr/<case>_0000.nii.gz  CT (int16 HU)              labelsTr/<case>.nii.gz  label map
    imagesTs/...                 held-out cases              labelsTs/...            their references
    ctvTr/<case>.nii.gz          CTV (binary)               ctvTs/...
    readers/<case>/<reader>_<trial>.nii.gz   simulated readers' GTV contours (binary; some trials missing)
    radconf_phantom.json         marker: the generator's parameters (lets a rerun reuse the dataset)

The dataset is built in a temporary sibling folder and renamed into place at the end, so an interrupted run never
leaves a half-written dataset. A folder not made by this generator is never modified.
"""
from __future__ import annotations

import json
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

MARKER = "radconf_phantom.json"


@dataclass(frozen=True)
class PhantomDataset:
    folder: Path
    train_cases: list[str]
    test_cases: list[str]
    reused: bool


def dataset_folder_name(dataset_id: int, name: str) -> str:
    if not 1 <= dataset_id <= 999:
        raise InvalidInput(f"Dataset id must be between 1 and 999, got {dataset_id}.")
    return f"Dataset{dataset_id:03d}_{name}"


def output_is_reusable(folder: Path, dataset_id: int, marker_name: str, params: dict, overwrite: bool, maker: str,
                       id_flag: str) -> bool:
    """Whether ``folder`` already holds this output (its marker file equals ``params``); False if it is to be
    written. Refuses (FileExistsError) an id used by another dataset, a folder not made by ``maker``, and one made with
    other parameters unless ``overwrite``."""
    others = [p for p in folder.parent.glob(f"Dataset{dataset_id:03d}_*")
              if p != folder and not p.name.endswith((".partial", ".replaced"))] if folder.parent.is_dir() else []
    if others:
        raise OutputExists(f"Dataset id {dataset_id} is already used by {others[0]}. Pick another id "
                              f"(e.g. {id_flag} {dataset_id + 1}) or another nnUNet_raw folder.")
    if not folder.exists():
        return False
    marker = folder / marker_name
    if not marker.is_file():
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
            and ``overwrite`` is False.
    """
    config = config or PhantomConfig()
    if num_train < 1 or num_test < 0:
        raise InvalidInput(f"num_train must be >= 1 and num_test >= 0, got {num_train} and {num_test}.")
    raw_root = Path(raw_root)
    folder = raw_root / dataset_folder_name(dataset_id, name)
    train = [f"phantom_{i:03d}" for i in range(num_train)]
    test = [f"phantom_{i:03d}" for i in range(num_train, num_train + num_test)]
    params = {"config": config.to_dict(), "num_train": num_train, "num_test": num_test}
    params = json.loads(json.dumps(params))  # tuples -> lists, as they come back from disk

    if output_is_reusable(folder, dataset_id, MARKER, params, overwrite, "the radconf phantom generator",
                          "--dataset-id"):
        return PhantomDataset(folder, train, test, reused=True)

    cases = [(i, "train") for i in range(num_train)] + [(num_train + i, "test") for i in range(num_test)]
    with staged_folder(folder) as staging:  # replaces only an output of ours (overwrite checked above)
        for index, split in tqdm(cases, desc="Generating phantom", unit="case", disable=not show_progress):
            _write_case(staging, generate_case(config, index), split)
        atomic_write_json(staging / "dataset.json", _dataset_json(config, train, test))
        atomic_write_json(staging / MARKER, params)
    return PhantomDataset(folder, train, test, reused=False)
