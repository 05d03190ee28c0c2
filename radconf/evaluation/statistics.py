"""Paired tests between methods and false-discovery-rate corrections.

As in the chordoma ensemble study (Appendix C / Table 3).

* :func:`paired_tests`: paired t-test (``scipy.stats.ttest_rel``) and Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``, zero differences dropped as in its default) on per-case values of two methods.
* :func:`benjamini_hochberg`: BH adjusted p-values (step-up, made monotone, capped at 1).
* :func:`two_stage_bky`: the two-stage linear step-up procedure of Benjamini, Krieger & Yekutieli (2006,
  Definition 6) at level q: stage 1 runs BH at q' = q / (1 + q) and rejects r1 hypotheses; if 0 < r1 < m, stage 2
  runs BH at q' m / m0 with m0 = m - r1. Adjusted p-values are the BH-adjusted values times (1 + q) (stage 1 decides)
  or times (1 + q) m0 / m (stage 2), capped at 1, so that "adjusted <= q" is exactly the rejection rule. Like every
  adaptive procedure they depend on q. This is what ``statsmodels`` calls ``fdr_tsbky`` (used as a test oracle only).

NaN p-values (a test that could not be run) stay NaN and are not counted in m.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from radconf.errors import InvalidInput


def _finite_view(pvalues: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise InvalidInput(f"p-values must be a 1-D sequence, got shape {p.shape}.")
    valid = ~np.isnan(p)
    if np.any((p[valid] < 0) | (p[valid] > 1)):
        raise InvalidInput("p-values must lie in [0, 1].")
    return p, valid


def _bh_sorted(sorted_p: np.ndarray) -> np.ndarray:
    """BH adjusted values of ascending p-values."""
    m = sorted_p.size
    ecdf = np.arange(1, m + 1) / float(m)
    adjusted = np.minimum.accumulate((sorted_p / ecdf)[::-1])[::-1]
    adjusted[adjusted > 1] = 1
    return adjusted


def benjamini_hochberg(pvalues: Sequence[float], q: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg FDR correction.

    Args:
        pvalues: raw p-values (NaN allowed: kept as NaN, not counted).
        q: FDR level for the rejection decisions (the adjusted p-values do not depend on it).

    Returns:
        ``(reject, adjusted)``: bool array (``adjusted <= q``) and adjusted p-values, in input order.
    """
    p, valid = _finite_view(pvalues)
    adjusted = np.full(p.shape, np.nan)
    if valid.any():
        sub = p[valid]
        order = np.argsort(sub)
        values = np.empty_like(sub)
        values[order] = _bh_sorted(sub[order])
        adjusted[valid] = values
    return np.where(valid, adjusted <= q, False), adjusted


def two_stage_bky(pvalues: Sequence[float], q: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Two-stage Benjamini-Krieger-Yekutieli FDR correction at level ``q`` (module docstring has the rule).

    Args:
        pvalues: raw p-values (NaN allowed: kept as NaN, not counted).
        q: FDR level (the chordoma ensemble study uses 0.1).

    Returns:
        ``(reject, adjusted)`` in input order; ``reject`` is ``adjusted <= q``.

    Raises:
        ValueError: for q outside (0, 1) or p-values outside [0, 1].
    """
    if not 0 < q < 1:
        raise InvalidInput(f"q must lie in (0, 1), got {q}.")
    p, valid = _finite_view(pvalues)
    adjusted = np.full(p.shape, np.nan)
    reject = np.zeros(p.shape, dtype=bool)
    if not valid.any():
        return reject, adjusted
    sub = p[valid]
    m = sub.size
    order = np.argsort(sub)
    bh = _bh_sorted(sub[order])
    q_prime = q / (1.0 + q)
    r1 = int(np.count_nonzero(bh <= q_prime))
    if r1 in (0, m):
        stage_reject = bh <= q_prime
        corrected = bh * (1.0 + q)
    else:
        m0 = m - r1
        stage_reject = bh <= q_prime * m / m0
        corrected = bh * (m0 / m) * (1.0 + q)
    corrected[corrected > 1] = 1
    values, rejected = np.empty(m), np.empty(m, dtype=bool)
    values[order], rejected[order] = corrected, stage_reject
    adjusted[valid], reject[valid] = values, rejected
    return reject, adjusted


@dataclass(frozen=True)
class PairedTestResult:
    """Paired comparison of method A and method B over the cases both have (finite values only)."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    sd_diff: float
    t_statistic: float
    p_ttest: float
    w_statistic: float
    p_wilcoxon: float


def paired_tests(a: Sequence[float], b: Sequence[float]) -> PairedTestResult:
    """Paired t-test and Wilcoxon signed-rank test of A versus B (two-sided).

    Pairs where either value is NaN or infinite are dropped (n counts the rest). Fewer than 2 pairs gives NaN
    statistics; if every difference is exactly 0 there is no evidence of a difference and both p-values are 1.0
    (scipy would return NaN or fail).

    Args:
        a: per-case values of method A.
        b: per-case values of method B, same case order.

    Returns:
        A :class:`PairedTestResult` (``mean_diff`` = mean of A - B).

    Raises:
        ValueError: if the sequences differ in length.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise InvalidInput(f"Paired samples must have the same length, got {x.size} and {y.size}.")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    nan = math.nan
    if n == 0:
        return PairedTestResult(0, nan, nan, nan, nan, nan, nan, nan, nan)
    diff = x - y
    mean_a, mean_b, mean_diff = float(x.mean()), float(y.mean()), float(diff.mean())
    sd_diff = float(diff.std(ddof=1)) if n > 1 else nan
    if n < 2:
        return PairedTestResult(n, mean_a, mean_b, mean_diff, sd_diff, nan, nan, nan, nan)
    if np.all(diff == 0):
        return PairedTestResult(n, mean_a, mean_b, mean_diff, sd_diff, 0.0, 1.0, 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        t_result = stats.ttest_rel(x, y)
        w_result = stats.wilcoxon(x, y)
    return PairedTestResult(
        n, mean_a, mean_b, mean_diff, sd_diff, float(t_result.statistic), float(t_result.pvalue),
        float(w_result.statistic), float(w_result.pvalue),
    )
