"""PNG plots of the evaluation (matplotlib, 'Agg' backend, imported lazily; files written atomically).

* one box + strip plot per metric with one box per structure (``metric_<name>.png``),
* metric versus threshold level for confidence-level maps (``levels.png``),
* reliability diagram of the level calibration (``reliability.png``).

Non-finite values cannot be drawn: NaN and inf values are left out of the boxes and their counts are written in the
axis title, so that nothing disappears silently.
"""
from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from radconf.evaluation.summary import display_spec
from radconf.io.files import atomic_write_bytes


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def plot_metric_distributions(
    rows: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    output_dir: str | os.PathLike,
    structure_key: str = "structure",
) -> list[Path]:
    """Box + jittered strip plot per metric, one box per structure; returns the written files."""
    plt = _pyplot()
    structures = list(dict.fromkeys(str(r[structure_key]) for r in rows))
    written = []
    rng = np.random.default_rng(0)
    for metric in metrics:
        if not any(metric in r for r in rows):
            continue
        label, scale, _ = display_spec(metric)
        data, n_inf, n_nan = [], 0, 0
        for structure in structures:
            values = np.array([float(r.get(metric, math.nan)) for r in rows if str(r[structure_key]) == structure])
            n_inf += int(np.isinf(values).sum())
            n_nan += int(np.isnan(values).sum())
            data.append(values[np.isfinite(values)] * scale)
        fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(structures) + 1.5), 4.0))
        positions = np.arange(1, len(structures) + 1)
        ax.boxplot(data, positions=positions, widths=0.55, showfliers=False)
        for pos, values in zip(positions, data):
            ax.scatter(pos + rng.uniform(-0.15, 0.15, values.size), values, s=12, alpha=0.6, color="tab:blue")
        ax.set_xticks(positions, structures, rotation=30 if len(structures) > 4 else 0, ha="right")
        ax.set_ylabel(label)
        title = label
        if n_inf or n_nan:
            title += f"  (not drawn: {n_inf} inf, {n_nan} NaN)"
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        safe = metric.replace(".", "p")
        written.append(_save(fig, Path(output_dir) / f"metric_{safe}.png"))
    return written


def plot_level_curves(
    level_summary: Mapping[int, Mapping[str, Mapping[str, float]]],
    overlap_metrics: Sequence[str],
    distance_metrics: Sequence[str],
    path: str | os.PathLike,
) -> Path:
    """Mean ± SD of metrics versus threshold level L (``level >= L``): overlap metrics left, distances right.

    Args:
        level_summary: ``{L: {metric: {"mean", "sd", ...}}}`` for L = 1..K.
        overlap_metrics: ratio metrics for the left panel (shown in %).
        distance_metrics: distance metrics (mm) for the right panel.
        path: output PNG.
    """
    plt = _pyplot()
    levels = sorted(level_summary)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metrics in zip(axes, (overlap_metrics, distance_metrics)):
        for metric in metrics:
            label, scale, _ = display_spec(metric)
            mean = np.array([level_summary[L].get(metric, {}).get("mean", math.nan) for L in levels], dtype=float)
            sd = np.array([level_summary[L].get(metric, {}).get("sd", math.nan) for L in levels], dtype=float)
            finite = np.isfinite(mean)
            ax.errorbar(
                np.array(levels)[finite], mean[finite] * scale, yerr=np.nan_to_num(sd[finite] * scale), marker="o",
                capsize=3, label=label,
            )
        ax.set_xlabel("threshold level L (level >= L)")
        ax.set_xticks(levels)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("%")
    axes[1].set_ylabel("mm")
    fig.suptitle("Metrics per confidence threshold (mean ± SD over cases)", fontsize=10)
    return _save(fig, path)


def plot_reliability(calibration: Sequence[Mapping[str, float]], path: str | os.PathLike) -> Path:
    """Reliability diagram: observed mean reference fraction versus predicted confidence L/K, with voxel counts."""
    plt = _pyplot()
    x = np.array([row["predicted_confidence"] for row in calibration], dtype=float)
    y = np.array([row["observed_fraction"] for row in calibration], dtype=float)
    n = np.array([row["n_voxels"] for row in calibration], dtype=float)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ok = np.isfinite(y)
    ax.plot(x[ok], y[ok], "-o", color="tab:red", label="observed")
    for xi, yi, ni in zip(x[ok], y[ok], n[ok]):
        ax.annotate(f"n={int(ni)}", (xi, yi), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlim(-0.03, 1.03)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel("predicted confidence (level / K)")
    ax.set_ylabel("observed reference fraction")
    ax.set_title("Confidence-level calibration", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)
