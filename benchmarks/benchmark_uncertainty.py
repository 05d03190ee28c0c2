"""Uncertainty on the phantom: does each sample source's contour-quality score predict the true Dice, do the 95 %
bounds cover the reference boundary, does temperature scaling lower the calibration error, and what does a sample
cost?

1. The phantom (Dataset521, 16 training cases) and test cases in five groups: held-out (the training generator),
   noisy (35 HU noise), low contrast (every HU value halved: contrast-to-noise halved), enlarged (anatomy x 1.3,
   2.5 x 1.5 x 1.5 mm) and cropped (the top 30 % of the slices removed: organs partly outside the field).
2. ``DropoutTrainerNoDA`` (dropout p = 0.1 after every convolution), folds 0 1 2 of nnU-Net's split, with validation
   probabilities (``--npz``); ``radconf_calibrate`` fits one temperature on them.
3. Every test case predicted: plainly (fold ``--model_fold``, no mirroring: the cost reference), and with
   ``--uncertainty mc_dropout --mc_samples N`` (that fold), ``tta --tta_axes 0 1 2`` (8 flips), ``tta --tta_affine 8``
   (8 flips + 8 rotated/scaled inputs), ``folds`` (folds 0 1 2, no mirroring); the plain prediction once more with
   ``--calibrate``.
4. Per source and structure: R^2 (squared Pearson) and Spearman of the quality score vs the true Dice of the mean
   segmentation, the coverage of the 95 % bounds (share of the reference boundary voxels in the outer bound and not
   inside the inner bound's interior), and per prediction the near-structure ECE (``radconf_evaluate
   --probabilities``); seconds and peak memory of each run.

    python benchmarks/benchmark_uncertainty.py --work /tmp/bench_unc --out documentation/figures --model_fold 1
    python benchmarks/benchmark_uncertainty.py --work /tmp/bench_unc_smoke --epochs 1 --iterations 2 --mc_samples 3 \\
        --per_group 1      # smoke run

Reruns reuse the datasets, trainings and predictions found in --work.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

# benchmarks/ is on sys.path when a script runs
from benchmark_common import benchmark_parser, benchmark_workspace, run_module, write_tables

DATASET_ID, PLANS, TRAINER = 521, "radconfCPUPlans", "DropoutTrainerNoDA"
STRUCTURES = ("bladder", "rectum", "gluteal_muscles", "gtv")
GROUPS = ("heldout", "noisy", "lowcontrast", "enlarged", "cropped")


def _write_test_cases(folders: dict, per_group: int) -> Path:
    """imagesTs/labelsTs of every group in one folder (cases named <group><index>)."""
    import numpy as np
    import SimpleITK as sitk
    from radconf.datasets.phantom import PhantomConfig
    from radconf.datasets.phantom.writer import write_phantom_dataset

    tests = folders["nnUNet_raw"].parent / "tests"
    if (tests / "done").is_file():
        return tests
    configs = {"heldout": None, "noisy": PhantomConfig(seed=2001, noise_hu=35.0),
               "lowcontrast": PhantomConfig(seed=2002),
               "enlarged": PhantomConfig(seed=2003, anatomy_scale=1.3, spacing=(2.5, 1.5, 1.5)),
               "cropped": PhantomConfig(seed=2004)}
    for folder in ("imagesTs", "labelsTs"):
        (tests / folder).mkdir(parents=True, exist_ok=True)
    for group, config in configs.items():
        if group == "heldout":
            source = next(folders["nnUNet_raw"].glob(f"Dataset{DATASET_ID}_*"))
        else:
            source = write_phantom_dataset(tests.parent / f"raw_{group}", dataset_id=700 + GROUPS.index(group),
                                           num_train=1, num_test=per_group, config=config, show_progress=False).folder
        images = sorted((source / "imagesTs").glob("*_0000.nii.gz"))[:per_group]
        for index, image_file in enumerate(images):
            case = image_file.name[:-len("_0000.nii.gz")]
            image = sitk.ReadImage(str(image_file))
            label = sitk.ReadImage(str(source / "labelsTs" / f"{case}.nii.gz"))
            if group == "lowcontrast":
                array = np.round(sitk.GetArrayFromImage(image) * 0.5).astype(np.int16)
                halved = sitk.GetImageFromArray(array)
                halved.CopyInformation(image)
                image = halved
            if group == "cropped":
                keep = int(image.GetSize()[2] * 0.7)
                image, label = image[:, :, :keep], label[:, :, :keep]
            sitk.WriteImage(image, str(tests / "imagesTs" / f"{group}{index:02d}_0000.nii.gz"))
            sitk.WriteImage(label, str(tests / "labelsTs" / f"{group}{index:02d}.nii.gz"))
    (tests / "done").write_text("ok")
    return tests


def _train(folders: dict, env: dict, log: Path, args) -> None:
    if not (folders["nnUNet_preprocessed"] / f"Dataset{DATASET_ID}_Phantom" / f"{PLANS}.json").is_file():
        run_module(["radconf.cli.plan_and_preprocess", "-d", str(DATASET_ID), "--preset", "cpu", "-c", "3d_fullres"],
                   env, log)
    model = folders["nnUNet_results"] / f"Dataset{DATASET_ID}_Phantom" / f"{TRAINER}__{PLANS}__3d_fullres"
    for fold in args.folds:
        if not (model / f"fold_{fold}" / "validation" / "summary.json").is_file():
            print(f"training {TRAINER} fold {fold}: {args.epochs} x {args.iterations} iterations", flush=True)
            run_module(["radconf.cli.train", str(DATASET_ID), "3d_fullres", fold, "-tr", TRAINER, "-p", PLANS,
                        "-device", "cpu", "--epochs", str(args.epochs), "--iterations_per_epoch", str(args.iterations),
                        "--seed", "0", "--npz", "--c"], {**env, "nnUNet_n_proc_DA": "0"}, log)
    if not (model / "temperature.json").is_file():
        run_module(["radconf.cli.calibrate", "-d", str(DATASET_ID), "-tr", TRAINER, "-p", PLANS, "-c", "3d_fullres",
                    "-f", *args.folds], env, log)


def _timed(arguments: list[str], env: dict, log: Path) -> tuple[float, float]:
    """Seconds and peak resident memory (MiB) of ``python -m arguments``."""
    started = time.perf_counter()
    with open(log, "a") as handle:
        process = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", sys.executable, "-m", *arguments], env=env,
                                 stdout=handle, stderr=subprocess.PIPE, text=True)
        handle.write(process.stderr)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} failed (exit {process.returncode}); see {log}")
    seconds = time.perf_counter() - started
    peak = [line for line in process.stderr.splitlines() if line.startswith("MAXRSS")]
    return seconds, float(peak[-1].split()[1]) / 1024 if peak else float("nan")


def _runs(args) -> dict[str, list[str]]:
    return {name: argv for name, argv in _all_runs(args).items() if name not in args.skip}


def _all_runs(args) -> dict[str, list[str]]:
    model = ["-d", str(DATASET_ID), "-tr", TRAINER, "-p", PLANS, "-c", "3d_fullres", "-device", "cpu", "-np", "1",
             "--save_probabilities"]
    return {
        "plain": [*model, "-f", args.model_fold, "--disable_tta"],
        "mc_dropout": [*model, "-f", args.model_fold, "--uncertainty", "mc_dropout", "--mc_samples",
                       str(args.mc_samples)],
        "plain_calibrated": [*model, "-f", args.model_fold, "--disable_tta", "--calibrate"],
        "tta": [*model, "-f", args.model_fold, "--uncertainty", "tta", "--tta_axes", "0", "1", "2"],
        "tta_affine": [*model, "-f", args.model_fold, "--uncertainty", "tta", "--tta_axes", "0", "1", "2",
                       "--tta_affine", "8"],
        "folds": [*model, "-f", *args.folds, "--uncertainty", "folds", "--disable_tta"],
    }


def _predict(tests: Path, work: Path, env: dict, log: Path, args) -> dict:
    costs_file = work / "costs.json"
    costs = json.loads(costs_file.read_text()) if costs_file.is_file() else {}
    for name, arguments in _runs(args).items():
        output = work / "predictions" / name
        if name not in costs:
            print(f"predicting: {name}", flush=True)
            seconds, peak = _timed(["radconf.cli.predict", "-i", str(tests / "imagesTs"), "-o", str(output),
                                    *arguments], env, log)
            costs[name] = {"seconds": seconds, "peak_mib": peak}
            costs_file.write_text(json.dumps(costs, indent=1))
        calibration = work / "calibration" / name
        if not (calibration / "calibration_probabilities.csv").is_file():
            run_module(["radconf.cli.evaluate", "-ref", str(tests / "labelsTs"), "--probabilities", str(output),
                        "-o", str(calibration), "--no_plots"], env, log)
    return costs


def _boundary_coverage(reference, inner, outer) -> float:
    """Share of the reference boundary voxels lying between the bounds: in the outer bound, not in the inner
    bound's interior (the inner bound eroded by one voxel)."""
    from scipy import ndimage

    boundary = reference & ~ndimage.binary_erosion(reference)
    if not boundary.any():
        return float("nan")
    interior = ndimage.binary_erosion(inner)
    return float((boundary & outer & ~interior).sum() / boundary.sum())


def _case_rows(name: str, tests: Path, work: Path, labels: dict) -> list[dict]:
    """Per case and structure: the group, the true Dice of the mean segmentation, the quality score, the coverage."""
    import SimpleITK as sitk

    from radconf.uncertainty.outputs import file_name

    folder = work / "predictions" / name
    with open(folder / "uncertainty_summary.csv", newline="") as handle:
        summary = {(row["case"], row["structure"]): row for row in csv.DictReader(handle)}
    rows = []
    for reference_file in sorted((tests / "labelsTs").glob("*.nii.gz")):
        case = reference_file.name[:-len(".nii.gz")]
        reference = sitk.GetArrayFromImage(sitk.ReadImage(str(reference_file)))
        predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}.nii.gz")))
        for structure in STRUCTURES:
            truth, mask = reference == labels[structure], predicted == labels[structure]
            total = truth.sum() + mask.sum()
            dice = 2 * (truth & mask).sum() / total if total else 1.0

            def bound(kind: str, case=case, structure=structure):
                path = folder / "uncertainty" / f"{case}_{file_name(structure)}_{kind}.nii.gz"
                return sitk.GetArrayFromImage(sitk.ReadImage(str(path))).astype(bool)

            rows.append({"source": name, "group": case.rstrip("0123456789"), "case": case, "structure": structure,
                         "dice": float(dice), "quality": float(summary[(case, structure)]["quality"]),
                         "coverage": _boundary_coverage(truth, bound("inner95"), bound("outer95"))})
    return rows


def _agreement(rows: list[dict]) -> dict:
    import numpy as np
    from scipy import stats

    dice = np.array([r["dice"] for r in rows])
    quality = np.array([r["quality"] for r in rows])
    if len(rows) < 3 or np.ptp(dice) == 0 or np.ptp(quality) == 0:
        return {"r2": float("nan"), "spearman": float("nan"), "n": len(rows)}
    return {"r2": float(stats.pearsonr(quality, dice)[0] ** 2), "spearman": float(stats.spearmanr(quality, dice)[0]),
            "n": len(rows)}


def _ece(work: Path, name: str) -> dict:
    with open(work / "calibration" / name / "calibration_probabilities.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {row["structure"]: float(row["ece"]) for row in rows if row["region"] == "near_structure"
            and row["reference"] == "reference"}


def _plot(path: Path, rows: list[dict], sources: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(sources), figsize=(3.6 * len(sources), 3.6), squeeze=False)
    for axis, source in zip(axes[0], sources):
        for structure in STRUCTURES:
            chosen = [r for r in rows if r["source"] == source and r["structure"] == structure]
            axis.scatter([r["quality"] for r in chosen], [r["dice"] for r in chosen], s=12, label=structure)
        axis.plot([0, 1], [0, 1], "--", color="grey", lw=0.8)
        axis.set_xlabel("contour-quality score")
        axis.set_ylabel("true Dice")
        axis.set_title(source, fontsize=10)
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _report(tests: Path, work: Path, out: Path, costs: dict, args) -> None:
    import numpy as np

    raw = next(Path(work / "nnUNet_raw").glob(f"Dataset{DATASET_ID}_*"))
    labels = json.loads((raw / "dataset.json").read_text())["labels"]
    sources = [name for name, arguments in _runs(args).items() if "--uncertainty" in arguments]
    rows = [row for name in sources for row in _case_rows(name, tests, work, labels)]
    plain, n = costs["plain"], args.mc_samples
    samples = {"mc_dropout": n, "tta": 8, "tta_affine": 16, "folds": len(args.folds), "plain_calibrated": 1}
    table = []
    lines = ["| source | structure | R^2 | Spearman | coverage of the 95 % bounds | mean Dice | ECE (near) |",
             "|---|---|---|---|---|---|---|"]
    ece_plain = _ece(work, "plain")
    for source in sources:
        ece = _ece(work, source)
        for structure in STRUCTURES:
            chosen = [r for r in rows if r["source"] == source and r["structure"] == structure]
            agreement = _agreement(chosen)
            coverage = float(np.nanmean([r["coverage"] for r in chosen]))
            row = {"source": source, "structure": structure, **agreement, "coverage": coverage,
                   "dice": float(np.mean([r["dice"] for r in chosen])), "ece": ece.get(structure, float("nan")),
                   "ece_plain": ece_plain.get(structure, float("nan"))}
            table.append(row)
            lines.append(f"| {source} | {structure} | {row['r2']:.2f} | {row['spearman']:.2f} | {coverage:.2f} | "
                         f"{row['dice']:.3f} | {row['ece']:.4f} |")
        pooled = _agreement([r for r in rows if r["source"] == source])
        lines.append(f"| {source} | all structures | {pooled['r2']:.2f} | {pooled['spearman']:.2f} | | | |")
    lines += ["", "| run | samples | seconds | seconds per sample / plain | peak MiB | peak / plain |",
              "|---|---|---|---|---|---|",
              f"| plain (fold {args.model_fold}, no mirroring) | 1 | {plain['seconds']:.1f} | 1.00 | "
              f"{plain['peak_mib']:.0f} | 1.00 |"]
    for source in [*sources, "plain_calibrated"]:
        cost = costs[source]
        lines.append(f"| {source} | {samples[source]} | {cost['seconds']:.1f} | "
                     f"{cost['seconds'] / samples[source] / plain['seconds']:.2f} | {cost['peak_mib']:.0f} | "
                     f"{cost['peak_mib'] / plain['peak_mib']:.2f} |")
    ece_calibrated = _ece(work, "plain_calibrated")
    lines += ["", "| ECE near the structure | " + " | ".join(STRUCTURES) + " |", "|---|" + "---|" * len(STRUCTURES)]
    for name, ece in ((f"plain (fold {args.model_fold})", ece_plain), ("plain, temperature-scaled", ece_calibrated),
                      *((source, _ece(work, source)) for source in sources)):
        lines.append(f"| {name} | " + " | ".join(f"{ece.get(s, float('nan')):.4f}" for s in STRUCTURES) + " |")
    temperature = json.loads((work / "nnUNet_results" / f"Dataset{DATASET_ID}_Phantom"
                              / f"{TRAINER}__{PLANS}__3d_fullres" / "temperature.json").read_text())
    lines.append(f"\nTemperature fitted on folds {', '.join(args.folds)}: {temperature['temperatures']}")
    by_group = ["", "| source | group | mean quality | mean Dice |", "|---|---|---|---|"]
    for source in sources:
        for group in GROUPS:
            chosen = [r for r in rows if r["source"] == source and r["group"] == group]
            if chosen:
                by_group.append(f"| {source} | {group} | {np.mean([r['quality'] for r in chosen]):.3f} | "
                                f"{np.mean([r['dice'] for r in chosen]):.3f} |")
    write_tables(out / "benchmark_uncertainty", lines + by_group, table)
    with open(out / "benchmark_uncertainty_cases.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _plot(out / "benchmark_uncertainty.png", rows, sources)
    print("\n".join(lines + by_group))


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--folds", nargs="+", default=["0", "1", "2"])
    parser.add_argument("--mc_samples", type=int, default=20)
    parser.add_argument("--skip", nargs="*", default=[], help="runs to leave out, e.g. tta_affine")
    parser.add_argument("--model_fold", default="0", help="the fold that the plain, MC and TTA runs use")
    parser.add_argument("--per_group", type=int, default=4)
    args = parser.parse_args()
    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    from radconf.datasets.phantom.writer import write_phantom_dataset

    write_phantom_dataset(folders["nnUNet_raw"], dataset_id=DATASET_ID, num_train=16, num_test=args.per_group,
                          show_progress=False)
    tests = _write_test_cases(folders, args.per_group)
    _train(folders, env, log, args)
    costs = _predict(tests, work, env, log, args)
    _report(tests, work, out, costs, args)


if __name__ == "__main__":
    main()
