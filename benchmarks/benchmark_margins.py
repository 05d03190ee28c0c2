"""CTV from a predicted GTV vs CTV from the reference GTV, with the same margins and barriers (``radconf_margin``).

For every case of a folder of predicted label maps and the folder of reference label maps, the CTV is grown with
:func:`radconf.margins.grow_folder` (the command's code path) from

1. the reference GTV, the reference organs as barriers;
2. the predicted GTV, the same reference barriers (the CTV difference comes from the GTV alone);
3. the predicted GTV, the predicted organs as barriers (everything from the model);
4. the predicted GTV's largest 26-connected component, the reference barriers (:func:`radconf.margins.grow_case`).

Margins are the phantom's (``PhantomConfig``: 8 mm radial, 15 mm superior/inferior); barriers are the bones and the
other organs (default: bladder, rectum, gluteal muscles, femoral heads; the phantom's sacrum and iliac bones are not
labelled). Per case: Dice of the two GTVs and of the CTVs, volumes, the seconds of the margin itself (the best of
``--repeats`` runs of :func:`radconf.margins.grow_case`, reading excluded) and, when the phantom's own CTV
(``ctvTs`` beside the references) is there, the Dice of the reference-grown CTV with it.

    python benchmarks/benchmark_margins.py --out /tmp/benchmark_margins

Results are printed and written to ``<out>.md`` and ``<out>.csv``; the CTV folders go to ``--work``.
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
from benchmark_common import write_tables  # benchmarks/ is on sys.path when a script runs

BENCH = Path("/tmp/bench_window40")
PREDICTIONS = BENCH / "predictions_held_out_radconfCPUPlans"
REFERENCES = BENCH / "nnUNet_raw" / "Dataset531_PhantomBone" / "labelsTs"
BARRIERS = "bladder,rectum,gluteal_muscles,femoral_head_left,femoral_head_right"


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def _read(path: Path) -> np.ndarray:
    from radconf.io.images import read_label_image

    return read_label_image(path)[0]


def _voxel_cm3(path: Path) -> float:
    from radconf.io.images import read_geometry

    return read_geometry(path).voxel_volume_ml


def _grow_all(args, margin, work: Path) -> dict[str, float]:
    """The three CTV folders; wall seconds of each run of the command's function."""
    from radconf.margins import grow_folder

    runs = {"reference": (args.references, args.references), "predicted": (args.predictions, args.references),
            "predicted_own": (args.predictions, args.predictions)}
    seconds = {}
    for name, (source, barriers) in runs.items():
        start = time.perf_counter()
        grow_folder(input_folder=source, output_folder=work / f"ctv_{name}", margin=margin, label=args.gtv,
                    barrier_folder=barriers, barrier_labels=[args.barrier_labels], threads=args.threads,
                    progress=False)
        seconds[name] = time.perf_counter() - start
    return seconds


def _margin_seconds(path: Path, barrier_path: Path, gtv_id: int, barrier_ids, margin, args) -> float:
    """Best-of-N seconds of the margin itself on one case."""
    import SimpleITK as sitk

    from radconf.io.images import Geometry
    from radconf.margins import grow_case

    image = sitk.ReadImage(str(path))
    geometry = Geometry.of(image)
    gtv = sitk.GetArrayFromImage(image) == gtv_id
    barriers = np.isin(_read(barrier_path), barrier_ids)
    best = float("inf")
    for _ in range(args.repeats):
        start = time.perf_counter()
        grow_case(gtv=gtv, spacing=geometry.spacing_zyx, margin=margin, direction=geometry.direction,
                  barriers=barriers, threads=args.threads)
        best = min(best, time.perf_counter() - start)
    return best


def _label_ids(args) -> tuple[int, tuple[int, ...]]:
    from radconf.margins.labels import dataset_json_of, label_table, resolve_label, resolve_labels

    data, where = dataset_json_of(args.references)
    table = label_table(data, str(where))
    gtv = resolve_label(args.gtv, table, str(where), "--gtv")
    return gtv[0], resolve_labels([args.barrier_labels], table, str(where), "--barrier_labels")


def _largest_component_ctv(case: str, args, gtv_id: int, barrier_ids, margin) -> np.ndarray:
    """The CTV of the predicted GTV's largest 26-connected component, reference barriers."""
    from radconf.contours import largest_component
    from radconf.io.images import read_label_image
    from radconf.margins import grow_case

    predicted, geometry = read_label_image(args.predictions / f"{case}.nii.gz")
    barriers = np.isin(_read(args.references / f"{case}.nii.gz"), barrier_ids)
    return grow_case(gtv=largest_component(predicted == gtv_id), spacing=geometry.spacing_zyx, margin=margin,
                     direction=geometry.direction, barriers=barriers, threads=args.threads).mask


def _row(case: str, args, work: Path, gtv_id: int, barrier_ids, margin) -> dict:
    reference, predicted = _read(args.references / f"{case}.nii.gz"), _read(args.predictions / f"{case}.nii.gz")
    ctv = {name: _read(work / f"ctv_{name}" / f"{case}.nii.gz") > 0 for name in
           ("reference", "predicted", "predicted_own")}
    phantom_ctv = args.references.parent / "ctvTs" / f"{case}.nii.gz"
    voxel_cm3 = _voxel_cm3(args.references / f"{case}.nii.gz")
    return {
        "case": case,
        "gtv_dice": round(_dice(reference == gtv_id, predicted == gtv_id), 4),
        "ctv_dice_same_barriers": round(_dice(ctv["reference"], ctv["predicted"]), 4),
        "ctv_dice_own_barriers": round(_dice(ctv["reference"], ctv["predicted_own"]), 4),
        "ctv_dice_largest_component": round(_dice(ctv["reference"], _largest_component_ctv(
            case, args, gtv_id, barrier_ids, margin)), 4),
        "ctv_reference_cm3": round(ctv["reference"].sum() * voxel_cm3, 2),
        "ctv_predicted_cm3": round(ctv["predicted"].sum() * voxel_cm3, 2),
        "dice_with_phantom_ctv": round(_dice(ctv["reference"], _read(phantom_ctv) > 0), 4)
        if phantom_ctv.is_file() else "",
        "margin_s": round(_margin_seconds(args.references / f"{case}.nii.gz", args.references / f"{case}.nii.gz",
                                          gtv_id, barrier_ids, margin, args), 4),
    }


def _lines(rows: list[dict], seconds: dict[str, float], args, margin) -> list[str]:
    header = ("| case | GTV Dice | CTV Dice, same barriers | CTV Dice, predicted barriers | CTV Dice, largest GTV "
              "component | reference CTV cm3 | predicted CTV cm3 | reference CTV vs phantom CTV | margin s |")
    machine = platform.processor() or platform.machine()
    title = f"Margin {margin.describe()}, barriers {args.barrier_labels}; {machine}, threads {args.threads or 'all'}."
    lines = [title, "", header, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        phantom = r["dice_with_phantom_ctv"]
        lines.append(f"| {r['case']} | {r['gtv_dice']:.3f} | {r['ctv_dice_same_barriers']:.3f} | "
                     f"{r['ctv_dice_own_barriers']:.3f} | {r['ctv_dice_largest_component']:.3f} | "
                     f"{r['ctv_reference_cm3']:.1f} | {r['ctv_predicted_cm3']:.1f} "
                     f"| {'' if phantom == '' else f'{phantom:.3f}'} | {r['margin_s']:.3f} |")
    mean = {key: np.mean([r[key] for r in rows]) for key in ("gtv_dice", "ctv_dice_same_barriers",
                                                             "ctv_dice_own_barriers", "ctv_dice_largest_component",
                                                             "margin_s")}
    lines.append(f"| **mean** | {mean['gtv_dice']:.3f} | {mean['ctv_dice_same_barriers']:.3f} | "
                 f"{mean['ctv_dice_own_barriers']:.3f} | {mean['ctv_dice_largest_component']:.3f} | | | | "
                 f"{mean['margin_s']:.3f} |")
    per_case = {name: s / len(rows) for name, s in seconds.items()}
    lines += ["", "grow_folder wall seconds per case (reading, margin, writing): "
              + ", ".join(f"{name} {s:.3f}" for name, s in per_case.items())]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=Path, default=PREDICTIONS, help="predicted label maps CASE.nii.gz")
    parser.add_argument("--references", type=Path, default=REFERENCES, help="reference label maps (dataset.json "
                                                                           "beside them)")
    parser.add_argument("--gtv", default="gtv", help="the GTV's label")
    parser.add_argument("--barrier_labels", default=BARRIERS, help="barrier labels, comma-separated")
    parser.add_argument("--radial", type=float, default=8.0, help="radial margin mm (PhantomConfig)")
    parser.add_argument("--longitudinal", type=float, default=15.0, help="superior/inferior margin mm")
    parser.add_argument("--threads", type=int, default=None, help="distance-transform threads (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per case (best is reported)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_margins"), help="CTV output folders")
    parser.add_argument("--out", default="/tmp/benchmark_margins", help="table prefix (.md, .csv)")
    args = parser.parse_args()

    from radconf.contours import Margin
    from radconf.io.cases import list_cases

    margin = Margin(radial=args.radial, superior=args.longitudinal, inferior=args.longitudinal)
    gtv_id, barrier_ids = _label_ids(args)
    seconds = _grow_all(args, margin, args.work)
    cases = sorted(set(list_cases(args.predictions, ".nii.gz")) & set(list_cases(args.references, ".nii.gz")))
    rows = [_row(case, args, args.work, gtv_id, barrier_ids, margin) for case in cases]
    write_tables(args.out, _lines(rows, seconds, args, margin), rows)


if __name__ == "__main__":
    main()
