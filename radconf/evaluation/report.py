"""Writes the outputs of :func:`~radconf.evaluation.folder.evaluate_folders` (all files atomically).

``metrics_per_case.csv`` (one row per case x structure), ``summary.json`` (strict JSON: NaN -> null, inf -> "inf"),
``summary.md`` (mean ± SD (min, max) table) and ``plots/*.png``. With confidence levels also
``continuous_per_case.csv``, ``calibration.csv``, ``plots/levels.png`` and ``plots/reliability.png``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from radconf.evaluation.result import CONTINUOUS_METRICS, EvaluationResult
from radconf.evaluation.summary import markdown_table
from radconf.io.files import atomic_write_text
from radconf.io.tables import write_csv, write_json

#: metrics shown in summary.md and plotted (surface Dice columns are added per tolerance)
MAIN_METRICS = ("dice", "iou", "hd95_mm", "hd_max_mm", "assd_mm", "msd_mm", "sensitivity", "precision")
VOLUME_METRICS = ("volume_ref_cm3", "volume_pred_cm3", "volume_diff_cm3")


def _main_metrics(result: EvaluationResult) -> list[str]:
    sdsc = [m for m in result.metrics if m.startswith("surface_dice_")]
    return ["dice", "iou", *sdsc, *MAIN_METRICS[2:]]


def _summary_json(result: EvaluationResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "settings": result.settings,
        "mean_dice": result.mean_dice,
        "n_cases": len(result.cases),
        "cases": result.cases,
        "missing_cases": result.missing_cases,
        "extra_predictions": result.extra_predictions,
        "metrics": result.metrics,
        "per_structure": result.summary,
    }
    if result.joint_counts is not None:
        data["calibration"] = result.calibration
        data["joint_counts_pred_by_ref"] = result.joint_counts.tolist()
    return data


def _summary_markdown(result: EvaluationResult) -> str:
    settings = result.settings
    structures = [s for s in result.summary if s != "continuous"]
    lines = [
        "# radconf evaluation",
        "",
        f"Reference: `{settings['reference_dir']}`  ",
        f"Prediction: `{settings['prediction_dir']}`  ",
        f"{len(result.cases)} case(s); mean Dice over structures: {result.mean_dice * 100:.1f} %  ",
        f"HD95 convention: `{settings['hd95_convention']}`; surface Dice tolerances: "
        + ", ".join(f"{t:g} mm" for t in settings["tolerances_mm"]),
        "",
        (
            "Cells: mean ± SD (min, max) over cases; ratios in %. NaN values (metric undefined, both masks empty) are "
            "left out; `inf` means at least one case has an empty mask on one side."
        ),
        "",
    ]
    if result.missing_cases:
        lines += [f"**Not evaluated (no prediction):** {', '.join(result.missing_cases)}", ""]
    overlap = {s: result.summary[s] for s in structures}
    lines.append(markdown_table(overlap, _main_metrics(result), title="Per structure"))
    lines.append(markdown_table(overlap, VOLUME_METRICS, title="Volumes"))
    if "continuous" in result.summary:
        lines.append(markdown_table({"continuous": result.summary["continuous"]}, CONTINUOUS_METRICS,
                                    title="Continuous metrics (confidence maps)"))
        lines += ["## Calibration (pooled over cases)", "", "| predicted level | L/K | voxels | observed fraction |",
                  "|--:|--:|--:|--:|"]
        for row in result.calibration:
            observed = row["observed_fraction"]
            text = "n/a" if math.isnan(observed) else f"{observed:.3f}"
            lines.append(f"| {row['level']} | {row['predicted_confidence']:.2f} | {row['n_voxels']} | {text} |")
        lines.append("")
    return "\n".join(lines)


def write_evaluation_outputs(result: EvaluationResult, output_dir: Path, plots: bool = True) -> dict[str, Path]:
    """Writes every output file of an evaluation into ``output_dir``; returns ``{name: path}``."""
    output_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    columns = ["case", "structure", "label", *result.metrics]
    files["metrics_per_case"] = write_csv(output_dir / "metrics_per_case.csv", result.rows, columns)
    if result.continuous_rows:
        keys = [k for k in result.continuous_rows[0] if k not in ("case", "structure")]
        files["continuous_per_case"] = write_csv(output_dir / "continuous_per_case.csv", result.continuous_rows,
                                                 ["case", *keys])
        files["calibration"] = write_csv(output_dir / "calibration.csv", result.calibration,
                                         ["level", "predicted_confidence", "n_voxels", "observed_fraction"])
    files["summary_json"] = write_json(output_dir / "summary.json", _summary_json(result))
    files["summary_md"] = atomic_write_text(output_dir / "summary.md", _summary_markdown(result))
    if plots:
        from radconf.evaluation.plots import (
            plot_level_curves,
            plot_metric_distributions,
            plot_reliability,
        )

        plot_dir = output_dir / "plots"
        for path in plot_metric_distributions(result.rows, [*_main_metrics(result), "volume_diff_cm3"], plot_dir):
            files[f"plot_{path.stem}"] = path
        if result.continuous_rows:
            level_summary = {int(s.split(">=")[1]): stats for s, stats in result.summary.items() if ">=" in s}
            sdsc = [m for m in result.metrics if m.startswith("surface_dice_")]
            files["plot_levels"] = plot_level_curves(level_summary, ["dice", *sdsc], ["hd95_mm", "assd_mm"],
                                                     plot_dir / "levels.png")
            files["plot_reliability"] = plot_reliability(result.calibration, plot_dir / "reliability.png")
    return files
