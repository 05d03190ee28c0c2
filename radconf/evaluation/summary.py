"""Per-structure statistics of per-case metrics and their Markdown table (the chordoma ensemble study, Table 1 style).

For each structure and metric: mean, sample SD (ddof = 1), median, min, max and n over the cases, plus the worst case.
NaN values (metric undefined, e.g. Dice with both masks empty) are left out and counted in ``n_nan``; ``inf`` values
(a distance towards an empty mask) are kept, so a single missed structure makes the mean, max and SD visibly ``inf``
(SD is NaN when inf values are present: it is undefined) and is counted in ``n_inf``.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from radconf.evaluation.metrics import LOWER_IS_BETTER, UNDIRECTED

Summary = dict[str, dict[str, dict[str, Any]]]


def describe(values: Sequence[float]) -> dict[str, float]:
    """mean, sd (ddof 1), median, min, max, n (non-NaN count), n_nan, n_inf of ``values``."""
    arr = np.asarray(values, dtype=np.float64)
    valid = arr[~np.isnan(arr)]
    n_inf = int(np.isinf(valid).sum())
    stats: dict[str, float] = {
        "mean": math.nan,
        "sd": math.nan,
        "median": math.nan,
        "min": math.nan,
        "max": math.nan,
        "n": int(valid.size),
        "n_nan": int(arr.size - valid.size),
        "n_inf": n_inf,
    }
    if valid.size:
        with np.errstate(invalid="ignore"):
            stats["mean"] = float(np.mean(valid))
            stats["median"] = float(np.median(valid))
        stats["min"], stats["max"] = float(valid.min()), float(valid.max())
        if valid.size > 1 and n_inf == 0:
            stats["sd"] = float(np.std(valid, ddof=1))
    return stats


def summarize(
    rows: Sequence[Mapping[str, Any]], metrics: Sequence[str], group_key: str = "structure", case_key: str = "case"
) -> Summary:
    """Statistics of every metric per group (structure), with the worst case.

    Args:
        rows: per-case rows (dicts) holding ``group_key``, ``case_key`` and the metric columns.
        metrics: metric columns to summarise (missing columns are skipped).
        group_key: column that names the structure.
        case_key: column that names the case.

    Returns:
        ``{structure: {metric: {mean, sd, median, min, max, n, n_nan, n_inf, worst_case, worst_value}}}``;
        ``worst_case`` is the case with the lowest value (highest for distances and FPR); volumes have none.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row[group_key]), []).append(row)
    summary: Summary = {}
    for group, group_rows in groups.items():
        summary[group] = {}
        for metric in metrics:
            if not any(metric in row for row in group_rows):
                continue
            values = [float(row.get(metric, math.nan)) for row in group_rows]
            stats: dict[str, Any] = describe(values)
            stats["worst_case"], stats["worst_value"] = _worst(group_rows, values, metric, case_key)
            summary[group][metric] = stats
    return summary


def _worst(rows: Sequence[Mapping[str, Any]], values: list[float], metric: str, case_key: str) -> tuple[Any, float]:
    if metric in UNDIRECTED or all(math.isnan(v) for v in values):
        return None, math.nan
    sign = 1.0 if metric in LOWER_IS_BETTER else -1.0
    best_idx = max((i for i, v in enumerate(values) if not math.isnan(v)), key=lambda i: sign * values[i])
    return rows[best_idx].get(case_key), values[best_idx]


def mean_of_means(summary: Summary, metric: str = "dice") -> float:
    """Mean over structures of the per-structure mean of ``metric`` (structures with a NaN mean are left out)."""
    means = [s[metric]["mean"] for s in summary.values() if metric in s and not math.isnan(s[metric]["mean"])]
    return float(np.mean(means)) if means else math.nan


# ------------------------------------------------------------------------------------------------------ Markdown
#: column label, unit scale and decimals of the metrics shown in summary.md
_DISPLAY = {
    "dice": ("Dice (%)", 100.0, 1),
    "iou": ("IoU (%)", 100.0, 1),
    "sensitivity": ("Sensitivity (%)", 100.0, 1),
    "precision": ("Precision (%)", 100.0, 1),
    "specificity": ("Specificity (%)", 100.0, 2),
    "hd95_mm": ("HD95 (mm)", 1.0, 2),
    "hd_max_mm": ("HD max (mm)", 1.0, 2),
    "assd_mm": ("ASSD (mm)", 1.0, 2),
    "msd_mm": ("MSD (mm)", 1.0, 2),
    "volume_ref_cm3": ("Vol. ref (cm³)", 1.0, 1),
    "volume_pred_cm3": ("Vol. pred (cm³)", 1.0, 1),
    "volume_diff_cm3": ("Vol. diff (cm³)", 1.0, 1),
    "continuous_dice": ("cont. Dice (%)", 100.0, 1),
    "continuous_accuracy": ("cont. accuracy (%)", 100.0, 1),
    "continuous_sensitivity": ("cont. sensitivity (%)", 100.0, 1),
    "continuous_specificity": ("cont. specificity (%)", 100.0, 1),
    "mean_level_dice": ("mean level Dice (%)", 100.0, 1),
}


def display_spec(metric: str) -> tuple[str, float, int]:
    """(column label, scale, decimals) of a metric in Markdown tables."""
    if metric.startswith("surface_dice_") and metric.endswith("mm"):
        tolerance = metric[len("surface_dice_") : -2]
        try:
            tolerance = f"{float(tolerance):g}"
        except ValueError:
            pass
        return f"SDSC {tolerance} mm (%)", 100.0, 1
    return _DISPLAY.get(metric, (metric, 1.0, 3))


def _number(value: float, scale: float, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = f"{value * scale:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_cell(stats: Mapping[str, Any], metric: str) -> str:
    """``mean ± SD (min, max)`` as in the chordoma ensemble study Table 1, scaled for display."""
    _, scale, decimals = display_spec(metric)
    if not stats or stats.get("n", 0) == 0:
        return "n/a"
    mean = _number(stats["mean"], scale, decimals)
    sd = _number(stats["sd"], scale, decimals)
    lo, hi = _number(stats["min"], scale, decimals), _number(stats["max"], scale, decimals)
    return f"{mean} ± {sd} ({lo}, {hi})"


def markdown_table(summary: Summary, metrics: Sequence[str], title: str | None = None) -> str:
    """Markdown table: one row per structure, one column per metric, cells ``mean ± SD (min, max)``."""
    present = [m for m in metrics if any(m in s for s in summary.values())]
    lines = [f"## {title}", ""] if title else []
    header = ["Structure", "n"] + [display_spec(m)[0] for m in present]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["--:"] * (len(header) - 1)) + "|")
    for structure, stats in summary.items():
        n = max((stats[m]["n"] + stats[m]["n_nan"] for m in present if m in stats), default=0)
        cells = [structure, str(n)] + [format_cell(stats.get(m, {}), m) for m in present]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
