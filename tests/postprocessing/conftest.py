"""Tiny label and level maps written as NIfTI for the post-processing tests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.images import read_image, write_image
from tests.reliability.test_prediction_reliability import fake, fake_predictor  # noqa: F401 (fixtures for radconf_predict)

SPACING_ZYX = (2.0, 1.0, 1.0)
ORIGIN = (-3.5, 7.25, 11.0)
DIRECTION = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
LABELS = {"background": 0, "bladder": 1, "rectum": 2}


def write_map(path: Path, array: np.ndarray, spacing_zyx=SPACING_ZYX) -> Path:
    """A uint8 map in NIfTI with a non-trivial origin and direction."""
    return write_image(path, array, spacing_xyz=tuple(reversed(spacing_zyx)), origin=ORIGIN, direction=DIRECTION,
                       dtype=np.uint8)


read_map = read_image


def write_dataset_json(folder: Path, labels=None, levels: int | None = None) -> Path:
    data = {"labels": labels or LABELS, "file_ending": ".nii.gz", "channel_names": {"0": "CT"}}
    if levels is not None:
        data["labels"] = {"background": 0, **{f"level_{c}": c for c in range(1, levels + 1)}}
        data["radconf"] = {"ordinal": True, "levels": levels}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset.json").write_text(json.dumps(data))
    return folder / "dataset.json"


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (an absent folder: empty)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


def cube(shape, *boxes: tuple[tuple[slice, ...], int]) -> np.ndarray:
    """A uint8 map of ``shape`` with each ``(box, value)`` painted in order."""
    array = np.zeros(shape, np.uint8)
    for box, value in boxes:
        array[box] = value
    return array


@pytest.fixture
def island_cases(tmp_path):
    """Validation cases whose bladder prediction has a far false-positive island (largest component helps) and
    whose rectum prediction's second component is a real, separate part of the reference rectum (it must stay)."""
    predictions, references = tmp_path / "pred", tmp_path / "ref"
    shape = (12, 30, 30)
    for number in range(2):
        bladder = (slice(2, 8), slice(3, 11), slice(3, 11))
        island = (slice(4, 6), slice(22 + number, 25 + number), slice(3, 6))
        rectum_a = (slice(2, 9), slice(14, 20), slice(14, 20))
        rectum_b = (slice(3, 6), slice(24, 28), slice(24, 28))
        write_map(references / f"case_{number}.nii.gz", cube(shape, (bladder, 1), (rectum_a, 2), (rectum_b, 2)))
        write_map(predictions / f"case_{number}.nii.gz",
                  cube(shape, (bladder, 1), (island, 1), (rectum_a, 2), (rectum_b, 2)))
    write_dataset_json(predictions)
    return predictions, references
