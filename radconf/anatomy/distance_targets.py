"""Whole-case distance maps: the distance head's targets beyond what a training patch can see.

A patch certifies the distance of a voxel only when the nearest structure voxel lies inside it; most patches hold no
structure at all. So the distance of every voxel to every structure is computed once per case on the preprocessed
segmentation (the configuration's spacing, anisotropy honoured) and stored next to nnU-Net's preprocessed data:

    <preprocessed dataset>/radconf_distance_maps/<data identifier>/<case>.npy    int16 codes, (labels, *case shape)
    <preprocessed dataset>/radconf_distance_maps/<data identifier>/<case>.json   what they were computed from

The codes hold the signed distance (mm, negative inside) in steps of ``QUANTUM_MM``: ``round(d / q) + OFFSET``, so
-1 (nnU-Net's padding value for cropped segmentations) is never a code and ``UNDEFINED`` marks a structure absent
from the case (or, for 2D configurations, from the slice). A map is recomputed when the segmentation file changed
(size or modification time), the labels, spacing or dimensionality differ, or the ``.npy`` is incomplete.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from radconf.anatomy.distance import distance_to_structure
from radconf.errors import InvalidInput
from radconf.io.files import atomic_write_json, atomic_write_with

QUANTUM_MM = 0.1
OFFSET = 16384
UNDEFINED = np.iinfo(np.int16).max
_LOWEST, _HIGHEST = 0, UNDEFINED - 1  # codes of -1638.4 mm and +1638.2 mm: farther is clipped
FORMAT_VERSION = 1
FOLDER_NAME = "radconf_distance_maps"


def signed_distance_mm(mask: np.ndarray, spacing_mm: Sequence[float], dims: int = 3) -> np.ndarray:
    """Signed distance (mm, float32): distance to the structure outside it, minus the distance to the nearest voxel
    outside it inside; ``nan`` where the structure is absent.

    Args:
        mask: binary ``(z, y, x)`` volume.
        spacing_mm: spacing of the last ``dims`` axes (numpy order).
        dims: 3 for one 3D map; 2 for in-plane maps of every slice along axis 0 (2D configurations, whose network
            sees one slice).
    """
    from radconf.devices import usable_cores

    mask = np.asarray(mask, dtype=bool)
    spacing = tuple(float(s) for s in spacing_mm)
    if dims not in (2, 3) or len(spacing) != dims or min(spacing) <= 0 or mask.ndim != 3:
        raise InvalidInput(f"signed_distance_mm needs a 3D mask, dims 2 or 3 and {dims} positive spacings; got "
                           f"shape {mask.shape}, dims {dims}, spacing {spacing_mm}.")
    if dims == 2:
        return np.stack([signed_distance_mm(s[None], (1.0, *spacing), 3)[0] for s in mask])
    return distance_to_structure(mask, spacing, signed=True, empty_value=np.nan, threads=usable_cores())


def encode_distance(distance_mm: np.ndarray) -> np.ndarray:
    """mm -> int16 codes (``nan`` -> ``UNDEFINED``; beyond +-1638 mm clipped)."""
    distance = np.asarray(distance_mm, dtype=np.float64)
    codes = np.clip(np.round(np.nan_to_num(distance, nan=0.0, posinf=1e9, neginf=-1e9) / QUANTUM_MM) + OFFSET,
                    _LOWEST, _HIGHEST).astype(np.int16)
    codes[np.isnan(distance)] = UNDEFINED
    return codes


def decode_distance(codes) -> np.ndarray:
    """int16 codes -> mm (float32), ``nan`` for ``UNDEFINED`` and for anything that is not a code (padding, -1)."""
    codes = np.asarray(codes)
    distance = (codes.astype(np.float32) - OFFSET) * np.float32(QUANTUM_MM)
    distance[(codes < _LOWEST) | (codes > _HIGHEST)] = np.nan
    return distance


class DistanceMapStore:
    """The cached whole-case distance maps of one preprocessed configuration.

    Args:
        folder: where the maps go (``distance_map_folder``).
        labels: the structures' label values, one map each, in this order.
        spacing_mm: the configuration's spacing of the maps' axes (numpy order; 2 values for 2D configurations).
    """

    def __init__(self, folder: str | os.PathLike, labels: Sequence[int], spacing_mm: Sequence[float]):
        self.folder = Path(folder)
        self.labels = [int(label) for label in labels]
        self.spacing = [round(float(s), 6) for s in spacing_mm]

    def path(self, case: str) -> Path:
        return self.folder / f"{case}.npy"

    def _record(self, source: Path, shape: Sequence[int]) -> dict:
        status = source.stat()
        return {"version": FORMAT_VERSION, "labels": self.labels, "spacing_mm": self.spacing,
                "shape": [len(self.labels), *map(int, shape)],
                "source": {"name": source.name, "size": status.st_size, "mtime_ns": status.st_mtime_ns}}

    def is_current(self, case: str, source: Path) -> bool:
        """Whether the stored map of ``case`` was computed from ``source`` as it is now, with these settings."""
        try:
            recorded = json.loads((self.folder / f"{case}.json").read_text())
            stored = np.load(self.path(case), mmap_mode="r")
        except (OSError, ValueError):
            return False
        if not isinstance(recorded, dict) or not isinstance(recorded.get("shape"), list):
            return False
        expected = self._record(source, recorded["shape"][1:])
        return recorded == expected and list(stored.shape) == expected["shape"] and stored.dtype == np.int16

    def compute(self, case: str, segmentation: np.ndarray, source: Path) -> None:
        """Computes and stores the maps of one case from its ``(1, z, y, x)`` segmentation (the array of ``source``)."""
        label_map = np.asarray(segmentation)[0]
        codes = np.stack([encode_distance(signed_distance_mm(label_map == label, self.spacing, len(self.spacing)))
                          for label in self.labels])
        atomic_write_with(self.path(case), lambda tmp: _save_npy(tmp, codes))
        atomic_write_json(self.folder / f"{case}.json", self._record(source, label_map.shape))

    def ensure(self, cases: Sequence[str], load_segmentation: Callable[[str], np.ndarray],
               source_file: Callable[[str], Path], progress: bool = True) -> int:
        """Computes the maps that are missing or stale; returns how many were computed."""
        from tqdm import tqdm

        computed = 0
        for case in tqdm(cases, desc="radconf distance maps", unit="case", disable=not progress):
            source = source_file(case)
            if not self.is_current(case, source):
                self.compute(case, load_segmentation(case), source)
                computed += 1
        return computed

    def load(self, case: str) -> np.ndarray:
        """The stored codes of ``case``, memory-mapped (``(labels, *shape)`` int16)."""
        return np.load(self.path(case), mmap_mode="r")


def _save_npy(path: str, codes: np.ndarray) -> None:
    with open(path, "wb") as handle:  # np.save(path) would append ".npy" to the temporary name
        np.save(handle, codes)


def distance_map_folder(preprocessed_dataset: str | os.PathLike, data_identifier: str) -> Path:
    """Where the maps of one configuration are stored (see the module docstring)."""
    return Path(preprocessed_dataset) / FOLDER_NAME / data_identifier
