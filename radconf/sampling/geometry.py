"""Raw image voxel indices -> nnU-Net's preprocessed voxel indices (transpose, crop, resample).

nnU-Net preprocesses a case as ``transpose_forward`` -> crop to the non-zero bounding box
(``bbox_used_for_cropping``, in transposed axes) -> resample from ``shape_after_cropping_and_before_resampling`` to the
preprocessed shape. A raw voxel ``c`` (index in the reader's array order, e.g. ``(z, y, x)`` for SimpleITK) lands at

* transposed: ``t[i] = c[transpose_forward[i]]``;
* cropped: ``k[i] = t[i] - bbox[i][0]`` (voxels outside the box were cropped away: dropped);
* resampled: the voxel centre scales with the shape ratio, ``p[i] = round((k[i] + 0.5) * new[i] / old[i] - 0.5)``,
  clipped into ``[0, new[i])`` (nearest preprocessed voxel centre).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def raw_to_preprocessed(coords: np.ndarray, transpose_forward: Sequence[int], bbox: Sequence[Sequence[int]],
                        shape_before_cropping: Sequence[int], shape_after_cropping: Sequence[int],
                        preprocessed_shape: Sequence[int]) -> np.ndarray:
    """Maps raw voxel indices into a preprocessed case (see the module docstring).

    Args:
        coords: ``(n, d)`` integer indices in the raw array's axis order.
        transpose_forward: the plans' ``transpose_forward``.
        bbox: the case's ``bbox_used_for_cropping`` (``[[lo, hi), ...]`` per transposed axis).
        shape_before_cropping: the case's ``shape_before_cropping`` (transposed raw shape).
        shape_after_cropping: the case's ``shape_after_cropping_and_before_resampling``.
        preprocessed_shape: the preprocessed array's spatial shape.

    Returns:
        ``(m, d)`` int64 indices in the preprocessed case, ``m <= n`` (voxels cropped away are dropped), in order.

    Raises:
        ValueError: shapes that do not fit together (``coords`` of another dimension, a box outside the shape).
    """
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, len(transpose_forward))
    transposed = coords[:, list(transpose_forward)]
    box = np.asarray(bbox, dtype=np.int64).reshape(len(transpose_forward), 2)
    before = np.asarray(shape_before_cropping, dtype=np.int64)
    old = np.asarray(shape_after_cropping, dtype=np.int64)
    new = np.asarray(preprocessed_shape, dtype=np.int64)
    if (box[:, 0] < 0).any() or (box[:, 1] > before).any() or not np.array_equal(box[:, 1] - box[:, 0], old):
        raise ValueError(f"cropping box {box.tolist()} does not fit shape {before.tolist()} -> {old.tolist()}")
    inside = ((transposed >= box[:, 0]) & (transposed < box[:, 1])).all(axis=1)
    cropped = transposed[inside] - box[:, 0]
    scaled = np.rint((cropped + 0.5) * (new / old) - 0.5).astype(np.int64)
    return np.clip(scaled, 0, new - 1)
