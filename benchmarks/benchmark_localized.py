"""Localise, crop, segment (seed 004) vs the full-image 3d_fullres model on the phantom's GTV: Dice, HD95 and seconds
per case, on held-out and shifted cases.

1. The phantom of ``benchmark_networks.py`` (Dataset531, ``--train`` training cases, 4 held-out; 4 shifted cases:
   other seeds, 2.5 x 1.5 x 1.5 mm spacing, anatomy x 1.2, 25 HU noise), planned with the cpu preset.
2. Full: ``nnUNetTrainerNoDA`` 3d_fullres on the whole images. Localiser: ``ResNet34FPNTrainerNoDA`` 2d on the whole
   images. Fine: ``radconf_crop_dataset -d 531 -o 532 --around gtv --margin MM`` (crops from the reference labels),
   planned with the cpu preset, ``nnUNetTrainerNoDA`` 3d_fullres on the crops. Each trained on fold ``all`` for
   ``--epochs`` x ``--iterations``, seed 0 (the same trainings as ``benchmark_networks.py`` when --work is shared).
3. Every test case predicted with ``radconf_predict`` (no mirroring, one worker): the full model alone, and
   ``--localizer 531:ResNet34FPNTrainerNoDA:...:2d:all --localizer_labels gtv --crop_margin MM`` with the fine model,
   and the same with ``--localizer_largest_component`` (the box around the localiser's largest GTV component).
   GTV scored with radconf's evaluation (mean Dice and HD95 over cases) and voxel-wise (TPR, FPR); seconds per case
   = the stages' seconds from ``timing.json`` (+ ``localizer_timing.json``) and the command's wall time over cases.

    python benchmarks/benchmark_localized.py --work /tmp/bench_net50 --out documentation/figures --epochs 25 \\
        --iterations 50
    python benchmarks/benchmark_localized.py --work /tmp/bench_localized_smoke --epochs 1 --iterations 2 --train 4

Reruns reuse the datasets, trainings and predictions found in --work.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from benchmark_common import benchmark_parser, benchmark_workspace, evaluate_structures, run_module, write_tables
from benchmark_networks import DATASET_ID, PLANS, gtv_scores, phantom_datasets, train_network

CROP_ID = 532
FULL = ("nnUNetTrainerNoDA", "3d_fullres")
LOCALIZER = ("ResNet34FPNTrainerNoDA", "2d")


def _prepare(folders: dict, env: dict, log: Path, args) -> None:
    """Plans, the crop dataset and its plans, the three trainings."""
    source = f"Dataset{DATASET_ID}_Phantom"
    if not (folders["nnUNet_preprocessed"] / source / f"{PLANS}.json").is_file():
        run_module(["radconf.cli.plan_and_preprocess", "-d", str(DATASET_ID), "--preset", "cpu", "-c", "2d",
                    "3d_fullres"], env, log)
    crops = next(folders["nnUNet_raw"].glob(f"Dataset{CROP_ID}_*"), None)
    if crops is None:
        run_module(["radconf.cli.crop_dataset", "-d", str(DATASET_ID), "-o", str(CROP_ID), "--around", "gtv",
                    "--margin", str(args.margin)], env, log)
        crops = next(folders["nnUNet_raw"].glob(f"Dataset{CROP_ID}_*"))
    if not (folders["nnUNet_preprocessed"] / crops.name / f"{PLANS}.json").is_file():
        run_module(["radconf.cli.plan_and_preprocess", "-d", str(CROP_ID), "--preset", "cpu", "-c", "3d_fullres"],
                   env, log)
    train_network(folders, env, log, source, *LOCALIZER, args, "localiser (2D ResNet34-FPN)")
    train_network(folders, env, log, source, *FULL, args, "full-image 3D U-Net")
    train_network(folders, env, log, crops.name, *FULL, args, "fine 3D U-Net on the crops")


def _spec(dataset: int, trainer: str, configuration: str) -> str:
    return f"{dataset}:{trainer}:{PLANS}:{configuration}:all"


def _predict(images: Path, output: Path, fine: str, localizer: str | None, margin: float, env: dict,
             log: Path, extra: tuple[str, ...] = ()) -> float:
    """Predicts ``images`` into ``output`` (unless done); returns the command's wall seconds (recorded there)."""
    wall = output.parent / f"{output.name}_wall_s.json"
    if wall.is_file():  # written once the prediction finished
        return json.loads(wall.read_text())
    extra = ["--localizer", localizer, "--localizer_labels", "gtv", "--crop_margin", str(margin),
             *extra] if localizer else []
    start = time.perf_counter()
    run_module(["radconf.cli.predict", "-i", str(images), "-o", str(output), "-m", fine, "-device", "cpu",
                "--disable_tta", "-np", "1", *extra], env, log)
    seconds = time.perf_counter() - start
    wall.write_text(json.dumps(seconds))
    return seconds


def _stage_seconds(output: Path) -> tuple[float, float]:
    """Mean over cases of the stages' seconds (preprocessing + network + export; the localiser's added) and of the
    network seconds alone."""
    runs = [json.loads((output / name).read_text()) for name in ("timing.json", "localizer_timing.json")
            if (output / name).is_file()]
    cases = {c["case"] for c in runs[0]["cases"]}
    total = sum(c["preprocessing_s"] + c["network_s"] + c["export_s"] for run in runs for c in run["cases"])
    network = sum(c["network_s"] for run in runs for c in run["cases"])
    return total / len(cases), network / len(cases)


def _rows(tests: dict[str, Path], work: Path, env: dict, log: Path, args) -> list[dict]:
    full = _spec(DATASET_ID, *FULL)
    fine, localizer = _spec(CROP_ID, *FULL), _spec(DATASET_ID, *LOCALIZER)
    rows = []
    for group, raw in tests.items():
        gtv = json.loads((raw / "dataset.json").read_text())["labels"]["gtv"]
        cases = len(list((raw / "labelsTs").glob("*.nii.gz")))
        localised = f"localise (2D FPN), crop +{args.margin:g} mm, 3D U-Net"
        for method, key, model, locate, extra in (
                ("full image, 3D U-Net", "full", full, None, ()),
                (localised, "localized", fine, localizer, ()),
                (f"{localised}, largest localiser component", "localized_lcc", fine, localizer,
                 ("--localizer_largest_component",))):
            output = work / "localized" / f"{key}_{group}"
            wall = _predict(raw / "imagesTs", output, model, locate, args.margin, env, log, extra)
            scores = evaluate_structures(raw / "labelsTs", output, work / "localized" / f"eval_{output.name}",
                                         ["gtv"])["gtv"]
            voxels = gtv_scores(raw / "labelsTs", output, gtv)
            stages, network = _stage_seconds(output)
            rows.append({"method": method, "test": group, "dice": scores["dice_mean"],
                         "dice_min": scores["dice_min"], "hd95_mm": scores["hd95_mean"], "tpr": voxels["tpr"],
                         "fpr": voxels["fpr"], "stage_s_per_case": stages, "network_s_per_case": network,
                         "wall_s_per_case": wall / cases})
    return rows


def _plot(rows: list[dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radconf.io.files import atomic_write_bytes

    groups = sorted({r["test"] for r in rows})
    methods = list(dict.fromkeys(r["method"] for r in rows))
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for axis, key, title in zip(axes, ("dice", "hd95_mm", "wall_s_per_case"),
                                ("GTV Dice", "GTV HD95 (mm)", "seconds per case (command)")):
        for i, method in enumerate(methods):
            values = [next(r[key] for r in rows if r["method"] == method and r["test"] == g) for g in groups]
            width = 0.8 / len(methods)
            axis.bar([j + width * i for j in range(len(groups))], values, width=width * 0.95, label=method)
        axis.set_xticks([j + 0.4 - 0.4 / len(methods) for j in range(len(groups))], groups)
        axis.set_title(title)
    axes[0].legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    path = out.with_suffix(".png")
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=110)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--train", type=int, default=12)
    parser.add_argument("--margin", type=float, default=20.0)
    args = parser.parse_args()
    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    tests = phantom_datasets(folders, args)
    _prepare(folders, env, log, args)
    rows = _rows(tests, work, env, log, args)
    lines = [f"Localise, crop, segment vs the full image on the phantom's GTV ({args.train} training cases, "
             f"{args.epochs} x {args.iterations} iterations per network, no augmentation, seed 0; 4 held-out and 4 "
             f"shifted cases; CPU, 2 cores, one worker, no mirroring)", "",
             "| method | test | Dice (mean) | Dice (min) | HD95 mm | TPR | FPR | stage s/case | network s/case | "
             "command s/case |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['test']} | {r['dice']:.3f} | {r['dice_min']:.3f} | {r['hd95_mm']:.2f} | "
              f"{r['tpr']:.3f} | {r['fpr']:.5f} | {r['stage_s_per_case']:.2f} | {r['network_s_per_case']:.2f} | "
              f"{r['wall_s_per_case']:.2f} |" for r in rows]
    lines += ["", "stage s/case: preprocessing + network + export from timing.json (localised: the localiser's "
              "localizer_timing.json added); command s/case: radconf_predict's wall time over the cases, model "
              "loading and the crop/paste included."]
    write_tables(out / "localized", lines, rows)
    print(f"wrote {_plot(rows, out / 'localized')}")


if __name__ == "__main__":
    main()
