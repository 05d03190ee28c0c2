"""The outputs of a calibration: ``calibration_probabilities.csv`` / ``.json`` and the reliability diagrams
``plots/reliability_<structure>.png`` (matplotlib 'Agg'), each written atomically.

A diagram has one panel per region (whole image, near the structure). In each: the observed frequency against the
mean confidence of every non-empty bin (the reference label maps, and the reader fraction when readers were
given), the diagonal of perfect calibration, and the voxel count of each bin as bars on a logarithmic axis at the right.
"""
from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radconf.io.files import atomic_write_bytes

CSV_NAME = "calibration_probabilities.csv"
JSON_NAME = "calibration_probabilities.json"
PLOTS = "plots"
COLUMNS = ("structure", "region", "reference", "bins", "cases", "voxels", "ece", "adaptive_ece", "mce", "brier")
DRAWN = {"reference": ("reference label maps", "tab:blue", "o"), "readers_fraction": ("reader fraction",
                                                                                       "tab:orange", "s")}
REGION_TITLES = {"whole_image": "whole image", "near_structure": "near the structure"}


def write_calibration_outputs(output_dir: Path, rows: Sequence[Mapping[str, Any]],
                              tables: Sequence[Sequence[Mapping[str, float]]], record: Mapping[str, Any],
                              plots: bool = True) -> list[Path]:
    """Writes the CSV (the rows), the JSON (``record`` plus the rows, each with its reliability table) and, with
    ``plots``, the diagrams into ``output_dir`` (created); returns the files."""
    from radconf.io.tables import write_csv, write_json

    output_dir.mkdir(parents=True, exist_ok=True)
    files = [write_csv(output_dir / CSV_NAME, rows, COLUMNS),
             write_json(output_dir / JSON_NAME, {**record, "rows": [{**row, "reliability": table}
                                                                    for row, table in zip(rows, tables)]})]
    return files + (plot_reliability_diagrams(rows, tables, output_dir / PLOTS) if plots else [])


def plot_file_name(structure: str) -> str:
    """``reliability_<structure>.png`` with characters other than letters, digits, ``-`` and ``_`` written out
    (``level>=2`` -> ``reliability_level_ge_2.png``)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", structure.replace(">=", "_ge_").replace("<=", "_le_")).strip("_")
    return f"reliability_{safe or 'structure'}.png"


def plot_reliability_diagrams(rows: Sequence[Mapping[str, Any]], tables: Sequence[Sequence[Mapping[str, float]]],
                              output_dir: str | os.PathLike) -> list[Path]:
    """One reliability diagram per structure.

    Args:
        rows: calibration rows (``structure``, ``region``, ``reference``, ``ece``, ...).
        tables: each row's reliability table (``low``, ``high``, ``count``, ``mean_confidence``,
            ``observed_frequency``).
        output_dir: the plots folder (created).

    Returns:
        The files written.
    """
    structures = list(dict.fromkeys(str(row["structure"]) for row in rows))
    names: dict[str, str] = {}
    written = []
    for structure in structures:
        name = plot_file_name(structure)
        if name in names.values():  # two structure names written out alike: keep both files
            name = name.replace(".png", f"_{len(names)}.png")
        names[structure] = name
        chosen = [(row, table) for row, table in zip(rows, tables)
                  if row["structure"] == structure and row["reference"] in DRAWN]
        written.append(_plot_structure(structure, chosen, Path(output_dir) / name))
    return written


def _plot_structure(structure: str, chosen: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, float]]]],
                    path: Path) -> Path:
    plt = _pyplot()
    regions = list(dict.fromkeys(row["region"] for row, _ in chosen))
    fig, axes = plt.subplots(1, len(regions), figsize=(4.6 * len(regions), 4.4), squeeze=False)
    for ax, region in zip(axes[0], regions):
        counts_ax = ax.twinx()
        ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1, label="perfect calibration")
        for index, (row, table) in enumerate((r, t) for r, t in chosen if r["region"] == region):
            label, colour, marker = DRAWN[row["reference"]]
            filled = [b for b in table if b["count"] > 0]
            ax.plot([b["mean_confidence"] for b in filled], [b["observed_frequency"] for b in filled], marker=marker,
                    color=colour, markersize=4, label=f"{label} (ECE {_percent(row['ece'])}, {row['bins']} bins)")
            if index == 0:
                centres = [(b["low"] + b["high"]) / 2 for b in table]
                counts_ax.bar(centres, [max(b["count"], 0) for b in table], width=1.0 / max(len(table), 1) * 0.9,
                              color=colour, alpha=0.18)
        counts_ax.set_yscale("log")
        counts_ax.set_ylabel("voxels per bin (log)", fontsize=8)
        ax.set_zorder(counts_ax.get_zorder() + 1)
        ax.patch.set_visible(False)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability", ylabel="observed frequency")
        ax.set_title(f"{structure}: {REGION_TITLES.get(region, region)}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    fig.tight_layout(w_pad=2.0)
    return _save(fig, path)


def _percent(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.2f} %"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
