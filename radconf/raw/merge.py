"""radconf_merge_labels' dataset writer: a raw nnU-Net dataset -> a new raw dataset with labels merged, renamed or
dropped (the rules and the mapping are :mod:`radconf.raw.rules`).

The new dataset holds copies of the source's images (imagesTr, imagesTs; never links), its label maps rewritten with
the new ids (labelsTr, labelsTs; same geometry and file ending, uint8 where the ids fit), ``dataset.json`` with the
new ``labels`` and a ``"radconf"`` entry recording the mapping, ``label_merge_report.csv`` (voxels per case and
source label) and, when no rule touches a reader structure, the ``readers`` folders. Every check runs before the
first file is written; the dataset is built in a staging folder beside it and appears whole or not at all. The
source is only read.
"""
from __future__ import annotations

import copy
import csv
import io
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, OutputExists
from radconf.io.files import (
    atomic_write_image,
    atomic_write_json,
    atomic_write_text,
    staged_folder,
)
from radconf.io.images import read_label_image
from radconf.io.locations import check_output_location
from radconf.raw.checks import (
    check_dataset_json,
    check_raw_dataset,
    scan_image_folder,
    scan_label_folder,
)
from radconf.raw.derived import check_dataset_id, derived_target
from radconf.raw.entry import RADCONF_KEY, RadconfEntry
from radconf.raw.rules import BACKGROUND, LabelMapping, LabelRules, plan_mapping

GENERATOR = "radconf.merge_labels"
NAME_SUFFIX = "Merged"  # -o 512 with source Dataset501_Phantom -> Dataset512_PhantomMerged
REPORT = "label_merge_report.csv"
SPLITS = ("Tr", "Ts")


@dataclass(frozen=True)
class MergedDataset:
    """What :func:`merge_label_dataset` wrote."""

    folder: Path
    dataset_id: int
    mapping: LabelMapping
    cases: int
    readers_copied: tuple[str, ...]


def parse_output(output: str | int) -> tuple[int, str | None]:
    """``"512"`` -> ``(512, None)``; ``"Dataset512_Muscles"`` -> ``(512, "Muscles")``.

    Raises:
        InvalidInput: neither form.
    """
    text = str(output).strip()
    if re.fullmatch(r"\d{1,3}", text):
        return int(text), None
    match = re.fullmatch(r"Dataset(\d{3})_(\w+)", text)
    if not match:
        raise InvalidInput(f"-o {output!r}: give the new dataset's id (e.g. -o 512) or its full name (e.g. -o "
                           f"Dataset512_Muscles).")
    return int(match.group(1)), match.group(2)


def _check_output(folder: Path, dataset_id: int, source: Path) -> None:
    """Refuses the source itself (or a folder around or inside it), an id used by another dataset, and an existing
    folder that is not empty (OutputExists)."""
    check_output_location(folder, [("the source dataset", source)], subject=f"The new dataset {folder}",
                          fix="Pick another dataset id or name (-o).")
    check_dataset_id(folder, dataset_id, "-o")
    if folder.is_symlink() or folder.is_file() or (folder.is_dir() and any(folder.iterdir())):
        raise OutputExists(f"{folder} exists and is not empty; it is left untouched. Pick another dataset id or name "
                           f"(-o), or remove it.")


def _readers(source: Path, entry: RadconfEntry, mapping: LabelMapping) -> tuple[dict[str, str], list[str]]:
    """(structure -> readers folder after the mapping, readers folders to copy). Reader masks are binary per
    structure, so a renamed structure keeps its masks; a merged or dropped one is refused."""
    declared = entry.fields.get("readers_folders")
    declared = dict(declared) if isinstance(declared, Mapping) else {}
    present = sorted(p.name for p in source.iterdir() if p.is_dir() and re.fullmatch(r"readers(_\w+)?", p.name))
    renamed, merged = {}, {}
    for structure, folder in declared.items():
        new = mapping.name_of.get(structure, structure)
        parts = [name for name, target in mapping.name_of.items() if target == new]
        if new == BACKGROUND or len(parts) > 1:
            merged[structure] = folder
        renamed[new] = folder
    if merged:
        structure, folder = next(iter(merged.items()))
        what = "dropped" if mapping.name_of.get(structure) == BACKGROUND else "merged"
        raise InvalidInput(f"Label {structure!r} is a reader structure (multi-reader masks in {source / folder}) and "
                           f"would be {what}; its reader masks would no longer match a label. Leave {structure!r} "
                           f"out of --merge/--drop (renaming it is fine), or fuse its readers first "
                           f"(radconf_fuse_readers).")
    return renamed, present


def _entry(source_json: dict, source_name: str, mapping: LabelMapping, readers: dict[str, str]) -> dict:
    """The new ``"radconf"`` entry: the source's keys that stay valid, the mapping, missing structures updated."""
    entry = copy.deepcopy(source_json.get(RADCONF_KEY) or {})
    previous = entry.pop("generator", None)
    entry = {"generator": GENERATOR, "source": source_name, **({"source_generator": previous} if previous else {}),
             "label_mapping": dict(mapping.name_of), **{k: v for k, v in entry.items() if k not in
                                                       ("source", "label_mapping", "label_ids")},
             "label_ids": {str(old): new for old, new in mapping.id_of.items()}}
    if isinstance(entry.get("missing_structures"), Mapping):
        entry["missing_structures"] = mapping.missing_after(entry["missing_structures"])
    if "readers_folders" in entry:
        entry["readers_folders"] = readers
    return entry


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


def _write_label(path: Path, target: Path, mapping: LabelMapping) -> np.ndarray:
    """Rewrites one label map with the new ids (same geometry); returns the voxel count per source id."""
    import SimpleITK as sitk

    array, geometry = read_label_image(path)
    atomic_write_image(target, geometry.apply_to(sitk.GetImageFromArray(mapping.remap(array))))
    return np.bincount(array.ravel().astype(np.int64), minlength=max(mapping.id_of) + 1)


def _write_cases(source: Path, staging: Path, ending: str, mapping: LabelMapping,
                 progress: bool) -> tuple[list[dict], int]:
    """Copies every case's images and rewrites its label map; returns the report rows and the number of cases."""
    from tqdm import tqdm

    rows, cases = [], _case_files(source, ending)
    old_names = {i: n for n, i in mapping.old_labels.items()}
    new_names = {i: n for n, i in mapping.new_labels.items()}
    for split, case, images, label in tqdm(cases, desc="radconf_merge_labels", unit="case",
                                           disable=not progress):
        for image in images:
            (staging / f"images{split}").mkdir(exist_ok=True)
            shutil.copyfile(image, staging / f"images{split}" / image.name)  # a copy, never a link
        if label is None:
            continue
        counts = _write_label(label, staging / f"labels{split}" / label.name, mapping)
        rows += [{"case": case, "split": "train" if split == "Tr" else "test", "old_label": old_names[i],
                  "old_id": i, "new_label": new_names[mapping.id_of[i]], "new_id": mapping.id_of[i],
                  "voxels": int(counts[i])} for i in sorted(old_names) if i]
    return rows, len(cases)


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["case", "split", "old_label", "old_id", "new_label", "new_id", "voxels"],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def merge_label_dataset(source: str | os.PathLike, output: str | int, rules: LabelRules, *,
                        raw_root: str | os.PathLike | None = None, progress: bool = True) -> MergedDataset:
    """Writes a new raw dataset whose labels are the source's merged, renamed or dropped by ``rules``.

    Args:
        source: the source dataset: its id/name in ``raw_root`` or its folder.
        output: the new dataset: an id (name = source name + ``Merged``) or ``DatasetXXX_Name``.
        rules: from :func:`radconf.raw.rules.parse_rules`.
        raw_root: nnUNet_raw (None: ``$nnUNet_raw``).
        progress: tqdm bar over cases.

    Returns:
        The new folder, its id, the mapping, the number of cases and the readers folders copied.

    Raises:
        InvalidInput: a bad rule (see :func:`radconf.raw.rules.plan_mapping`), a region or confidence-level
            dataset, a merged or dropped reader structure, problems in the source's files, an output that is or
            contains the source.
        OutputExists: the output exists and is not empty, or its id is used by another dataset.
        MissingInput: the source does not exist.
    """
    dataset_id, name = parse_output(output)
    target = derived_target(source, dataset_id, name, NAME_SUFFIX, raw_root)
    source_folder, folder = target.source, target.folder
    if not (source_folder / "dataset.json").is_file():
        check_raw_dataset(source_folder)  # raises, naming the missing file
    source_json = check_dataset_json(source_folder / "dataset.json")
    entry = RadconfEntry.of(source_json, str(source_folder / "dataset.json"))
    if entry.ordinal:
        raise InvalidInput(f"{source_folder.name} is a confidence-level dataset (labels are agreement levels 0.."
                           f"{entry.levels}); merging levels would break their meaning. Merge the structures of the "
                           f"dataset it was fused from instead.")
    mapping = plan_mapping(source_json["labels"], rules)
    _check_output(folder, dataset_id, source_folder)
    readers, readers_present = _readers(source_folder, entry, mapping)
    check_raw_dataset(source_folder)  # every file whole, on its grid, label values declared
    ending = source_json["file_ending"]
    with staged_folder(folder) as staging:
        rows, n_cases = _write_cases(source_folder, staging, ending, mapping, progress)
        for readers_folder in readers_present:
            shutil.copytree(source_folder / readers_folder, staging / readers_folder, symlinks=False)
        new_json = {**copy.deepcopy(source_json), "labels": dict(mapping.new_labels),
                    RADCONF_KEY: _entry(source_json, source_folder.name, mapping, readers)}
        if "name" in new_json:
            new_json["name"] = folder.name.split("_", 1)[1]
        atomic_write_json(staging / "dataset.json", new_json)
        atomic_write_text(staging / REPORT, _csv_text(rows))
    return MergedDataset(folder, dataset_id, mapping, n_cases, tuple(readers_present))


def mapping_lines(mapping: LabelMapping) -> list[str]:
    """The mapping as a table, one line per source label: ``old (id) -> new (id)``."""
    width = max(len(name) for name in mapping.old_labels)
    return [f"{name:<{width}} ({old:>3}) -> {mapping.name_of[name]} ({mapping.id_of[old]})"
            for name, old in mapping.old_labels.items()]
