"""Mask operations applied to label maps (one mask per label) and to confidence level maps (nested masks).

``per_label`` runs the operation on each label's mask and paints the results back. Where results overlap, a voxel
keeps its original label when that label's result covers it; otherwise the lowest label id whose result covers it
wins. Voxels of labels not selected keep their label and are never painted over.

``apply_to_levels`` treats a level map 0..K as the nested masks ``level >= L`` (L = 1..K). The operation runs on each
input mask ``level >= L``; result L is then intersected with result L - 1, so the output is nested again (an
operation such as an opening may otherwise keep a thin part of a higher level that it removes from a lower one).
The output level of a voxel is the number of nested results containing it.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from radconf.contours.checks import as_same_shape
from radconf.errors import InvalidInput

Operation = Callable[[np.ndarray], np.ndarray]


def _label_array(array, name: str) -> np.ndarray:
    values = np.asarray(array)
    if values.ndim != 3:
        raise InvalidInput(f"{name} must be a 3D array in (z, y, x) order, got shape {values.shape}.")
    if not (np.issubdtype(values.dtype, np.integer) or values.dtype == bool):
        raise InvalidInput(f"{name} must hold integers, got dtype {values.dtype}; convert it, e.g. "
                           f"np.rint({name}).astype(np.uint8).")
    if values.size and values.dtype != bool and values.min() < 0:
        raise InvalidInput(f"{name} holds negative values (minimum {values.min()}); labels and levels are >= 0.")
    return values


def _result(operation: Operation, mask: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return as_same_shape(operation(mask), reference, "the operation's result")


def _selected(values: np.ndarray, labels: Iterable[int] | None) -> list[int]:
    present = [int(v) for v in np.unique(values) if v > 0]
    if labels is None:
        return present
    chosen = []
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label <= 0:
            raise InvalidInput(f"labels must be positive integers, got {label!r}.")
        chosen.append(int(label))
    return sorted(set(chosen) & set(present))


def per_label(label_map, operation: Operation, labels: Iterable[int] | None = None) -> np.ndarray:
    """Applies a mask operation to each label of a label map.

    Args:
        label_map: 3D array of non-negative integer labels (0 = background); not modified.
        operation: maps a bool mask to a bool mask of the same shape (e.g. ``lambda m: closing(m, spacing, 3)``).
        labels: the labels to process (default: every label > 0 present); the others stay as they are.

    Returns:
        A new label map of ``label_map``'s dtype. Overlaps: the original label wins where its result covers the
        voxel, then the lowest label id; unselected labels are never painted over.

    Raises:
        InvalidInput: a label map that is not 3D non-negative integers, a label <= 0, or an operation result of
        another shape or not binary.
    """
    values = _label_array(label_map, "label_map")
    chosen = _selected(values, labels)
    if not chosen:
        return values.copy()
    protected = (values > 0) & ~np.isin(values, chosen)
    result = np.where(protected, values, 0).astype(values.dtype)
    settled = protected.copy()
    for label in sorted(chosen, reverse=True):
        original = values == label
        covered = _result(operation, original, values)
        result[covered & ~settled] = label
        own = covered & original
        result[own] = label
        settled |= own
    return result


def apply_to_levels(level_map, operation: Operation) -> np.ndarray:
    """Applies a mask operation to each nested mask ``level >= L`` of a level map and re-nests the results.

    Args:
        level_map: 3D array of levels 0..K (non-negative integers); not modified.
        operation: maps a bool mask to a bool mask of the same shape.

    Returns:
        A new level map of ``level_map``'s dtype: voxel level = the number of L with the voxel in
        ``result_1 & ... & result_L``, where ``result_L = operation(level_map >= L)``. It is nested by construction.
        A level mask equal to the one below it reuses that result (the operation runs once per distinct mask).

    Raises:
        InvalidInput: a level map that is not 3D non-negative integers, or an operation result of another shape or
        not binary.
    """
    values = _label_array(level_map, "level_map")
    result = np.zeros(values.shape, dtype=values.dtype)
    top = int(values.max()) if values.size else 0
    nested: np.ndarray | None = None
    previous_count = -1
    for level in range(1, top + 1):
        mask = values >= level
        count = int(np.count_nonzero(mask))
        if count != previous_count or nested is None:  # nested masks with equal counts are equal
            current = _result(operation, mask, values)
            nested = current if nested is None else nested & current
        previous_count = count
        result += nested.astype(values.dtype)
    return result
