"""Ordinal confidence-level maps (integer levels 0..K): per-level table, continuous metrics and calibration.

* Per-level table (the sarcoma confidence-map study, Table 1): threshold both maps at ``level >= L`` for L = 1..K
  and compute every binary and surface metric of :func:`~radconf.evaluation.metrics.compute_metrics` per level;
  ``mean_level_dice`` is the mean of the per-level Dice values (levels where Dice is NaN, i.e. both thresholded
  masks empty, are left out).
* Continuous metrics on ``level / K`` (see :mod:`radconf.evaluation.continuous`).
* Calibration: for every predicted level L (0..K), the observed mean reference fraction (reference level / K) over
  the voxels predicted at L, over the whole image. A calibrated model has observed ~= L / K. The joint
  (predicted level x reference level) voxel-count matrix is kept so that cases can be pooled exactly.

Arrays are in numpy axis order ((z, y, x) for SimpleITK arrays) and the spacing in the same order.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from radconf.errors import InvalidInput
from radconf.evaluation.continuous import ContinuousCounts, enlarged_reference_box
from radconf.evaluation.masks import bounding_box
from radconf.evaluation.metrics import StructureMetrics


def check_level_map(levels: np.ndarray, num_levels: int, name: str = "level map") -> np.ndarray:
    """Returns ``levels`` as an integer array after checking that every value is an integer in 0..K.

    Raises:
        ValueError: for non-integer values or values outside 0..``num_levels`` (names ``name`` and the fix).
    """
    if not isinstance(num_levels, (int, np.integer)) or num_levels < 1:
        raise InvalidInput(f"num_levels (K) must be an integer >= 1, got {num_levels!r}.")
    arr = np.asarray(levels)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InvalidInput(f"The {name} must hold integer confidence levels 0..{num_levels}; got dtype {arr.dtype}.")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() > num_levels):
        raise InvalidInput(
            f"The {name} holds values in [{arr.min()}, {arr.max()}] but the confidence levels must lie in "
            f"0..{num_levels}; pass the right K (--confidence K) or check that this is a level map."
        )
    return arr


def level_joint_counts(reference_levels: np.ndarray, prediction_levels: np.ndarray, num_levels: int) -> np.ndarray:
    """Voxel counts of every (predicted level, reference level) pair: a (K+1, K+1) int64 matrix ``[pred, ref]``."""
    k1 = num_levels + 1
    box = bounding_box((reference_levels != 0) | (prediction_levels != 0))
    joint = np.zeros((k1, k1), dtype=np.int64)
    if box is None:
        joint[0, 0] = reference_levels.size
        return joint
    ref = reference_levels[box].astype(np.int64).ravel()
    pred = prediction_levels[box].astype(np.int64).ravel()
    joint += np.bincount(pred * k1 + ref, minlength=k1 * k1).reshape(k1, k1)
    joint[0, 0] += reference_levels.size - ref.size  # everything outside the box is (0, 0)
    return joint


def calibration_from_joint(joint: np.ndarray) -> list[dict[str, float]]:
    """Calibration table from a joint count matrix (possibly summed over cases).

    Returns:
        One dict per predicted level L = 0..K: ``level``, ``predicted_confidence`` (L/K), ``n_voxels`` and
        ``observed_fraction`` (mean reference level / K over those voxels; NaN if no voxel was predicted at L).
    """
    num_levels = joint.shape[0] - 1
    ref_fraction = np.arange(num_levels + 1) / num_levels
    rows = []
    for level in range(num_levels + 1):
        n = int(joint[level].sum())
        observed = float(joint[level] @ ref_fraction / n) if n else math.nan
        rows.append(
            {"level": level, "predicted_confidence": level / num_levels, "n_voxels": n, "observed_fraction": observed}
        )
    return rows


@dataclass
class LevelMapEvaluation:
    """Everything radconf computes for one pair of level maps.

    Attributes:
        per_level: one metrics dict per threshold L = 1..K (key ``level`` plus the :func:`compute_metrics` keys).
        continuous: continuous metrics on ``level / K`` (see :class:`ContinuousCounts`).
        joint_counts: (K+1, K+1) voxel counts ``[predicted level, reference level]``.
        num_levels: K.
    """

    per_level: list[dict[str, float]]
    continuous: dict[str, float]
    joint_counts: np.ndarray
    num_levels: int
    calibration: list[dict[str, float]] = field(init=False)

    def __post_init__(self) -> None:
        self.calibration = calibration_from_joint(self.joint_counts)

    @property
    def mean_level_dice(self) -> float:
        """Mean of the per-level Dice values over the levels where Dice is defined (NaN if none is)."""
        values = [row["dice"] for row in self.per_level if not math.isnan(row["dice"])]
        return float(np.mean(values)) if values else math.nan


def evaluate_level_maps(
    reference_levels: np.ndarray,
    prediction_levels: np.ndarray,
    num_levels: int,
    spacing_mm: Sequence[float],
    tolerances_mm: Sequence[float] = (2.0, 3.0),
    *,
    enlarge_fraction: float = 0.2,
    hd95_convention: str = "surface-distance",
    num_threads: int = 2,
) -> LevelMapEvaluation:
    """Per-level table, continuous metrics and calibration counts of a pair of integer level maps 0..K.

    Args:
        reference_levels: reference level map (integers 0..K), numpy axis order.
        prediction_levels: predicted level map, same shape.
        num_levels: K, the highest level.
        spacing_mm: spacing in the arrays' axis order (mm).
        tolerances_mm: surface Dice tolerances (mm).
        enlarge_fraction: growth of the reference box for the continuous metrics.
        hd95_convention: HD95 convention, see :func:`~radconf.evaluation.metrics.compute_metrics`.
        num_threads: threads for the feature transforms.

    Returns:
        A :class:`LevelMapEvaluation`.

    Raises:
        ValueError: for values outside 0..K, non-integer values or mismatched shapes.
    """
    ref = check_level_map(reference_levels, num_levels, "reference level map")
    pred = check_level_map(prediction_levels, num_levels, "prediction level map")
    if ref.shape != pred.shape:
        raise InvalidInput(f"Reference level map shape {ref.shape} and prediction shape {pred.shape} differ.")
    per_level = []
    for level in range(1, num_levels + 1):
        metrics = StructureMetrics(
            ref >= level,
            pred >= level,
            spacing_mm,
            tolerances_mm,
            hd95_convention=hd95_convention,
            num_threads=num_threads,
        ).as_dict()
        per_level.append({"level": float(level), **metrics})
    region = enlarged_reference_box(ref, enlarge_fraction)
    if region is None:
        counts = ContinuousCounts(math.nan, math.nan, math.nan, math.nan, 0)
    else:  # divide only the region by K, not the whole image
        whole = tuple(slice(None) for _ in ref.shape)
        counts = ContinuousCounts.from_maps(ref[region] / num_levels, pred[region] / num_levels, region=whole)
    continuous = counts.as_dict()
    return LevelMapEvaluation(per_level, continuous, level_joint_counts(ref, pred, num_levels), num_levels)
