"""Paired comparison of methods from the per-case CSVs of ``radconf_evaluate`` (the chordoma ensemble study, Table 3).

For every structure x metric x pair of methods: the cases both methods have (matched on ``case`` + ``structure``) are
compared with a paired t-test and a Wilcoxon signed-rank test; the p-values are corrected with the two-stage
Benjamini-Krieger-Yekutieli procedure (q = 0.1 by default) and with plain Benjamini-Hochberg. The correction family
is, by default, the structures of one (test, metric, pair), as in the chordoma ensemble study ("corrected model-wise
across the six structures"); ``family="metric"`` corrects over all pairs and structures of a metric, ``family="all"``
over everything of one test.
"""
from __future__ import annotations

import itertools
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from radconf.errors import InvalidInput
from radconf.evaluation.statistics import (
    benjamini_hochberg,
    paired_tests,
    two_stage_bky,
)
from radconf.io.files import atomic_write_text
from radconf.io.tables import read_csv, write_csv

FAMILIES = ("structure", "metric", "all")
TESTS = (("ttest", "paired t-test"), ("wilcoxon", "Wilcoxon signed-rank test"))
COLUMNS = [
    "metric", "structure", "method_a", "method_b", "n", "mean_a", "mean_b", "mean_diff", "sd_diff",
    "t_statistic", "p_ttest", "p_ttest_bky", "p_ttest_bh", "reject_ttest_bky",
    "w_statistic", "p_wilcoxon", "p_wilcoxon_bky", "p_wilcoxon_bh", "reject_wilcoxon_bky",
]


@dataclass
class ComparisonResult:
    """Rows of the comparison (one per metric x structure x pair; keys as :data:`COLUMNS`) and where they went."""

    rows: list[dict[str, Any]]
    methods: list[str]
    metrics: list[str]
    structures: list[str]
    q: float
    family: str
    markdown: str = ""
    files: dict[str, Path] = field(default_factory=dict)


def method_names(paths: Sequence[Path]) -> list[str]:
    """Default method names: the file stem, or the parent folder for ``metrics_per_case.csv``; made unique."""
    names = [p.parent.name if p.stem == "metrics_per_case" else p.stem for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.parent.name}/{p.stem}" for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    return names


def _to_float(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def load_method(path: Path) -> dict[tuple[str, str], dict[str, float]]:
    """``{(case, structure): {column: value}}`` from a metrics_per_case.csv.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if it lacks the ``case``/``structure`` columns or repeats a case + structure.
    """
    rows = read_csv(path)
    if rows and not {"case", "structure"} <= set(rows[0]):
        raise InvalidInput(f"{path} has no 'case' and 'structure' columns; pass metrics_per_case.csv files.")
    table: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        key = (row["case"], row["structure"])
        if key in table:
            raise InvalidInput(f"{path} lists case {key[0]!r} / structure {key[1]!r} twice; one row per pair expected.")
        table[key] = {k: _to_float(v) for k, v in row.items() if k not in ("case", "structure", "label")}
    if not table:
        raise InvalidInput(f"{path} holds no rows.")
    return table


def compare_methods(
    *,
    csv_paths: Sequence[str | os.PathLike],
    names: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
    q: float = 0.1,
    baseline: str | None = None,
    family: str = "structure",
    output_dir: str | os.PathLike | None = None,
) -> ComparisonResult:
    """Paired tests between methods with BKY and BH corrections.

    Args:
        csv_paths: two or more metrics_per_case.csv files (one per method).
        names: method names (default: see :func:`method_names`).
        metrics: metric columns to compare (default: dice, every surface_dice_* column, assd_mm, hd95_mm present in
            all files).
        q: FDR level of the two-stage BKY procedure.
        baseline: compare every method with this one only (default: every pair).
        family: correction family, one of :data:`FAMILIES`.
        output_dir: write comparison.csv and comparison.md there (None: write nothing).

    Returns:
        A :class:`ComparisonResult`.

    Raises:
        ValueError: fewer than two files, unknown names/metrics/family, no common case.
        FileNotFoundError: a CSV file is missing.
    """
    paths = [Path(p) for p in csv_paths]
    if len(paths) < 2:
        raise InvalidInput("radconf_compare needs at least two metrics_per_case.csv files (one per method).")
    if family not in FAMILIES:
        raise InvalidInput(f"Unknown correction family {family!r}; choose one of {FAMILIES}.")
    labels = list(names) if names else method_names(paths)
    if len(labels) != len(paths) or len(set(labels)) != len(labels):
        raise InvalidInput(f"Give one unique name per CSV file; got names {labels} for {len(paths)} files.")
    tables = {name: load_method(path) for name, path in zip(labels, paths)}
    common_columns = set.intersection(*(set(next(iter(t.values()))) for t in tables.values()))
    if metrics is None:
        sdsc = sorted(c for c in common_columns if c.startswith("surface_dice_"))
        metrics = [m for m in ["dice", *sdsc, "assd_mm", "hd95_mm"] if m in common_columns]
    unknown = [m for m in metrics if m not in common_columns]
    if unknown:
        raise InvalidInput(f"Metric(s) {unknown} are not columns of every CSV; available: {sorted(common_columns)}.")
    if baseline is not None and baseline not in tables:
        raise InvalidInput(f"Baseline {baseline!r} is not one of the methods {labels}.")
    pairs = [(baseline, m) for m in labels if m != baseline] if baseline else list(itertools.combinations(labels, 2))
    structures = list(dict.fromkeys(s for t in tables.values() for (_, s) in t))

    for a, b in pairs:
        if not set(tables[a]) & set(tables[b]):
            raise InvalidInput(f"{a!r} and {b!r} have no case + structure in common; check that the CSV files evaluate "
                             "the same cases with the same structure names.")
    rows = []
    for metric, structure, (a, b) in itertools.product(metrics, structures, pairs):
        keys = sorted(k for k in tables[a] if k[1] == structure and k in tables[b])
        only = {k for k in tables[a] if k[1] == structure} ^ {k for k in tables[b] if k[1] == structure}
        if only and metric == metrics[0]:
            warnings.warn(f"{structure}: {len(only)} case(s) appear for only one of {a!r} and {b!r}; compared on the "
                          f"{len(keys)} common case(s).", stacklevel=2)
        result = paired_tests([tables[a][k][metric] for k in keys], [tables[b][k][metric] for k in keys])
        rows.append({"metric": metric, "structure": structure, "method_a": a, "method_b": b, **asdict(result)})
    if not any(row["n"] for row in rows):
        raise InvalidInput(f"No finite values of {list(metrics)} to compare in the common cases of {labels}.")
    _correct(rows, q, family)
    result = ComparisonResult(rows, labels, list(metrics), structures, q, family)
    result.markdown = comparison_markdown(result)
    if output_dir is not None:
        out = Path(output_dir)
        result.files["csv"] = write_csv(out / "comparison.csv", rows, COLUMNS)
        result.files["markdown"] = atomic_write_text(out / "comparison.md", result.markdown)
    return result


def _correct(rows: list[dict[str, Any]], q: float, family: str) -> None:
    for test, _ in TESTS:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            key = {"structure": (row["metric"], row["method_a"], row["method_b"]), "metric": (row["metric"],),
                   "all": ()}[family]
            groups[key].append(i)
        for indices in groups.values():
            p = [rows[i][f"p_{test}"] for i in indices]
            reject, bky = two_stage_bky(p, q)
            _, bh = benjamini_hochberg(p, q)
            for j, i in enumerate(indices):
                rows[i][f"p_{test}_bky"] = float(bky[j])
                rows[i][f"p_{test}_bh"] = float(bh[j])
                rows[i][f"reject_{test}_bky"] = bool(reject[j])


def _p_text(value: float, reject: bool) -> str:
    if math.isnan(value):
        return "n/a"
    return f"**{value:.3f}**" if reject else f"{value:.3f}"


def comparison_markdown(result: ComparisonResult) -> str:
    """Table-3-style Markdown: per test and metric, rows = method pairs, columns = structures, BKY-corrected p."""
    lines = [
        "# radconf comparison",
        "",
        (
            "Two-sided paired tests on matched cases; p-values corrected with the two-stage "
            f"Benjamini-Krieger-Yekutieli procedure (q = {result.q:g}; correction family: {result.family}). "
            "**Bold**: rejected at q. Mean differences and BH-corrected values are in comparison.csv."
        ),
        "",
    ]
    index = {(r["metric"], r["structure"], r["method_a"], r["method_b"]): r for r in result.rows}
    pairs = list(dict.fromkeys((r["method_a"], r["method_b"]) for r in result.rows))
    for test, title in TESTS:
        for metric in result.metrics:
            lines += [f"## {title}: {metric}", ""]
            lines.append("| Comparison | " + " | ".join(result.structures) + " |")
            lines.append("|---|" + "|".join("--:" for _ in result.structures) + "|")
            for a, b in pairs:
                cells = []
                for structure in result.structures:
                    row = index[(metric, structure, a, b)]
                    cells.append(_p_text(row[f"p_{test}_bky"], row[f"reject_{test}_bky"]))
                lines.append(f"| {a} vs {b} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines)
