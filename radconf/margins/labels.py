"""Structures of a label map by name or id: the GTV, the barriers and the body of ``radconf_margin``.

A structure is named by its dataset.json label name (``gtv``, a region's name: the union of its ids) or by a label
id (``4``). Names need a dataset.json; ids are checked against it when there is one.
"""
from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from radconf.errors import InvalidInput
from radconf.io.dataset_json import read_json_file

LabelTable = dict[str, tuple[int, ...]]
"""Label name -> ids (one id, or a region's ids) of a dataset.json, background left out."""


def label_table(dataset_json: Mapping, where: str) -> LabelTable:
    """The foreground labels of a loaded dataset.json.

    Raises:
        InvalidInput: no ``labels`` mapping, or an id that is not a non-negative integer, naming ``where``.
    """
    labels = dataset_json.get("labels")
    if not isinstance(labels, Mapping):
        raise InvalidInput(f"{where} has no \"labels\" mapping (name -> id); add it or give the label ids as numbers.")
    table: LabelTable = {}
    for name, value in labels.items():
        ids = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
            raise InvalidInput(f"{where}: label {name!r} has id {value!r}; ids must be non-negative integers.")
        if ids != (0,):
            table[str(name)] = tuple(int(i) for i in ids)
    return table


def dataset_json_of(folder: str | os.PathLike, given: str | os.PathLike | None = None) -> tuple[dict, Path] | None:
    """The dataset.json describing a folder of label maps: ``given``, else ``folder/dataset.json``, else the one next
    to the folder (``DatasetXXX/labelsTs`` -> ``DatasetXXX/dataset.json``); None when there is none.

    Raises:
        MissingInput, InvalidInput: ``given`` does not exist, or a file found is not a JSON object, naming it.
    """
    folder = Path(folder)
    candidates = [Path(given)] if given is not None else [folder / "dataset.json", folder.parent / "dataset.json"]
    for path in candidates:
        if given is not None or path.is_file():
            data = read_json_file(path, fix="or give another file with -djfile")
            if not isinstance(data, dict):
                raise InvalidInput(f"{path} must hold a JSON object (an nnU-Net dataset.json).")
            return data, path
    return None


def _as_id(token: str | int) -> int | None:
    if isinstance(token, bool):
        return None
    if isinstance(token, int):
        return token
    text = str(token).strip()
    return int(text) if text.isdigit() and text.isascii() else None


def resolve_label(token: str | int, table: LabelTable | None, where: str, flag: str) -> tuple[int, ...]:
    """The ids of one structure.

    Args:
        token: a label name or id.
        table: the labels of the maps (None: no dataset.json, only ids are accepted).
        where: the dataset.json (or folder) the table comes from, for messages.
        flag: the option that named the structure, for messages.

    Raises:
        InvalidInput: an unknown name (with close matches), a name without a dataset.json, an id the dataset.json
            does not declare, or background.
    """
    label_id = _as_id(token)
    if label_id is not None:
        if label_id == 0:
            raise InvalidInput(f"{flag} {token}: label 0 is background; give a structure's label.")
        if table is not None and not any(label_id in ids for ids in table.values()):
            declared = ", ".join(f"{name}={'/'.join(map(str, ids))}" for name, ids in table.items())
            raise InvalidInput(f"{flag} {token}: {where} declares no label {label_id} (labels: {declared}); give one "
                               f"of them.")
        return (label_id,)
    name = str(token).strip()
    if table is None:
        raise InvalidInput(f"{flag} {name}: no dataset.json names the labels of {where}; give -djfile DATASET.json "
                           f"or the label id (e.g. {flag} 4).")
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise InvalidInput(f"{flag} {name}: not a label of {where} (labels: {', '.join(table)}).{hint}")
    return table[name]


def resolve_labels(tokens: Sequence[str | int], table: LabelTable | None, where: str, flag: str) -> tuple[int, ...]:
    """The sorted union of the ids of several structures (see :func:`resolve_label`); names may be joined by commas.

    Raises:
        InvalidInput: as :func:`resolve_label`, or nothing given.
    """
    tokens = [tokens] if isinstance(tokens, (str, int)) else tokens
    split = [part for token in tokens for part in (str(token).split(",") if isinstance(token, str) else [token])]
    split = [part for part in split if str(part).strip()]
    if not split:
        raise InvalidInput(f"{flag}: give at least one label name or id (e.g. {flag} bladder,rectum).")
    return tuple(sorted({i for token in split for i in resolve_label(token, table, where, flag)}))
