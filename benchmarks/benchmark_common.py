"""Shared by the benchmark scripts: best-of-N timing, and result tables written as Markdown and CSV atomically."""
from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from radconf.io import atomic_write_text


def write_tables(out: str | Path, lines: Sequence[str], rows: Sequence[Mapping]) -> tuple[Path, Path]:
    """``out.md`` gets ``lines``, ``out.csv`` the ``rows`` (dicts sharing the first row's keys); prints the table."""
    out = Path(out)
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    markdown = atomic_write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    spreadsheet = atomic_write_text(out.with_suffix(".csv"), table.getvalue())
    print("\n".join(lines))
    print(f"wrote {markdown} and {spreadsheet}")
    return markdown, spreadsheet


def best_time(function: Callable[[], object], repeats: int, warm_up: bool = True) -> tuple[float, object]:
    """Best wall time over ``repeats`` runs (after one untimed warm-up run unless ``warm_up`` is False) and the last
    result."""
    result = function() if warm_up else None
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result
