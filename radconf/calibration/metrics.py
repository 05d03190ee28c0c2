"""Calibration of probability maps, streamed over cases: :class:`ReliabilityHistogram` and :func:`compute_calibration`.

Each structure is a binary problem: ``p`` is the structure's probability at a voxel, ``y`` its reference (0/1, or
a soft value in [0, 1] such as the fraction of readers who contoured the voxel). The histogram keeps, in
``FINE_BINS`` equal-width bins of ``p`` on [0, 1], the (weighted) count, the sum of ``p`` and the sum of ``y``, plus
the exact sum of ``(p - y)^2``. Every metric is derived from these sums, so cases can be added one at a time and
histograms of separate runs merged:

- ECE = sum_b n_b / N |acc_b - conf_b| over equal-width bins (acc_b = mean y, conf_b = mean p of bin b);
- adaptive ECE: the same over equal-mass bins;
- MCE = max_b |acc_b - conf_b| over the non-empty bins;
- Brier score = mean (p - y)^2 (exact, not binned).

Also :func:`near_structure_box`, the region "near the structure" of one case.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FINE_BINS = 10_000
_CHUNK = 1 << 20  # voxels converted to float64 at a time
_TOLERANCE = 1e-6  # rounding slack accepted on [0, 1]


@dataclass(frozen=True)
class ReliabilityBin:
    """One row of a reliability table: the bin [low, high), its (weighted) voxel count, mean p and mean y."""

    low: float
    high: float
    count: float
    mean_confidence: float
    observed_frequency: float

    def as_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high, "count": self.count, "mean_confidence": self.mean_confidence,
                "observed_frequency": self.observed_frequency}


def _checked_values(values: np.ndarray, what: str) -> np.ndarray:
    if values.size and not np.all(np.isfinite(values)):
        raise ValueError(f"{what} holds NaN or infinite values; calibration needs values in [0, 1].")
    if values.size and (values.min() < -_TOLERANCE or values.max() > 1 + _TOLERANCE):
        raise ValueError(f"{what} has values from {values.min():g} to {values.max():g}; they must lie in [0, 1].")
    return np.clip(values, 0.0, 1.0)


class ReliabilityHistogram:
    """Fine-binned sums of a binary calibration problem, filled case by case.

    Args:
        fine_bins: equal-width bins of ``p`` on [0, 1] (default 10 000, i.e. a resolution of 1e-4 in ``p``). Coarse
            equal-width bins whose count divides ``fine_bins`` (2, 10, 20, 50, 100, ...) are exact; for other counts
            (15) each bin edge k / n is moved to the nearest fine-bin edge (at most 5e-5 away).
    """

    def __init__(self, fine_bins: int = FINE_BINS):
        if not isinstance(fine_bins, int) or fine_bins < 1:
            raise ValueError(f"fine_bins must be an integer >= 1, got {fine_bins!r}.")
        self.fine_bins = fine_bins
        self.count = np.zeros(fine_bins)
        self.sum_p = np.zeros(fine_bins)
        self.sum_y = np.zeros(fine_bins)
        self.squared_error = 0.0

    @property
    def total(self) -> float:
        """The (weighted) number of voxels added."""
        return float(self.count.sum())

    def add(self, p: np.ndarray, y: np.ndarray, weight: float | np.ndarray | None = None) -> ReliabilityHistogram:
        """Adds voxels: probabilities ``p`` and references ``y`` (same shape, values in [0, 1]; ``y`` may be soft).

        Args:
            p: predicted probabilities.
            y: reference values (binary masks, or soft values such as a reader fraction).
            weight: a voxel weight >= 0, scalar or of ``p``'s shape (default 1).

        Returns:
            self.

        Raises:
            ValueError: shapes differ, or values are outside [0, 1], NaN or infinite, or a weight is negative.
        """
        p, y = np.asarray(p), np.asarray(y)
        if p.shape != y.shape:
            raise ValueError(f"p has shape {p.shape} but y {y.shape}; give one reference value per probability.")
        w = None if weight is None else np.broadcast_to(np.asarray(weight, dtype=np.float64), p.shape)
        if w is not None and w.size and not (np.all(np.isfinite(w)) and w.min() >= 0):
            raise ValueError("weights must be finite and >= 0.")
        p, y = p.reshape(-1), y.reshape(-1)
        w = None if w is None else w.reshape(-1)
        for start in range(0, p.size, _CHUNK):
            part = slice(start, start + _CHUNK)
            self._add_chunk(p[part], y[part], None if w is None else w[part])
        return self

    def _add_chunk(self, p: np.ndarray, y: np.ndarray, w: np.ndarray | None) -> None:
        p = _checked_values(p.astype(np.float64), "p")
        y = _checked_values(y.astype(np.float64), "y")
        index = np.minimum((p * self.fine_bins).astype(np.int64), self.fine_bins - 1)
        n = self.fine_bins
        self.count += np.bincount(index, weights=w, minlength=n)
        self.sum_p += np.bincount(index, weights=p if w is None else p * w, minlength=n)
        self.sum_y += np.bincount(index, weights=y if w is None else y * w, minlength=n)
        error = (p - y) ** 2
        self.squared_error += float(error.sum() if w is None else (error * w).sum())

    def merge(self, other: ReliabilityHistogram) -> ReliabilityHistogram:
        """Adds the sums of ``other`` (same ``fine_bins``) to this histogram; returns self."""
        if other.fine_bins != self.fine_bins:
            raise ValueError(f"cannot merge histograms of {self.fine_bins} and {other.fine_bins} fine bins.")
        self.count += other.count
        self.sum_p += other.sum_p
        self.sum_y += other.sum_y
        self.squared_error += other.squared_error
        return self

    # ------------------------------------------------------------------------------------------- coarse bins
    def _equal_width_bins(self, n_bins: int) -> np.ndarray:
        """Coarse bin of each fine bin (by the fine bin's centre)."""
        _check_bins(n_bins)
        centres = (np.arange(self.fine_bins) + 0.5) / self.fine_bins
        return np.minimum((centres * n_bins).astype(np.int64), n_bins - 1)

    def _equal_mass_bins(self, n_bins: int) -> np.ndarray:
        """Adaptive bin of each fine bin: the bin holding the middle of its mass in the cumulative count. Bins are
        unions of consecutive fine bins, so a fine bin holding more than 1 / n_bins of the voxels (e.g. many voxels
        at p = 0) makes fewer, larger bins."""
        _check_bins(n_bins)
        total = self.total
        if total <= 0:
            return np.zeros(self.fine_bins, dtype=np.int64)
        middle = np.cumsum(self.count) - self.count / 2
        return np.minimum((middle * n_bins / total).astype(np.int64), n_bins - 1)

    def _binned(self, assignment: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(np.bincount(assignment, weights=values, minlength=n_bins)
                     for values in (self.count, self.sum_p, self.sum_y))

    def _calibration_error(self, assignment: np.ndarray, n_bins: int, reduce: str) -> float:
        count, sum_p, sum_y = self._binned(assignment, n_bins)
        filled = count > 0
        if not filled.any():
            return math.nan
        gaps = np.abs(sum_y[filled] - sum_p[filled]) / count[filled]
        if reduce == "max":
            return float(gaps.max())
        return float(np.sum(count[filled] * gaps) / count.sum())

    def ece(self, n_bins: int = 15) -> float:
        """Expected calibration error over ``n_bins`` equal-width bins (NaN when empty)."""
        return self._calibration_error(self._equal_width_bins(n_bins), n_bins, "mean")

    def adaptive_ece(self, n_bins: int = 15) -> float:
        """ECE over ``n_bins`` equal-mass bins built from the fine bins (resolution 1 / ``fine_bins`` = 1e-4 in p by
        default: bin edges lie on fine-bin edges, so counts are equal up to one fine bin's content)."""
        return self._calibration_error(self._equal_mass_bins(n_bins), n_bins, "mean")

    def mce(self, n_bins: int = 15) -> float:
        """Maximum calibration error: the largest |acc - conf| over the non-empty equal-width bins (NaN when empty)."""
        return self._calibration_error(self._equal_width_bins(n_bins), n_bins, "max")

    def brier(self) -> float:
        """Brier score, the (weighted) mean of (p - y)^2, exact (NaN when empty)."""
        total = self.total
        return self.squared_error / total if total > 0 else math.nan

    def reliability_table(self, n_bins: int = 15, adaptive: bool = False) -> list[ReliabilityBin]:
        """One row per bin: edges, count, mean confidence and observed frequency (NaN for an empty bin).

        Args:
            n_bins: number of bins.
            adaptive: equal-mass bins (edges from the fine bins) instead of equal-width ones.
        """
        assignment = self._equal_mass_bins(n_bins) if adaptive else self._equal_width_bins(n_bins)
        count, sum_p, sum_y = self._binned(assignment, n_bins)
        edges = np.arange(self.fine_bins + 1) / self.fine_bins
        rows = []
        for b in range(n_bins):
            members = np.flatnonzero(assignment == b)
            if adaptive:
                low, high = (float(edges[members[0]]), float(edges[members[-1] + 1])) if members.size else (
                    math.nan, math.nan)
            else:
                low, high = b / n_bins, (b + 1) / n_bins
            filled = count[b] > 0
            rows.append(ReliabilityBin(low, high, float(count[b]), float(sum_p[b] / count[b]) if filled else math.nan,
                                       float(sum_y[b] / count[b]) if filled else math.nan))
        return rows


def _check_bins(n_bins: int) -> None:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}.")


def compute_calibration(p: np.ndarray, y: np.ndarray, *, n_bins: int = 15,
                        weight: float | np.ndarray | None = None) -> dict[str, float]:
    """ECE, adaptive ECE, MCE, Brier score and (weighted) voxel count of one set of voxels.

    Args:
        p: probabilities in [0, 1].
        y: references in [0, 1] (binary or soft), same shape.
        n_bins: bins of the ECE, adaptive ECE and MCE.
        weight: voxel weights (see :meth:`ReliabilityHistogram.add`).

    Returns:
        ``{"ece", "adaptive_ece", "mce", "brier", "voxels"}``.
    """
    return calibration_metrics(ReliabilityHistogram().add(p, y, weight), n_bins)


def calibration_metrics(histogram: ReliabilityHistogram, n_bins: int = 15) -> dict[str, float]:
    """The metrics of :func:`compute_calibration` from a filled histogram."""
    return {"ece": histogram.ece(n_bins), "adaptive_ece": histogram.adaptive_ece(n_bins),
            "mce": histogram.mce(n_bins), "brier": histogram.brier(), "voxels": histogram.total}


def near_structure_box(reference: np.ndarray, predicted: np.ndarray, spacing: Sequence[float],
                       margin_mm: float) -> tuple[slice, ...] | None:
    """The region "near the structure" of one case: the bounding box of ``reference | predicted``, grown on each
    side by the voxels whose centres lie within ``margin_mm`` of it (``floor(margin_mm / spacing)`` per axis) and
    clipped to the image.

    Args:
        reference: the reference mask (bool).
        predicted: the predicted mask (bool), e.g. ``p >= 0.5``.
        spacing: voxel spacing in mm, in the arrays' axis order (z, y, x for SimpleITK arrays).
        margin_mm: margin in mm (>= 0).

    Returns:
        The box as slices, or None when both masks are empty (the case adds no voxel to this region).
    """
    union = np.asarray(reference, dtype=bool) | np.asarray(predicted, dtype=bool)
    if len(spacing) != union.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not have one value per axis of an array of shape "
                         f"{union.shape}.")
    if not (math.isfinite(margin_mm) and margin_mm >= 0):
        raise ValueError(f"margin_mm must be a finite number >= 0, got {margin_mm!r}.")
    if not union.any():
        return None
    box = []
    for axis, (size, step) in enumerate(zip(union.shape, spacing)):
        filled = np.flatnonzero(union.any(axis=tuple(a for a in range(union.ndim) if a != axis)))
        pad = math.floor(margin_mm / float(step) + 1e-9)
        box.append(slice(max(0, int(filled[0]) - pad), min(size, int(filled[-1]) + 1 + pad)))
    return tuple(box)
