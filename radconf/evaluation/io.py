"""File handling of the evaluation: label images, dataset.json, case lists, CSV (atomic writes from radconf.io).

SimpleITK is imported inside the functions that need it, so importing :mod:`radconf.evaluation` stays cheap.
Images are returned as numpy arrays in (z, y, x) order (``sitk.GetArrayFromImage``) together with their spacing in
the same order (``GetSpacing()[::-1]``).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from radconf.io import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported for the evaluation modules)

DEFAULT_FILE_ENDING = ".nii.gz"


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
        raise FileNotFoundError(
            f"CSV file {path} does not exist; pass a metrics_per_case.csv written by radconf_evaluate."
        )
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------------------------------- dataset.json
def load_dataset_json(path: str | os.PathLike) -> dict:
    """Loads an nnU-Net dataset.json.

    Raises:
        FileNotFoundError: if it does not exist.
        ValueError: if it is not valid JSON or has no ``labels`` mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset.json {path} does not exist; pass the right path with -djfile.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); fix the file or pass labels with -l.") from err
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
        raise ValueError(  # noqa: TRY004 - a malformed file, not a wrong argument type
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
            raise ValueError(
                f"{source}: the nnU-Net 'ignore' label is not supported by radconf's evaluation yet; remove it from "
                "the labels (or pass -l with the structures to evaluate)."
            )
        ids = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in ids) or not ids:
            raise ValueError(
                f"{source}: label {name!r} has id {value!r}; ids must be non-negative integers (or lists)."
            )
        if str(name).lower() == "background" or ids == (0,):
            continue
        parsed[str(name)] = tuple(int(i) for i in ids)
    if not parsed:
        raise ValueError(f"{source}: no structure to evaluate (only background); add foreground labels.")
    return parsed


# --------------------------------------------------------------------------------------------------------- cases
def list_cases(folder: str | os.PathLike, file_ending: str) -> dict[str, Path]:
    """Maps case id -> file for every file in ``folder`` ending with ``file_ending`` (nnU-Net naming ``CASE.ending``).

    Raises:
        FileNotFoundError: if ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Folder {folder} does not exist or is not a directory; check the -ref/-pred paths."
        )
    return {
        p.name[: -len(file_ending)]: p
        for p in sorted(folder.iterdir())
        if p.is_file()
        and p.name.endswith(file_ending)
        and len(p.name) > len(file_ending)
        and not p.name.startswith(".")
    }


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image in SimpleITK terms (x, y, z order)."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def spacing_zyx(self) -> tuple[float, ...]:
        """Spacing in numpy array axis order."""
        return tuple(reversed(self.spacing))


def read_label_image(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Reads an integer label image with SimpleITK (any format it supports).

    Returns:
        ``(array in (z, y, x) order with a non-negative integer dtype, geometry)``.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if it cannot be read, is not 2D/3D, has several components, or holds non-integer or negative
            values.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Label image {path} does not exist.")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ValueError(f"SimpleITK cannot read {path}: {str(err).strip().splitlines()[-1]}") from err
    if image.GetDimension() not in (2, 3):
        raise ValueError(
            f"{path} is a {image.GetDimension()}D image; radconf evaluates 2D or 3D label maps (one file per case)."
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{path} has {image.GetNumberOfComponentsPerPixel()} components per voxel; label images must be scalar "
            "integer label maps (one label id per voxel)."
        )
    geometry = Geometry(
        tuple(int(s) for s in image.GetSize()),
        tuple(float(s) for s in image.GetSpacing()),
        tuple(float(s) for s in image.GetOrigin()),
        tuple(float(s) for s in image.GetDirection()),
    )
    array = sitk.GetArrayFromImage(image)
    if not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(
                f"{path} is not an integer label image (dtype {array.dtype} with non-integer values); write label maps "
                "with integer labels (threshold or argmax probability maps first)."
            )
        array = array.astype(np.int32)
    if array.size and array.min() < 0:
        raise ValueError(f"{path} holds negative label values (min {array.min()}); label ids must be >= 0.")
    return array, geometry


def label_ids_present(array: np.ndarray) -> set[int]:
    """Set of label ids present in an integer label array (fast path via bincount)."""
    if array.size == 0:
        return set()
    top = int(array.max())
    if top <= 65535:
        flat = array.ravel() if array.dtype != np.uint64 else array.ravel().astype(np.int64)
        return {int(i) for i in np.flatnonzero(np.bincount(flat, minlength=top + 1))}
    return {int(i) for i in np.unique(array)}


def check_same_geometry(
    reference: Geometry, prediction: Geometry, reference_path: Path, prediction_path: Path, tolerance: float = 1e-3
) -> None:
    """Raises ValueError naming both files if size, spacing, origin or direction differ (beyond ``tolerance``)."""
    problems = []
    if reference.size != prediction.size:
        problems.append(f"size {prediction.size} != {reference.size}")
    for name in ("spacing", "origin", "direction"):
        a, b = np.asarray(getattr(reference, name)), np.asarray(getattr(prediction, name))
        if a.shape != b.shape or not np.allclose(a, b, rtol=0.0, atol=tolerance):
            problems.append(f"{name} {tuple(round(float(x), 6) for x in b)} != {tuple(round(float(x), 6) for x in a)}")
    if problems:
        raise ValueError(
            f"Geometry mismatch between prediction {prediction_path} and reference {reference_path}: "
            + "; ".join(problems)
            + f" (tolerance {tolerance}). Predictions must be on the reference voxel grid: export them in the original "
            "image geometry (nnU-Net does) or resample them onto the reference before evaluating."
        )


def format_case_list(cases: Iterable[str], limit: int = 20) -> str:
    """Comma-separated case list, shortened to ``limit`` entries with a count of the rest."""
    cases = list(cases)
    text = ", ".join(cases[:limit])
    return text + (f", ... ({len(cases) - limit} more)" if len(cases) > limit else "")
