"""Writes the outputs of :func:`~radconf.evaluation.folder.evaluate_folders`, all at once.

``metrics_per_case.csv`` (one row per case x structure), ``summary.json`` (strict JSON: NaN -> null, inf -> "inf"),
``summary.md`` (mean ± SD (min, max) table) and ``plots/*.png``. With confidence levels also
``continuous_per_case.csv``, ``calibration.csv``, ``plots/levels.png`` and ``plots/reliability.png``.

Every file is first written into a hidden staging folder next to the output folder and moved into place only when
all of them are written, so a failed write (a full disk, a plotting error) leaves the output folder as it was. An
existing output folder may hold other files (they are kept) but not files with these names that an earlier
evaluation did not write; the outputs of an earlier evaluation there are replaced, and those this run does not
write again (plots after ``--no_plots``, the confidence tables) are removed, so the folder never mixes two runs.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from radconf.errors import InvalidInput
from radconf.evaluation.result import CONTINUOUS_METRICS, EvaluationResult
from radconf.evaluation.summary import markdown_table
from radconf.io.files import atomic_write_text
from radconf.io.tables import write_csv, write_json

#: metrics shown in summary.md and plotted (surface Dice columns are added per tolerance)
MAIN_METRICS = ("dice", "iou", "hd95_mm", "hd_max_mm", "assd_mm", "msd_mm", "sensitivity", "precision")
VOLUME_METRICS = ("volume_ref_cm3", "volume_pred_cm3", "volume_diff_cm3")
#: the files and the folder an evaluation writes into its output folder
OUTPUT_FILES = ("metrics_per_case.csv", "continuous_per_case.csv", "calibration.csv", "summary.json", "summary.md")
PLOTS = "plots"


def _is_plot(name: str) -> bool:
    return name.endswith(".png") and (name.startswith("metric_") or name in ("levels.png", "reliability.png"))


def is_evaluation_folder(folder: Path) -> bool:
    """Whether ``folder/summary.json`` is the summary of an earlier evaluation (anything unreadable: no)."""
    try:
        data = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    settings = data.get("settings") if isinstance(data, dict) else None
    return isinstance(settings, dict) and "reference_dir" in settings and "per_structure" in data


def check_output_folder(output_dir: Path) -> None:
    """Refuses an output that is a file, or a folder holding output names an earlier evaluation did not write.

    Raises:
        InvalidInput: naming the folder, the file in the way and the fix.
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise InvalidInput(f"-o {output_dir} is a file; give a folder for the evaluation outputs (it is created if "
                           f"missing).")
    if not output_dir.is_dir():
        return
    plots = output_dir / PLOTS
    taken = [name for name in OUTPUT_FILES if os.path.lexists(output_dir / name)]
    taken += [f"{PLOTS}/{p.name}" for p in (plots.iterdir() if plots.is_dir() else ()) if _is_plot(p.name)]
    if os.path.lexists(plots) and not plots.is_dir():
        taken.append(PLOTS)
    if taken and not is_evaluation_folder(output_dir):
        raise InvalidInput(f"-o {output_dir} holds {taken[0]}, which no earlier radconf evaluation wrote there (no "
                           f"evaluation summary.json); radconf replaces only its own outputs. Choose another output "
                           f"folder, or move the file.")


def _main_metrics(result: EvaluationResult) -> list[str]:
    sdsc = [m for m in result.metrics if m.startswith("surface_dice_")]
    return ["dice", "iou", *sdsc, *MAIN_METRICS[2:]]


def mean_dice_text(mean_dice: float, decimals: int = 1) -> str:
    """``83.2 %``, or ``n/a`` (with the reason) when no structure has a defined Dice in any case."""
    if math.isnan(mean_dice):
        return "n/a (every structure is absent from every reference and prediction)"
    return f"{mean_dice * 100:.{decimals}f} %"


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
        f"{len(result.cases)} case(s); mean Dice over structures: {mean_dice_text(result.mean_dice)}  ",
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
    """Writes every output file of an evaluation into ``output_dir`` at once; returns ``{name: path}``.

    Raises:
        InvalidInput: ``output_dir`` is a file or holds files of the same names that are not an evaluation's.
        OSError: a write failed; ``output_dir`` is left as it was.
    """
    check_output_folder(output_dir)
    created = output_dir
    while not created.parent.exists() and created.parent != created:
        created = created.parent
    staging = output_dir.parent / f".{output_dir.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        staging.mkdir(parents=True)
        files = _write_outputs(result, staging, plots)
        _publish(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created != output_dir and not any(p.is_file() for p in created.rglob("*")):
            shutil.rmtree(created, ignore_errors=True)  # parent folders made for the staging folder only
        raise
    return {name: output_dir / path.relative_to(staging) for name, path in files.items()}


def _publish(staging: Path, output_dir: Path) -> None:
    """Moves the staged outputs into ``output_dir`` (renamed whole when it does not exist yet), then removes the
    outputs of an earlier evaluation that this one did not write."""
    if not output_dir.exists():
        staging.rename(output_dir)
        return
    earlier = is_evaluation_folder(output_dir)
    written = {p.relative_to(staging) for p in staging.rglob("*") if p.is_file()}
    for relative in sorted(written, key=lambda p: p.name == "summary.json"):  # the summary last
        (output_dir / relative).parent.mkdir(exist_ok=True)
        os.replace(staging / relative, output_dir / relative)
    shutil.rmtree(staging, ignore_errors=True)
    if not earlier:
        return
    for name in OUTPUT_FILES:
        if Path(name) not in written and (output_dir / name).is_file():
            (output_dir / name).unlink()
    plot_dir = output_dir / PLOTS
    if plot_dir.is_dir():
        for path in plot_dir.iterdir():
            if _is_plot(path.name) and Path(PLOTS, path.name) not in written:
                path.unlink()
        if not any(plot_dir.iterdir()):
            plot_dir.rmdir()


def _write_outputs(result: EvaluationResult, output_dir: Path, plots: bool) -> dict[str, Path]:
    """Writes every output file of an evaluation into the (staging) folder ``output_dir``."""
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
        files.update(_write_plots(result, output_dir / PLOTS))
    return files


def _write_plots(result: EvaluationResult, plot_dir: Path) -> dict[str, Path]:
    from radconf.evaluation.plots import (
        plot_level_curves,
        plot_metric_distributions,
        plot_reliability,
    )

    files = {}
    for path in plot_metric_distributions(result.rows, [*_main_metrics(result), "volume_diff_cm3"], plot_dir):
        files[f"plot_{path.stem}"] = path
    if result.continuous_rows:
        level_summary = {int(s.split(">=")[1]): stats for s, stats in result.summary.items() if ">=" in s}
        sdsc = [m for m in result.metrics if m.startswith("surface_dice_")]
        files["plot_levels"] = plot_level_curves(level_summary, ["dice", *sdsc], ["hd95_mm", "assd_mm"],
                                                 plot_dir / "levels.png")
        files["plot_reliability"] = plot_reliability(result.calibration, plot_dir / "reliability.png")
    return files
