"""Distance-map targets for multi-task heads: distance in mm to a structure.

``distance_to_structure`` is 0 inside the structure and the Euclidean distance (mm, anisotropic spacing honoured) to
the nearest structure voxel outside; ``signed=True`` makes it negative inside (distance to the nearest outside voxel).
``normalise_distance`` maps mm to [0, 1) for a regression loss: d / (d + scale), monotone and bounded.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radconf.errors import InvalidInput


def distance_to_structure(mask: np.ndarray, spacing_mm: Sequence[float], signed: bool = False,
                          empty_value: float = np.inf, threads: int = 1) -> np.ndarray:
    """Distance (mm, float32) of every voxel to the structure ``mask`` (numpy axis order, spacing in that order).

    Exact Euclidean distance transform (``edt``), for 1D to 3D masks.

    Args:
        mask: binary array of the structure.
        spacing_mm: voxel spacing per array axis.
        signed: negative inside (minus the distance to the nearest voxel outside) instead of 0.
        empty_value: value everywhere when the structure is absent (no distance is defined).
        threads: threads of the transform (one for training patches; more for whole cases).

    Raises:
        InvalidInput: spacing of the wrong length or not positive.
    """
    import edt

    mask = np.ascontiguousarray(mask, dtype=bool)
    spacing = tuple(float(s) for s in spacing_mm)
    if len(spacing) != mask.ndim or min(spacing) <= 0:
        raise InvalidInput(f"spacing_mm {spacing_mm} must give one positive spacing per axis of a {mask.ndim}D mask.")
    if not mask.any():
        return np.full(mask.shape, empty_value, np.float32)
    anisotropy = spacing[0] if mask.ndim == 1 else spacing
    outside = edt.edt(~mask, anisotropy=anisotropy, black_border=False, parallel=threads).astype(np.float32)
    if not signed:
        return outside
    if mask.all():
        return np.full(mask.shape, -np.inf, np.float32)
    return outside - edt.edt(mask, anisotropy=anisotropy, black_border=False, parallel=threads).astype(np.float32)


def normalise_distance(distance_mm: np.ndarray, scale_mm: float = 20.0) -> np.ndarray:
    """``d / (d + scale)`` for d >= 0 (signed maps: applied to |d| with the sign kept); inf -> 1."""
    if scale_mm <= 0:
        raise InvalidInput(f"scale_mm must be positive, got {scale_mm}.")
    distance = np.asarray(distance_mm, dtype=np.float32)
    magnitude = np.abs(distance)
    with np.errstate(invalid="ignore"):
        normalised = np.where(np.isinf(magnitude), 1.0, magnitude / (magnitude + scale_mm))
    return (np.sign(distance) * normalised).astype(np.float32)


def distance_to_exterior(shape: Sequence[int], spacing_mm: Sequence[float]) -> np.ndarray:
    """Distance (mm) from each voxel to the nearest voxel outside an array of ``shape``, axis by axis."""
    result = np.full(tuple(shape), np.inf, np.float32)
    for axis, (n, s) in enumerate(zip(shape, spacing_mm)):
        index = np.arange(n, dtype=np.float32)
        along = np.minimum(index + 1, n - index) * float(s)
        view = [1] * len(shape)
        view[axis] = n
        result = np.minimum(result, along.reshape(view))
    return result


def certified_distance(mask: np.ndarray, spacing_mm: Sequence[float],
                       signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distance map of a structure seen only through a patch, and where it is certainly the true distance.

    A voxel whose nearest structure voxel (nearest outside voxel, for signed distances inside) inside the patch is no
    farther than the patch's edge has that distance whatever lies beyond the patch; elsewhere the patch cannot tell.

    Returns:
        ``(distance_mm, valid)``: the distance within the patch (inf / -inf where undefined) and a bool mask of the
        voxels whose distance equals the full image's.
    """
    distance = distance_to_structure(mask, spacing_mm, signed=signed)
    valid = np.abs(distance) <= distance_to_exterior(mask.shape, spacing_mm)
    return distance, valid


def denormalise_distance(normalised: np.ndarray, scale_mm: float = 20.0, cap: float = 0.999) -> np.ndarray:
    """Inverse of ``normalise_distance``: y -> sign(y) scale |y| / (1 - |y|), with |y| capped (default 0.999, i.e.
    at most ~1000 x scale) so that predictions at the asymptote stay finite."""
    values = np.asarray(normalised, dtype=np.float32)
    magnitude = np.clip(np.abs(values), 0.0, cap)
    return (np.sign(values) * scale_mm * magnitude / (1.0 - magnitude)).astype(np.float32)
