"""Partial labels on the phantom: missing as background vs nnU-Net's ignore label vs the marginal loss vs complete.

The phantom (``--train`` training cases, ``--test`` held-out) is written once with complete labels (Dataset521). From it,
with the same images:

- Dataset522 "as background": in a seeded ``--rectum`` share of the training cases the rectum is erased (its voxels
  become background), in a ``--bladder`` share the bladder (independent draws: some cases miss both); the table of
  what was erased is recorded with ``radconf_partial_labels`` (what a user of clinical structure sets has);
- Dataset523 "ignore label": the same cases, with every background voxel of a partial case set to nnU-Net's
  ``ignore`` label (the only thing the ignore label can say about a case that misses an organ; nnU-Net's fingerprint
  then counts those voxels as foreground for its CT normalisation, as it would for a user).

Four models, the same budget and seed (cpu preset, NoDA trainers, fold ``all``): (a) ``nnUNetTrainerNoDA`` on 522,
(b) ``nnUNetTrainerNoDA`` on 523, (c) ``PartialLabelTrainerNoDA`` on 522, (d) ``nnUNetTrainerNoDA`` on 521 (upper
bound). Each predicts the held-out cases (complete references) and a shifted phantom (seed 1000, 3.5 x 2.4 x 2.4 mm,
20 HU noise, anatomy 10 % larger; complete references), evaluated with radconf's evaluation: Dice and HD95 per
structure, and the false-negative volume of the structures that were missing in training (reference volume x
(1 - sensitivity), cm^3).

    python benchmarks/benchmark_partial_labels.py --work /tmp/bench_partial --out /tmp/bench_partial/out

Reruns reuse datasets, finished trainings (``--c``) and per-model results (``result_<arm>.json`` in --work).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

# benchmarks/ is on sys.path when a script runs
from benchmark_common import (
    benchmark_workspace,
    evaluate_structures,
    median_epoch_seconds,
    run_module,
    write_tables,
)

COMPLETE_ID, BACKGROUND_ID, IGNORE_ID, SHIFTED_ID = 521, 522, 523, 621
PLANS = "radconfCPUPlans"
ARMS = {  # arm -> (trainer, dataset)
    "(a) missing as background": ("nnUNetTrainerNoDA", BACKGROUND_ID),
    "(b) nnU-Net ignore label": ("nnUNetTrainerNoDA", IGNORE_ID),
    "(c) marginal loss": ("PartialLabelTrainerNoDA", BACKGROUND_ID),
    "(d) complete labels": ("nnUNetTrainerNoDA", COMPLETE_ID),
}
STRUCTURES = ("bladder", "rectum", "gluteal_muscles", "gtv")
ERASED = ("bladder", "rectum")


def _dataset(raw: Path, dataset_id: int) -> Path:
    return next(raw.glob(f"Dataset{dataset_id}_*"))


def _read(path: Path):
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return image, sitk.GetArrayFromImage(image)


def _write(array: np.ndarray, like, path: Path) -> None:
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(array)
    out.CopyInformation(like)
    sitk.WriteImage(out, str(path), True)


def _draw_missing(cases: list[str], shares: dict[str, float], seed: int) -> dict[str, list[str]]:
    """Seeded, independent draws per structure (round(share x cases) cases each), no case missing everything."""
    rng = np.random.default_rng(seed)
    missing: dict[str, list[str]] = {}
    for structure, share in shares.items():
        for case in rng.choice(cases, size=round(share * len(cases)), replace=False):
            missing.setdefault(str(case), []).append(structure)
    return {case: missing[case] for case in sorted(missing)}


def _derive(source: Path, target: Path, missing: dict[str, list[str]], ignore: bool) -> None:
    """A copy of ``source`` with the missing structures erased (and, with ``ignore``, background -> ignore)."""
    if target.exists():
        return
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging)
    dataset_json = json.loads((source / "dataset.json").read_text())
    labels = dataset_json["labels"]
    ignore_id = max(labels.values()) + 1
    for case, names in missing.items():
        image, array = _read(source / "labelsTr" / f"{case}.nii.gz")
        for name in names:
            array[array == labels[name]] = 0
        if ignore:
            array[array == 0] = ignore_id
        _write(array.astype(np.uint8), image, staging / "labelsTr" / f"{case}.nii.gz")
    if ignore:
        dataset_json["labels"] = {**labels, "ignore": ignore_id}
    dataset_json["name"] = target.name.split("_", 1)[1]
    (staging / "dataset.json").write_text(json.dumps(dataset_json, indent=2))
    staging.rename(target)


def _prepare(folders: dict, env: dict, log: Path, work: Path, args) -> dict[str, list[str]]:
    from radconf.datasets.phantom import PhantomConfig
    from radconf.datasets.phantom.writer import write_phantom_dataset

    raw = folders["nnUNet_raw"]
    phantom = write_phantom_dataset(raw, dataset_id=COMPLETE_ID, name="PhantomComplete", num_train=args.train,
                                    num_test=args.test)
    cases = sorted(p.name[:-len(".nii.gz")] for p in (phantom.folder / "labelsTr").glob("*.nii.gz"))
    missing = _draw_missing(cases, {"rectum": args.rectum, "bladder": args.bladder}, args.seed)
    _derive(phantom.folder, raw / f"Dataset{BACKGROUND_ID}_PhantomAsBackground", missing, ignore=False)
    _derive(phantom.folder, raw / f"Dataset{IGNORE_ID}_PhantomIgnore", missing, ignore=True)
    table = work / "missing_structures.csv"
    table.write_text("case,missing\n" + "".join(f"{c},{';'.join(n)}\n" for c, n in missing.items()))
    for dataset_id in (COMPLETE_ID, BACKGROUND_ID, IGNORE_ID):
        name = _dataset(raw, dataset_id).name
        if not (folders["nnUNet_preprocessed"] / name / f"{PLANS}.json").is_file():
            run_module(["radconf.cli.plan_and_preprocess", "-d", str(dataset_id), "--preset", "cpu", "-c",
                        "3d_fullres"], env, log)
    run_module(["radconf.cli.partial_labels", "-d", str(BACKGROUND_ID), "--missing", str(table)], env, log)
    shifted = PhantomConfig(seed=1000, spacing=(3.5, 2.4, 2.4), noise_hu=20.0, anatomy_scale=1.1)
    write_phantom_dataset(work / "shifted_raw", dataset_id=SHIFTED_ID, num_train=1, num_test=args.test, config=shifted)
    return missing


def _arm(name: str, trainer: str, dataset_id: int, folders: dict, env: dict, log: Path, work: Path, args) -> dict:
    raw = folders["nnUNet_raw"]
    print(f"{name}: {trainer} on {dataset_id}, {args.epochs} x {args.iterations} iterations", flush=True)
    train_s = run_module(["radconf.cli.train", str(dataset_id), "3d_fullres", "all", "-tr", trainer, "-p", PLANS,
                          "-device", args.device, "--epochs", str(args.epochs), "--iterations_per_epoch",
                          str(args.iterations), "--seed", str(args.seed), "--no_val", "--c"],
                         {**env, "nnUNet_n_proc_DA": "0"}, log)
    model = folders["nnUNet_results"] / _dataset(raw, dataset_id).name / f"{trainer}__{PLANS}__3d_fullres"
    result = {"name": name, "trainer": trainer, "dataset": dataset_id, "train_s": train_s,
              "median_epoch_s": median_epoch_seconds(model / "fold_all")}
    tests = {"held_out": _dataset(raw, COMPLETE_ID), "shifted": _dataset(work / "shifted_raw", SHIFTED_ID)}
    for test, folder in tests.items():
        predictions = work / f"predictions_{test}_{trainer}_{dataset_id}"
        run_module(["radconf.cli.predict", "-i", str(folder / "imagesTs"), "-o", str(predictions), "-d",
                    str(dataset_id), "-tr", trainer, "-p", PLANS, "-f", "all", "-device", args.device,
                    "--continue_prediction"], env, log)
        result[test] = evaluate_structures(folder / "labelsTs", predictions,
                                           work / f"evaluation_{test}_{trainer}_{dataset_id}", STRUCTURES)
    return result


def _table(results: list[dict], test: str) -> tuple[list[str], list[dict]]:
    header = ["model"] + [f"{s} Dice" for s in STRUCTURES] + [f"{s} HD95 mm" for s in STRUCTURES] \
        + [f"{s} FN cm3" for s in ERASED]
    rows = []
    for r in results:
        m = r[test]
        rows.append(dict(zip(header, [r["name"]]
                             + [f"{m[s]['dice_mean']:.3f} (median {m[s]['dice_median']:.3f}, min {m[s]['dice_min']:.3f})"
                                for s in STRUCTURES]
                             + [f"{m[s]['hd95_mean']:.1f}" for s in STRUCTURES]
                             + [f"{m[s]['fn_cm3_mean']:.1f}" for s in ERASED])))
    lines = [f"### {test.replace('_', '-')} cases", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *["| " + " | ".join(row.values()) + " |" for row in rows], ""]
    return lines, [{"test": test, **row} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="radconf_benchmark_partial_labels", help="scratch folder")
    parser.add_argument("--out", default=None, help="where the tables (md/csv) go (default: --work)")
    parser.add_argument("--train", type=int, default=20, help="training cases")
    parser.add_argument("--test", type=int, default=6, help="held-out cases, and shifted cases")
    parser.add_argument("--rectum", type=float, default=0.4, help="share of training cases without rectum")
    parser.add_argument("--bladder", type=float, default=0.3, help="share of training cases without bladder")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    missing = _prepare(folders, env, log, work, args)
    results = []
    for name, (trainer, dataset_id) in ARMS.items():
        cached = work / f"result_{trainer}_{dataset_id}.json"
        if not cached.is_file():
            cached.write_text(json.dumps(_arm(name, trainer, dataset_id, folders, env, log, work, args)))
        results.append(json.loads(cached.read_text()))
    counts = {s: sum(s in n for n in missing.values()) for s in ERASED}
    setting = (f"{args.train} training cases: rectum erased in {counts['rectum']}, bladder in {counts['bladder']} "
               f"({len(missing)} partial cases); budget per model {args.epochs} x {args.iterations} iterations, fold "
               f"all, seed {args.seed}, device {args.device}; {args.test} held-out and {args.test} shifted cases, "
               f"complete references.")
    lines = [setting, ""]
    rows = []
    for test in ("held_out", "shifted"):
        test_lines, test_rows = _table(results, test)
        lines += test_lines
        rows += test_rows
    lines.append("Train seconds: " + ", ".join(f"{r['name']} {r['train_s']:.0f}" for r in results))
    write_tables(out / "benchmark_partial_labels", lines, rows)


if __name__ == "__main__":
    main()
