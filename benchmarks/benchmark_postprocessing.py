"""Post-processing chosen on validation: radconf's per-structure rule (Dice up, HD95 not worse) vs nnU-Net's
largest-component rule, on held-out and shifted cases.

Without ``--model``: generates the phantom (Dataset511; ``--confidence``: its readers fused into levels 0..5,
Dataset512) and trains the folds of nnU-Net's split with validation (``--trainer``, default ``nnUNetTrainerNoDA``;
with ``--confidence``, ``ConfidenceTrainer2p5DNoDA:2d``). With ``--model SPEC`` it uses that cross-validated model and
the nnU-Net folders of the environment; the test set is then its raw dataset's imagesTs/labelsTs only. Then:

1. ``radconf_determine_postprocessing -m SPEC`` on the folds' validation predictions;
2. nnU-Net's ``determine_postprocessing`` on the same predictions (merged as ``nnUNetv2_find_best_configuration``
   does), applied with nnU-Net's own ``apply_postprocessing_to_folder``;
3. the model predicts the held-out cases and a shifted phantom (seed 1000, 2.5 x 1.1 x 1.1 mm, 20 HU noise, anatomy
   10 % larger); each prediction is evaluated raw, after radconf's steps and after nnU-Net's.

    python benchmarks/benchmark_postprocessing.py --work /tmp/bench_pp --out documentation/figures
    python benchmarks/benchmark_postprocessing.py --work /tmp/bench_pp_smoke --epochs 1 --iterations 2 --folds 0 1 \\
        --num_train 6 --num_test 2      # smoke run

Reruns reuse the datasets, trainings, predictions and choices found in --work.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

# benchmarks/ is on sys.path when a script runs
from benchmark_common import benchmark_workspace, evaluate_structures, run_module, write_tables

PHANTOM_ID, FUSED_ID, SHIFTED_ID, SHIFTED_FUSED_ID, K = 511, 512, 611, 612, 5
PLANS = "radconfCPUPlans"


def _datasets(folders: dict, env: dict, log: Path, args) -> tuple[Path, Path]:
    """The dataset the model is trained on and the shifted one (raw folders with imagesTs/labelsTs)."""
    from radconf.datasets.phantom import PhantomConfig
    from radconf.datasets.phantom.writer import write_phantom_dataset

    phantom = write_phantom_dataset(folders["nnUNet_raw"], dataset_id=PHANTOM_ID, num_train=args.num_train,
                                    num_test=args.num_test)
    shifted_raw = folders["nnUNet_raw"].parent / "shifted_raw"
    config = PhantomConfig(seed=1000, spacing=(2.5, 1.1, 1.1), noise_hu=20.0, anatomy_scale=1.1)
    shifted = write_phantom_dataset(shifted_raw, dataset_id=SHIFTED_ID, num_train=1, num_test=6, config=config)
    if not args.confidence:
        return phantom.folder, shifted.folder
    pairs = ((folders["nnUNet_raw"], phantom.folder, FUSED_ID), (shifted_raw, shifted.folder, SHIFTED_FUSED_ID))
    for raw, source, dataset_id in pairs:
        if not list(raw.glob(f"Dataset{dataset_id}_*")):
            run_module(["radconf.cli.fuse_readers", str(source), "-d", str(dataset_id), "-n", "Confidence", "-k",
                        str(K), "--structure", "GTV"], {**env, "nnUNet_raw": str(raw)}, log)
    return (next(folders["nnUNet_raw"].glob(f"Dataset{FUSED_ID}_*")),
            next(shifted_raw.glob(f"Dataset{SHIFTED_FUSED_ID}_*")))


def _train(dataset: Path, folders: dict, env: dict, log: Path, args) -> str:
    """Plans and trains (with validation) every fold unless done; returns the model spec."""
    trainer, _, configuration = args.trainer.partition(":")
    configuration = configuration or ("2d" if args.confidence else "3d_fullres")
    dataset_id = dataset.name[len("Dataset"):len("Dataset") + 3]
    if not (folders["nnUNet_preprocessed"] / dataset.name / f"{PLANS}.json").is_file():
        run_module(["radconf.cli.plan_and_preprocess", "-d", dataset_id, "--preset", "cpu", "-c", configuration], env,
                   log)
    model = folders["nnUNet_results"] / dataset.name / f"{trainer}__{PLANS}__{configuration}"
    for fold in args.folds:
        if not (model / f"fold_{fold}" / "validation" / "summary.json").is_file():
            print(f"training {trainer} ({configuration}) fold {fold}: {args.epochs} x {args.iterations} iterations",
                  flush=True)
            run_module(["radconf.cli.train", dataset_id, configuration, fold, "-tr", trainer, "-p", PLANS, "-device",
                        args.device, "--epochs", str(args.epochs), "--iterations_per_epoch", str(args.iterations),
                        "--seed", "0", "--c"], {**env, "nnUNet_n_proc_DA": "0"}, log)
    return f"{dataset_id}:{trainer}:{PLANS}:{configuration}:{','.join(args.folds)}"


def _nnunet_choice(model: Path, folds: list[str], reference: Path, work: Path) -> tuple[Path, list[str]]:
    """nnU-Net's own rule on the merged cross-validation predictions: its folder (postprocessing.pkl) and steps."""
    from batchgenerators.utilities.file_and_folder_operations import load_json, load_pickle
    from nnunetv2.postprocessing.remove_connected_components import determine_postprocessing

    merged = work / "nnunet_crossval"
    if not (merged / "postprocessing.pkl").is_file():
        shutil.rmtree(merged, ignore_errors=True)
        merged.mkdir(parents=True)
        for fold in folds:
            for path in (model / f"fold_{fold}" / "validation").glob("*.nii.gz"):
                shutil.copy(path, merged / path.name)
        for name in ("dataset.json", "plans.json"):
            shutil.copy(model / name, merged / name)
        determine_postprocessing(str(merged), str(reference), load_json(str(model / "plans.json")),
                                 load_json(str(model / "dataset.json")), num_processes=1,
                                 keep_postprocessed_files=False)
    _, kwargs = load_pickle(str(merged / "postprocessing.pkl"))
    return merged, [f"largest component of {k['labels_or_regions']}" for k in kwargs]


def _scores(reference: Path, predictions: Path, output: Path, levels: int | None, structures: list[str]) -> dict:
    """Mean Dice and HD95 per structure (confidence maps: per level mask level >= c)."""
    if levels is None:
        return {s: (r["dice_mean"], r["hd95_mean"]) for s, r in
                evaluate_structures(reference, predictions, output, structures).items()}
    from radconf.evaluation import evaluate_folders

    summary = evaluate_folders(reference_dir=reference, prediction_dir=predictions, output_dir=output,
                               confidence_levels=levels, progress=False, plots=False).summary
    return {s: (summary[s]["dice"]["mean"], summary[s]["hd95_mm"]["mean"]) for s in structures}


def _test_set(name: str, dataset: Path, spec: str, choices: dict, work: Path, env: dict, log: Path, args,
              levels: int | None, structures: list[str]) -> dict:
    """Raw, radconf-post-processed and nnU-Net-post-processed predictions of one test set, evaluated."""
    from batchgenerators.utilities.file_and_folder_operations import load_pickle
    from nnunetv2.postprocessing.remove_connected_components import apply_postprocessing_to_folder

    raw = work / f"predictions_{name}_raw"
    if not raw.is_dir():
        run_module(["radconf.cli.predict", "-i", str(dataset / "imagesTs"), "-o", str(raw), "-m", spec, "-device",
                    args.device], env, log)
    folders = {"raw": raw, "radconf": work / f"predictions_{name}_radconf",
               "nnU-Net": work / f"predictions_{name}_nnunet"}
    if not folders["radconf"].is_dir():
        run_module(["radconf.cli.apply_postprocessing", "-i", str(raw), "-o", str(folders["radconf"]), "-pp",
                    str(choices["radconf"] / "postprocessing.json")], env, log)
    if not folders["nnU-Net"].is_dir():
        functions, kwargs = load_pickle(str(choices["nnU-Net"] / "postprocessing.pkl"))
        apply_postprocessing_to_folder(str(raw), str(folders["nnU-Net"]), functions, kwargs,
                                       str(choices["nnU-Net"] / "plans.json"),
                                       str(choices["nnU-Net"] / "dataset.json"), num_processes=1)
    return {method: _scores(dataset / "labelsTs", folder, work / f"evaluation_{name}_{folder.name}", levels,
                            structures) for method, folder in folders.items()}


def _setup(args) -> tuple:
    """``(work, out, nnU-Net folders, environment, log, model spec, test sets)``: the given model, or the phantom
    model trained here."""
    import os

    from radconf.models import ModelSpec
    from radconf.paths import resolve_nnunet_paths

    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    if args.model:
        env, paths = dict(os.environ), resolve_nnunet_paths()
        folders = {"nnUNet_raw": paths.raw, "nnUNet_preprocessed": paths.preprocessed, "nnUNet_results": paths.results}
        dataset = paths.raw / ModelSpec.parse(args.model).model_folder(paths.results).parent.name
        return work, out, folders, env, log, args.model, {"held-out": dataset}
    dataset, shifted = _datasets(folders, env, log, args)
    spec = _train(dataset, folders, env, log, args)
    return work, out, folders, env, log, spec, {"held-out": dataset, "shifted": shifted}


def _cell(value, decimals: int) -> str:
    """A table cell: NaN (null in JSON) as n/a, infinities as inf."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    value = float(value)
    return "inf" if value == float("inf") else f"{value:.{decimals}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="radconf_benchmark_postprocessing", help="scratch folder")
    parser.add_argument("--out", default=None, help="where the table (md/csv) goes (default: --work)")
    parser.add_argument("--model", default=None,
                        help="a cross-validated model spec (in the nnU-Net folders of the environment)")
    parser.add_argument("--confidence", action="store_true", help="the phantom's readers fused into levels 0..5")
    parser.add_argument("--trainer", default=None, help="NAME or NAME:CONFIGURATION")
    parser.add_argument("--folds", nargs="+", default=["0", "1", "2", "3", "4"])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--num_train", type=int, default=16)
    parser.add_argument("--num_test", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    args.trainer = args.trainer or ("ConfidenceTrainer2p5DNoDA:2d" if args.confidence else "nnUNetTrainerNoDA")

    from radconf.models import ModelSpec
    from radconf.postprocessing.definition import dataset_levels
    from radconf.postprocessing.steps import steps_text

    work, out, folders, env, log, spec, test_sets = _setup(args)
    model_spec = ModelSpec.parse(spec)
    model = model_spec.model_folder(folders["nnUNet_results"])
    dataset_json = json.loads((model / "dataset.json").read_text())
    levels = dataset_levels(dataset_json)
    structures = [f"level>={c}" for c in range(1, levels + 1)] if levels else \
        [name for name, value in dataset_json["labels"].items() if name != "background"]
    choices = {"radconf": work / "radconf_choice"}
    if not (choices["radconf"] / "postprocessing.json").is_file():
        run_module(["radconf.cli.determine_postprocessing", "-m", spec, "-o", str(choices["radconf"])], env, log)
    reference = folders["nnUNet_preprocessed"] / model.parent.name / "gt_segmentations"
    choices["nnU-Net"], nnunet_steps = _nnunet_choice(model, list(model_spec.folds), reference, work)
    chosen = json.loads((choices["radconf"] / "postprocessing.json").read_text())
    steps = {s["name"]: steps_text(s["steps"]) for s in chosen["structures"]}

    header = ["test set", "structure", "Dice raw", "HD95 raw", "Dice radconf", "HD95 radconf", "radconf steps",
              "Dice nnU-Net", "HD95 nnU-Net"]
    rows = [dict(zip(header, ["cross-validation", name, _cell(s["raw"]["mean_dice"], 3),
                              _cell(s["raw"]["mean_hd95_mm"], 1), _cell(s["postprocessed"]["mean_dice"], 3),
                              _cell(s["postprocessed"]["mean_hd95_mm"], 1), steps[name], "", ""]))
            for name, s in chosen["scores"].items()]
    for name, folder in test_sets.items():
        scores = _test_set(name, folder, spec, choices, work, env, log, args, levels, structures)
        for structure in structures:
            cells = [_cell(scores[m][structure][i], 3 - 2 * i) for m in ("raw", "radconf") for i in (0, 1)]
            rows.append(dict(zip(header, [name, structure, *cells, steps.get(structure, "none"),
                                          _cell(scores["nnU-Net"][structure][0], 3),
                                          _cell(scores["nnU-Net"][structure][1], 1)])))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *["| " + " | ".join(row.values()) + " |" for row in rows], "",
             f"Model {spec}; radconf's choice on {len(chosen['sources']['cases'])} validation cases; nnU-Net's choice: "
             f"{'; '.join(nnunet_steps) or 'no step'}. HD95 in mm (mean over cases; inf: a structure missed or "
             f"predicted where the reference has none in some case)."]
    write_tables(out / "benchmark_postprocessing", lines, rows)


if __name__ == "__main__":
    main()
