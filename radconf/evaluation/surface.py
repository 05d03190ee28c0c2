"""Surface distances in millimetres: one expensive call, many cheap metrics.

:func:`compute_surface_distances` does the expensive part once per structure and returns a
:class:`SurfaceDistances`; the metric functions below (surface Dice, average distances, Hausdorff
distances) only read its arrays.

Surface definition (identical to DeepMind ``surface-distance``, which radconf must match to 1e-6):

1. Crop both masks to the bounding box of their union and zero-pad one voxel on every side.
2. On the grid of voxel *corners* (one more point than voxels per axis) compute each corner's 2x2x2
   neighbour code (8 bits, voxel ``[i-1, j-1, k-1]`` is bit 7 ... voxel ``[i, j, k]`` is bit 0).
   Corners whose code is neither 0 nor 255 are surface points ("surfels"); each carries the area of its
   marching-cubes triangles (mm^2, scaled by the spacing; see ``_surfel_table.py``). In 2D the same is done
   with 2x2 neighbourhoods and contour lengths (mm).
3. Exact Euclidean distance (scipy's feature transform, ``sampling=spacing``) from every surfel of one mask
   to the nearest surfel of the other, in both directions.

All arrays are in numpy axis order, e.g. (z, y, x) as returned by ``SimpleITK.GetArrayFromImage``, and the
spacing must be given in the same order (``image.GetSpacing()[::-1]``).

Empty masks (documented in ``documentation/evaluation.md``): both empty -> every surface metric is NaN (undefined,
nothing to compare); exactly one empty -> surface Dice 0.0 and every distance ``inf`` (never 0).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from radconf.errors import InvalidInput
from radconf.evaluation._surfel_table import (
    contour_length_table_2d,
    surfel_area_table_3d,
)
from radconf.evaluation.masks import union_bounding_box, validate_mask_pair

#: HD95 conventions computed from the surfels (the ``voxel`` convention lives in :mod:`.boundary`).
SURFEL_HD_CONVENTIONS = ("surface-distance", "pooled", "unweighted")
#: Every HD95 convention radconf knows, default first.
HD_CONVENTIONS = SURFEL_HD_CONVENTIONS + ("voxel",)

# crops with more voxels than this run the two feature transforms in two threads (scipy releases the GIL)
_THREAD_MIN_VOXELS = 32_768
# above this the two feature transforms run one after the other to bound peak memory (12 bytes per voxel each)
_THREAD_MAX_VOXELS = 40_000_000


def neighbour_codes(mask: np.ndarray) -> np.ndarray:
    """Neighbour code of every voxel corner of ``mask`` (shape ``mask.shape + 1`` per axis), uint8.

    Equivalent to ``surface-distance``'s correlation of the zero-padded crop with the kernel
    ``[[[128, 64], [32, 16]], [[8, 4], [2, 1]]]`` (2D: ``[[8, 4], [2, 1]]``), computed with shifts and ORs.
    """
    padded = np.zeros(tuple(n + 2 for n in mask.shape), dtype=np.uint8)
    padded[tuple(slice(1, -1) for _ in mask.shape)] = mask
    code = padded
    # combine neighbours axis by axis, last axis first: bit order matches the correlation kernel above
    for step, axis in enumerate(reversed(range(mask.ndim))):
        lo = [slice(None)] * mask.ndim
        hi = [slice(None)] * mask.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        code = (code[tuple(lo)] << (1 << step)) | code[tuple(hi)]
    return code


def _nearest_distances(
    feature_transform: np.ndarray, points: tuple[np.ndarray, ...], spacing: tuple[float, ...]
) -> np.ndarray:
    """Distance (mm) from each point to its nearest feature, with scipy's own arithmetic (bitwise equal to EDT)."""
    squared = None
    for axis, coords in enumerate(points):
        delta = (feature_transform[axis][points] - coords).astype(np.float64)
        delta *= spacing[axis]
        delta *= delta
        squared = delta if squared is None else squared + delta
    return np.sqrt(squared)


def _feature_transform(border: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    return ndimage.distance_transform_edt(~border, sampling=spacing, return_distances=False, return_indices=True)


@dataclass(frozen=True)
class SurfaceDistances:
    """Surfel distances of one structure in both directions, sorted as ``surface-distance`` sorts them.

    Attributes:
        distances_ref_to_pred: distance (mm) from each reference surfel to the prediction surface, ascending
            (ties ordered by area). ``inf`` for every surfel when the prediction is empty.
        areas_ref: area (mm^2; mm of contour in 2D) of each reference surfel, same order.
        distances_pred_to_ref: distance (mm) from each prediction surfel to the reference surface, ascending.
        areas_pred: area of each prediction surfel, same order.
        spacing_mm: the spacing used, in array axis order.
    """

    distances_ref_to_pred: np.ndarray
    areas_ref: np.ndarray
    distances_pred_to_ref: np.ndarray
    areas_pred: np.ndarray
    spacing_mm: tuple[float, ...]

    @classmethod
    def from_masks(
        cls, reference: np.ndarray, prediction: np.ndarray, spacing_mm: Sequence[float], num_threads: int = 2
    ) -> SurfaceDistances:
        """Same as :func:`compute_surface_distances`."""
        return compute_surface_distances(reference, prediction, spacing_mm, num_threads=num_threads)

    @property
    def reference_empty(self) -> bool:
        return self.areas_ref.size == 0

    @property
    def prediction_empty(self) -> bool:
        return self.areas_pred.size == 0

    @property
    def surface_area_ref(self) -> float:
        """Total reference surface area in mm^2 (contour length in mm for 2D)."""
        return float(np.sum(self.areas_ref))

    @property
    def surface_area_pred(self) -> float:
        """Total prediction surface area in mm^2 (contour length in mm for 2D)."""
        return float(np.sum(self.areas_pred))

    def _empty_value(self, one_empty: float) -> float | None:
        """NaN if both masks are empty, ``one_empty`` if exactly one is, None if both have surfaces."""
        if self.reference_empty and self.prediction_empty:
            return math.nan
        if self.reference_empty or self.prediction_empty:
            return one_empty
        return None

    def surface_overlap(self, tolerance_mm: float) -> tuple[float, float]:
        """Fractions (by area) of the reference and of the prediction surface within ``tolerance_mm`` of the other.

        Empty masks: the empty side is NaN; the non-empty side of a one-empty pair is 0.0.
        """
        ref = self._fraction_within(self.distances_ref_to_pred, self.areas_ref, tolerance_mm)
        pred = self._fraction_within(self.distances_pred_to_ref, self.areas_pred, tolerance_mm)
        return ref, pred

    @staticmethod
    def _fraction_within(distances: np.ndarray, areas: np.ndarray, tolerance_mm: float) -> float:
        if areas.size == 0:
            return math.nan
        return float(np.sum(areas[distances <= tolerance_mm]) / np.sum(areas))

    def surface_dice(self, tolerance_mm: float) -> float:
        """Surface Dice at ``tolerance_mm`` (Nikolov et al.; ``compute_surface_dice_at_tolerance``).

        Returns:
            (area of reference surfels within tolerance + area of prediction surfels within tolerance) /
            (total reference area + total prediction area); NaN if both masks are empty, 0.0 if one is.
        """
        empty = self._empty_value(0.0)
        if empty is not None:
            return empty
        overlap_ref = np.sum(self.areas_ref[self.distances_ref_to_pred <= tolerance_mm])
        overlap_pred = np.sum(self.areas_pred[self.distances_pred_to_ref <= tolerance_mm])
        return float((overlap_ref + overlap_pred) / (np.sum(self.areas_ref) + np.sum(self.areas_pred)))

    def average_distances(self) -> tuple[float, float]:
        """Area-weighted mean distance reference->prediction and prediction->reference (mm).

        Equal to ``surface-distance``'s ``compute_average_surface_distance``. Both empty: (NaN, NaN); one empty:
        (inf, inf) (surface-distance would give inf and NaN).
        """
        empty = self._empty_value(math.inf)
        if empty is not None:
            return empty, empty
        ref = np.sum(self.distances_ref_to_pred * self.areas_ref) / np.sum(self.areas_ref)
        pred = np.sum(self.distances_pred_to_ref * self.areas_pred) / np.sum(self.areas_pred)
        return float(ref), float(pred)

    def assd(self) -> float:
        """Average symmetric surface distance (mm): area-weighted mean of all distances of both directions pooled."""
        empty = self._empty_value(math.inf)
        if empty is not None:
            return empty
        weighted = np.sum(self.distances_ref_to_pred * self.areas_ref) + np.sum(
            self.distances_pred_to_ref * self.areas_pred
        )
        return float(weighted / (np.sum(self.areas_ref) + np.sum(self.areas_pred)))

    def msd(self) -> float:
        """Mean surface distance (mm): mean of the two directed area-weighted average distances."""
        ref, pred = self.average_distances()
        return 0.5 * (ref + pred)

    def hausdorff(self, percent: float = 95.0, convention: str = "surface-distance") -> float:
        """Robust Hausdorff distance (mm) at ``percent`` under a named convention.

        Conventions (all nearest-rank percentiles, no interpolation):
            ``"surface-distance"`` (default): max of the two directed percentiles, each weighted by surfel area
            (``surface-distance``'s ``compute_robust_hausdorff``);
            ``"pooled"``: one area-weighted percentile over the distances of both directions pooled (the sarcoma
            confidence-map study, eq. 3);
            ``"unweighted"``: max of the two directed percentiles, every surfel counted once.
        The ``"voxel"`` convention needs the masks; see :func:`radconf.evaluation.boundary.voxel_hausdorff`.

        Returns:
            distance in mm; NaN if both masks are empty, inf if exactly one is.

        Raises:
            ValueError: for an unknown convention or a percent outside [0, 100].
        """
        if not 0.0 <= percent <= 100.0:
            raise InvalidInput(f"percent must lie in [0, 100], got {percent}.")
        if convention not in SURFEL_HD_CONVENTIONS:
            raise InvalidInput(
                f"Unknown HD convention {convention!r} for SurfaceDistances; choose one of {SURFEL_HD_CONVENTIONS} "
                "(the 'voxel' convention is computed from the masks by radconf.evaluation.boundary)."
            )
        empty = self._empty_value(math.inf)
        if empty is not None:
            return empty
        if convention == "pooled":
            distances = np.concatenate([self.distances_ref_to_pred, self.distances_pred_to_ref])
            areas = np.concatenate([self.areas_ref, self.areas_pred])
            order = np.lexsort((areas, distances))
            return _weighted_nearest_rank(distances[order], areas[order], percent)
        if convention == "unweighted":
            return max(
                _weighted_nearest_rank(self.distances_ref_to_pred, np.ones_like(self.areas_ref), percent),
                _weighted_nearest_rank(self.distances_pred_to_ref, np.ones_like(self.areas_pred), percent),
            )
        return max(
            _weighted_nearest_rank(self.distances_ref_to_pred, self.areas_ref, percent),
            _weighted_nearest_rank(self.distances_pred_to_ref, self.areas_pred, percent),
        )

    def hausdorff_max(self) -> float:
        """Hausdorff distance (mm): largest surfel distance in either direction; NaN both empty, inf one empty."""
        empty = self._empty_value(math.inf)
        if empty is not None:
            return empty
        return float(max(self.distances_ref_to_pred[-1], self.distances_pred_to_ref[-1]))


def _weighted_nearest_rank(sorted_distances: np.ndarray, sorted_weights: np.ndarray, percent: float) -> float:
    """Smallest distance whose cumulative weight fraction reaches ``percent`` (``surface-distance``'s rule)."""
    cumulative = np.cumsum(sorted_weights) / np.sum(sorted_weights)
    idx = int(np.searchsorted(cumulative, percent / 100.0))
    return float(sorted_distances[min(idx, len(sorted_distances) - 1)])


def compute_surface_distances(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing_mm: Sequence[float],
    num_threads: int = 2,
    *,
    box: tuple[slice, ...] | None | str = "auto",
) -> SurfaceDistances:
    """Computes all surfel-to-surface distances of a structure once (the expensive step).

    Works on the union bounding box only: neighbour codes on the crop, one feature transform per mask
    (``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``), distances read at the other mask's surfels.

    Args:
        reference: reference mask, 2D or 3D, numpy axis order (z, y, x for SimpleITK arrays).
        prediction: predicted mask of the same shape.
        spacing_mm: voxel spacing in the arrays' axis order (``image.GetSpacing()[::-1]`` for SimpleITK).
        num_threads: 2 runs the two feature transforms concurrently on large crops; 1 runs them in turn.
        box: the union bounding box if the caller already has it (from
            :func:`~radconf.evaluation.masks.union_bounding_box`, None when both masks are empty); ``"auto"``
            computes it.

    Returns:
        A :class:`SurfaceDistances`; empty arrays for an empty mask, ``inf`` distances towards an empty mask.

    Raises:
        ValueError: if the masks or the spacing are invalid (see
            :func:`~radconf.evaluation.masks.validate_mask_pair`).
    """
    ref, pred, spacing = validate_mask_pair(reference, prediction, spacing_mm)
    area_table = surfel_area_table_3d(spacing) if ref.ndim == 3 else contour_length_table_2d(spacing)
    empty = np.zeros(0, dtype=np.float64)
    if isinstance(box, str):
        box = union_bounding_box(ref, pred)
    if box is None:
        return SurfaceDistances(empty, empty, empty, empty, spacing)

    full = 255 if ref.ndim == 3 else 15
    borders, points, areas = [], [], []
    for mask in (ref, pred):
        code = neighbour_codes(mask[box])
        border = (code != 0) & (code != full)
        borders.append(border)
        points.append(np.nonzero(border))
        areas.append(area_table[code[border]])

    if not borders[0].any() or not borders[1].any():
        # exactly one mask is empty: the other's surfels are infinitely far from an absent surface
        distances = [np.full(areas[0].size, math.inf), np.full(areas[1].size, math.inf)]
    else:
        use_threads = num_threads > 1 and _THREAD_MIN_VOXELS <= borders[0].size <= _THREAD_MAX_VOXELS
        if use_threads:
            with ThreadPoolExecutor(max_workers=2) as pool:
                ft_ref, ft_pred = pool.map(_feature_transform, borders, (spacing, spacing))
        else:
            ft_ref, ft_pred = (_feature_transform(b, spacing) for b in borders)
        distances = [_nearest_distances(ft_pred, points[0], spacing), _nearest_distances(ft_ref, points[1], spacing)]

    sorted_pairs = []
    for dist, area in zip(distances, areas):
        order = np.lexsort((area, dist))
        sorted_pairs.append((dist[order], area[order]))
    (d_ref, a_ref), (d_pred, a_pred) = sorted_pairs
    return SurfaceDistances(d_ref, a_ref, d_pred, a_pred, spacing)


# cheap metric functions: the function half of the class + function twin
def surface_dice(distances: SurfaceDistances, tolerance_mm: float) -> float:
    """Surface Dice at ``tolerance_mm``; see :meth:`SurfaceDistances.surface_dice`."""
    return distances.surface_dice(tolerance_mm)


def average_surface_distances(distances: SurfaceDistances) -> tuple[float, float]:
    """Directed area-weighted average distances (ref->pred, pred->ref) in mm.

    See :meth:`SurfaceDistances.average_distances`.
    """
    return distances.average_distances()


def average_symmetric_surface_distance(distances: SurfaceDistances) -> float:
    """ASSD in mm; see :meth:`SurfaceDistances.assd`."""
    return distances.assd()


def mean_surface_distance(distances: SurfaceDistances) -> float:
    """MSD in mm (mean of the two directed averages); see :meth:`SurfaceDistances.msd`."""
    return distances.msd()


def robust_hausdorff(distances: SurfaceDistances, percent: float = 95.0, convention: str = "surface-distance") -> float:
    """Percentile Hausdorff distance in mm; see :meth:`SurfaceDistances.hausdorff`."""
    return distances.hausdorff(percent, convention)


def hausdorff_max(distances: SurfaceDistances) -> float:
    """Maximum Hausdorff distance in mm; see :meth:`SurfaceDistances.hausdorff_max`."""
    return distances.hausdorff_max()
