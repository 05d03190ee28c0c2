"""FDR corrections against statsmodels (test oracle) and by hand; paired tests against scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest

from radconf.evaluation import benjamini_hochberg, paired_tests, two_stage_bky

P_SETS = [
    [0.01, 0.02, 0.03, 0.04, 0.05, 0.5],  # all small but one
    [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216],
    [0.3, 0.6, 0.9, 0.45],  # nothing rejected (r1 = 0)
    [1e-5, 2e-4, 3e-3, 1e-3],  # everything rejected (r1 = m)
    [0.02, 0.02, 0.2, 0.02, 0.7, 0.04],  # ties
    list(np.random.default_rng(0).uniform(0, 0.3, 30)),
    [0.04],
]


def test_bh_by_hand():
    reject, adjusted = benjamini_hochberg([0.01, 0.04, 0.03, 0.5], q=0.05)
    # sorted 0.01, 0.03, 0.04, 0.5 -> x 4/1, 4/2, 4/3, 4/4 = 0.04, 0.06, 0.0533, 0.5 -> monotone from the right
    np.testing.assert_allclose(adjusted, [0.04, 0.16 / 3, 0.16 / 3, 0.5])
    np.testing.assert_array_equal(reject, [True, False, False, False])


def test_bky_by_hand():
    """m = 4, q = 0.1: stage 1 BH at q' = 0.1/1.1 rejects 2 -> m0 = 2; adjusted = BH * m0/m * (1 + q)."""
    p = [0.001, 0.02, 0.3, 0.8]
    bh = np.array([0.004, 0.04, 0.4, 0.8])
    reject, adjusted = two_stage_bky(p, q=0.1)
    np.testing.assert_allclose(adjusted, bh * 2 / 4 * 1.1)
    np.testing.assert_array_equal(reject, [True, True, False, False])


@pytest.mark.parametrize("pvalues", P_SETS)
@pytest.mark.parametrize("q", [0.05, 0.1, 0.2])
def test_corrections_match_statsmodels(pvalues, q):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    ref_reject, ref_adjusted, _, _ = multitest.multipletests(pvalues, alpha=q, method="fdr_tsbky")
    reject, adjusted = two_stage_bky(pvalues, q)
    np.testing.assert_allclose(adjusted, ref_adjusted, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(reject, ref_reject)
    ref_reject, ref_adjusted, _, _ = multitest.multipletests(pvalues, alpha=q, method="fdr_bh")
    reject, adjusted = benjamini_hochberg(pvalues, q)
    np.testing.assert_allclose(adjusted, ref_adjusted, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(reject, ref_reject)


def test_nan_pvalues_are_kept_out():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = [0.01, math.nan, 0.03, 0.2]
    _, adjusted = two_stage_bky(p, 0.1)
    _, expected, _, _ = multitest.multipletests([0.01, 0.03, 0.2], alpha=0.1, method="fdr_tsbky")
    assert math.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2, 3]], expected)


def test_paired_tests_match_scipy():
    from scipy import stats

    rng = np.random.default_rng(3)
    a = rng.normal(0.85, 0.05, 12)
    b = a - rng.normal(0.02, 0.02, 12)
    result = paired_tests(a, b)
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b)
    assert result.n == 12
    assert result.t_statistic == pytest.approx(t.statistic) and result.p_ttest == pytest.approx(t.pvalue)
    assert result.w_statistic == pytest.approx(w.statistic) and result.p_wilcoxon == pytest.approx(w.pvalue)
    assert result.mean_diff == pytest.approx(np.mean(a - b))


def test_paired_tests_edge_cases():
    same = paired_tests([0.8, 0.9, 0.7], [0.8, 0.9, 0.7])
    assert same.p_ttest == 1.0 and same.p_wilcoxon == 1.0
    dropped = paired_tests([0.8, math.nan, 0.7, math.inf], [0.7, 0.9, 0.6, 1.0])
    assert dropped.n == 2
    single = paired_tests([0.8], [0.7])
    assert single.n == 1 and math.isnan(single.p_ttest)
    with pytest.raises(ValueError, match="same length"):
        paired_tests([1, 2], [1])
