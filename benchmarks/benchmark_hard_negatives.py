"""Hard-negative sampling on the phantom: plain training vs half plain + half with hard negatives, same budget.

Generates the phantom (training and held-out cases) and a shifted phantom no model has seen (seed 1000, spacing
3.5 x 2.4 x 2.4 mm, 20 HU noise, anatomy 10 % larger; its imagesTs/labelsTs), plans with the cpu preset, then trains
fold ``all`` with NoDA trainers, a fixed seed and ``nnUNet_n_proc_DA=0``:

- plain: ``nnUNetTrainerNoDA`` for N epochs;
- cycle: ``nnUNetTrainerNoDA`` for N/2 epochs, ``radconf_predict`` on the training cases, then
  ``HardNegativeTrainerNoDA`` for N/2 epochs from those weights (``-pretrained_weights``; a new poly learning-rate
  schedule) with ``--hard_negatives_from`` the predictions (share ``--share``);
- restart (the control of the cycle): the same N/2 epochs, then ``nnUNetTrainerNoDA`` for N/2 epochs from those
  weights with the same new schedule and plain sampling, so that cycle vs restart measures the sampling alone.

Both models predict the held-out and the shifted cases; per structure: Dice, and false-positive connected components
per case (cc3d, 26-connectivity: predicted components of a structure that touch none of its reference voxels).

    python benchmarks/benchmark_hard_negatives.py --work /tmp/bench_hardneg --out documentation/figures

Reruns reuse datasets, trainings and predictions found in --work.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

# benchmarks/ is on sys.path when a script runs
from benchmark_common import benchmark_workspace, run_module, write_tables

PHANTOM_ID, SHIFTED_ID = 521, 522
PLANS = "radconfCPUPlans"
PLAIN, HARD = "nnUNetTrainerNoDA", "HardNegativeTrainerNoDA"


def _train(trainer: str, epochs: int, env: dict, log: Path, args, *extra: str) -> None:
    run_module(["radconf.cli.train", str(PHANTOM_ID), "3d_fullres", "all", "-tr", trainer, "-p", PLANS, "-device",
                args.device, "--epochs", str(epochs), "--iterations_per_epoch", str(args.iterations), "--seed",
                str(args.seed), "--no_val", *extra], {**env, "nnUNet_n_proc_DA": "0"}, log)


def _predict(trainer: str, images: Path, output: Path, env: dict, log: Path, args) -> Path:
    if not output.is_dir():
        run_module(["radconf.cli.predict", "-i", str(images), "-o", str(output), "-d", str(PHANTOM_ID), "-tr",
                    trainer, "-p", PLANS, "-f", "all", "-device", args.device], env, log)
    return output


def _scores(reference: Path, predictions: Path, labels: dict[str, int]) -> dict[str, dict[str, float]]:
    """Mean Dice and false-positive components per case, per structure."""
    import cc3d
    import numpy as np
    import SimpleITK as sitk

    per = {name: {"dice": [], "fp_components": []} for name in labels}
    for path in sorted(reference.glob("*.nii.gz")):
        truth = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        guess = sitk.GetArrayFromImage(sitk.ReadImage(str(predictions / path.name)))
        for name, value in labels.items():
            t, g = truth == value, guess == value
            denominator = t.sum() + g.sum()
            per[name]["dice"].append(1.0 if denominator == 0 else 2 * (t & g).sum() / denominator)
            components = cc3d.connected_components(g.astype(np.uint8), connectivity=26)
            touched = set(np.unique(components[t]).tolist()) - {0}
            per[name]["fp_components"].append(int(components.max()) - len(touched))
    return {name: {k: float(np.mean(v)) for k, v in values.items()} for name, values in per.items()}


def _prepare(folders: dict, work: Path, env: dict, log: Path, args) -> tuple[Path, Path]:
    from radconf.datasets.phantom import PhantomConfig
    from radconf.datasets.phantom.writer import write_phantom_dataset

    spacing = (6.0, 4.0, 4.0) if args.coarse else (3.0, 2.0, 2.0)
    shifted_spacing = (6.0, 4.0, 4.0) if args.coarse else (3.5, 2.4, 2.4)
    phantom = write_phantom_dataset(folders["nnUNet_raw"], dataset_id=PHANTOM_ID, num_train=args.train,
                                    num_test=args.test, config=PhantomConfig(seed=args.seed, spacing=spacing),
                                    show_progress=False)
    shifted = write_phantom_dataset(work / "shifted_raw", dataset_id=SHIFTED_ID, num_train=1, num_test=args.test,
                                    config=PhantomConfig(seed=1000, spacing=shifted_spacing, noise_hu=20.0,
                                                         anatomy_scale=1.1), show_progress=False)
    if not (folders["nnUNet_preprocessed"] / phantom.folder.name / f"{PLANS}.json").is_file():
        run_module(["radconf.cli.plan_and_preprocess", "-d", str(PHANTOM_ID), "--preset", "cpu", "-c", "3d_fullres",
                    "-np", "1"], env, log)
    return phantom.folder, shifted.folder


def _arms(folders: dict, work: Path, raw: Path, env: dict, log: Path, args) -> dict[str, dict]:
    """Trains both arms (separate nnUNet_results folders); returns each arm's environment and trainer."""
    half = max(1, args.epochs // 2)
    plain_env = {**env, "nnUNet_results": str(work / "results_plain")}
    cycle_env = {**env, "nnUNet_results": str(work / "results_cycle")}
    restart_env = {**env, "nnUNet_results": str(work / "results_restart")}
    model = f"Dataset{PHANTOM_ID}_Phantom/{{}}__{PLANS}__3d_fullres/fold_all"
    if not (work / "results_plain" / model.format(PLAIN) / "checkpoint_final.pth").is_file():
        _train(PLAIN, args.epochs, plain_env, log, args)
    first = work / "results_cycle" / model.format(PLAIN) / "checkpoint_final.pth"
    if not first.is_file():
        _train(PLAIN, half, cycle_env, log, args)
    train_predictions = _predict(PLAIN, raw / "imagesTr", work / "cycle_training_predictions", cycle_env, log, args)
    if not (work / "results_cycle" / model.format(HARD) / "checkpoint_final.pth").is_file():
        _train(HARD, half, cycle_env, log, args, "-pretrained_weights", str(first), "--hard_negatives_from",
               str(train_predictions), "--hard_negative_share", str(args.share))
    if not (work / "results_restart" / model.format(PLAIN) / "checkpoint_final.pth").is_file():
        _train(PLAIN, half, restart_env, log, args, "-pretrained_weights", str(first))
    return {f"plain {args.epochs} epochs": {"env": plain_env, "trainer": PLAIN},
            f"{half} plain + {half} hard-negative": {"env": cycle_env, "trainer": HARD,
                                                    "record": work / "results_cycle" / model.format(HARD)
                                                    / "hard_negatives.json"},
            f"{half} plain + {half} plain (restart)": {"env": restart_env, "trainer": PLAIN, "slug": "restart"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="radconf_benchmark_hard_negatives", help="scratch folder")
    parser.add_argument("--out", default=None, help="where the table (md/csv) goes (default: --work)")
    parser.add_argument("--epochs", type=int, default=20, help="total budget N (the cycle: N/2 + N/2)")
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--share", type=float, default=0.1, help="--hard_negative_share of the second half")
    parser.add_argument("--train", type=int, default=16, help="training cases")
    parser.add_argument("--test", type=int, default=8, help="held-out (and shifted) cases")
    parser.add_argument("--coarse", action="store_true", help="coarse 6 x 4 x 4 mm phantoms (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    raw, shifted = _prepare(folders, work, env, log, args)
    labels = {k: int(v) for k, v in json.loads((raw / "dataset.json").read_text())["labels"].items() if int(v) > 0}
    rows = []
    for arm, spec in _arms(folders, work, raw, env, log, args).items():
        for test_set, folder in (("held-out", raw), ("shifted", shifted)):
            slug = f"{spec.get('slug', spec['trainer'])}_{test_set}"
            predicted = _predict(spec["trainer"], folder / "imagesTs", work / f"predictions_{slug}", spec["env"],
                                 log, args)
            for name, score in _scores(folder / "labelsTs", predicted, labels).items():
                rows.append({"arm": arm, "test set": test_set, "structure": name, "dice": f"{score['dice']:.3f}",
                             "fp components per case": f"{score['fp_components']:.2f}"})
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *["| " + " | ".join(r.values()) + " |" for r in rows], "",
             (f"{args.train} training, {args.test} held-out and {args.test} shifted phantom cases; budget "
             f"{args.epochs} x {args.iterations} iterations, fold all, seed {args.seed}, device {args.device}, "
             f"nnUNet_n_proc_DA=0; hard-negative share {args.share}. FP components: 26-connected predicted "
             f"components touching no reference voxel of the structure.")]
    write_tables(out / "benchmark_hard_negatives", lines, rows)


if __name__ == "__main__":
    main()
