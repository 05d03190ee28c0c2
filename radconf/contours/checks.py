"""Argument checks and box helpers shared by the contour operations.

Every check raises :class:`radconf.errors.InvalidInput` with one line naming the argument and the fix. Masks are
3D arrays in SimpleITK's ``GetArrayFromImage`` order (z, y, x); ``spacing`` is (z, y, x) in mm.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from radconf.errors import InvalidInput

Spacing = tuple[float, float, float]
"""Voxel spacing (z, y, x) in mm: SimpleITK's ``GetSpacing()`` reversed."""

CONNECTIVITIES = (6, 18, 26)
RELATIVE_TOLERANCE = 1e-6
"""A voxel centre at distance r (1 + 1e-6) or closer counts as within r: centres exactly on the margin are in,
whatever the rounding of the distance transform (float32)."""


def as_mask(mask, name: str = "mask") -> np.ndarray:
    """``mask`` as a 3D bool array (the array itself when it is bool already: never written to).

    Raises:
        InvalidInput: not a 3D array, or values other than 0/1 (bool or integer arrays are accepted).
    """
    array = np.asarray(mask)
    if array.ndim != 3:
        raise InvalidInput(f"{name} must be a 3D array in (z, y, x) order, got shape {array.shape}; pass one volume "
                           "as SimpleITK's GetArrayFromImage returns it.")
    if array.dtype == bool:
        return array
    if not np.issubdtype(array.dtype, np.integer):
        raise InvalidInput(f"{name} must be a bool or 0/1 integer array, got dtype {array.dtype}; convert it, e.g. "
                           f"{name} > 0.5.")
    if array.size and (array.min() < 0 or array.max() > 1):
        raise InvalidInput(f"{name} holds values other than 0 and 1 (range {array.min()}..{array.max()}); pass a "
                           f"binary mask, e.g. label_map == label.")
    return array.astype(bool)


def as_same_shape(mask, reference: np.ndarray, name: str) -> np.ndarray:
    """``mask`` (see :func:`as_mask`) checked to have the shape of ``reference``."""
    array = as_mask(mask, name)
    if array.shape != reference.shape:
        raise InvalidInput(f"{name} has shape {array.shape} but the mask has shape {reference.shape}; pass {name} on "
                           "the mask's grid.")
    return array


def check_spacing(spacing: Sequence[float]) -> Spacing:
    """``spacing`` as three positive finite floats (z, y, x).

    Raises:
        InvalidInput: not three positive finite numbers.
    """
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise InvalidInput(f"spacing must be three numbers (z, y, x) in mm, got {spacing!r}.") from None
    if len(values) != 3 or not all(math.isfinite(s) and s > 0 for s in values):
        raise InvalidInput(f"spacing must be three positive finite numbers (z, y, x) in mm, got {spacing!r}; "
                           "reverse SimpleITK's GetSpacing() (x, y, z).")
    return values  # type: ignore[return-value]


def check_length(value: float, name: str) -> float:
    """A distance in mm: a finite number >= 0.

    Raises:
        InvalidInput: negative, infinite or not a number.
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{name} must be a number of mm, got {value!r}.") from None
    if not math.isfinite(number) or number < 0:
        raise InvalidInput(f"{name} must be a finite number of mm >= 0, got {value!r}.")
    return number


def check_connectivity(connectivity: int, name: str = "connectivity") -> int:
    """``connectivity`` checked to be 6, 18 or 26 (3D neighbours: faces, + edges, + corners)."""
    if connectivity not in CONNECTIVITIES or isinstance(connectivity, bool):
        raise InvalidInput(f"{name} must be 6, 18 or 26 (face, edge or corner neighbours), got {connectivity!r}.")
    return int(connectivity)


def check_threads(threads: int | None) -> int:
    """Threads of the distance transform: ``None`` = every core this process may run on."""
    if threads is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidInput(f"threads must be an integer >= 1 (or None for every core), got {threads!r}.")
    return threads
