"""radconf_compare on synthetic per-case CSVs: p-values against scipy and the BKY/BH corrections."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from radconf.cli.compare import main
from radconf.evaluation import benjamini_hochberg, compare_methods, two_stage_bky

STRUCTURES = ("gtv", "muscle", "bone")


def _write_method(path, dice_by_structure):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "structure", "label", "dice", "assd_mm"])
        for label, (structure, values) in enumerate(dice_by_structure.items(), start=1):
            for i, value in enumerate(values):
                writer.writerow([f"case_{i:02d}", structure, label, repr(float(value)), repr(float(2.0 - value))])
    return path


@pytest.fixture
def method_csvs(tmp_path):
    rng = np.random.default_rng(5)
    base = {s: rng.uniform(0.7, 0.9, 10) for s in STRUCTURES}
    better = {s: v + rng.normal(0.03 * (k + 1), 0.02, 10) for k, (s, v) in enumerate(base.items())}
    a = _write_method(tmp_path / "unet" / "metrics_per_case.csv", base)
    b = _write_method(tmp_path / "ensemble" / "metrics_per_case.csv", better)
    return a, b, base, better


def test_compare_matches_scipy_and_corrections(method_csvs, tmp_path):
    from scipy import stats

    a, b, base, better = method_csvs
    out = tmp_path / "cmp"
    assert main([str(a), str(b), "--metric", "dice", "-o", str(out), "--q", "0.1"]) == 0
    with (out / "comparison.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["structure"] for r in rows] == list(STRUCTURES)
    assert rows[0]["method_a"] == "unet" and rows[0]["method_b"] == "ensemble"
    p_t = [stats.ttest_rel(base[s], better[s]).pvalue for s in STRUCTURES]
    p_w = [stats.wilcoxon(base[s], better[s]).pvalue for s in STRUCTURES]
    np.testing.assert_allclose([float(r["p_ttest"]) for r in rows], p_t, rtol=1e-10)
    np.testing.assert_allclose([float(r["p_wilcoxon"]) for r in rows], p_w, rtol=1e-10)
    # default family: the structures of one (metric, pair), as in the chordoma ensemble study
    np.testing.assert_allclose([float(r["p_ttest_bky"]) for r in rows], two_stage_bky(p_t, 0.1)[1], rtol=1e-10)
    np.testing.assert_allclose([float(r["p_ttest_bh"]) for r in rows], benjamini_hochberg(p_t)[1], rtol=1e-10)
    markdown = (out / "comparison.md").read_text()
    assert "unet vs ensemble" in markdown and "| gtv | muscle | bone |" in markdown


def test_compare_family_all_and_names(method_csvs):
    a, b, *_ = method_csvs
    result = compare_methods(csv_paths=[a, b], names=["A", "B"], metrics=["dice", "assd_mm"], family="all")
    assert len(result.rows) == 2 * len(STRUCTURES)
    p = [r["p_ttest"] for r in result.rows]
    np.testing.assert_allclose([r["p_ttest_bky"] for r in result.rows], two_stage_bky(p, 0.1)[1])


def test_compare_errors(method_csvs, tmp_path, capsys):
    a, b, *_ = method_csvs
    assert main([str(a)]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main([str(a), str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert main([str(a), str(b), "--names", "x", "y", "--metric", "hd99"]) == 2
    assert "hd99" in capsys.readouterr().err
