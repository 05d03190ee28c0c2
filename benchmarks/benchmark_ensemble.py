"""Weighted ensembling on the phantom (bladder, rectum, gluteal muscles, GTV): members, average, optimal ensemble.

Generates the phantom (30 training cases, 10 held-out), plans it with the ``cpu`` and ``cpu_resenc`` presets and
trains fold 0 of nnU-Net's 5-fold split (24 training, 6 validation cases) of a pool of seed 001's kind: plain and
residual-encoder U-Net x Dice, CE and class-weighted CE, plus nnU-Net's default Dice + CE (NoDA variants and the
same budget and seed for all, as CPU budgets need), each validated with ``--npz``. Then:

- ``radconf_find_ensemble_weights`` fits the weights on the 6 validation cases only;
- every member predicts the 10 held-out cases (``--save_probabilities``); ``radconf_ensemble`` combines them with
  equal and with the fitted weights; ``radconf_predict -m ... --weights`` runs the optimal ensemble from the images
  as well (checked to give the same labels);
- nnU-Net's ``find_best_configuration`` (fold 0, same pool) picks its best model or pair, which is applied to the
  held-out cases the way nnU-Net would (single model, or the unweighted pair);
- everything is evaluated with radconf's evaluation: Dice, surface Dice at 2 mm, ASSD, worst case per structure.

    python benchmarks/benchmark_ensemble.py --work /tmp/bench_ensemble --out documentation/figures

Reruns reuse the dataset, finished trainings and predictions.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# benchmarks/ is on sys.path when a script runs
from benchmark_common import (
    benchmark_workspace,
    median_epoch_seconds,
    run_command,
    run_module,
    write_tables,
)

PHANTOM_ID = 501
CONFIGURATION = "3d_fullres"
FOLD = "0"
PLAIN, RESENC = "radconfCPUPlans", "radconfCPUResEncPlans"
MEMBERS = {  # name in the tables -> (trainer, plans)
    "U-Net Dice+CE": ("nnUNetTrainerNoDA", PLAIN),
    "U-Net Dice": ("DiceLossTrainerNoDA", PLAIN),
    "U-Net CE": ("CELossTrainerNoDA", PLAIN),
    "U-Net weighted CE": ("WeightedCELossTrainerNoDA", PLAIN),
    "ResEnc Dice": ("DiceLossTrainerNoDA", RESENC),
    "ResEnc CE": ("CELossTrainerNoDA", RESENC),
    "ResEnc weighted CE": ("WeightedCELossTrainerNoDA", RESENC),
}
METRICS = ("dice", "surface_dice_2.0mm", "assd_mm")


def member_spec(trainer: str, plans: str) -> str:
    return f"{PHANTOM_ID}:{trainer}:{plans}:{CONFIGURATION}:{FOLD}"


def _prepare(folders: dict, env: dict, log: Path, args) -> Path:
    from radconf.datasets.phantom.writer import write_phantom_dataset

    raw = folders["nnUNet_raw"]
    phantom = write_phantom_dataset(raw, dataset_id=PHANTOM_ID, num_train=args.train_cases, num_test=args.test_cases)
    for preset, plans in (("cpu", PLAIN), ("cpu_resenc", RESENC)):
        if not (folders["nnUNet_preprocessed"] / phantom.folder.name / f"{plans}.json").is_file():
            run_module(["radconf.cli.plan_and_preprocess", "-d", str(PHANTOM_ID), "--preset", preset], env, log)
    return phantom.folder


def _train(trainer: str, plans: str, folders: dict, env: dict, log: Path, args) -> dict:
    """Trains and validates (``--npz``) one member unless done; returns its timing."""
    name = next(folders["nnUNet_raw"].glob(f"Dataset{PHANTOM_ID}_*")).name
    fold_folder = folders["nnUNet_results"] / name / f"{trainer}__{plans}__{CONFIGURATION}" / f"fold_{FOLD}"
    train_s = 0.0
    if not (fold_folder / "validation" / "summary.json").is_file() or not list(fold_folder.glob("validation/*.npz")):
        print(f"training {trainer} with {plans}: {args.epochs} x {args.iterations} iterations", flush=True)
        train_s = run_module(["radconf.cli.train", str(PHANTOM_ID), CONFIGURATION, FOLD, "-tr", trainer, "-p", plans,
                              "-device", args.device, "--epochs", str(args.epochs), "--iterations-per-epoch",
                              str(args.iterations), "--seed", str(args.seed), "--npz", "--c"],
                             {**env, "nnUNet_n_proc_DA": "0"}, log)
    return {"train_s": train_s, "median_epoch_s": median_epoch_seconds(fold_folder)}


def _fit_weights(specs: list[str], work: Path, env: dict, log: Path) -> dict:
    """Weights on fold 0's validation cases: the decoded-IoU search (used) and the soft-IoU optimum (compared)."""
    for objective, folder in (("hard", work / "weights"), ("soft", work / "weights_soft")):
        if not (folder / "weights.json").is_file():
            run_module(["radconf.cli.find_ensemble_weights", "-m", *specs, "-o", str(folder), "--objective",
                        objective], env, log)
    return {objective: json.loads((work / folder / "weights.json").read_text())
            for objective, folder in (("hard", "weights"), ("soft", "weights_soft"))}


def _same_labels(first: Path, second: Path) -> float:
    """Fraction of voxels with the same label in two prediction folders (all cases)."""
    import SimpleITK as sitk

    same = total = 0
    for path in sorted(first.glob("*.nii.gz")):
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(second / path.name)))
        same, total = same + int((a == b).sum()), total + a.size
    return same / total


def _nnunet_choice(members: dict, predictions: dict, work: Path, env: dict, log: Path) -> tuple[dict, Path]:
    """nnU-Net's find_best_configuration on the same pool and fold (its CV Dice of each model and of every pair),
    applied to the held-out cases as nnU-Net would: the chosen model, or nnUNetv2_ensemble of the chosen pair,
    then nnU-Net's chosen postprocessing."""
    models = [{"plans": plans, "configuration": CONFIGURATION, "trainer": trainer} for trainer, plans in
              members.values()]
    code = ("from nnunetv2.evaluation.find_best_configuration import find_best_configuration; "
            f"find_best_configuration({PHANTOM_ID}, {models!r}, allow_ensembling=True, num_processes=2, "
            f"overwrite=False, folds=({FOLD},))")
    results = next(Path(env["nnUNet_results"]).glob(f"Dataset{PHANTOM_ID}_*"))
    information = results / "inference_information.json"
    if not information.is_file():
        run_command([sys.executable, "-c", code], env, log)
    best = json.loads(information.read_text())["best_model_or_ensemble"]
    chosen = [(m["trainer"], m["plans_identifier"]) for m in best["selected_model_or_models"]]
    names = [name for name, model in members.items() if model in chosen]
    label = " + ".join(names)
    raw_output = work / "test_nnunet_choice_raw"
    if len(names) == 1:
        source = predictions[names[0]]
    else:
        run_command([_executable("nnUNetv2_ensemble"), "-i", *[str(predictions[n]) for n in names], "-o",
                     str(raw_output), "-np", "2"], env, log)
        source = raw_output
    output = work / "test_nnunet_choice"
    run_command([_executable("nnUNetv2_apply_postprocessing"), "-i", str(source), "-o", str(output), "-pp_pkl_file",
                 best["postprocessing_file"], "-np", "2", "-plans_json", str(predictions[names[0]] / "plans.json"),
                 "-dataset_json", str(predictions[names[0]] / "dataset.json")], env, log)
    choice = {"label": label, "cv_dice": best["result_on_crossval_pre_pp"],
              "cv_dice_postprocessed": best["result_on_crossval_post_pp"],
              "all_results": json.loads(information.read_text())["all_results"]}
    return choice, output


def _executable(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _evaluate(reference: Path, predictions: Path, output: Path) -> dict:
    """Per structure: mean, SD and worst case of Dice, surface Dice 2 mm and ASSD on the held-out cases."""
    from radconf.evaluation import evaluate_folders
    from radconf.io.tables import read_csv

    result = evaluate_folders(reference_dir=reference, prediction_dir=predictions, output_dir=output, progress=False)
    structures = [s for s in result.summary if s not in ("continuous",) and "dice" in result.summary[s]]
    per_case = {}
    for row in read_csv(output / "metrics_per_case.csv"):
        if row.get("structure") in structures:
            per_case.setdefault(row["structure"], {})[row["case"]] = float(row["dice"])
    return {"summary": {s: {m: {k: result.summary[s][m][k] for k in ("mean", "sd", "min", "worst_case")}
                            for m in METRICS} for s in structures}, "per_case_dice": per_case}


def _report(scores: dict, weights: dict, timings: dict, out: Path, args, identical: float, ensemble_s: float,
            nnunet: dict, peer: dict) -> None:
    import statistics

    structures = list(next(iter(scores.values()))["summary"])
    fitted = dict(zip(MEMBERS, weights["hard"]["weights"]))
    validation = weights["hard"]["validation"]
    specs = {name: member_spec(*model) for name, model in MEMBERS.items()}
    header = ["model", "weight", "validation mean IoU", "mean Dice", "worst case Dice", "mean surface Dice 2 mm",
              "mean ASSD mm", *[f"{s} Dice (worst)" for s in structures]]
    rows = []
    for name, result in scores.items():
        summary = result["summary"]
        key = specs.get(name, name)
        val = validation.get(key, {}).get("mean_iou")
        rows.append(dict(zip(header, [
            name, f"{fitted[name]:.2f}" if name in fitted else "",
            f"{val:.4f}" if val is not None else "",
            f"{statistics.mean(summary[s]['dice']['mean'] for s in structures):.4f}",
            f"{min(summary[s]['dice']['min'] for s in structures):.3f}",
            f"{statistics.mean(summary[s]['surface_dice_2.0mm']['mean'] for s in structures):.4f}",
            f"{statistics.mean(summary[s]['assd_mm']['mean'] for s in structures):.3f}",
            *[f"{summary[s]['dice']['mean']:.3f} ({summary[s]['dice']['min']:.3f})" for s in structures]])))
    n_cases = len(next(iter(scores.values()))["per_case_dice"][structures[0]])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *["| " + " | ".join(row.values()) + " |" for row in rows], "",
             f"{n_cases} held-out phantom cases (means over cases, then over the {len(structures)} structures; worst "
             f"case = lowest per-case Dice). Members: fold {FOLD} of nnU-Net's 5-fold split of {args.train_cases} "
             f"training cases, {args.epochs} x {args.iterations} iterations, seed {args.seed}, device "
             f"{args.device}, no augmentation. Weights fitted on fold {FOLD}'s "
             f"{len(weights['hard']['validation_cases'])} validation cases (mean IoU there in column 3). "
             f"Soft-IoU weights: {', '.join(f'{w:.2f}' for w in weights['soft']['weights'])}. "
             f"Optimal ensemble from images (radconf_predict -m) vs from saved probabilities (radconf_ensemble): "
             f"{identical * 100:.4f} % identical voxels; from images it took {ensemble_s:.0f} s for {n_cases} cases. "
             f"Equal-weight ensemble of the saved probabilities: radconf_ensemble {peer['radconf_s']:.1f} s, "
             f"nnUNetv2_ensemble {peer['nnunet_s']:.1f} s (ratio {peer['radconf_s'] / peer['nnunet_s']:.2f}, "
             f"process start included), {peer['identical'] * 100:.4f} % identical voxels. "
             f"nnU-Net's find_best_configuration on the same pool and fold chose {nnunet['label']} (its "
             f"cross-validation Dice {nnunet['cv_dice']:.4f}, {nnunet['cv_dice_postprocessed']:.4f} after its "
             f"postprocessing, which the row includes). "
             f"Median epoch time per member (s): "
             + ", ".join(f"{n} {t['median_epoch_s']:.1f}" for n, t in timings.items()) + "."]
    write_tables(out / "benchmark_ensemble", lines, rows)
    _plot(scores, structures, out / "benchmark_ensemble.png")


def _plot(scores: dict, structures: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radconf.io.files import atomic_save_figure

    names = list(scores)
    fig, axes = plt.subplots(1, len(structures), figsize=(3.2 * len(structures), 4.5), sharey=False)
    for ax, structure in zip(axes, structures):
        for index, name in enumerate(names):
            values = list(scores[name]["per_case_dice"][structure].values())
            color = "tab:gray" if name in MEMBERS else "tab:orange"
            ax.scatter([index] * len(values), values, s=10, alpha=0.6, color=color)
            ax.plot([index - 0.3, index + 0.3], [sum(values) / len(values)] * 2, color="k")
        ax.set_title(structure)
        ax.set_xticks(range(len(names)), names, rotation=75, fontsize=6)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice per held-out case")
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="radconf_benchmark_ensemble", help="scratch folder")
    parser.add_argument("--out", default=None, help="where the tables (md/csv) and plot go (default: --work)")
    parser.add_argument("--train-cases", type=int, default=30)
    parser.add_argument("--test-cases", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-only", action="store_true", help="stop after training the pool")
    args = parser.parse_args()

    from radconf.io.files import atomic_write_text

    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    phantom_folder = _prepare(folders, env, log, args)
    timings = {}
    for name, (trainer, plans) in MEMBERS.items():
        cached = work / f"train_{trainer}__{plans}.json"
        if not cached.is_file():
            atomic_write_text(cached, json.dumps(_train(trainer, plans, folders, env, log, args)))
        timings[name] = json.loads(cached.read_text())
    if args.train_only:
        return
    specs = {name: member_spec(*model) for name, model in MEMBERS.items()}
    weights = _fit_weights(list(specs.values()), work, env, log)
    test_images, test_labels = phantom_folder / "imagesTs", phantom_folder / "labelsTs"
    predictions = {}
    for name, (trainer, plans) in MEMBERS.items():
        folder = work / f"test_{trainer}__{plans}"
        if not (folder / "radconf_model.json").is_file() or len(list(folder.glob("*.npz"))) < args.test_cases:
            run_module(["radconf.cli.predict", "-i", str(test_images), "-o", str(folder), "-d", str(PHANTOM_ID),
                        "-tr", trainer, "-p", plans, "-c", CONFIGURATION, "-f", FOLD, "-device", args.device,
                        "--save_probabilities"], env, log)
        predictions[name] = folder
    members = [str(predictions[name]) for name in MEMBERS]
    predictions["average ensemble"] = work / "test_average"
    average_s = run_module(["radconf.cli.ensemble", "-i", *members, "-o", str(predictions["average ensemble"])],
                           env, log)
    nnunet_average = work / "test_average_nnunet"  # the peer: nnU-Net's unweighted ensemble of the same files
    nnunet_average_s = run_command([_executable("nnUNetv2_ensemble"), "-i", *members, "-o", str(nnunet_average),
                                    "-np", "2"], env, log)
    peer = {"radconf_s": average_s, "nnunet_s": nnunet_average_s,
            "identical": _same_labels(predictions["average ensemble"], nnunet_average)}
    predictions["optimal ensemble"] = work / "test_optimal"
    run_module(["radconf.cli.ensemble", "-i", *members, "-o", str(predictions["optimal ensemble"]), "--weights",
                str(work / "weights" / "weights.json"), "--save_disagreement"], env, log)
    predictions["soft-IoU ensemble"] = work / "test_soft"
    run_module(["radconf.cli.ensemble", "-i", *members, "-o", str(predictions["soft-IoU ensemble"]), "--weights",
                str(work / "weights_soft" / "weights.json")], env, log)
    from_images = work / "test_optimal_from_images"
    ensemble_s = run_module(["radconf.cli.predict", "-i", str(test_images), "-o", str(from_images), "--weights",
                             str(work / "weights" / "weights.json"), "-device", args.device], env, log)
    identical = _same_labels(from_images, predictions["optimal ensemble"])
    nnunet, chosen = _nnunet_choice(MEMBERS, predictions, work, env, log)
    predictions[f"nnU-Net's choice ({nnunet['label']}, postprocessed)"] = chosen

    scores = {name: _evaluate(test_labels, folder, work / f"evaluation_{folder.name}")
              for name, folder in predictions.items()}
    _report(scores, weights, timings, out, args, identical, ensemble_s, nnunet, peer)


if __name__ == "__main__":
    main()
