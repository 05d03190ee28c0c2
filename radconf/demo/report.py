"""The demo's Markdown report: figures, timings, the commands that produced them, and PNG overlays."""
from __future__ import annotations

import shutil
from pathlib import Path

from radconf.io import atomic_write_text


def _format(mean: float, sd: float, unit: str = "") -> str:
    return f"{mean:.3f} ± {sd:.3f}{unit}"


def write_report(result, phantom, predictions: Path, structures: dict[str, int], training_folder: Path,
                 settings) -> Path:
    """Writes ``<output>/report/report.md`` with one overlay PNG per held-out case; returns the report path."""
    from radconf.demo.overlays import plot_case_overlay

    report_dir = result.output / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    overlays = []
    for case in phantom.test_cases:
        png = plot_case_overlay(phantom.folder / "imagesTs" / f"{case}_0000.nii.gz",
                                phantom.folder / "labelsTs" / f"{case}.nii.gz", predictions / f"{case}.nii.gz",
                                structures, report_dir / f"overlay_{case}.png", focus_label=structures.get("gtv"))
        overlays.append(png.name)
    curve = training_folder / "progress.png"
    if curve.is_file():
        shutil.copyfile(curve, report_dir / "training_progress.png")
    rows = [f"| {name} | {_format(m['dice'], m['dice_sd'])} | {_format(m['hd95_mm'], m['hd95_sd'])} |"
            for name, m in result.per_structure.items()]
    finished = {name: seconds for name, seconds in result.timings_s.items() if seconds >= 0}  # not "report" itself
    timing_rows = [f"| {name} | {seconds:.1f} |" for name, seconds in finished.items()]
    lines = [
        "# radconf demo report",
        "",
        f"Synthetic pelvic phantom (Dataset{settings.dataset_id:03d}): {settings.num_train} training cases, "
        f"{len(phantom.test_cases)} held-out cases. Network planned by nnU-Net with radconf's `cpu` preset, "
        f"trained for {settings.epochs} x {settings.iterations_per_epoch} iterations on fold `all`, evaluated on "
        f"the held-out cases.",
        "",
        f"**Mean Dice over structures: {result.mean_dice:.3f}**",
        "",
        "| structure | Dice (mean ± SD) | HD95 mm (mean ± SD) |",
        "|---|---|---|",
        *rows,
        "",
        "Per-case metrics: `evaluation/metrics_per_case.csv`; summary: `evaluation/summary.json`.",
        "",
        "## Wall time per stage (s)",
        "",
        "| stage | seconds |",
        "|---|---|",
        *timing_rows,
        f"| total (before the report) | {sum(finished.values()):.1f} |",
        "",
        "## Held-out cases (reference solid, prediction dashed)",
        "",
        *[f"![{name}]({name})" for name in overlays],
        "",
    ]
    if (report_dir / "training_progress.png").is_file():
        lines += ["## Training curve (nnU-Net)", "", "![training progress](training_progress.png)", ""]
    lines += ["## Commands", "", "The stages ran as these commands (see `demo_log.txt` for their output):", "",
              "```", *[line[2:] for line in (result.output / "demo_log.txt").read_text().splitlines()
                       if line.startswith("$ ")], "```", ""]
    return atomic_write_text(report_dir / "report.md", "\n".join(lines))
