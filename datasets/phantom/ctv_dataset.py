"""The phantom's CTV as an nnU-Net dataset of its own (CT -> CTV), the data of the anatomy-guided CTV benchmark.

Layout under ``<raw>/DatasetXXX_<name>/`` (default ``Dataset503_PhantomCTV``)::

    imagesTr/<case>_0000.nii.gz   the phantom's CT (byte copies)      labelsTr/<case>.nii.gz   its ctvTr/ mask: ctv = 1
    imagesTs/...                  held-out cases                      labelsTs/...             ctvTs/ masks
    radconf_ctv.json              marker: which phantom it was made from (lets a rerun reuse the dataset)

The plain model trains on this dataset; the anatomy model on ``radconf_anatomy_dataset 503 -d 504 --anatomy bladder
rectum gluteal_muscles --anatomy_dataset 501`` (the organs of the same phantom cases). Staging, reuse and refusal
follow :mod:`radconf.datasets.phantom.writer`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from radconf.datasets.phantom import writer
from radconf.datasets.phantom.writer import PhantomDataset, dataset_folder_name

from radconf.errors import MissingInput
from radconf.io.dataset_json import read_json_file
from radconf.io.files import atomic_write_json, staged_folder

MARKER = "radconf_ctv.json"
GENERATOR = "radconf.datasets.phantom.ctv_dataset"


def _phantom_files(phantom: Path) -> tuple[dict, list[tuple[str, str, Path, Path]]]:
    """The phantom's dataset.json and (case, split, CT, CTV) of every case.

    Raises:
        FileNotFoundError: not a radconf phantom, or a CTV mask missing (all listed).
    """
    if not (phantom / writer.MARKER).is_file():
        raise MissingInput(f"{phantom} is not a radconf phantom (no {writer.MARKER}); generate it with "
                                f"radconf_generate_phantom first.")
    dataset_json = read_json_file(phantom / "dataset.json")
    ending = dataset_json["file_ending"]
    folders = dataset_json["radconf"].get("ctv_folders", {"train": "ctvTr", "test": "ctvTs"})
    files, missing = [], []
    for split, images in (("train", "imagesTr"), ("test", "imagesTs")):
        suffix = f"_0000{ending}"
        for ct in sorted((phantom / images).glob(f"*{suffix}")) if (phantom / images).is_dir() else []:
            case = ct.name[: -len(suffix)]
            ctv = phantom / folders[split] / f"{case}{ending}"
            files.append((case, split, ct, ctv))
            missing += [] if ctv.is_file() else [str(ctv)]
    if missing:
        raise MissingInput(f"{phantom} lacks the CTV masks {', '.join(missing)}; regenerate the phantom with "
                                f"radconf_generate_phantom --overwrite.")
    return dataset_json, files


def ctv_parameters(phantom_name: str, phantom_parameters: dict) -> dict:
    """What the CTV dataset's marker records: the phantom it was made from."""
    return {"phantom": phantom_name, "phantom_parameters": phantom_parameters}


def check_ctv_output(raw_root: str | os.PathLike, dataset_id: int, phantom_name: str, phantom_parameters: dict,
                     name: str = "PhantomCTV", overwrite: bool = False) -> None:
    """Refuses, before the phantom is written, a CTV dataset that :func:`write_ctv_dataset` would refuse (an id used
    by another dataset, a folder not made here, one made from another phantom without ``overwrite``)."""
    folder = Path(raw_root) / dataset_folder_name(dataset_id, name)
    writer.output_is_reusable(folder, dataset_id, MARKER, ctv_parameters(phantom_name, phantom_parameters), overwrite,
                              "radconf's phantom CTV writer", "--ctv_dataset")


def write_ctv_dataset(phantom_folder: str | os.PathLike, raw_root: str | os.PathLike, dataset_id: int = 503,
                      name: str = "PhantomCTV", overwrite: bool = False) -> PhantomDataset:
    """Writes the phantom's CT with its CTV (label ``ctv`` = 1) as an nnU-Net raw dataset.

    Args:
        phantom_folder: a phantom written by :func:`radconf.datasets.phantom.writer.write_phantom_dataset`.
        raw_root: the nnUNet_raw folder to write into.
        dataset_id: nnU-Net dataset id (folder ``DatasetXXX_<name>``).
        name: dataset name.
        overwrite: replace a CTV dataset of ours made from another phantom.

    Returns:
        Where the dataset is and which cases it holds; ``reused`` if an identical one was already there.

    Raises:
        FileNotFoundError: the phantom folder is not a phantom or lacks CTV masks.
        FileExistsError: the id is used by another dataset, the folder exists and was not made here, or it was made
            from another phantom and ``overwrite`` is False.
    """
    phantom, raw_root = Path(phantom_folder).resolve(), Path(raw_root)
    folder = raw_root / dataset_folder_name(dataset_id, name)
    phantom_json, files = _phantom_files(phantom)
    params = ctv_parameters(phantom.name, read_json_file(phantom / writer.MARKER))
    train = [case for case, split, *_ in files if split == "train"]
    test = [case for case, split, *_ in files if split == "test"]

    if writer.output_is_reusable(folder, dataset_id, MARKER, params, overwrite, "radconf's phantom CTV writer",
                                 "--ctv_dataset"):
        return PhantomDataset(folder, train, test, reused=True)

    ending = phantom_json["file_ending"]
    with staged_folder(folder) as staging:  # replaces only an output of ours (overwrite checked above)
        for case, split, ct, ctv in files:
            suffix = "Tr" if split == "train" else "Ts"
            for sub in (f"images{suffix}", f"labels{suffix}"):
                (staging / sub).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ct, staging / f"images{suffix}" / ct.name)
            shutil.copyfile(ctv, staging / f"labels{suffix}" / f"{case}{ending}")  # uint8 0/1 on the CT's grid
        atomic_write_json(staging / "dataset.json", {
            "channel_names": {"0": "CT"},
            "labels": {"background": 0, "ctv": 1},
            "numTraining": len(train),
            "file_ending": ending,
            "name": name,
            "description": f"CTV of the radconf pelvic phantom {phantom.name} (CT -> CTV)",
            "radconf": {"derived_from": phantom.name, "test_cases": test, "generator": GENERATOR},
        })
        atomic_write_json(staging / MARKER, params)
    return PhantomDataset(folder, train, test, reused=False)
