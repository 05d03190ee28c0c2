"""Confidence-level models on the phantom's simulated readers: ConfidenceTrainer vs the softmax baseline vs readers.

Generates the phantom (16 training, 4 held-out cases), fuses its readers' GTV contours into levels 0..5
(``radconf_fuse_readers``), plans with the cpu preset, then for every trainer: trains fold ``all`` for the same budget,
predicts the held-out cases and evaluates them with ``radconf_evaluate --confidence 5``. The table sets each model's
continuous Dice and per-level Dice beside the simulated readers' own pairwise inter-reader Dice on the same cases.

    python benchmarks/benchmark_confidence.py --work /tmp/bench_confidence --out documentation/figures

Trainers are given as NAME or NAME:CONFIGURATION (e.g. ConfidenceTrainer2p5DNoDA:2d). Reruns reuse the phantom, the
fused dataset, interrupted trainings (``--c``) and the results of finished ones (``result_<trainer>_<config>.json``
in --work), so a trainer can be added to the table later; delete the folder for a clean run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

# benchmarks/ is on sys.path when a script runs
from benchmark_common import (
    benchmark_workspace,
    median_epoch_seconds,
    run_module,
    write_tables,
)

DEFAULT_TRAINERS = ("ConfidenceTrainerNoDA", "ConfidenceTrainerUnweightedNoDA", "ConfidenceSoftmaxTrainerNoDA")
SOURCE_ID, FUSED_ID, K = 501, 502, 5


def _plot(results: list[dict], readers: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radconf.io.files import atomic_save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    levels = list(range(1, K + 1))
    for result in results:
        ax.plot(levels, [result["level_dice"][str(level)] for level in levels], marker="o", label=result["trainer"])
    ax.axhline(readers["inter_mean"], color="k", linestyle="--", label="readers, pairwise inter-reader")
    ax.set_xlabel("level >= L")
    ax.set_ylabel("Dice (held-out mean)")
    ax.set_xticks(levels)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)


def _train_and_evaluate(trainer: str, configuration: str, fused: Path, work: Path, env: dict[str, str], log: Path,
                        args) -> dict:
    from radconf.evaluation import evaluate_folders

    print(f"{trainer} ({configuration}): training {args.epochs} x {args.iterations} iterations", flush=True)
    train_s = run_module(["radconf.cli.train", str(FUSED_ID), configuration, "all", "-tr", trainer, "-p",
                          "radconfCPUPlans", "-device", args.device, "--epochs", str(args.epochs),
                          "--iterations-per-epoch", str(args.iterations), "--no-val", "--c"],
                         {**env, "nnUNet_n_proc_DA": "0"}, log)
    predictions = work / f"predictions_{trainer}_{configuration}"
    predict_s = run_module(["radconf.cli.predict", "-i", str(fused / "imagesTs"), "-o", str(predictions), "-d",
                            str(FUSED_ID), "-c", configuration, "-tr", trainer, "-p", "radconfCPUPlans", "-f", "all",
                            "-device", args.device], env, log)
    evaluation = evaluate_folders(reference_dir=fused / "labelsTs", prediction_dir=predictions,
                                  output_dir=work / f"evaluation_{trainer}_{configuration}", confidence_levels=K,
                                  progress=False)
    summary = evaluation.summary
    model = work / "nnUNet_results" / fused.name / f"{trainer}__radconfCPUPlans__{configuration}"
    return {
        "trainer": trainer, "configuration": configuration,
        "continuous_dice": summary["continuous"]["continuous_dice"]["mean"],
        "continuous_dice_sd": summary["continuous"]["continuous_dice"]["sd"],
        "level_dice": {str(level): summary[f"level>={level}"]["dice"]["mean"] for level in range(1, K + 1)},
        "level3_hd95_mm": summary["level>=3"]["hd95_mm"]["mean"],
        "train_s": train_s, "median_epoch_s": median_epoch_seconds(model / "fold_all"), "predict_s": predict_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="radconf_benchmark_confidence", help="scratch folder")
    parser.add_argument("--out", default=None, help="where the table (md/csv) and plot go (default: --work)")
    parser.add_argument("--trainers", nargs="+", default=list(DEFAULT_TRAINERS))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from radconf.datasets.phantom.writer import write_phantom_dataset

    from radconf.io.files import atomic_write_text

    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    phantom = write_phantom_dataset(folders["nnUNet_raw"], dataset_id=SOURCE_ID, num_train=16, num_test=4)
    fused = folders["nnUNet_raw"] / f"Dataset{FUSED_ID}_PhantomConfidence"
    configurations = sorted({t.split(":")[1] if ":" in t else "3d_fullres" for t in args.trainers})
    if not fused.is_dir():
        run_module(["radconf.cli.fuse_readers", str(phantom.folder), "-d", str(FUSED_ID), "-n", "PhantomConfidence",
              "-k", str(K), "--structure", "GTV"], env, log)
    preprocessed = folders["nnUNet_preprocessed"] / fused.name
    missing = [c for c in configurations if not (preprocessed / f"nnUNetPlans_{c}").is_dir()]
    if missing:  # the cpu preset's plans share nnU-Net's data folders (nnUNetPlans_<configuration>)
        run_module(["radconf.cli.plan_and_preprocess", "-d", str(FUSED_ID), "--preset", "cpu", "-c", *missing], env,
                   log)
    from radconf.confidence.report import read_agreement_summary

    readers = read_agreement_summary(fused, phantom.test_cases)

    results = []
    for spec in args.trainers:
        trainer, _, configuration = spec.partition(":")
        configuration = configuration or "3d_fullres"
        cached = work / f"result_{trainer}_{configuration}.json"
        if cached.is_file():  # measured in an earlier run of this script
            results.append(json.loads(cached.read_text()))
            continue
        results.append(_train_and_evaluate(trainer, configuration, fused, work, env, log, args))
        atomic_write_text(cached, json.dumps(results[-1]))
        print(json.dumps(results[-1]), flush=True)

    header = ["model", "configuration", "continuous Dice", *[f"Dice L>={level}" for level in range(1, K + 1)],
              "HD95 L>=3 (mm)", "train s", "median epoch s", "predict s"]
    rows = [dict(zip(header, [r["trainer"], r["configuration"],
                              f"{r['continuous_dice']:.3f} ± {r['continuous_dice_sd']:.3f}",
                              *[f"{r['level_dice'][str(level)]:.3f}" for level in range(1, K + 1)],
                              f"{r['level3_hd95_mm']:.2f}", f"{r['train_s']:.0f}", f"{r['median_epoch_s']:.1f}",
                              f"{r['predict_s']:.0f}"]))
            for r in results]
    inter = readers["inter_mean"], readers["inter_sd"]
    intra = readers["intra_mean"], readers["intra_sd"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *["| " + " | ".join(row.values()) + " |" for row in rows],
             "", f"Simulated readers on the same {len(phantom.test_cases)} cases: pairwise inter-reader Dice "
             f"{inter[0]:.3f} ± {inter[1]:.3f}, intra-reader (trials of one reader) {intra[0]:.3f} ± {intra[1]:.3f}.",
             f"Budget per model: {args.epochs} x {args.iterations} iterations, fold all, device {args.device}."]
    write_tables(out / "benchmark_confidence", lines, rows)
    _plot(results, readers, out / "benchmark_confidence.png")


if __name__ == "__main__":
    main()
