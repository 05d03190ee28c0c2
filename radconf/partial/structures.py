"""Which structures each training case has: the per-case "missing structures" of a partially labelled dataset.

A structure is *missing* from a case when nobody contoured it there (a clinical structure set without a bladder):
its voxels, if the organ is in the image, are labelled background. Two sources say which, merged into one
:class:`MissingStructures`:

- the dataset.json ``"radconf": {"missing_structures": {case: [name, ...]}}`` entry that ``radconf_import_dicom``
  (and ``radconf_merge_labels``) write; nnU-Net copies dataset.json into the preprocessed folder, so trainers see it;
- a table a user gives for a NIfTI dataset (``radconf_partial_labels -d ID --missing cases.csv``), checked against the
  raw dataset and recorded as ``nnUNet_preprocessed/<dataset>/radconf_partial_labels.json`` (radconf's area, never the
  user's raw folder; nnU-Net's re-preprocessing leaves it in place).

Cases without an entry are complete. The same case in both sources must agree.
"""
from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from radconf.errors import InvalidInput
from radconf.io.dataset_json import read_json_file

RECORD_FILE = "radconf_partial_labels.json"
ENTRY_KEY = "missing_structures"
_SEPARATORS = re.compile(r"[;,|]|\s+")


@dataclass(frozen=True)
class MissingStructures:
    """Missing structure names per case, checked against a dataset's labels.

    Attributes:
        labels: the dataset's label names -> ids (background 0, no ``ignore``), in dataset.json order.
        missing: case -> the names of its missing structures (sorted by id); only cases that miss something.
    """

    labels: Mapping[str, int]
    missing: Mapping[str, tuple[str, ...]]

    def __post_init__(self):
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        object.__setattr__(self, "missing", MappingProxyType({c: tuple(v) for c, v in sorted(self.missing.items())}))

    @property
    def structures(self) -> tuple[str, ...]:
        """The foreground structure names, by id."""
        return tuple(n for n, i in sorted(self.labels.items(), key=lambda item: item[1]) if i != 0)

    def missing_ids(self, case: str) -> tuple[int, ...]:
        """Label ids the case misses (empty for a complete case or one not listed)."""
        return tuple(self.labels[name] for name in self.missing.get(case, ()))

    def present(self, case: str) -> tuple[str, ...]:
        """The structures a case has."""
        gone = set(self.missing.get(case, ()))
        return tuple(s for s in self.structures if s not in gone)

    def __bool__(self) -> bool:
        return bool(self.missing)

    def counts(self, cases: Iterable[str]) -> dict[str, int]:
        """Per structure: in how many of ``cases`` it is annotated."""
        cases = list(cases)
        return {s: sum(s not in self.missing.get(c, ()) for c in cases) for s in self.structures}

    def to_json(self) -> dict:
        return {ENTRY_KEY: {case: list(names) for case, names in self.missing.items()}}


def structure_labels(dataset_json: Mapping, where: str = "dataset.json") -> dict[str, int]:
    """The label names -> ids of a dataset.json that can have partial labels (softmax classes, no regions).

    Raises:
        InvalidInput: regions (e.g. confidence levels) or no foreground label.
    """
    labels = dataset_json.get("labels") or {}
    if any(isinstance(v, (list, tuple)) for v in labels.values()):
        raise InvalidInput(f"{where} defines regions (labels with lists of ids, e.g. confidence levels): partial labels "
                           f"are for label maps of separate structures (softmax classes).")
    named = {str(n): int(v) for n, v in labels.items() if str(n) != "ignore"}
    if not [v for v in named.values() if v != 0]:
        raise InvalidInput(f"{where} declares no foreground label: there is nothing that could be missing.")
    return named


def _resolve_name(token: str, labels: Mapping[str, int], where: str) -> str:
    """A structure name (or id) of ``labels``; background and unknown names refused with the close matches."""
    by_id = {str(i): n for n, i in labels.items()}
    name = by_id.get(token, token)
    if name not in labels:
        close = difflib.get_close_matches(token, list(labels), n=2)
        raise InvalidInput(f"{where}: unknown structure {token!r}; the dataset's labels are "
                           f"{', '.join(n for n in labels if labels[n] != 0)}"
                           + (f" (did you mean {' or '.join(close)}?)." if close else "."))
    if labels[name] == 0:
        raise InvalidInput(f"{where}: background cannot be missing; list only structures (labels with id > 0).")
    return name


def check_missing(raw: Mapping, labels: Mapping[str, int], cases: Sequence[str] | None,
                  where: str) -> MissingStructures:
    """Checks a ``{case: [names or ids]}`` mapping: known cases (when ``cases`` is given), known structures, and no
    case missing every structure.

    Raises:
        InvalidInput: naming the source, the case and the fix.
    """
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where}: missing structures must be an object {{case: [structure, ...]}}, got "
                           f"{type(raw).__name__}.")
    known = set(cases) if cases is not None else None
    checked: dict[str, tuple[str, ...]] = {}
    for case, names in raw.items():
        case = str(case)
        if known is not None and case not in known:
            close = difflib.get_close_matches(case, sorted(known), n=2)
            raise InvalidInput(f"{where}: case {case!r} is not a training case of the dataset"
                               + (f" (did you mean {' or '.join(close)}?)" if close else "")
                               + "; list cases by their file names without the channel suffix and ending.")
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise InvalidInput(f"{where}: the missing structures of {case} must be a list of names, got {names!r}.")
        resolved = {_resolve_name(str(n), labels, f"{where}, case {case}") for n in names}
        if not resolved:
            continue
        foreground = [n for n, i in labels.items() if i != 0]
        if set(foreground) <= resolved:
            raise InvalidInput(f"{where}: case {case} would miss every structure ({', '.join(foreground)}): it has "
                               f"nothing to learn from. Drop the case from the dataset, or correct the table.")
        checked[case] = tuple(sorted(resolved, key=labels.__getitem__))
    return MissingStructures(labels, checked)


def read_table(path: str | Path, labels: Mapping[str, int], cases: Sequence[str] | None) -> MissingStructures:
    """A missing-structure table: CSV with a header ``case,missing``; ``missing`` lists names (or ids) separated by
    ``;``, ``|`` or spaces; a case may appear on several rows (the union is taken). Lines starting with ``#`` are
    comments. A case listed with an empty ``missing`` is complete.

    Raises:
        InvalidInput: an unreadable file, another header, unknown cases or structures.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(f"Cannot read the missing-structure table {path}: {error}. Give a UTF-8 CSV file with "
                           f"the header case,missing.") from None
    rows = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    reader = csv.DictReader(io.StringIO("\n".join(rows)))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if header[:2] != ["case", "missing"]:
        got = ",".join(header) or "an empty file"
        raise InvalidInput(f"{path}: the first line must be the header 'case,missing' (got {got}); then one row per "
                           f"case, e.g. case_003,rectum;bladder.")
    merged: dict[str, set[str]] = {}
    for number, row in enumerate(reader, start=2):
        values = list(row.values())
        case = (values[0] or "").strip()
        if not case:
            raise InvalidInput(f"{path}, row {number}: the case is empty.")
        extra = " ".join(v if isinstance(v, str) else " ".join(v) for v in values[1:] if v)
        merged.setdefault(case, set()).update(t for t in _SEPARATORS.split(extra) if t)
    return check_missing({c: sorted(v) for c, v in merged.items()}, labels, cases, str(path))


def from_dataset_json(dataset_json: Mapping, cases: Sequence[str] | None = None,
                      where: str = "dataset.json") -> MissingStructures:
    """The missing structures the dataset.json's radconf entry records (none: every case complete)."""
    entry = dataset_json.get("radconf") or {}
    raw = entry.get(ENTRY_KEY, {}) if isinstance(entry, Mapping) else {}
    labels = structure_labels(dataset_json, where) if raw else {}
    return check_missing(raw, labels, cases, f"{where} (\"radconf\".\"{ENTRY_KEY}\")") if raw \
        else MissingStructures(labels, {})


def read_record(preprocessed_folder: str | Path, labels: Mapping[str, int],
                cases: Sequence[str] | None = None) -> MissingStructures:
    """The table recorded by ``radconf_partial_labels`` in a preprocessed dataset folder (none: empty)."""
    path = Path(preprocessed_folder) / RECORD_FILE
    if not path.is_file():
        return MissingStructures(labels, {})
    record = read_json_file(path, fix="or record the table again with radconf_partial_labels")
    return check_missing(record.get(ENTRY_KEY, {}) if isinstance(record, Mapping) else record, labels, cases,
                         str(path))


def merge(first: MissingStructures, second: MissingStructures, names: tuple[str, str]) -> MissingStructures:
    """Both sources' cases; a case listed by both must list the same structures.

    Raises:
        InvalidInput: a disagreement, naming the case and both sources.
    """
    labels = first.labels or second.labels
    for case in set(first.missing) & set(second.missing):
        if set(first.missing[case]) != set(second.missing[case]):
            raise InvalidInput(f"Case {case}: {names[0]} says it misses {', '.join(first.missing[case])}, {names[1]} "
                               f"says {', '.join(second.missing[case])}. Make them agree (record the table again "
                               f"with radconf_partial_labels, or edit the dataset.json entry).")
    return MissingStructures(labels, {**first.missing, **second.missing})


def dataset_missing_structures(dataset_json: Mapping, preprocessed_folder: str | Path | None,
                               cases: Sequence[str] | None = None) -> MissingStructures:
    """Everything known about a dataset's missing structures: its dataset.json entry and the recorded table."""
    from_entry = from_dataset_json(dataset_json, cases)
    if preprocessed_folder is None or not (Path(preprocessed_folder) / RECORD_FILE).is_file():
        return from_entry
    labels = structure_labels(dataset_json)
    recorded = read_record(preprocessed_folder, labels, cases)
    return merge(MissingStructures(labels, from_entry.missing), recorded,
                 ("dataset.json", str(Path(preprocessed_folder) / RECORD_FILE)))
