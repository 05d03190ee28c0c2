"""The demo's Markdown report: figures, timings, the commands that produced them, and PNG overlays."""
from __future__ import annotations

import shutil
from pathlib import Path

from radconf.demo.common import CLINICAL_LEVEL, CONFIDENCE_TRAINER
from radconf.io.files import atomic_write_text


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
    finished = dict(result.timings_s)  # every stage before the report
    timing_rows = [f"| {name} | {seconds:.1f} |" for name, seconds in finished.items()]
    lines = [
        "# radconf demo report",
        "",
        (f"Synthetic pelvic phantom (Dataset{settings.dataset_id:03d}): {settings.num_train} training cases, "
         f"{len(phantom.test_cases)} held-out cases. Network planned by nnU-Net with radconf's `cpu` preset, "
         f"trained for {settings.epochs} x {settings.iterations_per_epoch} iterations on fold `all`, evaluated on "
         f"the held-out cases."),
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
    if result.confidence is not None:
        lines += _confidence_section(result.confidence, phantom.test_cases, report_dir)
    if result.dicom is not None:
        from radconf.demo.dicom import dicom_section

        lines += dicom_section(result.dicom)
    if (report_dir / "training_progress.png").is_file():
        lines += ["## Training curve (nnU-Net)", "", "![training progress](training_progress.png)", ""]
    lines += ["## Commands", "", "The stages ran as these commands (see `demo_log.txt` for their output):", "",
              "```", *[line[2:] for line in (result.output / "demo_log.txt").read_text().splitlines()
                       if line.startswith("$ ")], "```", ""]
    return atomic_write_text(report_dir / "report.md", "\n".join(lines))


def _confidence_section(confidence, test_cases: list[str], report_dir: Path) -> list[str]:
    """Per-level table and level-map overlays of the confidence workflow."""
    from radconf.demo.overlays import plot_level_overlay

    k = confidence.num_levels
    overlays = [plot_level_overlay(confidence.dataset / "imagesTs" / f"{case}_0000.nii.gz",
                                   confidence.dataset / "labelsTs" / f"{case}.nii.gz",
                                   confidence.predictions / f"{case}.nii.gz", k,
                                   report_dir / f"confidence_{case}.png").name for case in test_cases]
    return [
        "## Confidence workflow: readers -> confidence levels -> ConfidenceTrainer",
        "",
        (f"The phantom's simulated readers' GTV contours were fused into levels 0..{k} (`radconf_fuse_readers`, "
         f"dataset `{confidence.dataset.name}`), cut to the readers' contours plus a margin (`radconf_crop_dataset`), "
         f"and `{CONFIDENCE_TRAINER}` learned them as {k} cumulative sigmoid channels. The held-out images were "
         f"predicted localised: the multi-structure model finds the GTV, the confidence model segments that box "
         f"(`radconf_predict --localizer`), and the level maps are scored on the whole images. Held-out cases:"),
        "",
        (f"**Continuous Dice: {_format(confidence.continuous_dice, confidence.continuous_dice_sd)}**; the simulated "
         f"readers' own pairwise inter-reader Dice on these cases: "
         f"{_format(confidence.reader_inter_dice, confidence.reader_inter_dice_sd)}."),
        "",
        "| level >= L | " + " | ".join(str(level) for level in range(1, k + 1)) + " |",
        "|---|" + "---|" * k,
        "| Dice | " + " | ".join(f"{confidence.level_dice[level]:.3f}" for level in range(1, k + 1)) + " |",
        "",
        (f"Level maps: `{confidence.predictions.name}/`; level-{CLINICAL_LEVEL} masks (the paper's CTV starting "
         f"point): `{confidence.predictions.name}/level{CLINICAL_LEVEL}_masks/`; metrics: `confidence_evaluation/`."),
        "",
        *[f"![{name}]({name})" for name in overlays],
        "",
    ]
