"""Shared by the benchmark scripts: writes a result table as Markdown (with its header lines) and CSV, atomically."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
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
