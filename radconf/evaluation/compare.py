"""Paired comparison of methods from the per-case CSVs of ``radconf_evaluate`` (the chordoma ensemble study, Table 3).

For every structure x metric x pair of methods: the cases both methods have (matched on ``case`` + ``structure``) are
compared with a paired t-test and a Wilcoxon signed-rank test; the p-values are corrected with the two-stage
Benjamini-Krieger-Yekutieli procedure (q = 0.1 by default) and with plain Benjamini-Hochberg. The correction family
is, by default, the structures of one (test, metric, pair), as in the chordoma ensemble study ("corrected model-wise
across the six structures"); ``family="metric"`` corrects over all pairs and structures of a metric, ``family="all"``
over everything of one test.

Every input is checked before any test runs: each CSV line must have the header's number of cells (a partial copy is
refused, naming the file and line), a compared column must hold numbers (``nan``/``inf`` included), and the outputs
may not overwrite an input CSV.
"""
from __future__ import annotations

import csv
import io
import itertools
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from radconf.errors import InvalidInput, MissingInput
from radconf.evaluation.statistics import (
    benjamini_hochberg,
    paired_tests,
    two_stage_bky,
)
from radconf.io.files import atomic_write_text
from radconf.io.tables import write_csv

FAMILIES = ("structure", "metric", "all")
OUTPUT_FILES = ("comparison.csv", "comparison.md")
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


@dataclass
class MethodTable:
    """One method's metrics_per_case.csv: ``rows`` ``{(case, structure): {column: value}}``, its metric ``columns``
    and, per column, the first cell that is not a number (``(line, text)``; refused only if the column is compared)."""

    path: Path
    rows: dict[tuple[str, str], dict[str, float]]
    columns: list[str]
    not_numbers: dict[str, tuple[int, str]] = field(default_factory=dict)

    def check_numbers(self, metrics: Sequence[str]) -> None:
        for metric in metrics:
            if metric in self.not_numbers:
                line, text = self.not_numbers[metric]
                raise InvalidInput(f"{self.path} line {line}, column {metric!r}: {text!r} is not a number (radconf "
                                   f"writes numbers, 'nan' or 'inf'); fix the cell or write the file again with "
                                   f"radconf_evaluate.")


def _csv_lines(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, cells)`` of every non-blank line of a CSV file, header first.

    Raises:
        MissingInput: the file does not exist.
        InvalidInput: it is not a UTF-8 CSV file, or its last line lacks the line break radconf ends it with.
    """
    if not path.is_file():
        raise MissingInput(f"CSV file {path} does not exist; pass a metrics_per_case.csv written by radconf_evaluate.")
    try:
        text = path.read_text(encoding="utf-8")
        lines = [(number, cells) for number, cells in enumerate(csv.reader(io.StringIO(text, newline="")), 1) if cells]
    except (UnicodeDecodeError, csv.Error) as error:
        raise InvalidInput(f"{path} is not a CSV text file ({error}); pass the metrics_per_case.csv written by "
                           f"radconf_evaluate.") from None
    if lines and not text.endswith(("\n", "\r")):
        raise InvalidInput(f"{path} ends in the middle of line {lines[-1][0]}: the file looks truncated (a partial "
                           f"copy). Copy it again or write it again with radconf_evaluate.")
    return lines


def load_method(path: str | os.PathLike) -> MethodTable:
    """One method's metrics_per_case.csv, every line checked.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if it is not a CSV file, is truncated, has no rows, lacks the ``case``/``structure`` columns,
            has a line with another number of cells than the header or repeats a case + structure.
    """
    path = Path(path)
    lines = _csv_lines(path)
    if len(lines) < 2:
        raise InvalidInput(f"{path} holds no rows; pass a metrics_per_case.csv written by radconf_evaluate.")
    header = lines[0][1]
    missing = [c for c in ("case", "structure") if c not in header]
    if missing:
        raise InvalidInput(f"{path} has no {' and '.join(repr(c) for c in missing)} column (columns: "
                           f"{', '.join(header)}); pass metrics_per_case.csv files written by radconf_evaluate.")
    columns = [c for c in header if c not in ("case", "structure", "label")]
    table = MethodTable(path, {}, columns)
    for number, cells in lines[1:]:
        if len(cells) != len(header):
            raise InvalidInput(f"{path} line {number} has {len(cells)} of the {len(header)} columns: the file is "
                               f"truncated or corrupt. Copy it again or write it again with radconf_evaluate.")
        row = dict(zip(header, cells))
        key = (row["case"], row["structure"])
        if key in table.rows:
            raise InvalidInput(f"{path} lists case {key[0]!r} / structure {key[1]!r} twice (line {number}); one row "
                               f"per pair expected.")
        table.rows[key] = {c: _number(table, c, row[c], number) for c in columns}
    return table


def _number(table: MethodTable, column: str, text: str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        table.not_numbers.setdefault(column, (line, text))
        return math.nan


def _check_arguments(paths: list[Path], names: Sequence[str] | None, q: float, baseline: str | None, family: str,
                     output_dir: str | os.PathLike | None) -> list[str]:
    """Checks everything that needs no CSV content; returns the method names."""
    if len(paths) < 2:
        raise InvalidInput("radconf_compare needs at least two metrics_per_case.csv files (one per method).")
    resolved = [p.resolve() for p in paths]
    twice = next((p for p, r in zip(paths, resolved) if resolved.count(r) > 1), None)
    if twice is not None:
        raise InvalidInput(f"{twice} is given twice; give each method's metrics_per_case.csv once.")
    if family not in FAMILIES:
        raise InvalidInput(f"--family {family!r} is not a correction family; choose one of {', '.join(FAMILIES)}.")
    if not isinstance(q, (int, float)) or not 0 < q < 1:
        raise InvalidInput(f"--q (the FDR level) must lie strictly between 0 and 1, got {q!r}.")
    labels = list(names) if names else method_names(paths)
    if len(labels) != len(paths):
        raise InvalidInput(f"--names gives {len(labels)} name(s) for {len(paths)} CSV files; give one name per file.")
    repeated = next((n for n in labels if labels.count(n) > 1), None)
    if repeated is not None:
        raise InvalidInput(f"--names gives {repeated!r} twice; give one unique name per CSV file.")
    if baseline is not None and baseline not in labels:
        raise InvalidInput(f"--baseline {baseline!r} is not one of the methods {labels} (set by --names, else the "
                           f"folder names).")
    if output_dir is not None:
        out = Path(output_dir)
        if out.exists() and not out.is_dir():
            raise InvalidInput(f"-o {out} is a file; give a folder for comparison.csv and comparison.md.")
        for name in OUTPUT_FILES:
            if (out / name).resolve() in resolved:
                raise InvalidInput(f"-o {out}: writing {name} there would overwrite the input {out / name}; choose "
                                   f"another output folder.")
    return labels


def _choose_metrics(tables: dict[str, MethodTable], metrics: Sequence[str] | None) -> list[str]:
    common = set.intersection(*(set(t.columns) for t in tables.values()))
    if metrics is None:
        sdsc = sorted(c for c in common if c.startswith("surface_dice_"))
        metrics = [m for m in ["dice", *sdsc, "assd_mm", "hd95_mm"] if m in common]
        if not metrics:
            raise InvalidInput(f"The CSV files share no metric column radconf compares by default (dice, "
                               f"surface_dice_*, assd_mm, hd95_mm; shared: {', '.join(sorted(common)) or 'none'}); "
                               f"pass --metric with columns they all have.")
    unknown = [m for m in metrics if m not in common]
    if unknown:
        raise InvalidInput(f"--metric {' '.join(unknown)}: not a column of every CSV; available: "
                           f"{', '.join(sorted(common)) or 'none'}.")
    for table in tables.values():
        table.check_numbers(metrics)
    return list(metrics)


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
        q: FDR level of the two-stage BKY procedure, in (0, 1).
        baseline: compare every method with this one only (default: every pair).
        family: correction family, one of :data:`FAMILIES`.
        output_dir: write comparison.csv and comparison.md there (None: write nothing); never over an input CSV.

    Returns:
        A :class:`ComparisonResult`.

    Raises:
        ValueError: fewer than two files, a file given twice, unknown names/metrics/family, q outside (0, 1), a
            truncated or corrupt CSV, no common case.
        FileNotFoundError: a CSV file is missing.
    """
    paths = [Path(p) for p in csv_paths]
    labels = _check_arguments(paths, names, q, baseline, family, output_dir)
    tables = {name: load_method(path) for name, path in zip(labels, paths)}
    metrics = _choose_metrics(tables, metrics)
    pairs = [(baseline, m) for m in labels if m != baseline] if baseline else list(itertools.combinations(labels, 2))
    rows_of = {name: table.rows for name, table in tables.items()}
    structures = list(dict.fromkeys(s for t in rows_of.values() for (_, s) in t))
    for a, b in pairs:
        if not set(rows_of[a]) & set(rows_of[b]):
            raise InvalidInput(f"{a!r} and {b!r} have no case + structure in common; check that the CSV files evaluate "
                               "the same cases with the same structure names.")
    rows = _test_rows(rows_of, metrics, structures, pairs)
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


def _test_rows(tables: dict[str, dict], metrics: list[str], structures: list[str],
               pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
    rows = []
    for metric, structure, (a, b) in itertools.product(metrics, structures, pairs):
        keys = sorted(k for k in tables[a] if k[1] == structure and k in tables[b])
        only = {k for k in tables[a] if k[1] == structure} ^ {k for k in tables[b] if k[1] == structure}
        if only and metric == metrics[0]:
            warnings.warn(f"{structure}: {len(only)} case(s) appear for only one of {a!r} and {b!r}; compared on the "
                          f"{len(keys)} common case(s).", stacklevel=3)
        result = paired_tests([tables[a][k][metric] for k in keys], [tables[b][k][metric] for k in keys])
        rows.append({"metric": metric, "structure": structure, "method_a": a, "method_b": b, **asdict(result)})
    return rows


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
