"""Exported distance maps (``radconf_predict --save_distance``) against the exact distance transform of the CTV.

Uses the models of ``benchmarks/benchmark_anatomy_guided.py`` in its workspace (``--work``): ``DistanceMapTrainerNoDA``
on Dataset503 (CT -> CTV) and ``AnatomyGuidedMultiTaskTrainerNoDA`` on Dataset504 (CT + organ masks -> CTV), plans
radconfCPUPlans, 3d_fullres, fold all. Two test sets:

- held-out: Dataset503's imagesTs/labelsTs (the training generator's held-out cases);
- shifted: a phantom no model has seen (seed 1000, spacing 2.5 x 1.1 x 1.1 mm, 20 HU noise, anatomy 10 % larger),
  written once into ``--work/shifted_raw`` (Dataset601 and its CTV dataset Dataset603); its imagesTs/labelsTs.

The anatomy model gets the reference organ masks (``--anatomy``: labelsTs of Dataset501, or of Dataset601). The truth
is the distance (mm) to the reference CTV, 0 inside; a signed map is compared through its positive part. Metrics per
band of the true distance (pooled over a test set's cases): MAE and median prediction; per case: Spearman's rank
correlation within 40 mm; and the fraction of voxels farther than 20 mm predicted below 1 mm.

    python benchmarks/benchmark_distance_maps.py --work /tmp/bench_agmtn --tag after --out documentation/figures

Predictions go to ``--work/distance_<tag>_<trainer>_<testset>`` and are reused while complete and made by the same
checkpoint; results to ``--out/distance_<tag>_<trainer>_<testset>.json``. The table (``benchmark_distance_maps.md``,
``.csv``) and the plot (``benchmark_distance_maps.png``) show every result JSON in ``--out``, all tags side by side.
"""
from __future__ import annotations

import argparse
import json
import re
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

# benchmarks/ is on sys.path when a script runs
from benchmark_common import benchmark_workspace, run_module, write_tables

PHANTOM_ID, CTV_ID, ANATOMY_ID = 501, 503, 504
SHIFTED_ID, SHIFTED_CTV_ID = 601, 603
PLANS, CONFIGURATION, CHECKPOINT = "radconfCPUPlans", "3d_fullres", "checkpoint_final.pth"
DEFAULT_TRAINERS = ("DistanceMapTrainerNoDA", "AnatomyGuidedMultiTaskTrainerNoDA")
TEST_SETS = {"held_out": "held-out (Dataset503)",
             "shifted": "shifted (Dataset603: anatomy x1.1, 2.5 x 1.1 x 1.1 mm, 20 HU noise)"}
STRUCTURE = "ctv"
BANDS = (("inside", 0.0, 0.0), ("0-5", 0.0, 5.0), ("5-10", 5.0, 10.0), ("10-20", 10.0, 20.0), ("20-40", 20.0, 40.0),
         (">40", 40.0, np.inf))  # (name, low, high): inside is d == 0, the others low < d <= high
TARGET_MAE_MM, TARGET_BANDS, TARGET_SPEARMAN = 2.0, ("inside", "0-5", "5-10", "10-20"), 0.9
SPEARMAN_WITHIN_MM, FAR_MM, INSIDE_MM = 40.0, 20.0, 1.0
PROFILE_STEP_MM, PROFILE_MAX_MM = 2.5, 60.0


def band_mask(true_mm: np.ndarray, low: float, high: float) -> np.ndarray:
    """Voxels of a band of the true distance: ``d == 0`` when ``high`` is 0, else ``low < d <= high``."""
    if high == 0.0:
        return true_mm == 0.0
    return (true_mm > low) & (true_mm <= high)


def band_metrics(true_mm: np.ndarray, predicted_mm: np.ndarray) -> dict[str, dict]:
    """Per band of :data:`BANDS`: MAE (mm), median prediction (mm) and voxel count; None where a band is empty."""
    result = {}
    for name, low, high in BANDS:
        inside = band_mask(true_mm, low, high)
        count = int(inside.sum())
        error = np.abs(predicted_mm[inside].astype(np.float64) - true_mm[inside])
        result[name] = {"mae_mm": float(error.mean()) if count else None,
                        "median_pred_mm": float(np.median(predicted_mm[inside])) if count else None,
                        "voxels": count}
    return result


def spearman_within(true_mm: np.ndarray, predicted_mm: np.ndarray, within_mm: float = SPEARMAN_WITHIN_MM) -> float:
    """Spearman's rank correlation of prediction and truth over voxels with true d <= ``within_mm`` (NaN when either
    is constant there)."""
    from scipy.stats import spearmanr

    near = true_mm <= within_mm
    if near.sum() < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant input gives NaN with a warning
        return float(spearmanr(true_mm[near], predicted_mm[near]).statistic)


def far_as_inside(true_mm: np.ndarray, predicted_mm: np.ndarray, far_mm: float = FAR_MM,
                  inside_mm: float = INSIDE_MM) -> tuple[int, int]:
    """``(far voxels predicted below inside_mm, far voxels)``; far: true d > ``far_mm``."""
    far = true_mm > far_mm
    return int((predicted_mm[far] < inside_mm).sum()), int(far.sum())


def distance_profile(true_mm: np.ndarray, predicted_mm: np.ndarray, step_mm: float = PROFILE_STEP_MM,
                     max_mm: float = PROFILE_MAX_MM) -> dict[str, list]:
    """25th, 50th and 75th percentile of the prediction per bin ``[k step, (k + 1) step)`` of the true distance up to
    ``max_mm`` (None for empty bins), with the bin edges and voxel counts."""
    edges = np.arange(0.0, max_mm + step_mm / 2, step_mm)
    profile: dict[str, list] = {"edges_mm": edges.tolist(), "p25": [], "p50": [], "p75": [], "voxels": []}
    which = np.digitize(true_mm, edges) - 1  # bin index; -1 below 0, len(edges) - 1 at or beyond max_mm
    for index in range(len(edges) - 1):
        values = predicted_mm[which == index]
        quartiles = np.percentile(values, [25, 50, 75]).tolist() if values.size else [None] * 3
        for key, value in zip(("p25", "p50", "p75"), quartiles):
            profile[key].append(value)
        profile["voxels"].append(int(values.size))
    return profile


def summarise(cases: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> dict:
    """Metrics of a test set from ``(case, true_mm, predicted_mm)``: bands and profile pooled over the cases,
    Spearman per case (mean and min), far-as-inside fraction pooled."""
    trues, predictions, rho, far_hits, far_total = [], [], {}, 0, 0
    for case, true_mm, predicted_mm in cases:
        if true_mm.shape != predicted_mm.shape:
            raise ValueError(f"{case}: prediction shape {predicted_mm.shape} differs from {true_mm.shape}")
        finite = np.isfinite(true_mm)
        true_mm, predicted_mm = true_mm[finite].ravel(), predicted_mm[finite].ravel()
        rho[case] = spearman_within(true_mm, predicted_mm)
        hits, total = far_as_inside(true_mm, predicted_mm)
        far_hits, far_total = far_hits + hits, far_total + total
        trues.append(true_mm)
        predictions.append(predicted_mm)
    if not rho:
        raise ValueError("no cases to summarise")
    true_all, predicted_all = np.concatenate(trues), np.concatenate(predictions)
    values = np.array(list(rho.values()), np.float64)
    return {"cases": list(rho), "bands": band_metrics(true_all, predicted_all), "spearman_per_case": rho,
            "spearman_mean": float(values.mean()), "spearman_min": float(values.min()),
            "far_as_inside_fraction": far_hits / far_total if far_total else None, "far_voxels": far_total,
            "profile": distance_profile(true_all, predicted_all)}


def read_case(reference: Path, prediction: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """True distance to label 1 of ``reference``, the predicted map's positive part (both mm, numpy z, y, x) and the
    number of negative (signed-map inside) predictions; refuses a truncated file, NaN/Inf or another grid."""
    import SimpleITK as sitk

    from radconf.anatomy.distance import distance_to_structure
    from radconf.errors import InvalidInput
    from radconf.io.images import check_image_file, geometry_difference

    try:  # whole files; float voxels finite (SimpleITK alone reads NaN as 0)
        grids = [check_image_file(path) for path in (reference, prediction)]
    except InvalidInput as error:
        raise SystemExit(str(error)) from None
    difference = geometry_difference(*grids)
    if difference:
        raise SystemExit(f"{prediction}: its {difference} (the reference is {reference}).")
    label, predicted = sitk.ReadImage(str(reference)), sitk.ReadImage(str(prediction), sitk.sitkFloat32)
    mask = sitk.GetArrayFromImage(label) == 1
    if not mask.any():
        raise SystemExit(f"{reference}: the reference CTV (label 1) is empty; no distance is defined.")
    values = sitk.GetArrayFromImage(predicted)
    true_mm = distance_to_structure(mask, label.GetSpacing()[::-1])
    return true_mm, np.maximum(values, 0.0), int((values < 0).sum())


def _dataset(raw: Path, dataset_id: int) -> Path:
    found = sorted(raw.glob(f"Dataset{dataset_id}_*"))
    if not found:
        raise SystemExit(f"No Dataset{dataset_id}_* in {raw}; run benchmarks/benchmark_anatomy_guided.py with this "
                         f"--work first.")
    return found[0]


def _shifted_raw(work: Path) -> Path:
    """The shifted phantom and its CTV dataset in ``work/shifted_raw`` (written once, then reused)."""
    from radconf.datasets.phantom import PhantomConfig
    from radconf.datasets.phantom.ctv_dataset import write_ctv_dataset
    from radconf.datasets.phantom.writer import write_phantom_dataset

    raw = work / "shifted_raw"
    config = PhantomConfig(seed=1000, spacing=(2.5, 1.1, 1.1), noise_hu=20.0, anatomy_scale=1.1)
    phantom = write_phantom_dataset(raw, dataset_id=SHIFTED_ID, num_train=1, num_test=6, config=config)
    write_ctv_dataset(phantom.folder, raw, dataset_id=SHIFTED_CTV_ID)
    return raw


def _test_sets(work: Path, raw: Path) -> dict[str, tuple[Path, Path]]:
    """Test set -> (CTV dataset with imagesTs/labelsTs, organ dataset whose labelsTs feed ``--anatomy``)."""
    held_out = (_dataset(raw, CTV_ID), _dataset(raw, PHANTOM_ID))  # checked before the shifted phantom is written
    shifted = _shifted_raw(work)
    return {"held_out": held_out, "shifted": (_dataset(shifted, SHIFTED_CTV_ID), _dataset(shifted, SHIFTED_ID))}


def _model(results: Path, trainer: str) -> tuple[int, Path]:
    """The dataset (503 or 504) and final checkpoint of ``trainer``'s model; anatomy trainers are looked up in 504
    first."""
    order = (ANATOMY_ID, CTV_ID) if "Anatomy" in trainer else (CTV_ID, ANATOMY_ID)
    for dataset_id in order:
        for checkpoint in sorted(results.glob(f"Dataset{dataset_id}_*/{trainer}__{PLANS}__{CONFIGURATION}/fold_all/"
                                              f"{CHECKPOINT}")):
            return dataset_id, checkpoint
    raise SystemExit(f"No trained {trainer} ({PLANS}, {CONFIGURATION}, fold all) on Dataset{CTV_ID} or "
                     f"Dataset{ANATOMY_ID} in {results}; train it first (benchmarks/benchmark_anatomy_guided.py).")


def _cases(ctv_dataset: Path, max_cases: int | None) -> list[str]:
    cases = sorted(p.name[: -len(".nii.gz")] for p in (ctv_dataset / "labelsTs").glob("*.nii.gz"))
    if not cases:
        raise SystemExit(f"{ctv_dataset / 'labelsTs'} holds no reference labels.")
    return cases[:max_cases]


def _inputs(work: Path, test_set: str, ctv_dataset: Path, organs: Path, cases: list[str]) -> tuple[Path, Path]:
    """Images and organ label folders holding exactly ``cases`` (the datasets' own folders when that is all)."""
    from radconf.io.files import atomic_write_bytes

    images, labels = ctv_dataset / "imagesTs", organs / "labelsTs"
    if len(cases) == len(list(images.glob("*_0000.nii.gz"))):
        return images, labels
    subset = work / f"distance_inputs_{test_set}_{len(cases)}"
    for case in cases:
        for source, target in ((images / f"{case}_0000.nii.gz", subset / "images"),
                               (labels / f"{case}.nii.gz", subset / "anatomy")):
            if not (target / source.name).is_file():
                atomic_write_bytes(target / source.name, source.read_bytes())
    return subset / "images", subset / "anatomy"


def _predict(trainer: str, dataset_id: int, checkpoint: Path, images: Path, organs: Path, output: Path,
             cases: list[str], env: dict, log: Path, args) -> float:
    """Predicts ``images`` into ``output`` with ``--save_distance`` unless every case's map is there and was made
    with this checkpoint (recorded in ``output/benchmark_checkpoint.json``); returns the seconds spent (0 if reused)."""
    from radconf.io.files import atomic_write_json

    record = output / "benchmark_checkpoint.json"
    stat = checkpoint.stat()
    made_by = {"checkpoint": str(checkpoint), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    complete = all((output / "distance_maps" / f"{case}_{STRUCTURE}.nii.gz").is_file() for case in cases)
    if complete and record.is_file() and json.loads(record.read_text()) == made_by:
        print(f"  reusing {output}", flush=True)
        return 0.0
    if complete:
        print(f"  {output} was predicted with another checkpoint; predicting again", flush=True)
    record.unlink(missing_ok=True)
    extra = ["--anatomy", str(organs)] if dataset_id == ANATOMY_ID else []  # the reference organ masks
    seconds = run_module(["radconf.cli.predict", "-i", str(images), "-o", str(output), "-d", str(dataset_id), "-tr",
                          trainer, "-p", PLANS, "-c", CONFIGURATION, "-f", "all", "-device", args.device,
                          "--save_distance", *extra], env, log)
    atomic_write_json(record, made_by)
    return seconds


def _measure(trainer: str, model: tuple[int, Path], test_set: str, datasets: tuple[Path, Path], work: Path,
             env: dict, log: Path, args) -> dict:
    """Predicts one test set with one model and measures its distance maps."""
    from tqdm import tqdm

    (dataset_id, checkpoint), (ctv_dataset, organs) = model, datasets
    cases = _cases(ctv_dataset, args.max_cases)
    print(f"{trainer} (Dataset{dataset_id}) on {test_set}: {len(cases)} case(s), tag {args.tag}", flush=True)
    images, organ_labels = _inputs(work, test_set, ctv_dataset, organs, cases)
    output = work / f"distance_{args.tag}_{trainer}_{test_set}"
    seconds = _predict(trainer, dataset_id, checkpoint, images, organ_labels, output, cases, env, log, args)
    negative = []

    def maps():
        for case in tqdm(cases, desc=f"{trainer} {test_set}", unit="case"):
            true_mm, predicted_mm, below_zero = read_case(ctv_dataset / "labelsTs" / f"{case}.nii.gz",
                                                          output / "distance_maps" / f"{case}_{STRUCTURE}.nii.gz")
            negative.append(below_zero)
            yield case, true_mm, predicted_mm

    metrics = summarise(maps())
    return {"tag": args.tag, "trainer": trainer, "test_set": test_set, "dataset": dataset_id,
            "checkpoint": str(checkpoint), "predictions": str(output), "predict_s": seconds,
            "negative_voxels": sum(negative), "created": time.time(), **metrics}


def _read_results(folder: Path) -> list[dict]:
    """Every result JSON in ``folder``, by test set, trainer and the time it was measured."""
    results = [json.loads(path.read_text()) for path in sorted(folder.glob("distance_*.json"))]
    results = [r for r in results if isinstance(r, dict) and {"tag", "trainer", "test_set", "bands"} <= r.keys()]
    order = list(TEST_SETS)
    return sorted(results, key=lambda r: (order.index(r["test_set"]) if r["test_set"] in order else len(order),
                                          r["trainer"], r.get("created", 0.0)))


def _mm(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def missed_targets(result: dict) -> list[str]:
    """The targets a result misses: MAE above TARGET_MAE_MM in a band of TARGET_BANDS, Spearman mean below
    TARGET_SPEARMAN (NaN misses)."""
    missed = [f"MAE {band} {result['bands'][band]['mae_mm']:.2f} mm" for band in TARGET_BANDS
              if result["bands"][band]["mae_mm"] is not None and result["bands"][band]["mae_mm"] > TARGET_MAE_MM]
    if not result["spearman_mean"] >= TARGET_SPEARMAN:
        missed.append(f"Spearman {result['spearman_mean']:.3f}")
    return missed


def _table(results: list[dict]) -> tuple[list[str], list[dict]]:
    """Markdown lines (table, definitions, targets met or missed per row) and the CSV rows."""
    far_column = f"far as inside % (> {FAR_MM:g} mm, < {INSIDE_MM:g} mm)"
    header = ["tag", "trainer", "test set", "cases", *[f"MAE {name} mm" for name, *_ in BANDS],
              f"Spearman <= {SPEARMAN_WITHIN_MM:g} mm mean (min)", far_column]
    rows = []
    for r in results:
        far = r["far_as_inside_fraction"]
        rows.append(dict(zip(header, [
            r["tag"], r["trainer"], r["test_set"], str(len(r["cases"])),
            *[_mm(r["bands"][name]["mae_mm"]) for name, *_ in BANDS],
            f"{r['spearman_mean']:.3f} ({r['spearman_min']:.3f})", "" if far is None else f"{100 * far:.2f}"])))
    sets = "; ".join(f"{k} = {v}" for k, v in TEST_SETS.items())
    notes = (f"Bands of the true distance d to the reference CTV, pooled over a test set's cases: inside is d = 0, "
             f"a-b is a < d <= b (mm). Spearman: per case, voxels with d <= {SPEARMAN_WITHIN_MM:g} mm. Signed maps "
             f"are compared through their positive part. Test sets: {sets}.")
    targets = (f"Targets: MAE <= {TARGET_MAE_MM:g} mm in every band up to 20 mm ({', '.join(TARGET_BANDS)}), "
               f"Spearman >= {TARGET_SPEARMAN:g} within {SPEARMAN_WITHIN_MM:g} mm (mean over cases).")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *["| " + " | ".join(row.values()) + " |" for row in rows], "", notes, "", targets, ""]
    for r in results:
        missed = missed_targets(r)
        lines.append(f"- {r['tag']}, {r['trainer']}, {r['test_set']}: "
                     + (f"missed ({'; '.join(missed)})" if missed else "met"))
    return lines, rows


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from radconf.io.files import atomic_save_figure

    sets = [s for s in TEST_SETS if any(r["test_set"] == s for r in results)]
    fig, axes = plt.subplots(1, len(sets), figsize=(6 * len(sets), 4.5), squeeze=False)
    for ax, test_set in zip(axes[0], sets):
        for r in (r for r in results if r["test_set"] == test_set):
            profile = r["profile"]
            edges = np.asarray(profile["edges_mm"])
            centres = (edges[:-1] + edges[1:]) / 2
            low, median, high = (np.array([np.nan if v is None else v for v in profile[k]], float)
                                 for k in ("p25", "p50", "p75"))
            line, = ax.plot(centres, median, label=f"{r['tag']}: {r['trainer']}")
            ax.fill_between(centres, low, high, color=line.get_color(), alpha=0.2)
        ax.plot([0, PROFILE_MAX_MM], [0, PROFILE_MAX_MM], "k--", linewidth=1, label="identity")
        ax.set_title(TEST_SETS[test_set], fontsize=9)
        ax.set_xlabel("true distance to the CTV (mm)")
        ax.set_ylabel("predicted distance (mm): median, 25-75 %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_save_figure(fig, path, dpi=100)
    plt.close(fig)


def _tag(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a tag: use letters, digits, '.', '-' or '_' (e.g. before)")
    return text


def build_parser() -> argparse.ArgumentParser:
    from radconf.cli.arguments import make_parser, positive_int

    parser = make_parser("benchmark_distance_maps.py", __doc__)
    parser.add_argument("--work", default="radconf_benchmark_anatomy_guided",
                        help="workspace of benchmarks/benchmark_anatomy_guided.py (nnUNet_raw, _preprocessed, "
                             "_results inside)")
    parser.add_argument("--trainers", nargs="+", default=list(DEFAULT_TRAINERS),
                        help="distance-head trainers (fold all, radconfCPUPlans, 3d_fullres; anatomy trainers on "
                             "Dataset504, the others on Dataset503)")
    parser.add_argument("--tag", type=_tag, required=True,
                        help="label stored with each result, e.g. before or after (required)")
    parser.add_argument("--out", default=None, help="where the result JSONs, table (md/csv) and plot go "
                                                    "(default: --work)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "mps"], help="device of the predictions")
    parser.add_argument("--max_cases", type=positive_int, default=None,
                        help="first N cases of each test set (default: all)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from radconf.io.files import atomic_write_json

    results_folder = Path(args.work).resolve() / "nnUNet_results"
    models = {trainer: _model(results_folder, trainer) for trainer in args.trainers}  # before anything is written
    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    test_sets = _test_sets(work, folders["nnUNet_raw"])
    for trainer, model in models.items():
        for test_set, datasets in test_sets.items():
            result = _measure(trainer, model, test_set, datasets, work, env, log, args)
            atomic_write_json(out / f"distance_{args.tag}_{trainer}_{test_set}.json", result)
    results = _read_results(out)
    lines, rows = _table(results)
    write_tables(out / "benchmark_distance_maps", lines, rows)
    _plot(results, out / "benchmark_distance_maps.png")


if __name__ == "__main__":
    main()
