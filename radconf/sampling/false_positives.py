"""False-positive voxels of a predicted label map against its reference, and a bounded, seeded subset of them.

A voxel is a false positive when the prediction is foreground there and differs from the reference: background
predicted as a structure, and one structure predicted as another (the predicted structure is wrong there, which is
what a hard negative for that structure is). Reference voxels with the ignore label count as neither.
"""
from __future__ import annotations

import numpy as np

MAX_LOCATIONS = 10000  # per case, like nnU-Net's class_locations (at most 10000 per class)


def false_positive_mask(predicted: np.ndarray, reference: np.ndarray, ignore_label: int | None = None) -> np.ndarray:
    """``predicted != 0 & predicted != reference`` (and ``reference != ignore_label``), same shape.

    Raises:
        ValueError: the arrays' shapes differ.
    """
    predicted, reference = np.asarray(predicted), np.asarray(reference)
    if predicted.shape != reference.shape:
        raise ValueError(f"prediction shape {predicted.shape} differs from reference shape {reference.shape}")
    mask = (predicted != 0) & (predicted != reference)
    if ignore_label is not None:
        mask &= reference != ignore_label
    return mask


def sample_locations(mask: np.ndarray, rng: np.random.Generator, limit: int = MAX_LOCATIONS) -> np.ndarray:
    """The indices ``(n, mask.ndim)`` of the true voxels, or ``limit`` of them drawn without replacement by ``rng``
    (kept in raster order); ``(0, ndim)`` for an empty mask."""
    found = np.argwhere(mask)
    if len(found) > limit:
        found = found[np.sort(rng.choice(len(found), size=limit, replace=False))]
    return found.astype(np.int64)
