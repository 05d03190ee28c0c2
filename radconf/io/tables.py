"""Tables: CSV (atomic, formatted numbers), JSON of numpy values, reading CSV back."""
from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radconf.errors import MissingInput
from radconf.io.files import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported for the evaluation modules)


def format_value(value: Any) -> str:
    """CSV cell text: floats in full precision (``repr``), NaN as ``nan``, infinities as ``inf``/``-inf``."""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return str(value)


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> Path:
    """Writes ``rows`` (dicts) with the given column order atomically; missing keys become empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_value(row[c]) if c in row else "" for c in columns])
    return atomic_write_text(path, buffer.getvalue())


def json_safe(value: Any) -> Any:
    """Converts NaN to None and +-inf to the strings ``"inf"``/``"-inf"`` (strict JSON), recursing into containers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Writes strict JSON (see :func:`json_safe`) atomically."""
    return atomic_write_text(path, json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n")


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Reads a CSV written by radconf into a list of dicts of strings.

    Raises:
        FileNotFoundError: if the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInput(
            f"CSV file {path} does not exist; pass a metrics_per_case.csv written by radconf_evaluate."
        )
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))
