"""``radconf_partial_labels``: check a user's missing-structure table against a raw dataset and record it.

The table is checked completely before anything is written: its cases are the dataset's training cases, its
structures the dataset's labels, no case misses every structure, and no structure is called missing in a case whose
label image holds it (then it is annotated, and the table is wrong). The record goes into the dataset's preprocessed
folder (``radconf_partial_labels.json``, written atomically with the table's path and SHA-256), where the partial-label
trainers read it together with the dataset.json entry. The raw dataset is only read.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from radconf.errors import InvalidInput
from radconf.io.cases import list_cases
from radconf.io.dataset_json import read_json_file
from radconf.io.files import atomic_write_json
from radconf.io.images import label_ids_present, read_label_image
from radconf.partial.structures import (
    RECORD_FILE,
    MissingStructures,
    dataset_missing_structures,
    from_dataset_json,
    merge,
    read_table,
    structure_labels,
)


@dataclass(frozen=True)
class PartialLabels:
    """What is known about one dataset: its training cases and the merged missing structures."""

    name: str
    cases: tuple[str, ...]
    missing: MissingStructures
    record: Path

    def lines(self) -> list[str]:
        """A printable overview: per structure the annotated cases, then each partial case."""
        total = len(self.cases)
        lines = [f"{self.name}: {len(self.missing.missing)} of {total} training cases miss structures"]
        for structure, count in self.missing.counts(self.cases).items():
            lines.append(f"  {structure:<24} annotated in {count:>4} / {total}")
        for case, names in self.missing.missing.items():
            lines.append(f"  {case}: missing {', '.join(names)}")
        return lines


def _dataset(raw_folder: Path) -> tuple[dict, dict[str, Path]]:
    dataset_json = read_json_file(raw_folder / "dataset.json", fix="or restore the dataset's dataset.json")
    labels = list_cases(raw_folder / "labelsTr", dataset_json.get("file_ending", ".nii.gz"))
    return dataset_json, labels


def _check_not_annotated(missing: MissingStructures, labels: dict[str, Path], where: str) -> None:
    """Refuses a structure called missing in a case whose label image holds it."""
    for case, names in tqdm(sorted(missing.missing.items()), desc="checking label images", unit="case",
                            disable=len(missing.missing) < 20):
        array, _ = read_label_image(labels[case])
        held = [n for n in names if missing.labels[n] in label_ids_present(array)]
        if held:
            raise InvalidInput(f"{where}: case {case} is said to miss {', '.join(held)}, but {labels[case].name} "
                               f"holds {'it' if len(held) == 1 else 'them'} (label "
                               f"{', '.join(str(missing.labels[n]) for n in held)}). A structure that is contoured is "
                               f"not missing: remove it from the table for this case.")


def describe(raw_folder: Path, preprocessed_folder: Path) -> PartialLabels:
    """The dataset's missing structures as recorded (dataset.json entry and the recorded table)."""
    dataset_json, labels = _dataset(raw_folder)
    missing = dataset_missing_structures(dataset_json, preprocessed_folder, sorted(labels))
    return PartialLabels(raw_folder.name, tuple(sorted(labels)), missing, preprocessed_folder / RECORD_FILE)


def record_table(raw_folder: Path, preprocessed_folder: Path, table: Path) -> PartialLabels:
    """Checks ``table`` against the raw dataset (and its dataset.json entry) and records it.

    Raises:
        InvalidInput: unknown cases or structures, a case missing everything, a contoured structure called missing,
            a disagreement with the dataset.json entry; nothing is written then.
    """
    dataset_json, labels = _dataset(raw_folder)
    names = structure_labels(dataset_json, str(raw_folder / "dataset.json"))
    cases = sorted(labels)
    given = read_table(table, names, cases)
    if not given:
        raise InvalidInput(f"{table} lists no missing structure: every case would be complete. Nothing to record "
                           f"(to remove an earlier record: radconf_partial_labels -d ... --clear).")
    _check_not_annotated(given, labels, str(table))
    entry = from_dataset_json(dataset_json, cases, str(raw_folder / "dataset.json"))
    merged = merge(MissingStructures(names, entry.missing), given, ("dataset.json", str(table)))
    record = preprocessed_folder / RECORD_FILE
    preprocessed_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, {**given.to_json(), "source_table": str(Path(table).resolve()),
                               "source_sha256": hashlib.sha256(Path(table).read_bytes()).hexdigest(),
                               "labels": dict(names)})
    return PartialLabels(raw_folder.name, tuple(cases), merged, record)


def clear_record(preprocessed_folder: Path) -> bool:
    """Removes the recorded table; True if there was one."""
    record = preprocessed_folder / RECORD_FILE
    if record.is_file():
        record.unlink()
        return True
    return False
