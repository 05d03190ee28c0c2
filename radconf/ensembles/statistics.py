"""Per-case statistics of ensemble members on validation cases, and the exact soft/hard IoU of any mixture.

Each case is reduced once (:func:`case_statistics`) to what the objectives need (see :mod:`radconf.ensembles.optimiser`
for the derivation); :class:`Objectives` evaluates the soft and the decoded IoU of weights ``w`` from them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from radconf.errors import InvalidInput

DECODINGS = ("argmax", "threshold")


@dataclass
class CaseStatistics:
    """What one validation case contributes to the objectives (see module docstring).

    ``disputed`` holds (probabilities, reference) pairs of the voxels on which the members disagree: for ``"argmax"``
    one pair, (M, C, n) probabilities and (n,) reference labels; for ``"threshold"`` one pair per structure s,
    (M, n_s) probabilities of channel s and the (n_s,) bool reference.
    """

    decoding: str
    soft_intersection: np.ndarray  # (M, S) a_k = sum_v p_kv y_v
    soft_sum: np.ndarray  # (M, S) b_k = sum_v p_kv
    reference_sum: np.ndarray  # (S,) Y = sum_v y_v
    fixed_counts: np.ndarray  # (S, 3) tp, fp, fn of the undisputed voxels
    disputed: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    case: str = ""

    @property
    def members(self) -> int:
        return self.soft_intersection.shape[0]

    @property
    def structures(self) -> int:
        return self.soft_intersection.shape[1]

    @property
    def disputed_voxels(self) -> int:
        """Number of (voxel, structure) entries kept for the hard objective."""
        return sum(reference.size for _, reference in self.disputed)


def case_label(case: str) -> str:
    return f"case {case!r}" if case else "the case"


def case_statistics(member_probabilities: Sequence[np.ndarray], reference: np.ndarray, decoding: str,
                    case: str = "") -> CaseStatistics:
    """Reduce one validation case to the statistics of both objectives, in one pass over the members.

    Args:
        member_probabilities: M arrays of shape (C, *shape), one per member, same shape.
        reference: ``"argmax"``: int label map (*shape) with values 0..C-1; ``"threshold"``: bool (C, *shape).
        decoding: ``"argmax"`` (softmax classes, channel 0 = background) or ``"threshold"`` (sigmoid regions).
        case: identifier used in error messages and kept in the result.

    Returns:
        The case's :class:`CaseStatistics`.

    Raises:
        ValueError: unknown decoding, no members, members of different shapes, a reference of the wrong shape or with
            values outside the labels, or non-finite probabilities.
    """
    where = case_label(case)
    if decoding not in DECODINGS:
        raise InvalidInput(f"{where}: unknown decoding {decoding!r}; use 'argmax' (softmax classes, channel 0 = "
                         f"background) or 'threshold' (sigmoid regions, channel > 0.5).")
    probabilities = [np.asarray(p) for p in member_probabilities]
    if not probabilities:
        raise InvalidInput(f"{where}: no member probabilities; pass one (C, *shape) array per member.")
    shapes = {p.shape for p in probabilities}
    if len(shapes) > 1:
        raise InvalidInput(f"{where}: members have different shapes {[p.shape for p in probabilities]}; resample all "
                         f"members' probabilities to the same (C, *shape) grid.")
    shape = probabilities[0].shape
    if len(shape) < 2 or not all(np.issubdtype(p.dtype, np.floating) for p in probabilities):
        raise InvalidInput(f"{where}: member probabilities must be floating point arrays of shape (C, *shape), got "
                         f"{[(p.shape, str(p.dtype)) for p in probabilities]}.")
    channels = shape[0]
    store = np.float16 if all(p.dtype == np.float16 for p in probabilities) else np.float32
    flat = [p.reshape(channels, -1) for p in probabilities]
    reference = np.asarray(reference)
    if decoding == "argmax":
        statistics = _argmax_statistics(flat, reference, shape, store, where)
    else:
        statistics = _threshold_statistics(flat, reference, shape, store, where)
    statistics.case = case
    if not (np.isfinite(statistics.soft_sum).all() and np.isfinite(statistics.soft_intersection).all()):
        raise InvalidInput(f"{where}: member probabilities contain NaN or infinite values.")
    return statistics


def _argmax_statistics(flat: list[np.ndarray], reference: np.ndarray, shape: tuple, store, where: str
                       ) -> CaseStatistics:
    channels = shape[0]
    if channels < 2:
        raise InvalidInput(f"{where}: argmax decoding needs at least 2 channels (background + one class), got "
                         f"{channels}; use decoding='threshold' for a single sigmoid channel.")
    if reference.shape != shape[1:]:
        raise InvalidInput(f"{where}: argmax reference must be a label map of shape {shape[1:]}, got "
                         f"{reference.shape}.")
    if not (np.issubdtype(reference.dtype, np.integer) or reference.dtype == bool):
        raise InvalidInput(f"{where}: argmax reference must hold integer labels, got dtype {reference.dtype}.")
    labels = reference.reshape(-1).astype(np.intp)
    if labels.size and (labels.min() < 0 or labels.max() >= channels):
        raise InvalidInput(f"{where}: reference labels {np.unique(labels).tolist()} are outside 0..{channels - 1} "
                         f"(the members have {channels} channels); check the label map and the members' classes.")
    indices = [np.flatnonzero(labels == c) for c in range(1, channels)]
    soft_intersection = np.array([[f[c][idx].sum(dtype=np.float64) for c, idx in enumerate(indices, start=1)]
                                  for f in flat])
    soft_sum = np.array([f[1:].sum(axis=1, dtype=np.float64) for f in flat])
    reference_sum = np.array([idx.size for idx in indices], dtype=np.float64)
    # members' decisions, exactly as the decoder takes them
    first = flat[0].argmax(0)
    agree = np.ones(labels.size, dtype=bool)
    for f in flat[1:]:
        agree &= f.argmax(0) == first
    fixed_counts = _argmax_counts(labels[agree], first[agree], channels)
    disputed = np.flatnonzero(~agree)
    probabilities = np.stack([f[:, disputed] for f in flat]).astype(store, copy=False)
    label_type = np.min_scalar_type(channels - 1)
    return CaseStatistics("argmax", soft_intersection, soft_sum, reference_sum, fixed_counts,
                          [(probabilities, labels[disputed].astype(label_type))])


def _threshold_statistics(flat: list[np.ndarray], reference: np.ndarray, shape: tuple, store, where: str
                          ) -> CaseStatistics:
    if reference.shape != shape:
        raise InvalidInput(f"{where}: threshold reference must be a bool array of shape {shape} (one region per "
                         f"channel), got {reference.shape}.")
    if reference.dtype != bool:
        if not np.isin(reference, (0, 1)).all():
            raise InvalidInput(f"{where}: threshold reference must be bool (or 0/1), got values "
                             f"{np.unique(reference)[:10].tolist()}.")
        reference = reference.astype(bool)
    regions = reference.reshape(shape[0], -1)
    rows_a, rows_b, counts, disputed = [], [], [], []
    for s, region in enumerate(regions):
        channel = [f[s] for f in flat]
        rows_a.append([p[region].sum(dtype=np.float64) for p in channel])
        rows_b.append([p.sum(dtype=np.float64) for p in channel])
        first = channel[0] > 0.5
        agree = np.ones(region.size, dtype=bool)
        for p in channel[1:]:
            agree &= (p > 0.5) == first
        on, truth = first[agree], region[agree]
        counts.append([np.count_nonzero(on & truth), np.count_nonzero(on & ~truth), np.count_nonzero(~on & truth)])
        index = np.flatnonzero(~agree)
        disputed.append((np.stack([p[index] for p in channel]).astype(store, copy=False), region[index]))
    return CaseStatistics("threshold", np.array(rows_a).T, np.array(rows_b).T,
                          regions.sum(axis=1).astype(np.float64), np.array(counts, dtype=np.int64), disputed)


def _argmax_counts(labels: np.ndarray, predicted: np.ndarray, channels: int) -> np.ndarray:
    """(C - 1, 3) tp, fp, fn of classes 1..C-1 from reference and predicted labels."""
    confusion = np.bincount(labels.astype(np.intp) * channels + predicted, minlength=channels * channels)
    confusion = confusion.reshape(channels, channels)  # [reference, predicted]
    tp = np.diag(confusion)[1:]
    return np.stack([tp, confusion.sum(0)[1:] - tp, confusion.sum(1)[1:] - tp], axis=1).astype(np.int64)


def iou_from_counts(counts: np.ndarray) -> np.ndarray:
    tp, fp, fn = np.moveaxis(counts.astype(np.float64), -1, 0)
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def confusion_counts(weights, statistics: Sequence[CaseStatistics]) -> np.ndarray:
    """(N cases, S, 3) int64 tp, fp, fn of the decoded mixture ``sum_k w_k P_k``.

    Raises:
        ValueError: no cases, inconsistent cases, or weights not on the simplex.
    """
    objectives = Objectives(statistics)
    return objectives.counts(objectives.check(weights))


def iou_table(weights, statistics: Sequence[CaseStatistics]) -> np.ndarray:
    """(N, S) hard IoU; NaN where reference and prediction are both empty, 0 where only the reference is."""
    return iou_from_counts(confusion_counts(weights, statistics))


def mean_iou(weights, statistics: Sequence[CaseStatistics]) -> float:
    """Mean of :func:`iou_table` over its non-NaN entries (NaN if there are none)."""
    return nanmean(iou_table(weights, statistics))


def mean_soft_iou(weights, statistics: Sequence[CaseStatistics]) -> float:
    """Mean soft IoU ``I / (P + Y - I)`` over the (case, structure) pairs with a non-empty reference (NaN if none)."""
    objectives = Objectives(statistics)
    return objectives.soft(objectives.check(weights))


class Objectives:
    """Hard and soft mean IoU of a fixed set of cases, evaluated many times by the search."""

    def __init__(self, statistics: Sequence[CaseStatistics]):
        statistics = list(statistics)
        if not statistics:
            raise InvalidInput("no validation cases; pass the CaseStatistics of at least one case.")
        first = statistics[0]
        for other in statistics:
            if (other.decoding, other.members, other.structures) != (first.decoding, first.members, first.structures):
                raise InvalidInput(f"{case_label(other.case)} has decoding {other.decoding!r}, {other.members} members and "
                                 f"{other.structures} structures but {case_label(first.case)} has {first.decoding!r}, "
                                 f"{first.members} and {first.structures}; reduce all cases with the same members "
                                 f"and decoding.")
        self.decoding, self.members, self.structures = first.decoding, first.members, first.structures
        self.cases = len(statistics)
        self._fixed = np.stack([s.fixed_counts for s in statistics])
        if self.decoding == "argmax":
            # reference labels pre-scaled for the confusion-matrix bincount
            self._disputed = [(s.disputed[0][0], s.disputed[0][1].astype(np.intp) * (self.structures + 1))
                              for s in statistics]
        else:
            self._disputed = [s.disputed for s in statistics]
        # soft IoU: (case, structure) pairs with a non-empty reference, flattened
        valid = np.stack([s.reference_sum for s in statistics]) > 0
        self._a = np.stack([s.soft_intersection.T for s in statistics])[valid]  # (Q, M)
        self._b = np.stack([s.soft_sum.T for s in statistics])[valid]
        self._y = np.stack([s.reference_sum for s in statistics])[valid]

    def check(self, weights) -> np.ndarray:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (self.members,) or not np.isfinite(w).all():
            raise InvalidInput(f"weights must be {self.members} finite numbers (one per member), got shape {w.shape}.")
        if w.min() < 0 or abs(w.sum() - 1) > 1e-6:
            raise InvalidInput(f"weights must lie on the simplex (>= 0, sum 1), got {w.tolist()}; use "
                             f"project_to_simplex(weights) or weights / weights.sum().")
        return w

    def counts(self, w: np.ndarray) -> np.ndarray:
        """(N, S, 3) tp, fp, fn of the decoded mixture."""
        counts = self._fixed.copy()
        if self.decoding == "argmax":
            channels = self.structures + 1
            for n, (probabilities, scaled) in enumerate(self._disputed):
                if scaled.size:
                    predicted = np.einsum("k,kcn->cn", w, probabilities).argmax(0)  # float64 mixture
                    confusion = np.bincount(scaled + predicted, minlength=channels * channels)
                    confusion = confusion.reshape(channels, channels)
                    tp = np.diag(confusion)[1:]
                    counts[n, :, 0] += tp
                    counts[n, :, 1] += confusion.sum(0)[1:] - tp
                    counts[n, :, 2] += confusion.sum(1)[1:] - tp
        else:
            for n, structures in enumerate(self._disputed):
                for s, (probabilities, truth) in enumerate(structures):
                    if truth.size:
                        on = w @ probabilities > 0.5
                        counts[n, s] += (np.count_nonzero(on & truth), np.count_nonzero(on & ~truth),
                                         np.count_nonzero(~on & truth))
        return counts

    def hard(self, w: np.ndarray) -> float:
        return nanmean(iou_from_counts(self.counts(w)))

    def soft(self, w: np.ndarray) -> float:
        if not self._y.size:
            return float("nan")
        intersection = self._a @ w
        return float(np.mean(intersection / (self._b @ w + self._y - intersection)))

    def soft_and_gradient(self, w: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean soft IoU and its gradient: d(I/D)/dw = (a D - I (b - a)) / D^2 with D = P + Y - I >= Y > 0."""
        if not self._y.size:
            return float("nan"), np.zeros_like(w)
        intersection = self._a @ w
        union = self._b @ w + self._y - intersection
        gradient = (self._a * union[:, None] - (self._b - self._a) * intersection[:, None]) / union[:, None] ** 2
        return float(np.mean(intersection / union)), gradient.mean(0)
