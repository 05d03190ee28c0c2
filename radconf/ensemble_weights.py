"""Ensemble weights on the simplex that maximise the mean IoU of the decoded mixture on validation cases.

M members predicted the same validation cases; their probabilities are mixed as ``sum_k w_k P_k`` with w on the
simplex (w_k >= 0, sum 1, exact zeros allowed) and decoded either by ``"argmax"`` (C softmax channels, channel 0 =
background, structures = classes 1..C-1) or by ``"threshold"`` (C sigmoid regions, structure s = channel s > 0.5).
The search maximises the mean IoU over (case, structure) pairs. A case holds ~10^7 voxels, so each case is reduced
in one pass (:func:`case_statistics`) to small statistics that evaluate both objectives for any w:

1. Soft IoU is linear-fractional in w. For one case and structure, with y the reference indicator and M_v the
   mixture probability, ``I(w) = sum_v M_v y_v = w . a`` and ``P(w) = sum_v M_v = w . b`` with
   ``a_k = sum_v p_kv y_v``, ``b_k = sum_v p_kv`` and ``Y = sum_v y_v``; soft IoU = ``I / (P + Y - I)``. So a (M, S),
   b (M, S) and Y (S) are all that is needed, exactly.
2. The hard (decoded) IoU only depends on the "disputed" voxels. Where every member decodes to the same label
   (argmax: all members' argmax agree; threshold: per channel, all members on the same side of 0.5), every convex
   mixture decodes to that label too: a convex combination keeps "c is the argmax" and "above 0.5". These voxels
   give fixed tp/fp/fn counts; only the disputed voxels keep the members' probabilities (float32, float16 inputs
   stay float16) and the reference. A member's decision is taken exactly as the decoder takes it (numpy's argmax,
   first index on ties; ``p > 0.5``), so the reduction is exact up to float rounding at exact ties.

:func:`find_weights` then runs two stages:

- Stage 1 (soft): projected gradient ascent on the mean soft IoU with Adam steps (numpy, float64) on the analytic
  gradient, taken within the face of the simplex it can move in (zero sum, see :func:`_tangent`) and projected onto
  the simplex (:func:`project_to_simplex`) after each step, from the centre, every vertex and ``random_starts``
  Dirichlet(1) draws. A start stops when its best value improves by less than ``tolerance`` over 20 iterations.
  The soft IoU is smooth but not the target: it rewards confident members rather than correct decisions.
- Stage 2 (hard): pattern search for the hard mean IoU, starting from the best of {soft optimum, centre, best single
  member}. A move transfers ``min(step, w_i)`` from member i to member j (all ordered pairs; a member can reach exactly
  zero); the best improving move of a sweep is taken, where "improving" means a higher hard IoU, or the same hard IoU
  and a higher soft IoU: the hard objective is piecewise constant, and the soft one steers across its plateaus. A
  sweep without an improving move halves the step (from ``min(0.25, 1/M)`` down to ``min_step``). Every candidate is
  one of the start points or an improvement on them, so the result is never worse than the centre or any member.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DECODINGS = ("argmax", "threshold")
OBJECTIVES = ("hard", "soft")
#: weights below this are set to exactly zero (and the rest renormalised)
ZERO_WEIGHT = 1e-6
#: iterations over which a stage-1 start must improve by ``tolerance`` to go on
_PATIENCE = 20


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


@dataclass
class WeightSearch:
    """Result of :func:`find_weights`."""

    weights: np.ndarray  # (M,) on the simplex, exact zeros allowed
    mean_iou: float  # hard mean IoU at ``weights``
    mean_soft_iou: float  # soft mean IoU at ``weights``
    soft_weights: np.ndarray  # the soft-IoU optimum (stage 1)
    evaluations: int  # hard-objective evaluations used


def _name(case: str) -> str:
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
    where = _name(case)
    if decoding not in DECODINGS:
        raise ValueError(f"{where}: unknown decoding {decoding!r}; use 'argmax' (softmax classes, channel 0 = "
                         f"background) or 'threshold' (sigmoid regions, channel > 0.5).")
    probabilities = [np.asarray(p) for p in member_probabilities]
    if not probabilities:
        raise ValueError(f"{where}: no member probabilities; pass one (C, *shape) array per member.")
    shapes = {p.shape for p in probabilities}
    if len(shapes) > 1:
        raise ValueError(f"{where}: members have different shapes {[p.shape for p in probabilities]}; resample all "
                         f"members' probabilities to the same (C, *shape) grid.")
    shape = probabilities[0].shape
    if len(shape) < 2 or not all(np.issubdtype(p.dtype, np.floating) for p in probabilities):
        raise ValueError(f"{where}: member probabilities must be floating point arrays of shape (C, *shape), got "
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
        raise ValueError(f"{where}: member probabilities contain NaN or infinite values.")
    return statistics


def _argmax_statistics(flat: list[np.ndarray], reference: np.ndarray, shape: tuple, store, where: str
                       ) -> CaseStatistics:
    channels = shape[0]
    if channels < 2:
        raise ValueError(f"{where}: argmax decoding needs at least 2 channels (background + one class), got "
                         f"{channels}; use decoding='threshold' for a single sigmoid channel.")
    if reference.shape != shape[1:]:
        raise ValueError(f"{where}: argmax reference must be a label map of shape {shape[1:]}, got "
                         f"{reference.shape}.")
    if not (np.issubdtype(reference.dtype, np.integer) or reference.dtype == bool):
        raise ValueError(f"{where}: argmax reference must hold integer labels, got dtype {reference.dtype}.")
    labels = reference.reshape(-1).astype(np.intp)
    if labels.size and (labels.min() < 0 or labels.max() >= channels):
        raise ValueError(f"{where}: reference labels {np.unique(labels).tolist()} are outside 0..{channels - 1} "
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
        raise ValueError(f"{where}: threshold reference must be a bool array of shape {shape} (one region per "
                         f"channel), got {reference.shape}.")
    if reference.dtype != bool:
        if not np.isin(reference, (0, 1)).all():
            raise ValueError(f"{where}: threshold reference must be bool (or 0/1), got values "
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


class _Objectives:
    """Hard and soft mean IoU of a fixed set of cases, evaluated many times by the search."""

    def __init__(self, statistics: Sequence[CaseStatistics]):
        statistics = list(statistics)
        if not statistics:
            raise ValueError("no validation cases; pass the CaseStatistics of at least one case.")
        first = statistics[0]
        for other in statistics:
            if (other.decoding, other.members, other.structures) != (first.decoding, first.members, first.structures):
                raise ValueError(f"{_name(other.case)} has decoding {other.decoding!r}, {other.members} members and "
                                 f"{other.structures} structures but {_name(first.case)} has {first.decoding!r}, "
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
            raise ValueError(f"weights must be {self.members} finite numbers (one per member), got shape {w.shape}.")
        if w.min() < 0 or abs(w.sum() - 1) > 1e-6:
            raise ValueError(f"weights must lie on the simplex (>= 0, sum 1), got {w.tolist()}; use "
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
        return _nanmean(_iou(self.counts(w)))

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


def _iou(counts: np.ndarray) -> np.ndarray:
    tp, fp, fn = np.moveaxis(counts.astype(np.float64), -1, 0)
    union = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else float("nan")


def confusion_counts(weights, statistics: Sequence[CaseStatistics]) -> np.ndarray:
    """(N cases, S, 3) int64 tp, fp, fn of the decoded mixture ``sum_k w_k P_k``.

    Raises:
        ValueError: no cases, inconsistent cases, or weights not on the simplex.
    """
    objectives = _Objectives(statistics)
    return objectives.counts(objectives.check(weights))


def iou_table(weights, statistics: Sequence[CaseStatistics]) -> np.ndarray:
    """(N, S) hard IoU; NaN where reference and prediction are both empty, 0 where only the reference is."""
    return _iou(confusion_counts(weights, statistics))


def mean_iou(weights, statistics: Sequence[CaseStatistics]) -> float:
    """Mean of :func:`iou_table` over its non-NaN entries (NaN if there are none)."""
    return _nanmean(iou_table(weights, statistics))


def mean_soft_iou(weights, statistics: Sequence[CaseStatistics]) -> float:
    """Mean soft IoU ``I / (P + Y - I)`` over the (case, structure) pairs with a non-empty reference (NaN if none)."""
    objectives = _Objectives(statistics)
    return objectives.soft(objectives.check(weights))


def project_to_simplex(vector) -> np.ndarray:
    """Euclidean projection onto {w : w >= 0, sum w = 1} (sort-based, Duchi et al. 2008).

    Raises:
        ValueError: the vector is not 1-D, empty, or not finite.
    """
    v = np.asarray(vector, dtype=np.float64)
    if v.ndim != 1 or not v.size or not np.isfinite(v).all():
        raise ValueError(f"project_to_simplex needs a non-empty finite 1-D vector, got shape {v.shape}.")
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1.0
    ranks = np.arange(1, v.size + 1)
    rho = np.flatnonzero(u - cumulative / ranks > 0)[-1]
    return np.maximum(v - cumulative[rho] / (rho + 1), 0.0)


def _clean(w: np.ndarray) -> np.ndarray:
    w = np.where(w < ZERO_WEIGHT, 0.0, w)
    return w / w.sum()


def _tangent(gradient: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gradient projected onto the face of the simplex it can move in (zero sum; zero where w_k = 0 would leave).

    Adam scales each coordinate on its own, so a raw gradient whose components share one sign (the soft IoU grows
    with the scale of w) becomes a step along (1, ..., 1), which the projection removes: w would not move.
    """
    free = w > 0
    free |= gradient > gradient[free].mean()
    return np.where(free, gradient - gradient[free].mean(), 0.0)


def _adam_ascent(objectives: _Objectives, start: np.ndarray, learning_rate: float, tolerance: float,
                 max_iterations: int) -> tuple[np.ndarray, float]:
    """Projected Adam ascent on the mean soft IoU from one start; the best point visited."""
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    w, first, second = start.copy(), np.zeros_like(start), np.zeros_like(start)
    best_w, best = w, -np.inf
    history = []  # best value after each iteration
    for t in range(1, max_iterations + 1):
        value, gradient = objectives.soft_and_gradient(w)
        gradient = _tangent(gradient, w)
        if value > best:
            best_w, best = w, value
        history.append(best)
        if t > _PATIENCE and history[-1] - history[-1 - _PATIENCE] < tolerance:
            break
        first = beta1 * first + (1 - beta1) * gradient
        second = beta2 * second + (1 - beta2) * gradient ** 2
        step = learning_rate * (first / (1 - beta1 ** t)) / (np.sqrt(second / (1 - beta2 ** t)) + eps)
        w = project_to_simplex(w + step)
    return best_w, best


def _better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(hard, soft) lexicographic comparison; NaN counts as worst."""
    hard_a, hard_b = (-np.inf if np.isnan(x) else x for x in (a[0], b[0]))
    if abs(hard_a - hard_b) > 1e-12:  # NaN when both are -inf: fall through to soft
        return hard_a > hard_b
    soft_a, soft_b = (-np.inf if np.isnan(x) else x for x in (a[1], b[1]))
    return soft_a > soft_b + 1e-12


def find_weights(statistics: Sequence[CaseStatistics], *, objective: str = "hard", learning_rate: float = 1e-2,
                 tolerance: float = 1e-4, max_iterations: int = 2000, random_starts: int = 4, seed: int = 0,
                 min_step: float = 1 / 1024, progress: bool = False) -> WeightSearch:
    """Ensemble weights on the simplex that maximise the mean IoU of the decoded mixture (see module docstring).

    Args:
        statistics: :func:`case_statistics` of each validation case (same members and decoding).
        objective: ``"hard"`` (stage 1 then pattern search on the decoded IoU) or ``"soft"`` (stage 1 only).
        learning_rate: Adam step of stage 1.
        tolerance: a stage-1 start stops when its best soft IoU gains less than this over 20 iterations.
        max_iterations: cap on the iterations of each stage-1 start and on the sweeps of stage 2.
        random_starts: Dirichlet(1) starts of stage 1, besides the centre and the vertices.
        seed: seed of the random starts.
        min_step: stage 2 stops when the step falls below this.
        progress: show a progress bar over the stage-2 sweeps.

    Returns:
        The :class:`WeightSearch`; weights below 1e-6 are exactly zero.

    Raises:
        ValueError: unknown objective, no cases, inconsistent cases, or invalid search settings.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; use 'hard' (decoded IoU) or 'soft' (soft IoU only).")
    if learning_rate <= 0 or tolerance < 0 or max_iterations < 1 or random_starts < 0 or min_step <= 0:
        raise ValueError(f"invalid search settings (learning_rate={learning_rate}, tolerance={tolerance}, "
                         f"max_iterations={max_iterations}, random_starts={random_starts}, min_step={min_step}); "
                         f"use positive values (random_starts and tolerance may be 0).")
    objectives = _Objectives(statistics)
    m = objectives.members
    if m == 1:
        w = np.ones(1)
        return WeightSearch(w, objectives.hard(w), objectives.soft(w), w.copy(), 1)

    # stage 1: soft IoU from the centre, the vertices and random points
    rng = np.random.default_rng(seed)
    centre = np.full(m, 1.0 / m)
    starts = [centre, *np.eye(m), *rng.dirichlet(np.ones(m), size=random_starts)]
    soft_weights, best = centre, -np.inf
    for start in starts:
        w, value = _adam_ascent(objectives, start, learning_rate, tolerance, max_iterations)
        if value > best:
            soft_weights, best = w, value
    soft_weights = _clean(soft_weights)
    if objective == "soft":
        return WeightSearch(soft_weights, objectives.hard(soft_weights), objectives.soft(soft_weights),
                            soft_weights.copy(), 1)

    # stage 2: pattern search on (hard, soft) from the best of soft optimum, centre and best single member
    cache: dict[bytes, tuple[float, float]] = {}

    def score(w: np.ndarray) -> tuple[float, float]:
        key = w.tobytes()
        if key not in cache:
            cache[key] = (objectives.hard(w), objectives.soft(w))
        return cache[key]

    w = soft_weights
    for candidate in [centre, *np.eye(m)]:
        if _better(score(candidate), score(w)):
            w = candidate
    current = score(w)
    step = min(0.25, 1.0 / m)
    from tqdm import tqdm

    with tqdm(desc="ensemble weights", unit="sweep", disable=not progress) as bar:
        for _ in range(max_iterations):
            if step < min_step:
                break
            best_move, best_score = None, current
            for i in np.flatnonzero(w > 0):
                delta = min(step, w[i])
                for j in range(m):
                    if j != i:
                        candidate = w.copy()
                        candidate[i] -= delta
                        candidate[j] += delta
                        candidate = _clean(candidate)
                        candidate_score = score(candidate)
                        if _better(candidate_score, best_score):
                            best_move, best_score = candidate, candidate_score
            if best_move is None:
                step /= 2
            else:
                w, current = best_move, best_score
            bar.update(1)
            bar.set_postfix(iou=f"{current[0]:.4f}", step=f"{step:.4g}")
    return WeightSearch(w, current[0], current[1], soft_weights, len(cache))
