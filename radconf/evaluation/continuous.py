"""Continuous (fuzzy) overlap metrics between confidence maps.

After Taha & Hanbury 2015, as used in the sarcoma confidence-map study.

For a reference map m and a predicted map m' with values in [0, 1] (confidence level / K), over the N voxels of an
evaluation region::

    TP = sum min(m, m')        TN = sum min(1 - m, 1 - m')
    FP = sum max(m' - m, 0)    FN = sum max(m - m', 0)
    Dice = 2TP / (2TP + FP + FN)    accuracy = (TP + TN) / N
    sensitivity = TP / (TP + FN)    specificity = TN / (FP + TN)

On binary maps these are exactly the binary confusion counts. The region is the bounding box of the reference's
nonzero voxels enlarged by ``enlarge_fraction`` (default 20 %) of its size along every axis: each side grows by
``ceil(enlarge_fraction * extent / 2)`` voxels (so the box grows by at least 20 % in total per axis), clipped to the
image. Voxels outside the region do not count, including predicted voxels far from the reference.

Empty reference map: the region is undefined and every metric is NaN (``n_voxels`` 0). A ratio whose denominator is
zero is NaN. Arrays are in numpy axis order; no spacing is needed (all counts are voxel counts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from radconf.errors import InvalidInput
from radconf.evaluation.masks import bounding_box


def enlarged_reference_box(reference_map: np.ndarray, enlarge_fraction: float = 0.2) -> tuple[slice, ...] | None:
    """Evaluation region of the continuous metrics: the reference bounding box grown by ``enlarge_fraction``.

    Args:
        reference_map: reference map (any numeric dtype); its nonzero voxels define the box.
        enlarge_fraction: total growth per axis as a fraction of the box extent, split evenly over both sides
            (rounded up to whole voxels).

    Returns:
        Slices of the region (clipped to the array), or None if the reference map is all zero.

    Raises:
        ValueError: for a negative ``enlarge_fraction``.
    """
    if not enlarge_fraction >= 0:
        raise InvalidInput(f"enlarge_fraction must be >= 0, got {enlarge_fraction}.")
    box = bounding_box(np.asarray(reference_map) != 0)
    if box is None:
        return None
    grown = []
    for sl, size in zip(box, reference_map.shape):
        margin = math.ceil(enlarge_fraction * (sl.stop - sl.start) / 2 - 1e-12)
        grown.append(slice(max(0, sl.start - margin), min(size, sl.stop + margin)))
    return tuple(grown)


@dataclass(frozen=True)
class ContinuousCounts:
    """Generalised confusion counts over an evaluation region (floats; integers for binary maps)."""

    tp: float
    fp: float
    fn: float
    tn: float
    n_voxels: int

    @classmethod
    def from_maps(
        cls,
        reference_map: np.ndarray,
        prediction_map: np.ndarray,
        enlarge_fraction: float = 0.2,
        *,
        region: tuple[slice, ...] | None | str = "auto",
    ) -> ContinuousCounts:
        """Counts over ``region`` (default: :func:`enlarged_reference_box`); all NaN if the reference is empty.

        Raises:
            ValueError: if the maps differ in shape or hold values outside [0, 1] (or non-finite values).
        """
        ref, pred = _check_maps(reference_map, prediction_map)
        if isinstance(region, str):
            region = enlarged_reference_box(ref, enlarge_fraction)
        if region is None:
            return cls(math.nan, math.nan, math.nan, math.nan, 0)
        m = ref[region].astype(np.float64)
        mp = pred[region].astype(np.float64)
        tp = float(np.minimum(m, mp).sum())
        tn = float(np.minimum(1.0 - m, 1.0 - mp).sum())
        fp = float(np.maximum(mp - m, 0.0).sum())
        fn = float(np.maximum(m - mp, 0.0).sum())
        return cls(tp, fp, fn, tn, int(m.size))

    @staticmethod
    def _ratio(num: float, den: float) -> float:
        return num / den if den and not math.isnan(den) else math.nan

    @property
    def dice(self) -> float:
        return self._ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def accuracy(self) -> float:
        return self._ratio(self.tp + self.tn, self.n_voxels)

    @property
    def sensitivity(self) -> float:
        return self._ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return self._ratio(self.tn, self.fp + self.tn)

    def as_dict(self) -> dict[str, float]:
        """Metrics and counts by their radconf column names."""
        return {
            "continuous_dice": self.dice,
            "continuous_accuracy": self.accuracy,
            "continuous_sensitivity": self.sensitivity,
            "continuous_specificity": self.specificity,
            "continuous_tp": self.tp,
            "continuous_fp": self.fp,
            "continuous_fn": self.fn,
            "continuous_tn": self.tn,
            "region_voxels": float(self.n_voxels),
        }


def _check_maps(reference_map: np.ndarray, prediction_map: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, pred = np.asarray(reference_map), np.asarray(prediction_map)
    if ref.shape != pred.shape:
        raise InvalidInput(f"Reference map shape {ref.shape} and prediction map shape {pred.shape} differ.")
    for name, arr in (("reference", ref), ("prediction", pred)):
        if arr.dtype == bool:
            continue
        if not np.issubdtype(arr.dtype, np.number):
            raise InvalidInput(f"The {name} map must be numeric or bool, got dtype {arr.dtype}.")
        if arr.size and (not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1):
            raise InvalidInput(
                f"The {name} map must hold values in [0, 1] (confidence level / K); got range "
                f"[{arr.min()}, {arr.max()}]. Divide integer level maps by K first (level_map / K)."
            )
    return ref, pred


def continuous_metrics(
    reference_map: np.ndarray, prediction_map: np.ndarray, enlarge_fraction: float = 0.2
) -> dict[str, float]:
    """Continuous Dice, accuracy, sensitivity and specificity (function twin of :class:`ContinuousCounts`).

    Args:
        reference_map: reference confidence map in [0, 1] (numpy axis order).
        prediction_map: predicted confidence map in [0, 1], same shape.
        enlarge_fraction: growth of the reference bounding box defining the region (0.2 = 20 %).

    Returns:
        ``{continuous_dice, continuous_accuracy, continuous_sensitivity, continuous_specificity, continuous_tp,
        continuous_fp, continuous_fn, continuous_tn, region_voxels}``; NaN metrics for an empty reference map.

    Raises:
        ValueError: for mismatched shapes or values outside [0, 1].
    """
    return ContinuousCounts.from_maps(reference_map, prediction_map, enlarge_fraction).as_dict()
