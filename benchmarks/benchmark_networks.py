"""The papers' networks on the phantom, same budget for each: 2D U-Net vs ResNet34-FPN vs DeepLabv3+ on the GTV
(seed 002's Table 2: DSC, Jaccard, TPR, FPR, ms per slice), and plain vs attention-gated U-Net in 3D.

1. The phantom (Dataset531, ``--train`` training cases, 4 held-out) planned with the cpu preset (2d and 3d_fullres),
   and a shifted test group (other seeds, 2.5 x 1.5 x 1.5 mm spacing, anatomy x 1.2, 25 HU noise).
2. Each network trained on fold ``all`` for ``--epochs`` x ``--iterations`` with no augmentation (the ``NoDA``
   trainers), seed 0, all with nnU-Net's Dice + CE: 2D ``nnUNetTrainerNoDA`` (nnU-Net's U-Net),
   ``ResNet34FPNTrainerNoDA``, ``DeepLabV3PlusTrainerNoDA``; 3D: ``nnUNetTrainerNoDA`` and
   ``AttentionUNetTrainerNoDA``.
3. Every test case predicted with ``radconf_predict`` (no mirroring, one worker); the GTV of each case scored
   voxel-wise (DSC, Jaccard, TPR = sensitivity, FPR = false positives over reference negatives), pooled as the mean
   over cases; ms per slice = the network's seconds over the axial slices, from the run's ``timing.json``.

    python benchmarks/benchmark_networks.py --work /tmp/bench_networks --out documentation/figures
    python benchmarks/benchmark_networks.py --work /tmp/bench_networks_smoke --epochs 1 --iterations 2 --train 4

Reruns reuse the datasets, trainings and predictions found in --work.
"""
from __future__ import annotations

import json
from pathlib import Path

from benchmark_common import benchmark_parser, benchmark_workspace, run_module, write_tables

DATASET_ID, PLANS = 531, "radconfCPUPlans"
RUNS = {  # name: (trainer, configuration)
    "2D U-Net": ("nnUNetTrainerNoDA", "2d"),
    "2D ResNet34-FPN": ("ResNet34FPNTrainerNoDA", "2d"),
    "2D DeepLabv3+": ("DeepLabV3PlusTrainerNoDA", "2d"),
    "3D U-Net": ("nnUNetTrainerNoDA", "3d_fullres"),
    "3D attention U-Net": ("AttentionUNetTrainerNoDA", "3d_fullres"),
}


def phantom_datasets(folders: dict, args) -> dict[str, Path]:
    """The raw dataset and the test folders (held-out, shifted)."""
    from radconf.datasets.phantom import PhantomConfig
    from radconf.datasets.phantom.writer import write_phantom_dataset

    raw = write_phantom_dataset(folders["nnUNet_raw"], dataset_id=DATASET_ID, num_train=args.train, num_test=4,
                                show_progress=False).folder
    shifted = write_phantom_dataset(folders["nnUNet_raw"].parent / "shifted", dataset_id=731, num_train=1,
                                    num_test=4, config=PhantomConfig(seed=7031, spacing=(2.5, 1.5, 1.5),
                                                                     anatomy_scale=1.2, noise_hu=25.0),
                                    show_progress=False).folder
    return {"heldout": raw, "shifted": shifted}


def _train(folders: dict, env: dict, log: Path, args) -> None:
    if not (folders["nnUNet_preprocessed"] / f"Dataset{DATASET_ID}_Phantom" / f"{PLANS}.json").is_file():
        run_module(["radconf.cli.plan_and_preprocess", "-d", str(DATASET_ID), "--preset", "cpu", "-c", "2d",
                    "3d_fullres"], env, log)
    for name, (trainer, configuration) in RUNS.items():
        train_network(folders, env, log, f"Dataset{DATASET_ID}_Phantom", trainer, configuration, args, name)


def train_network(folders: dict, env: dict, log: Path, dataset: str, trainer: str, configuration: str, args,
                  name: str) -> Path:
    """Trains ``trainer`` on fold ``all`` of ``dataset`` for ``args.epochs`` x ``args.iterations`` (seed 0, no
    validation, single-process augmentation) unless its final checkpoint is there; a checkpoint of another budget is
    refused (use another --work). Returns the fold folder."""
    fold = folders["nnUNet_results"] / dataset / f"{trainer}__{PLANS}__{configuration}" / "fold_all"
    budget = {"epochs": args.epochs, "iterations": args.iterations}
    record = fold / "benchmark_budget.json"
    if (fold / "checkpoint_final.pth").is_file():
        if not record.is_file() or json.loads(record.read_text()) != budget:
            raise SystemExit(f"{fold} was trained with another budget than {budget}; give another --work.")
        return fold
    print(f"training {name}: {args.epochs} x {args.iterations} iterations", flush=True)
    run_module(["radconf.cli.train", dataset.split("_")[0].removeprefix("Dataset"), configuration, "all", "-tr",
                trainer, "-p", PLANS, "-device", "cpu", "--epochs", str(args.epochs), "--iterations_per_epoch",
                str(args.iterations), "--seed", "0", "--no_val"], {**env, "nnUNet_n_proc_DA": "0"}, log)
    record.write_text(json.dumps(budget))
    return fold


def gtv_scores(reference: Path, predictions: Path, gtv: int) -> dict:
    """Mean over cases of the GTV's DSC, Jaccard, TPR and FPR (voxel-wise)."""
    import numpy as np
    import SimpleITK as sitk

    rows = []
    for path in sorted(reference.glob("*.nii.gz")):
        ref = sitk.GetArrayFromImage(sitk.ReadImage(str(path))) == gtv
        pred = sitk.GetArrayFromImage(sitk.ReadImage(str(predictions / path.name))) == gtv
        tp, fp, fn = (ref & pred).sum(), (~ref & pred).sum(), (ref & ~pred).sum()
        dice = 2 * tp / max(2 * tp + fp + fn, 1)
        rows.append({"dsc": dice, "jaccard": tp / max(tp + fp + fn, 1), "tpr": tp / max(tp + fn, 1),
                     "fpr": fp / max((~ref).sum(), 1)})
    return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]}


def _predict_and_score(tests: dict[str, Path], folders: dict, work: Path, env: dict, log: Path) -> list[dict]:
    rows = []
    for name, (trainer, configuration) in RUNS.items():
        for group, raw in tests.items():
            output = work / "predictions" / f"{trainer}_{configuration}_{group}"
            if not (output / "timing.json").is_file():
                run_module(["radconf.cli.predict", "-i", str(raw / "imagesTs"), "-o", str(output), "-d",
                            str(DATASET_ID), "-tr", trainer, "-p", PLANS, "-c", configuration, "-f", "all",
                            "-device", "cpu", "--disable_tta", "-np", "1"], env, log)
            gtv = json.loads((raw / "dataset.json").read_text())["labels"]["gtv"]
            timing = json.loads((output / "timing.json").read_text())
            parameters = _parameters(folders, trainer, configuration)
            rows.append({"network": name, "test": group, **gtv_scores(raw / "labelsTs", output, gtv),
                         "ms_per_slice": timing["mean"]["ms_per_slice"], "network_s": timing["mean"]["network_s"],
                         "parameters_M": parameters})
    return rows


def _parameters(folders: dict, trainer: str, configuration: str) -> float:
    import torch

    fold = (folders["nnUNet_results"] / f"Dataset{DATASET_ID}_Phantom" / f"{trainer}__{PLANS}__{configuration}"
            / "fold_all")
    weights = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)["network_weights"]
    return sum(v.numel() for k, v in weights.items() if "running_" not in k and "num_batches" not in k) / 1e6


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--train", type=int, default=12)
    args = parser.parse_args()
    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    tests = phantom_datasets(folders, args)
    _train(folders, env, log, args)
    rows = _predict_and_score(tests, folders, work, env, log)
    lines = [f"Networks on the phantom's GTV ({args.train} training cases, {args.epochs} x {args.iterations} "
             f"iterations each, no augmentation, seed 0; 4 held-out and 4 shifted cases; CPU, 2 cores)", "",
             "| network | test | DSC | Jaccard | TPR | FPR | ms/slice | parameters (M) |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['network']} | {r['test']} | {r['dsc']:.3f} | {r['jaccard']:.3f} | {r['tpr']:.3f} | "
              f"{r['fpr']:.5f} | {r['ms_per_slice']:.1f} | {r['parameters_M']:.1f} |" for r in rows]
    lines += ["", "Seed 002, Table 2 (its data, its GPU): ResNet34-FPN DSC 0.73, Jaccard 0.68, TPR 0.74, FPR 0.0012, "
              "21 ms per slice; U-Net DSC 0.64, 28 ms per slice."]
    write_tables(out / "networks", lines, rows)


if __name__ == "__main__":
    main()
