"""radconf_crop_dataset's writer: a raw nnU-Net dataset cropped around some of its labels (a volume of interest).

Each case's box is the bounding box of the voxels of the ``around`` labels in its label map, grown by a margin in mm
per axis (:func:`radconf.cropping.boxes.box_around`) and clipped to the image; every image channel and the label map
are cut to that box with their world geometry kept. With a localiser model (``from_model``) the boxes come from its
predictions of the source's images instead (:func:`localize`, nnU-Net's predictor into a temporary folder), so the
fine model trains on the crops it will see at prediction (``radconf_predict --localizer``). The new dataset holds::

    imagesTr/, labelsTr/ (imagesTs/, labelsTs/)   the crops (same file names, voxel types and file ending)
    dataset.json                                  the source's, with "radconf": {"generator": ..., "crop": {...}}
    crop_boxes.json                               per case: the box, the labels it was built around, its origin

A case in which none of the labels is found (or a held-out case without a label map) is kept whole, with a warning
naming it, and marked ``"whole": true`` in crop_boxes.json. Every check runs before the first file is written; the
dataset is built in a staging folder beside it and appears whole or not at all. The source is only read.
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from radconf.cropping.boxes import CropBox, box_of_label_map, crop
from radconf.errors import InvalidInput, OutputExists
from radconf.io.cases import case_channels
from radconf.io.files import atomic_write_image, atomic_write_json, staged_folder
from radconf.io.images import read_geometry
from radconf.io.locations import check_output_location
from radconf.raw.checks import check_dataset_json, check_raw_dataset, scan_image_folder, scan_label_folder
from radconf.raw.derived import check_dataset_id, derived_target
from radconf.raw.entry import RADCONF_KEY
from radconf.raw.merge import parse_output

if TYPE_CHECKING:
    from radconf.inference import RunOptions
    from radconf.models import ModelFiles, ModelSpec

GENERATOR = "radconf.crop_dataset"
NAME_SUFFIX = "Crop"  # -o 512 with source Dataset501_Phantom -> Dataset512_PhantomCrop
BOXES_FILE = "crop_boxes.json"
BOXES_FORMAT = "radconf_crop_boxes"
SPLITS = ("Tr", "Ts")
# "radconf" keys naming folders beside imagesTr that are not cropped, so not copied
NOT_COPIED_KEYS = ("readers_folders", "readers_folder", "readers", "ctv_folders")


@dataclass(frozen=True)
class CroppedDataset:
    """What :func:`crop_dataset` wrote."""

    folder: Path
    dataset_id: int
    around: dict[str, list[int]]  # label name -> its label id(s) in the source
    boxes: dict[str, CropBox]  # case -> its box in the source image
    whole: list[str]  # cases kept whole (none of the labels found, or no label map)
    warnings: list[str]


def resolve_labels(around: Sequence[str | int], labels: Mapping[str, int | list[int]],
                   where: str, flag: str = "--around") -> dict[str, list[int]]:
    """``around`` (label names or ids of ``labels``) -> ``{name: [ids]}`` in the given order (a region name gives
    its member ids).

    Raises:
        InvalidInput: no label given, background, an unknown name or id, naming ``flag`` and the known labels.
    """
    if not around:
        raise InvalidInput(f"Name at least one label to crop around ({flag} bladder,rectum or {flag} 1,2).")
    by_id = {v: n for n, v in labels.items() if isinstance(v, int)}
    known = ", ".join(f"{n} ({v})" for n, v in labels.items() if n != "background")
    chosen: dict[str, list[int]] = {}
    for item in around:
        text = str(item).strip()
        name = text if text in labels else by_id.get(int(text)) if text.isdigit() else None
        if name is None:
            raise InvalidInput(f"{flag} {text!r} is neither a label name nor a label id of {where}; known: "
                               f"{known or 'none'}.")
        ids = labels[name] if isinstance(labels[name], list) else [labels[name]]
        if name == "background" or 0 in ids:
            raise InvalidInput(f"{flag} {text!r} is the background of {where}; crop around foreground labels "
                               f"({known or 'none'}).")
        chosen[name] = [int(i) for i in ids]
    return chosen


def _check_output(folder: Path, dataset_id: int, source: Path) -> None:
    """Refuses the source itself (or a folder around or inside it), an id used by another dataset, and an existing
    folder that is not empty."""
    check_output_location(folder, [("the source dataset", source)], subject=f"The new dataset {folder}",
                          fix="Pick another dataset id or name (-o).")
    check_dataset_id(folder, dataset_id, "-o")
    if folder.is_symlink() or folder.is_file() or (folder.is_dir() and any(folder.iterdir())):
        raise OutputExists(f"{folder} exists and is not empty; it is left untouched. Pick another dataset id or name "
                           f"(-o), or remove it.")


def _case_files(source: Path, ending: str) -> list[tuple[str, str, list[Path], Path | None]]:
    """``(split, case, image files, label file or None)`` of every case in imagesTr/imagesTs."""
    cases = []
    for split in SPLITS:
        images = scan_image_folder(source / f"images{split}", ending, [])
        labels = scan_label_folder(source / f"labels{split}", ending, [])
        for case, channels in images.items():
            paths = [source / f"images{split}" / f"{case}_{c:04d}{ending}" for c in channels]
            cases.append((split, case, paths, labels.get(case)))
    return cases


def localize(image_folder: str | os.PathLike, work_folder: Path, spec: ModelSpec, run: RunOptions, ending: str,
             num_channels: int) -> Path:
    """The localiser's label maps ``CASE<ending>`` of every case of ``image_folder``, predicted with nnU-Net's
    predictor (:func:`radconf.inference.predict_model`) into ``work_folder/predictions``.

    A localiser that reads fewer channels than the cases have is given their first ``num_channels`` (copied into
    ``work_folder/images``).

    Raises:
        InvalidInput, MissingInput: a case without the localiser's channels, or any refusal of the prediction.
    """
    from dataclasses import replace

    from radconf.inference import predict_model

    image_folder = Path(image_folder)
    wanted = list(range(num_channels))
    channels = case_channels(image_folder, ending)
    folder = image_folder
    if any(found != wanted for found in channels.values()):
        lacking = [case for case, found in channels.items() if not set(wanted) <= set(found)]
        if lacking:
            raise InvalidInput(f"Case {lacking[0]} in {image_folder} lacks channels of the localiser {spec}, which "
                               f"reads {', '.join(f'_{c:04d}' for c in wanted)}; give every case those channels.")
        folder = work_folder / "images"
        folder.mkdir(parents=True)
        for case in channels:
            for c in wanted:
                shutil.copyfile(image_folder / f"{case}_{c:04d}{ending}", folder / f"{case}_{c:04d}{ending}")
    predictions = work_folder / "predictions"
    predict_model(folder, predictions, spec, run=replace(run, save_probabilities=False, overwrite=True))
    return predictions


@dataclass(frozen=True)
class _BoxSource:
    """Where the boxes come from: the label maps (``spec`` None) or a localiser's predictions."""

    ids: list[int]
    names: str
    margin_mm: float
    spec: ModelSpec | None = None
    model: ModelFiles | None = None
    run: RunOptions | None = None


def _label_box(case: str, images: list[Path], label: Path | None, source: _BoxSource) -> tuple[CropBox, str | None]:
    """The case's box from its label map and, when it is kept whole, the warning saying why."""
    geometry = read_geometry(images[0])
    if label is None:
        return CropBox.whole(geometry), f"case {case}: no label map to find {source.names} in; kept whole."
    box = box_of_label_map(label, source.ids, source.margin_mm, geometry)
    if box is None:
        return CropBox.whole(geometry), f"case {case}: none of {source.names} is present in {label}; kept whole."
    return box, None


def _case_boxes(cases: list[tuple[str, str, list[Path], Path | None]], source: _BoxSource, source_folder: Path,
                staging: Path, ending: str) -> dict[str, tuple[CropBox, str | None]]:
    """Every case's box and warning: from its label map, or from the localiser's prediction of its images (run
    split by split into a temporary folder inside ``staging``, removed before the dataset is published)."""
    if source.spec is None:
        return {case: _label_box(case, images, label, source) for _, case, images, label in cases}
    found: dict[str, tuple[CropBox, str | None]] = {}
    with tempfile.TemporaryDirectory(prefix=".localizer_", dir=staging) as work:
        for split in sorted({split for split, *_ in cases}):
            maps = localize(source_folder / f"images{split}", Path(work) / split, source.spec, source.run, ending,
                            source.model.num_channels)
            for _, case, images, _ in (c for c in cases if c[0] == split):
                geometry = read_geometry(images[0])
                box = box_of_label_map(maps / f"{case}{ending}", source.ids, source.margin_mm, geometry)
                found[case] = (box, None) if box is not None else (
                    CropBox.whole(geometry), f"case {case}: the localiser {source.spec} found none of {source.names}; "
                                             f"kept whole.")
    return found


def _write_case(split: str, images: list[Path], label: Path | None, box: CropBox, staging: Path) -> None:
    import SimpleITK as sitk

    for image in images:
        atomic_write_image(staging / f"images{split}" / image.name, crop(sitk.ReadImage(str(image)), box))
    if label is not None:
        atomic_write_image(staging / f"labels{split}" / label.name, crop(sitk.ReadImage(str(label)), box))


def _record(split: str, box: CropBox, around: list[str], source: _BoxSource, whole: bool) -> dict:
    """A case's crop_boxes.json record."""
    origin = {"from": "labels"} if source.spec is None else {"from": "model", "model": str(source.spec)}
    return {"split": "train" if split == "Tr" else "test", "box": box.to_json(), "around": around, **origin,
            "whole": whole}


def _entry(source_json: dict, source_name: str, around: dict[str, list[int]], margin_mm: float,
           spec: ModelSpec | None) -> dict:
    """The new ``"radconf"`` entry: the source's keys that stay valid (folders beside the images, such as the
    readers' masks, are not copied, so their keys go), the crop."""
    entry = copy.deepcopy(source_json.get(RADCONF_KEY) or {})
    previous = entry.pop("generator", None)
    for key in ("source", "crop", *NOT_COPIED_KEYS):
        entry.pop(key, None)
    origin = {"from": "labels"} if spec is None else {"from": "model", "model": str(spec)}
    return {"generator": GENERATOR, "source": source_name, **({"source_generator": previous} if previous else {}),
            **entry, "crop": {"around": around, "margin_mm": margin_mm, **origin, "boxes": BOXES_FILE}}


def _localizer(from_model: ModelSpec | str | None, run: RunOptions | None, ending: str
               ) -> tuple[ModelSpec | None, ModelFiles | None, RunOptions | None]:
    """The localiser's spec, its checked files and the run options (all None without ``from_model``)."""
    if from_model is None:
        return None, None, None
    from radconf.inference import RunOptions
    from radconf.models import ModelSpec, find_model

    spec = from_model if isinstance(from_model, ModelSpec) else ModelSpec.parse(str(from_model))
    run = run or RunOptions()
    run.check()
    model = find_model(spec)
    if model.file_ending != ending:
        raise InvalidInput(f"The localiser {spec} reads {model.file_ending} images, the source's are {ending}; give "
                           f"--from_model a model trained on {ending} images.")
    return spec, model, run


def crop_dataset(source: str | os.PathLike, output: str | int, around: Sequence[str | int], margin_mm: float, *,
                 from_model: ModelSpec | str | None = None, run: RunOptions | None = None,
                 raw_root: str | os.PathLike | None = None, progress: bool = True) -> CroppedDataset:
    """Writes a new raw dataset whose cases are the source's cropped around ``around`` with ``margin_mm``.

    Args:
        source: the source dataset: its id/name in ``raw_root`` or its folder.
        output: the new dataset: an id (name = source name + ``Crop``) or ``DatasetXXX_Name``.
        around: label names or ids (of the source's dataset.json, or of the localiser's with ``from_model``); the
            box holds all of them.
        margin_mm: margin in mm added on every side of the labels' bounding box (clipped to the image).
        from_model: a localiser model (``ModelSpec`` or its text): the boxes come from its predictions of the
            source's images, not from the label maps.
        run: how the localiser runs (device, workers, mirroring); default ``RunOptions()``.
        raw_root: nnUNet_raw (None: ``$nnUNet_raw``).
        progress: tqdm bar over cases.

    Returns:
        The new folder, its id, the labels, every case's box, the cases kept whole and their warnings.

    Raises:
        InvalidInput: an unknown or background label, a negative margin, problems in the source's files or the
            localiser, an output that is, contains or lies inside the source.
        OutputExists: the output exists and is not empty, or its id is used by another dataset.
        MissingInput: the source or the localiser's files do not exist.
    """
    from tqdm import tqdm

    from radconf.cropping.boxes import margin_voxels

    dataset_id, name = parse_output(output)
    target = derived_target(source, dataset_id, name, NAME_SUFFIX, raw_root)
    source_folder, folder = target.source, target.folder
    if not (source_folder / "dataset.json").is_file():
        check_raw_dataset(source_folder)  # raises, naming the missing file
    source_json = check_dataset_json(source_folder / "dataset.json")
    ending = source_json["file_ending"]
    spec, model, run = _localizer(from_model, run, ending)
    labels, where = ((source_json["labels"], str(source_folder / "dataset.json")) if model is None else
                     (model.dataset_json["labels"], f"the localiser {spec} ({model.folder / 'dataset.json'})"))
    chosen = resolve_labels(around, labels, where)
    margin_voxels(float(margin_mm), (1.0,))  # refuses a negative or infinite margin before any work
    _check_output(folder, dataset_id, source_folder)
    check_raw_dataset(source_folder)  # every file whole, on its grid, label values declared
    box_source = _BoxSource(sorted({i for members in chosen.values() for i in members}), ", ".join(chosen),
                            float(margin_mm), spec, model, run)
    records: dict[str, dict] = {}
    messages: list[str] = []
    with staged_folder(folder) as staging:
        cases = _case_files(source_folder, ending)
        found = _case_boxes(cases, box_source, source_folder, staging, ending)
        for split, case, images, label in tqdm(cases, desc="radconf_crop_dataset", unit="case",
                                               disable=not progress):
            box, message = found[case]
            if message:
                warnings.warn(message, stacklevel=2)
                messages.append(message)
            _write_case(split, images, label, box, staging)
            records[case] = _record(split, box, list(chosen), box_source, message is not None)
        new_json = {**copy.deepcopy(source_json),
                    RADCONF_KEY: _entry(source_json, source_folder.name, chosen, float(margin_mm), spec)}
        if "name" in new_json:
            new_json["name"] = folder.name.split("_", 1)[1]
        atomic_write_json(staging / "dataset.json", new_json)
        atomic_write_json(staging / BOXES_FILE, {"format": BOXES_FORMAT, "version": 1, "source": source_folder.name,
                                                 "around": chosen, "margin_mm": float(margin_mm),
                                                 **({"model": str(spec)} if spec else {}), "cases": records})
    boxes = {case: box for case, (box, _) in found.items()}
    whole = [case for case, record in records.items() if record["whole"]]
    return CroppedDataset(folder, dataset_id, chosen, boxes, whole, messages)


def read_crop_boxes(path: str | os.PathLike) -> dict[str, CropBox]:
    """Case -> box of a ``crop_boxes.json``.

    Raises:
        InvalidInput: not a crop_boxes.json, or a box with missing fields, naming the file.
    """
    from radconf.io.dataset_json import read_json_file

    path = Path(path)
    data = read_json_file(path)
    if not isinstance(data, dict) or data.get("format") != BOXES_FORMAT or not isinstance(data.get("cases"), dict):
        raise InvalidInput(f"{path} is not a {BOXES_FORMAT} file (\"format\", \"cases\"); write it with "
                           f"radconf_crop_dataset.")
    return {case: CropBox.from_json(record.get("box", {}) if isinstance(record, dict) else {}, f"{path} ({case})")
            for case, record in data["cases"].items()}
