"""Evaluation against partially labelled references: a structure a case's reference does not annotate is unknown.

Its reference voxels say background, so a model that finds the organ would score false positives (Dice 0). The
evaluation leaves such case-structure pairs out (no row, not in any mean) and lists them in summary.json. The
information comes from ``--missing PATH`` (a ``case,missing`` CSV table, a dataset.json with the radconf entry, or a
``radconf_partial_labels.json`` record) or, without it, from the dataset.json the evaluation uses.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from radconf.errors import InvalidInput
from radconf.io.dataset_json import read_json_file
from radconf.partial.structures import (
    ENTRY_KEY,
    MissingStructures,
    check_missing,
    from_dataset_json,
    read_table,
    structure_labels,
)


def missing_for_evaluation(path: str | Path | None, dataset: Mapping | None,
                           dataset_path: Path | None) -> tuple[MissingStructures | None, str | None]:
    """The missing structures to treat as unknown, and where they came from (None, None: every case complete).

    Raises:
        InvalidInput: a table without a dataset.json to name its labels, or any problem of the table itself.
    """
    if path is None:
        if dataset is None:
            return None, None
        found = from_dataset_json(dataset, where=str(dataset_path))
        return (found, str(dataset_path)) if found else (None, None)
    path = Path(path)
    if path.suffix.lower() == ".json":
        content = read_json_file(path, fix="or pass the case,missing CSV table")
        if isinstance(content, Mapping) and "labels" in content and "radconf" in content:
            return from_dataset_json(content, where=str(path)), str(path)
        if not isinstance(content, Mapping) or ENTRY_KEY not in content:
            raise InvalidInput(f"{path} holds no \"{ENTRY_KEY}\": give a dataset.json with the radconf entry, a "
                               f"radconf_partial_labels.json record, or a case,missing CSV table.")
        labels = content.get("labels") or (dataset or {}).get("labels")
        if not labels:
            raise InvalidInput(f"{path}: the label names are unknown; pass the dataset.json too (-djfile).")
        return check_missing(content[ENTRY_KEY], structure_labels({"labels": labels}, str(path)), None,
                             str(path)), str(path)
    if dataset is None:
        raise InvalidInput(f"--missing {path}: a table names structures, so the evaluation needs the dataset.json "
                           f"that declares them; pass -djfile.")
    return read_table(path, structure_labels(dataset, str(dataset_path)), None), str(path)


def _ids(label_text: Any) -> set[int]:
    return {int(part) for part in str(label_text).split("+") if part.strip().lstrip("-").isdigit()}


def split_unknown(rows: Sequence[dict], missing: MissingStructures | None) -> tuple[list[dict], dict[str, list[str]]]:
    """The rows whose structure the case's reference annotates, and ``{case: [structure, ...]}`` of those left out
    (a union of labels is unknown when any of its labels is missing)."""
    if not missing:
        return list(rows), {}
    kept, unknown = [], {}
    for row in rows:
        gone = set(missing.missing_ids(str(row["case"])))
        if gone and _ids(row.get("label")) & gone:
            unknown.setdefault(str(row["case"]), []).append(str(row["structure"]))
        else:
            kept.append(row)
    return kept, unknown
