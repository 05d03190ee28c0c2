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
from dataclasses import dataclass

import numpy as np

from radconf.ensembles.statistics import CaseStatistics, Objectives
from radconf.errors import InvalidInput

OBJECTIVES = ("hard", "soft")


#: weights below this are set to exactly zero (and the rest renormalised)
ZERO_WEIGHT = 1e-6


#: iterations over which a stage-1 start must improve by ``tolerance`` to go on
_PATIENCE = 20


@dataclass
class WeightSearch:
    """Result of :func:`find_weights`."""

    weights: np.ndarray  # (M,) on the simplex, exact zeros allowed
    mean_iou: float  # hard mean IoU at ``weights``
    mean_soft_iou: float  # soft mean IoU at ``weights``
    soft_weights: np.ndarray  # the soft-IoU optimum (stage 1)
    evaluations: int  # hard-objective evaluations used


def project_to_simplex(vector) -> np.ndarray:
    """Euclidean projection onto {w : w >= 0, sum w = 1} (sort-based, Duchi et al. 2008).

    Raises:
        ValueError: the vector is not 1-D, empty, or not finite.
    """
    v = np.asarray(vector, dtype=np.float64)
    if v.ndim != 1 or not v.size or not np.isfinite(v).all():
        raise InvalidInput(f"project_to_simplex needs a non-empty finite 1-D vector, got shape {v.shape}.")
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


def _adam_ascent(objectives: Objectives, start: np.ndarray, learning_rate: float, tolerance: float,
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


@dataclass(frozen=True)
class SearchOptions:
    """Settings of :func:`find_weights` (see its arguments)."""

    objective: str = "hard"
    learning_rate: float = 1e-2
    tolerance: float = 1e-4
    max_iterations: int = 2000
    random_starts: int = 4
    seed: int = 0
    min_step: float = 1 / 1024
    progress: bool = False

    def check(self) -> None:
        """Raises ValueError for an unknown objective or invalid search settings."""
        if self.objective not in OBJECTIVES:
            raise InvalidInput(f"unknown objective {self.objective!r}; use 'hard' (decoded IoU) or 'soft' (soft IoU "
                               "only).")
        if (self.learning_rate <= 0 or self.tolerance < 0 or self.max_iterations < 1 or self.random_starts < 0
                or self.min_step <= 0):
            raise InvalidInput(f"invalid search settings (learning_rate={self.learning_rate}, "
                               f"tolerance={self.tolerance}, max_iterations={self.max_iterations}, "
                               f"random_starts={self.random_starts}, min_step={self.min_step}); "
                               f"use positive values (random_starts and tolerance may be 0).")


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
    options = SearchOptions(objective, learning_rate, tolerance, max_iterations, random_starts, seed, min_step,
                            progress)
    options.check()
    objectives = Objectives(statistics)
    if objectives.members == 1:
        w = np.ones(1)
        return WeightSearch(w, objectives.hard(w), objectives.soft(w), w.copy(), 1)
    soft_weights = _soft_stage(objectives, options)
    if options.objective == "soft":
        return WeightSearch(soft_weights, objectives.hard(soft_weights), objectives.soft(soft_weights),
                            soft_weights.copy(), 1)
    return _pattern_search(objectives, soft_weights, options)


def _soft_stage(objectives: Objectives, options: SearchOptions) -> np.ndarray:
    """Stage 1: best soft-IoU point of Adam ascents from the centre, the vertices and random points (cleaned)."""
    m = objectives.members
    rng = np.random.default_rng(options.seed)
    centre = np.full(m, 1.0 / m)
    starts = [centre, *np.eye(m), *rng.dirichlet(np.ones(m), size=options.random_starts)]
    soft_weights, best = centre, -np.inf
    for start in starts:
        w, value = _adam_ascent(objectives, start, options.learning_rate, options.tolerance, options.max_iterations)
        if value > best:
            soft_weights, best = w, value
    return _clean(soft_weights)


class _Scorer:
    """(hard, soft) mean IoU of a weight vector, cached; ``len()`` counts the distinct points scored."""

    def __init__(self, objectives: Objectives):
        self._objectives = objectives
        self._cache: dict[bytes, tuple[float, float]] = {}

    def __call__(self, w: np.ndarray) -> tuple[float, float]:
        key = w.tobytes()
        if key not in self._cache:
            self._cache[key] = (self._objectives.hard(w), self._objectives.soft(w))
        return self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)


def _pattern_search(objectives: Objectives, soft_weights: np.ndarray, options: SearchOptions) -> WeightSearch:
    """Stage 2: pattern search on (hard, soft) from the best of soft optimum, centre and best single member."""
    from tqdm import tqdm

    m = objectives.members
    score = _Scorer(objectives)
    w = soft_weights
    for candidate in [np.full(m, 1.0 / m), *np.eye(m)]:
        if _better(score(candidate), score(w)):
            w = candidate
    current = score(w)
    step = min(0.25, 1.0 / m)
    with tqdm(desc="ensemble weights", unit="sweep", disable=not options.progress) as bar:
        for _ in range(options.max_iterations):
            if step < options.min_step:
                break
            best_move, best_score = _best_move(w, step, score, current)
            if best_move is None:
                step /= 2
            else:
                w, current = best_move, best_score
            bar.update(1)
            bar.set_postfix(iou=f"{current[0]:.4f}", step=f"{step:.4g}")
    return WeightSearch(w, current[0], current[1], soft_weights, len(score))


def _best_move(w: np.ndarray, step: float, score: _Scorer, current: tuple[float, float]
               ) -> tuple[np.ndarray | None, tuple[float, float]]:
    """The best move of one sweep: ``min(step, w_i)`` from member i to member j, over all ordered pairs.

    Returns ``(None, current)`` when no move improves on ``current``.
    """
    best_move, best_score = None, current
    for i in np.flatnonzero(w > 0):
        delta = min(step, w[i])
        for j in range(w.size):
            if j != i:
                candidate = w.copy()
                candidate[i] -= delta
                candidate[j] += delta
                candidate = _clean(candidate)
                candidate_score = score(candidate)
                if _better(candidate_score, best_score):
                    best_move, best_score = candidate, candidate_score
    return best_move, best_score
