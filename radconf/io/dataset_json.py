"""Reading nnU-Net's dataset.json: loading it (any JSON file, with the line and a fix when it is invalid), finding it
next to a label folder, parsing its labels."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.io.files import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported for the evaluation modules)

# ------------------------------------------------------------------------------------------------- dataset.json
# json's messages -> what usually causes them in a hand-edited file
_JSON_HINTS = (
    ("Extra data", "there is text after the closing brace (a stray '}' or a second object): remove it"),
    ("Expecting property name", "a trailing comma before '}' or a key in single quotes: JSON needs \"double quotes\" "
                                "and no comma after the last entry"),
    ("Expecting ',' delimiter", "a comma is missing between two entries"),
    ("Expecting ':' delimiter", "a ':' is missing between a key and its value"),
    ("Expecting value", "a value is missing (an empty file, a comma before ']', or True/False/None, which JSON writes "
                        "true/false/null)"),
    ("Unterminated string", "a string's closing quote is missing"),
    ("Invalid control character", "a line break or tab inside a string: write it as \\n or \\t"),
)


def read_json_file(path: str | os.PathLike, fix: str = "then run again") -> Any:
    """Reads a JSON file a user may have edited by hand (or one cut short by a failed copy).

    Args:
        path: the file.
        fix: the way out after the syntax hint, e.g. "or copy it again from the model folder".

    Raises:
        MissingInput: the file does not exist.
        InvalidInput: it is not UTF-8 or not valid JSON, naming the file, the line and column, and the likely fix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingInput(f"{path} does not exist.") from None
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path} is not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        hint = next((h for prefix, h in _JSON_HINTS if error.msg.startswith(prefix)), "fix the syntax there")
        raise InvalidInput(f"{path} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}; "
                           f"{hint} (python -m json.tool {path} shows the place), {fix}.") from None


def load_dataset_json(path: str | os.PathLike) -> dict:
    """Loads an nnU-Net dataset.json.

    Raises:
        FileNotFoundError: if it does not exist.
        ValueError: if it is not valid JSON or has no ``labels`` mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"dataset.json {path} does not exist; pass the right path with -djfile.")
    data = read_json_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
        raise InvalidInput(  # noqa: TRY004 - a malformed file, not a wrong argument type
            f"{path} has no 'labels' mapping (name -> id); add one as nnU-Net expects or pass -l."
        )
    return data


def find_dataset_json(reference_dir: str | os.PathLike) -> Path | None:
    """The dataset.json next to the reference folder (``nnUNet_raw/DatasetXXX/labelsTr`` -> ``DatasetXXX/``)."""
    candidate = Path(reference_dir).resolve().parent / "dataset.json"
    return candidate if candidate.is_file() else None


def parse_labels(labels: Mapping[str, Any] | Sequence[int], source: str = "labels") -> dict[str, tuple[int, ...]]:
    """Normalises a label specification to ``{structure name: (label ids...)}``.

    Accepts an nnU-Net ``labels`` mapping (name -> id, or name -> list of ids for a region, evaluated as the union of
    those ids) or a plain sequence of integer ids (names are the ids as text). ``background`` (and id 0) is dropped.

    Raises:
        ValueError: for non-integer or negative ids, an ``ignore`` label (not supported yet) or an empty result.
    """
    if isinstance(labels, Mapping):
        items = list(labels.items())
    else:
        items = [(str(v), v) for v in labels]
    parsed: dict[str, tuple[int, ...]] = {}
    for name, value in items:
        if str(name).lower() == "ignore":
            raise InvalidInput(
                f"{source}: the nnU-Net 'ignore' label is not supported by radconf's evaluation yet; remove it from "
                "the labels (or pass -l with the structures to evaluate)."
            )
        ids = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in ids) or not ids:
            raise InvalidInput(
                f"{source}: label {name!r} has id {value!r}; ids must be non-negative integers (or lists)."
            )
        if str(name).lower() == "background" or ids == (0,):
            continue
        parsed[str(name)] = tuple(int(i) for i in ids)
    if not parsed:
        raise InvalidInput(f"{source}: no structure to evaluate (only background); add foreground labels.")
    return parsed
