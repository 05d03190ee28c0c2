"""Checks of reference/prediction mask pairs and their bounding boxes, shared by every metric module.

:func:`validate_mask_pair` turns two masks and a spacing into bool arrays and a float tuple (or fails with the fix);
:func:`bounding_box` and :func:`union_bounding_box` give the crops that every metric works on.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from radconf.errors import InvalidInput


def validate_mask_pair(
    reference: np.ndarray, prediction: np.ndarray, spacing_mm: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Checks a reference/prediction pair and returns them as bool arrays with a float spacing tuple.

    Args:
        reference: 2D or 3D mask, bool (or integer/float holding only 0 and 1).
        prediction: mask of the same shape.
        spacing_mm: one positive spacing per array axis, in the arrays' axis order.

    Returns:
        ``(reference_bool, prediction_bool, spacing_tuple)``.

    Raises:
        TypeError: if a mask is not a numpy array.
        ValueError: on shape, dimensionality, dtype or spacing problems (the message says what to pass instead).
    """
    masks = []
    for name, mask in (("reference", reference), ("prediction", prediction)):
        if not isinstance(mask, np.ndarray):
            raise TypeError(f"The {name} mask must be a numpy array, got {type(mask).__name__}.")
        if mask.dtype != bool:
            if mask.size and not np.isin(mask, (0, 1)).all():
                raise InvalidInput(
                    f"The {name} mask has dtype {mask.dtype} with values other than 0 and 1; pass a boolean mask "
                    "such as `label_map == label_id` (label maps are handled by evaluate_folders)."
                )
            mask = mask.astype(bool)
        masks.append(mask)
    ref, pred = masks
    if ref.shape != pred.shape:
        raise InvalidInput(
            f"Reference shape {ref.shape} and prediction shape {pred.shape} differ; both masks must lie on the same "
            "voxel grid (resample the prediction onto the reference grid first)."
        )
    if ref.ndim not in (2, 3):
        raise InvalidInput(f"Only 2D and 3D masks are supported, got {ref.ndim}D with shape {ref.shape}.")
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != ref.ndim or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise InvalidInput(
            f"spacing_mm must hold {ref.ndim} positive finite numbers in array axis order (for SimpleITK images: "
            f"image.GetSpacing()[::-1]); got {tuple(spacing_mm)}."
        )
    return ref, pred, spacing


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Tight bounding box of the nonzero voxels of ``mask`` as slices, or None for an empty mask.

    Projects the first axis over the whole array, then the remaining axes only inside the slab found, which
    keeps this fast for small structures in large images.
    """
    first = np.flatnonzero(mask.any(axis=tuple(range(1, mask.ndim))))
    if first.size == 0:
        return None
    slab = mask[first[0] : first[-1] + 1]
    slices = [slice(int(first[0]), int(first[-1]) + 1)]
    for axis in range(1, mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(slab.any(axis=others))
        slices.append(slice(int(idx[0]), int(idx[-1]) + 1))
    return tuple(slices)


def union_bounding_box(a: np.ndarray, b: np.ndarray) -> tuple[slice, ...] | None:
    """Bounding box (slices) of the union of two masks, or None when both are empty."""
    box_a, box_b = bounding_box(a), bounding_box(b)
    if box_a is None or box_b is None:
        return box_a if box_b is None else box_b
    return tuple(slice(min(sa.start, sb.start), max(sa.stop, sb.stop)) for sa, sb in zip(box_a, box_b))
