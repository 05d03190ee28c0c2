"""Boundary-voxel surface distances: the ``"voxel"`` convention (MONAI's default definition).

Here the surface of a mask is the set of its *boundary voxels*: mask voxels with at least one 6-connected
neighbour outside the mask (``mask XOR binary_erosion(mask)``; the image border counts as outside). Distances
run between voxel centres, every boundary voxel counts once (no surfel areas), and percentiles are linearly
interpolated (``numpy.percentile``). This is what ``monai.metrics`` computes by default
(``compute_hausdorff_distance``, ``compute_surface_dice(use_subvoxels=False)``,
``compute_average_surface_distance``); radconf offers it so that numbers can be compared with papers and tools that
use it. radconf's default is the surfel definition of :mod:`radconf.evaluation.surface` (``surface-distance``).

Arrays are in numpy axis order ((z, y, x) for SimpleITK arrays) and the spacing is given in the same order.
Empty masks follow the rest of radconf: both empty -> NaN, exactly one empty -> surface Dice 0 and distances inf.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radconf.errors import InvalidInput
from radconf.evaluation.masks import (
    bounding_box,
    union_bounding_box,
    validate_mask_pair,
)
from radconf.evaluation.surface import _nearest_distances


def boundary_voxels(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with a 6-connected (4-connected in 2D) neighbour outside the mask; outside the array is outside."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


@dataclass(frozen=True)
class VoxelBoundaryDistances:
    """Distances (mm) between boundary-voxel centres of two masks, in both directions (unsorted, unweighted)."""

    distances_ref_to_pred: np.ndarray
    distances_pred_to_ref: np.ndarray

    def _empty_value(self, one_empty: float) -> float | None:
        ref_empty = self.distances_ref_to_pred.size == 0
        pred_empty = self.distances_pred_to_ref.size == 0
        if ref_empty and pred_empty:
            return math.nan
        if ref_empty or pred_empty:
            return one_empty
        return None

    def hausdorff(self, percent: float = 95.0) -> float:
        """Max of the two directed, linearly interpolated percentiles (MONAI ``compute_hausdorff_distance``)."""
        if not 0.0 <= percent <= 100.0:
            raise InvalidInput(f"percent must lie in [0, 100], got {percent}.")
        empty = self._empty_value(math.inf)
        if empty is not None:
            return empty
        return float(
            max(np.percentile(self.distances_ref_to_pred, percent), np.percentile(self.distances_pred_to_ref, percent))
        )

    def surface_dice(self, tolerance_mm: float) -> float:
        """Fraction of boundary voxels (both masks) within ``tolerance_mm`` of the other boundary."""
        empty = self._empty_value(0.0)
        if empty is not None:
            return empty
        within = np.count_nonzero(self.distances_ref_to_pred <= tolerance_mm) + np.count_nonzero(
            self.distances_pred_to_ref <= tolerance_mm
        )
        return within / (self.distances_ref_to_pred.size + self.distances_pred_to_ref.size)

    def assd(self) -> float:
        """Mean of all boundary-voxel distances of both directions pooled."""
        empty = self._empty_value(math.inf)
        if empty is not None:
            return empty
        return float(np.concatenate([self.distances_ref_to_pred, self.distances_pred_to_ref]).mean())


def compute_voxel_boundary_distances(
    reference: np.ndarray, prediction: np.ndarray, spacing_mm: Sequence[float]
) -> VoxelBoundaryDistances:
    """Distances between the boundary voxels of two masks, computed on their union bounding box (+1 voxel).

    Args:
        reference: reference mask, numpy axis order.
        prediction: predicted mask of the same shape.
        spacing_mm: spacing in the arrays' axis order.

    Returns:
        A :class:`VoxelBoundaryDistances`; inf distances towards an empty mask.

    Raises:
        ValueError: if the masks or the spacing are invalid.
    """
    ref, pred, spacing = validate_mask_pair(reference, prediction, spacing_mm)
    box = union_bounding_box(ref, pred)
    empty = np.zeros(0, dtype=np.float64)
    if box is None:
        return VoxelBoundaryDistances(empty, empty)
    pad = tuple((1, 1) for _ in box)
    edges = [boundary_voxels(np.pad(mask[box], pad)) for mask in (ref, pred)]
    points = [np.nonzero(edge) for edge in edges]
    if bounding_box(ref) is None or bounding_box(pred) is None:
        return VoxelBoundaryDistances(np.full(points[0][0].size, math.inf), np.full(points[1][0].size, math.inf))
    ft_ref, ft_pred = (
        ndimage.distance_transform_edt(~edge, sampling=spacing, return_distances=False, return_indices=True)
        for edge in edges
    )
    return VoxelBoundaryDistances(
        _nearest_distances(ft_pred, points[0], spacing), _nearest_distances(ft_ref, points[1], spacing)
    )


def voxel_hausdorff(
    reference: np.ndarray, prediction: np.ndarray, spacing_mm: Sequence[float], percent: float = 95.0
) -> float:
    """Percentile Hausdorff distance (mm) under the ``"voxel"`` convention (MONAI's); see module docstring."""
    return compute_voxel_boundary_distances(reference, prediction, spacing_mm).hausdorff(percent)
