"""Benchmark: Dice + HD95 + surface Dice (2 mm) + ASSD with radconf, DeepMind surface-distance and MONAI.

A 256 x 256 x 150 volume (numpy (z, y, x) = (150, 256, 256), spacing 2.5 x 1 x 1 mm) holds a ~300 cm^3 perturbed
ellipsoid; the prediction is a shifted, differently perturbed copy. Each tool computes the four metrics on the same
masks with the spacing passed; the table reports the values side by side and the best-of-N wall time.

    python benchmarks/benchmark_surface_metrics.py --repeats 7 --out /tmp/benchmark_surface_metrics

needs the benchmark extras (``pip install -e .[benchmark]``: monai, surface-distance). Results are printed and written
to ``<out>.md`` and ``<out>.csv``.
"""
from __future__ import annotations

import argparse
import os
import platform
import warnings

import numpy as np
from benchmark_common import (  # benchmarks/ is on sys.path when a script runs
    best_time,
    write_tables,
)


def make_masks(shape=(150, 256, 256), spacing=(2.5, 1.0, 1.0), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Reference: ellipsoid with semi-axes 40 x 45 x 40 mm (~300 cm^3) and a smooth random radius perturbation;
    prediction: the same construction shifted by (2.5, 2, -1.5) mm with another perturbation."""
    from scipy import ndimage

    axes = [np.arange(n) * s - n * s / 2 for n, s in zip(shape, spacing)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)

    def shape_at(shift, noise_seed):
        noise = np.random.default_rng(noise_seed).standard_normal((8, 16, 16))
        noise = ndimage.zoom(noise, [n / m for n, m in zip(shape, noise.shape)], order=3)
        radius = ((z - shift[0]) / 40.0) ** 2 + ((y - shift[1]) / 45.0) ** 2 + ((x - shift[2]) / 40.0) ** 2
        return radius <= 1.0 + 0.08 * noise[: shape[0], : shape[1], : shape[2]]

    return shape_at((0.0, 0.0, 0.0), seed), shape_at((2.5, 2.0, -1.5), seed + 1)



def run_radconf(ref, pred, spacing, num_threads=2):
    from radconf.evaluation import compute_metrics

    m = compute_metrics(ref, pred, spacing, tolerances_mm=(2.0,), num_threads=num_threads)
    return {"dice": m["dice"], "hd95": m["hd95_mm"], "sdsc2": m["surface_dice_2.0mm"], "assd": m["assd_mm"]}


def run_radconf_voxel(ref, pred, spacing):
    from radconf.evaluation.binary import OverlapCounts
    from radconf.evaluation.boundary import compute_voxel_boundary_distances

    d = compute_voxel_boundary_distances(ref, pred, spacing)
    return {"dice": OverlapCounts.from_masks(ref, pred, spacing).dice, "hd95": d.hausdorff(95),
            "sdsc2": d.surface_dice(2.0), "assd": d.assd()}


def run_surface_distance(ref, pred, spacing):
    import surface_distance as sdm

    d = sdm.compute_surface_distances(ref, pred, spacing)
    a_gt, a_pred = d["surfel_areas_gt"], d["surfel_areas_pred"]
    assd = (np.sum(d["distances_gt_to_pred"] * a_gt) + np.sum(d["distances_pred_to_gt"] * a_pred)) / (
        a_gt.sum() + a_pred.sum()
    )
    return {"dice": sdm.compute_dice_coefficient(ref, pred), "hd95": sdm.compute_robust_hausdorff(d, 95),
            "sdsc2": sdm.compute_surface_dice_at_tolerance(d, 2.0), "assd": assd}


def make_monai_runner(ref, pred, spacing):
    import torch
    from monai.metrics import (
        compute_average_surface_distance,
        compute_dice,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    y = torch.from_numpy(ref[None, None].astype(np.float32))
    y_pred = torch.from_numpy(pred[None, None].astype(np.float32))

    def run():
        return {
            "dice": float(compute_dice(y_pred, y, include_background=True)[0, 0]),
            "hd95": float(compute_hausdorff_distance(y_pred, y, include_background=True, percentile=95,
                                                     spacing=spacing)[0, 0]),
            "sdsc2": float(compute_surface_dice(y_pred, y, class_thresholds=[2.0], include_background=True,
                                                spacing=spacing)[0, 0]),
            "assd": float(compute_average_surface_distance(y_pred, y, include_background=True, symmetric=True,
                                                           spacing=spacing)[0, 0]),
        }

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per tool (best is reported)")
    parser.add_argument("--out", default="benchmark_surface_metrics", help="output prefix for .md and .csv")
    parser.add_argument("--skip-monai", action="store_true", help="do not run MONAI")
    args = parser.parse_args(argv)

    spacing = (2.5, 1.0, 1.0)
    ref, pred = make_masks(spacing=spacing)
    voxel_cm3 = float(np.prod(spacing)) / 1000.0
    print(f"volume {ref.shape[::-1]} (x, y, z), spacing {spacing[::-1]} mm (x, y, z); reference "
          f"{ref.sum() * voxel_cm3:.1f} cm^3, prediction {pred.sum() * voxel_cm3:.1f} cm^3")

    runs = [
        ("radconf", "surfels (surface-distance definition), 2 threads", lambda: run_radconf(ref, pred, spacing, 2)),
        ("radconf (1 thread)", "same, feature transforms in turn", lambda: run_radconf(ref, pred, spacing, 1)),
        ("surface-distance 0.1", "surfels", lambda: run_surface_distance(ref, pred, spacing)),
    ]
    if not args.skip_monai:
        runs.append(("MONAI " + __import__("monai").__version__, "boundary voxels, 4 calls",
                     make_monai_runner(ref, pred, spacing)))
        runs.append(("radconf voxel boundary", "boundary voxels (MONAI definition)",
                     lambda: run_radconf_voxel(ref, pred, spacing)))
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, definition, function in runs:
            seconds, values = best_time(function, args.repeats)
            rows.append({"tool": name, "definition": definition, "seconds": seconds, **values})
            print(f"{name:24s} {seconds:8.4f} s  dice {values['dice']:.6f}  hd95 {values['hd95']:.6f} mm  "
                  f"sdsc2 {values['sdsc2']:.6f}  assd {values['assd']:.6f} mm")

    reference = next(r for r in rows if r["tool"].startswith("surface-distance"))
    diff = max(abs(rows[0][k] - reference[k]) for k in ("dice", "hd95", "sdsc2", "assd"))
    print(f"max |radconf - surface-distance| over the four values: {diff:.2e}")
    fastest = min(rows, key=lambda r: r["seconds"])["tool"]

    command = "python benchmarks/benchmark_surface_metrics.py " + f"--repeats {args.repeats}"
    header = (f"| tool | surface definition | seconds (best of {args.repeats}) "
              "| Dice | HD95 (mm) | SDSC 2 mm | ASSD (mm) |")
    machine = (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
               f"Python {platform.python_version()}, numpy {np.__version__}  ")
    lines = [f"Command: `{command}`  ", machine,
             f"Max |radconf - surface-distance| over the four values: {diff:.1e}; fastest: {fastest}", "", header,
             "|---|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['tool']} | {r['definition']} | {r['seconds']:.3f} | {r['dice']:.6f} | {r['hd95']:.4f} | "
                     f"{r['sdsc2']:.6f} | {r['assd']:.4f} |")
    write_tables(args.out, lines, rows)


if __name__ == "__main__":
    main()
