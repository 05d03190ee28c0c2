"""CT normalisation with bone labelled: nnU-Net's CT scheme vs a fixed window vs the window with CLAHE.

The phantom is written with its femoral heads labelled (``label_femoral_heads``: trabecular bone 240 HU inside a
750 HU cortex), so that nnU-Net's fingerprint percentiles and statistics of the labelled voxels stretch towards bone.
It is planned three times with the cpu preset (the same fingerprint, the same network and patch):

- ``radconfCPUPlans``: nnU-Net's ``CTNormalization`` (clip to the 0.5/99.5 percentiles of labelled voxels, z-score);
- ``radconfCPUPlans_CTw-800_800``: ``--ct_window -800 800`` (clip to [-800, 800] HU, divide by 800);
- ``radconfCPUPlans_CTw-800_800_CLAHE``: ``--ct_window -800 800 --clahe`` (the same clip, then 3D CLAHE).

Soft-tissue contrast in each scheme: on the preprocessed training cases, the difference between the mean of the
gluteal muscles (52 HU) and of the bladder (8 HU), in normalised units and as a share of the case's normalised
dynamic range (max - min), averaged over the cases, beside the HU range each scheme clips to.

One model per scheme, the same budget and seed (``nnUNetTrainerNoDA``: no mirroring, the femoral heads are
lateralised; fold ``all``); each predicts the held-out cases and a shifted phantom (seed 1000, 3.5 x 2.4 x 2.4 mm,
20 HU noise, anatomy 10 % larger), evaluated with radconf's evaluation: Dice (mean, median, min) and HD95 per
structure.

    python benchmarks/benchmark_ct_window.py --work /tmp/bench_window --out /tmp/bench_window/out --epochs 40

Reruns reuse the datasets, finished trainings (``--c``) and per-scheme results (``result_<plans>.json`` in --work).
"""
from __future__ import annotations

import argparse
import json
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

PHANTOM_ID, SHIFTED_ID = 531, 631
TRAINER = "nnUNetTrainerNoDA"
SCHEMES = {  # plans -> (label, extra planning arguments)
    "radconfCPUPlans": ("nnU-Net CT normalisation", []),
    "radconfCPUPlans_CTw-800_800": ("window [-800, 800]", ["--ct_window", "-800", "800"]),
    "radconfCPUPlans_CTw-800_800_CLAHE": ("window [-800, 800] + CLAHE", ["--ct_window", "-800", "800", "--clahe"]),
}
STRUCTURES = ("bladder", "rectum", "gluteal_muscles", "gtv", "femoral_head_left", "femoral_head_right")
BLADDER, MUSCLE = 1, 3


def _prepare(folders: dict, env: dict, log: Path, work: Path, args) -> Path:
    from radconf.datasets.phantom import PhantomConfig
    from radconf.datasets.phantom.writer import write_phantom_dataset

    phantom = write_phantom_dataset(folders["nnUNet_raw"], dataset_id=PHANTOM_ID, name="PhantomBone",
                                    num_train=args.train, num_test=args.test,
                                    config=PhantomConfig(label_femoral_heads=True))
    for plans, (_, extra) in SCHEMES.items():
        if not (folders["nnUNet_preprocessed"] / phantom.folder.name / f"{plans}.json").is_file():
            run_module(["radconf.cli.plan_and_preprocess", "-d", str(PHANTOM_ID), "--preset", "cpu", "-c",
                        "3d_fullres", *extra], env, log)
    shifted = PhantomConfig(seed=1000, spacing=(3.5, 2.4, 2.4), noise_hu=20.0, anatomy_scale=1.1,
                            label_femoral_heads=True)
    write_phantom_dataset(work / "shifted_raw", dataset_id=SHIFTED_ID, num_train=1, num_test=args.test, config=shifted)
    return phantom.folder


def soft_tissue_contrast(preprocessed: Path, plans: str) -> dict[str, float]:
    """Muscle - bladder mean in normalised units, and that over the case's normalised range, mean over the cases."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    plans_json = json.loads((preprocessed / f"{plans}.json").read_text())
    identifier = plans_json["configurations"]["3d_fullres"]["data_identifier"]
    properties = plans_json["foreground_intensity_properties_per_channel"]["0"]
    dataset = infer_dataset_class(str(preprocessed / identifier))(str(preprocessed / identifier))
    differences, shares = [], []
    for case in dataset.identifiers:
        data, seg, *_ = dataset.load_case(case)
        image, labels = np.asarray(data[:])[0], np.asarray(seg[:])[0]
        difference = float(image[labels == MUSCLE].mean() - image[labels == BLADDER].mean())
        differences.append(difference)
        shares.append(difference / float(image.max() - image.min()))
    return {"difference": float(np.mean(differences)), "share_of_range": float(np.mean(shares)),
            "clip_hu": [properties["percentile_00_5"], properties["percentile_99_5"]]}


def _scheme(plans: str, folders: dict, env: dict, log: Path, work: Path, phantom: Path, args) -> dict:
    label = SCHEMES[plans][0]
    print(f"{label}: {TRAINER} with {plans}, {args.epochs} x {args.iterations} iterations", flush=True)
    train_s = run_module(["radconf.cli.train", str(PHANTOM_ID), "3d_fullres", "all", "-tr", TRAINER, "-p", plans,
                          "-device", args.device, "--epochs", str(args.epochs), "--iterations_per_epoch",
                          str(args.iterations), "--seed", str(args.seed), "--no_val", "--c"],
                         {**env, "nnUNet_n_proc_DA": "0"}, log)
    model = folders["nnUNet_results"] / phantom.name / f"{TRAINER}__{plans}__3d_fullres"
    result = {"name": label, "plans": plans, "train_s": train_s, "median_epoch_s": median_epoch_seconds(
        model / "fold_all"), "contrast": soft_tissue_contrast(folders["nnUNet_preprocessed"] / phantom.name, plans)}
    shifted = next((work / "shifted_raw").glob(f"Dataset{SHIFTED_ID}_*"))
    for test, folder in {"held_out": phantom, "shifted": shifted}.items():
        predictions = work / f"predictions_{test}_{plans}"
        run_module(["radconf.cli.predict", "-i", str(folder / "imagesTs"), "-o", str(predictions), "-d",
                    str(PHANTOM_ID), "-tr", TRAINER, "-p", plans, "-f", "all", "-device", args.device,
                    "--continue_prediction"], env, log)
        result[test] = evaluate_structures(folder / "labelsTs", predictions, work / f"evaluation_{test}_{plans}",
                                           STRUCTURES)
    return result


def _tables(results: list[dict]) -> tuple[list[str], list[dict]]:
    lines = ["### Soft-tissue contrast (preprocessed training cases)", "",
             "| scheme | clipped to (HU) | muscle - bladder (normalised units) | share of the normalised range |",
             "|---|---|---|---|",
             *[f"| {r['name']} | [{r['contrast']['clip_hu'][0]:.0f}, {r['contrast']['clip_hu'][1]:.0f}] | "
               f"{r['contrast']['difference']:.3f} | {r['contrast']['share_of_range']:.4f} |" for r in results], ""]
    rows = []
    header = ["scheme"] + [f"{s} Dice" for s in STRUCTURES] + [f"{s} HD95 mm" for s in STRUCTURES]
    for test in ("held_out", "shifted"):
        table = []
        for r in results:
            m = r[test]
            table.append(dict(zip(header, [r["name"]] + [
                f"{m[s]['dice_mean']:.3f} (median {m[s]['dice_median']:.3f}, min {m[s]['dice_min']:.3f})"
                for s in STRUCTURES] + [f"{m[s]['hd95_mean']:.1f}" for s in STRUCTURES])))
        lines += [f"### {test.replace('_', '-')} cases", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header), *["| " + " | ".join(row.values()) + " |" for row in table], ""]
        rows += [{"test": test, **row} for row in table]
    return lines, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="radconf_benchmark_ct_window", help="scratch folder")
    parser.add_argument("--out", default=None, help="where the tables (md/csv) go (default: --work)")
    parser.add_argument("--train", type=int, default=16, help="training cases")
    parser.add_argument("--test", type=int, default=6, help="held-out cases, and shifted cases")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=list(SCHEMES))
    args = parser.parse_args()

    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    phantom = _prepare(folders, env, log, work, args)
    results = []
    for plans in args.schemes:
        cached = work / f"result_{plans}.json"
        if not cached.is_file():
            cached.write_text(json.dumps(_scheme(plans, folders, env, log, work, phantom, args)))
        results.append(json.loads(cached.read_text()))
    setting = (f"{args.train} training cases with the femoral heads labelled; budget per model {args.epochs} x "
               f"{args.iterations} iterations, {TRAINER}, fold all, seed {args.seed}, device {args.device}; "
               f"{args.test} held-out and {args.test} shifted cases.")
    lines, rows = _tables(results)
    lines = [setting, "", *lines, "Train seconds: " + ", ".join(f"{r['name']} {r['train_s']:.0f}" for r in results)]
    write_tables(out / "benchmark_ct_window", lines, rows)


if __name__ == "__main__":
    main()
