"""The AG-MTN ablation on the phantom's CTV: plain U-Net, distance head, anatomy channels, both.

Generates the phantom (16 training, 10 held-out cases) and its CTV dataset (CT -> CTV), builds the anatomy dataset
(CT + bladder, rectum and gluteal-muscle masks from the phantom's labels -> CTV) with ``radconf_anatomy_dataset``,
plans everything with the cpu preset and trains, for the same budget and seed, fold ``all`` of:

- an organ model on the phantom's labels (what the anatomy models see at inference: two-stage prediction),
- the four ablation models (``--trainers``; NoDA variants by default, as CPU budgets need).

The held-out cases are predicted from the CT alone (the anatomy models run the organ model first) and, for the
anatomy models, also with the reference organ masks (``--anatomy``), then evaluated with radconf's evaluation:
CTV Dice, HD95, ASSD, surface Dice at 2 mm. Paired two-sided t-tests against the plain model, as in the paper.

    python benchmarks/benchmark_anatomy_guided.py --work /tmp/bench_agmtn --out documentation/figures

Reruns reuse datasets, finished trainings (``--c``) and per-model results (``result_<trainer>.json`` in --work).
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

PHANTOM_ID, CTV_ID, ANATOMY_ID = 501, 503, 504
ANATOMY = ("bladder", "rectum", "gluteal_muscles")
PLANS = "radconfCPUPlans"
ORGAN_TRAINER = "nnUNetTrainerNoDA"
DEFAULT_TRAINERS = {  # name in the table -> (trainer, uses anatomy channels)
    "plain U-Net": ("nnUNetTrainerNoDA", False),
    "distance head (MTN)": ("DistanceMapTrainerNoDA", False),
    "anatomy channels (AG-UNet)": ("AnatomyChannelsTrainerNoDA", True),
    "both (AG-MTN)": ("AnatomyGuidedMultiTaskTrainerNoDA", True),
}
PAPER_GAIN = {"distance head (MTN)": "+3 %", "anatomy channels (AG-UNet)": "+5 %", "both (AG-MTN)": "+8 %"}
METRICS = ("dice", "hd95_mm", "assd_mm", "surface_dice_2.0mm")


def _train(dataset_id: int, trainer: str, env: dict, log: Path, args) -> float:
    return run_module(["radconf.cli.train", str(dataset_id), "3d_fullres", "all", "-tr", trainer, "-p", PLANS,
                       "-device", args.device, "--epochs", str(args.epochs), "--iterations-per-epoch",
                       str(args.iterations), "--seed", str(args.seed), "--no-val", "--c"],
                      {**env, "nnUNet_n_proc_DA": "0"}, log)


def _predict(dataset_id: int, trainer: str, images: Path, output: Path, env: dict, log: Path, args,
             *extra: str) -> float:
    return run_module(["radconf.cli.predict", "-i", str(images), "-o", str(output), "-d", str(dataset_id), "-tr",
                       trainer, "-p", PLANS, "-f", "all", "-device", args.device, *extra], env, log)


def _evaluate(reference: Path, predictions: Path, output: Path) -> dict:
    from radconf.evaluation import evaluate_folders
    from radconf.io.tables import read_csv

    result = evaluate_folders(reference_dir=reference, prediction_dir=predictions, output_dir=output, progress=False)
    ctv = result.summary["ctv"]
    per_case = {row["case"]: float(row["dice"]) for row in read_csv(output / "metrics_per_case.csv")
                if row.get("structure") == "ctv"}
    return {"summary": {m: {k: ctv[m][k] for k in ("mean", "sd", "min", "worst_case")} for m in METRICS},
            "per_case_dice": per_case}


def _model_result(name: str, trainer: str, anatomy: bool, folders: dict, env: dict, log: Path, args,
                  organ_spec: str) -> dict:
    dataset_id = ANATOMY_ID if anatomy else CTV_ID
    raw = folders["nnUNet_raw"]
    ctv_dataset = next(raw.glob(f"Dataset{CTV_ID}_*"))
    work = Path(args.work).resolve()
    print(f"{name}: {trainer}, {args.epochs} x {args.iterations} iterations", flush=True)
    train_s = _train(dataset_id, trainer, env, log, args)
    result = {"name": name, "trainer": trainer, "train_s": train_s}
    dataset_name = next(raw.glob(f"Dataset{dataset_id}_*")).name
    model = folders["nnUNet_results"] / dataset_name / f"{trainer}__{PLANS}__3d_fullres"
    result["median_epoch_s"] = median_epoch_seconds(model / "fold_all")
    images = ctv_dataset / "imagesTs"  # CT only: anatomy models run the organ model first
    predictions = work / f"predictions_{trainer}"
    extra = ("--anatomy_model", organ_spec) if anatomy else ()
    result["predict_s"] = _predict(dataset_id, trainer, images, predictions, env, log, args, *extra)
    result["two_stage"] = _evaluate(ctv_dataset / "labelsTs", predictions, work / f"evaluation_{trainer}")
    if anatomy:  # upper bound: the reference organ masks instead of the organ model's
        reference_organs = next(raw.glob(f"Dataset{PHANTOM_ID}_*")) / "labelsTs"
        oracle = work / f"predictions_{trainer}_reference_organs"
        _predict(dataset_id, trainer, images, oracle, env, log, args, "--anatomy", str(reference_organs))
        result["reference_organs"] = _evaluate(ctv_dataset / "labelsTs", oracle,
                                               work / f"evaluation_{trainer}_reference_organs")
    return result


def _paired_p(values: dict, baseline: dict) -> float:
    from scipy.stats import ttest_rel

    cases = sorted(set(values) & set(baseline))
    return float(ttest_rel([values[c] for c in cases], [baseline[c] for c in cases]).pvalue)


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radconf.io.files import atomic_save_figure

    fig, ax = plt.subplots(figsize=(7, 4))
    for index, result in enumerate(results):
        values = list(result["two_stage"]["per_case_dice"].values())
        ax.scatter([index] * len(values), values, alpha=0.6)
        ax.plot([index - 0.2, index + 0.2], [sum(values) / len(values)] * 2, color="k")
    ax.set_xticks(range(len(results)), [r["name"] for r in results], fontsize=8)
    ax.set_ylabel("CTV Dice per held-out case (two-stage)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)


def _prepare(folders: dict, env: dict, log: Path) -> str:
    """Datasets, plans and the organ model; returns the organ model's spec."""
    from radconf.datasets.phantom.ctv_dataset import write_ctv_dataset
    from radconf.datasets.phantom.writer import write_phantom_dataset

    raw = folders["nnUNet_raw"]
    phantom = write_phantom_dataset(raw, dataset_id=PHANTOM_ID, num_train=16, num_test=10)
    write_ctv_dataset(phantom.folder, raw, dataset_id=CTV_ID)
    if not list(raw.glob(f"Dataset{ANATOMY_ID}_*")):
        run_module(["radconf.cli.anatomy_dataset", str(CTV_ID), "-d", str(ANATOMY_ID), "-n", "PhantomCTVAnatomy",
                    "--anatomy", *ANATOMY, "--anatomy_dataset", str(PHANTOM_ID)], env, log)
    for dataset_id in (PHANTOM_ID, CTV_ID, ANATOMY_ID):
        name = next(raw.glob(f"Dataset{dataset_id}_*")).name
        if not (folders["nnUNet_preprocessed"] / name / f"{PLANS}.json").is_file():
            run_module(["radconf.cli.plan_and_preprocess", "-d", str(dataset_id), "--preset", "cpu", "-c",
                        "3d_fullres"], env, log)
    return f"{PHANTOM_ID}:{ORGAN_TRAINER}:{PLANS}:3d_fullres:all"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="radconf_benchmark_anatomy_guided", help="scratch folder")
    parser.add_argument("--out", default=None, help="where the table (md/csv) and plot go (default: --work)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--iterations", type=int, default=50, help="training iterations per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from radconf.io.files import atomic_write_text

    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    organ_spec = _prepare(folders, env, log)
    organ_result = work / "result_organ_model.json"
    if not organ_result.is_file():
        print(f"organ model: {ORGAN_TRAINER} on dataset {PHANTOM_ID}", flush=True)
        atomic_write_text(organ_result, json.dumps({"train_s": _train(PHANTOM_ID, ORGAN_TRAINER, env, log, args)}))

    results = []
    for name, (trainer, anatomy) in DEFAULT_TRAINERS.items():
        cached = work / f"result_{trainer}.json"
        if not cached.is_file():
            result = _model_result(name, trainer, anatomy, folders, env, log, args, organ_spec)
            atomic_write_text(cached, json.dumps(result))
        results.append(json.loads(cached.read_text()))

    baseline = results[0]["two_stage"]["per_case_dice"]
    header = ["model", "trainer", "CTV Dice (two-stage)", "worst case", "paired t-test p vs plain", "HD95 mm",
              "ASSD mm", "surface Dice 2 mm", "Dice with reference organs", "paper (Dice vs plain)",
              "median epoch s", "train s"]
    rows = []
    for r in results:
        s = r["two_stage"]["summary"]
        oracle = r.get("reference_organs", {}).get("summary", {}).get("dice")
        rows.append(dict(zip(header, [
            r["name"], r["trainer"], f"{s['dice']['mean']:.3f} ± {s['dice']['sd']:.3f}",
            f"{s['dice']['min']:.3f} ({s['dice']['worst_case']})",
            "" if r is results[0] else f"{_paired_p(r['two_stage']['per_case_dice'], baseline):.2g}",
            f"{s['hd95_mm']['mean']:.2f}", f"{s['assd_mm']['mean']:.2f}", f"{s['surface_dice_2.0mm']['mean']:.3f}",
            f"{oracle['mean']:.3f}" if oracle else "", PAPER_GAIN.get(r["name"], "(87 % for AG-MTN)"),
            f"{r['median_epoch_s']:.1f}", f"{r['train_s']:.0f}"])))
    n_cases = len(baseline)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *["| " + " | ".join(row.values()) + " |" for row in rows], "",
             f"{n_cases} held-out phantom cases; budget per model: {args.epochs} x {args.iterations} iterations, fold "
             f"all, seed {args.seed}, device {args.device}. Two-stage: the anatomy models get the organ model's "
             f"masks ({ORGAN_TRAINER}, same budget)."]
    write_tables(out / "benchmark_anatomy_guided", lines, rows)
    _plot(results, out / "benchmark_anatomy_guided.png")


if __name__ == "__main__":
    main()
