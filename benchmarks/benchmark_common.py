"""Shared by the benchmark scripts: best-of-N timing, and result tables written as Markdown and CSV atomically."""
from __future__ import annotations

import argparse
import csv
import io
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from radconf.io.files import atomic_write_text


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


def run_command(command: list[str], env: dict[str, str], log: Path) -> float:
    """Runs a command, appends its output to ``log``; returns wall seconds."""
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n$ {' '.join(command)}\n")
        handle.flush()
        subprocess.run(command, env=env, stdout=handle, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def run_module(arguments: list[str], env: dict[str, str], log: Path) -> float:
    """Runs a radconf command (``python -m radconf.cli.X``) with :func:`run_command`."""
    return run_command([sys.executable, "-m", *arguments], env, log)


def median_epoch_seconds(fold_folder: Path) -> float:
    """Median of nnU-Net's logged epoch times in a fold folder."""
    times = [float(t) for log in sorted(Path(fold_folder).glob("training_log_*.txt"))
             for t in re.findall(r"Epoch time: ([\d.]+) s", log.read_text())]
    return statistics.median(times)


def benchmark_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every benchmark takes: ``--work`` (its nnU-Net folders and runs) and ``--out`` (tables and
    figures; default: ``--work``)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", default=None)
    return parser


def benchmark_workspace(work: str, out: str | None):
    """``(work, out, nnU-Net folders, environment, log file)`` of a training benchmark: nnU-Net's raw/preprocessed/
    results folders inside ``work`` (created), an environment pointing there, ``out`` (default ``work``) created."""
    import os

    work_folder = Path(work).resolve()
    out_folder = Path(out).resolve() if out else work_folder
    out_folder.mkdir(parents=True, exist_ok=True)
    folders = {name: work_folder / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **{k: str(v) for k, v in folders.items()}}
    return work_folder, out_folder, folders, env, work_folder / "benchmark_log.txt"


def evaluate_structures(reference: Path, predictions: Path, output: Path, structures: Sequence[str]) -> dict:
    """radconf's evaluation of a prediction folder: per structure the mean, median and minimum Dice, the mean HD95
    and the mean false-negative volume (reference volume x (1 - sensitivity), cm^3) over the cases."""
    import numpy as np

    from radconf.evaluation import evaluate_folders

    result = evaluate_folders(reference_dir=reference, prediction_dir=predictions, output_dir=output,
                              progress=False, plots=False)
    by_structure: dict[str, dict] = {}
    for structure in structures:
        rows = [r for r in result.rows if r["structure"] == structure]
        fn = [float(r["volume_ref_cm3"]) * (1 - float(r["sensitivity"])) for r in rows]
        by_structure[structure] = {
            "dice_mean": float(np.mean([r["dice"] for r in rows])),
            "dice_median": float(np.median([r["dice"] for r in rows])),
            "dice_min": float(np.min([r["dice"] for r in rows])),
            "hd95_mean": float(np.nanmean([r["hd95_mm"] for r in rows])),
            "fn_cm3_mean": float(np.mean(fn)),
        }
    return by_structure
