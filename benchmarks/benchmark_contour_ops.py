"""Benchmark: radconf.contours against SimpleITK and scipy.ndimage on a CT-sized mask.

A 512 x 512 x 200 mask (numpy (z, y, x) = (200, 512, 512), spacing 2.5 x 0.98 x 0.98 mm) holds four perturbed
ellipsoids (a 120 x 100 x 90 mm organ with two cavities, a 50 mm GTV-like blob with a cavity, a 70 mm blob, two
lobes 3 mm apart) and 40 specks of 1-8 voxels. Operations: connected components (26-connected), largest component,
3D hole filling (6-connected background), dilation by 10 mm, closing by 3 mm; and, radconf only, an asymmetric
margin and a barrier-aware margin. Each tool runs the same operation (best of N wall time); its result is compared
with radconf's voxel by voxel ("identical", or the number of voxels that differ). Components are compared as
partitions (same count, one label for one label).

- SimpleITK: ``ConnectedComponent``, ``RelabelComponent``, ``BinaryFillhole``, ``BinaryDilate`` /
  ``BinaryMorphologicalClosing`` with a ball kernel of the matching voxel radius (``round(r / spacing)`` per axis:
  an ellipsoid in voxel units, not the ball in mm, so voxels differ), and the exact mm ball through
  ``SignedMaurerDistanceMap`` (image spacing, squared distance) thresholded at r^2;
- scipy.ndimage: ``label``, ``binary_fill_holes``, ``distance_transform_edt`` (sampling) thresholded at r for the
  dilation, ``binary_dilation``/``binary_erosion`` with the explicit structuring element (the voxel offsets within
  r mm) for the closing (``border_value=1`` in the erosion, radconf's convention that the image border never
  erodes).

    taskset -c 1 python benchmarks/benchmark_contour_ops.py --repeats 3 --threads 1 --out /tmp/benchmark_contour_ops

``--threads`` is passed to radconf's distance transform and to SimpleITK's global thread count (scipy runs on one
thread). Results are printed and written to ``<out>.md`` and ``<out>.csv``.
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

SHAPE = (200, 512, 512)
SPACING = (2.5, 0.98, 0.98)
DILATION_MM, CLOSING_MM = 10.0, 3.0


def _ellipsoid(mask: np.ndarray, centre_mm, semi_axes_mm, rng, roughness: float = 0.08) -> np.ndarray:
    """Paints a perturbed ellipsoid (centre and semi-axes in mm, (z, y, x)) into ``mask`` within its box."""
    from scipy import ndimage

    lo = [max(0, int((c - 1.3 * a) / s)) for c, a, s in zip(centre_mm, semi_axes_mm, SPACING)]
    hi = [min(n, int((c + 1.3 * a) / s) + 1) for c, a, s, n in zip(centre_mm, semi_axes_mm, SPACING, SHAPE)]
    axes = [np.arange(a, b) * s - c for a, b, s, c in zip(lo, hi, SPACING, centre_mm)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    radius = (z / semi_axes_mm[0]) ** 2 + (y / semi_axes_mm[1]) ** 2 + (x / semi_axes_mm[2]) ** 2
    box = tuple(b - a for a, b in zip(lo, hi))
    noise = ndimage.zoom(rng.standard_normal((6, 6, 6)), [n / 6 for n in box], order=3)[: box[0], : box[1], : box[2]]
    inside = radius <= 1.0 + roughness * noise
    mask[tuple(slice(a, b) for a, b in zip(lo, hi))] |= inside
    return inside


def make_mask(seed: int = 0) -> np.ndarray:
    """The benchmark mask: blobs with cavities, two lobes 3 mm apart, specks."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(SHAPE, dtype=bool)
    _ellipsoid(mask, (250, 250, 200), (60, 50, 45), rng)
    cavity = np.zeros(SHAPE, dtype=bool)
    _ellipsoid(cavity, (250, 245, 190), (12, 10, 10), rng, 0.0)
    _ellipsoid(cavity, (270, 260, 215), (8, 6, 6), rng, 0.0)
    _ellipsoid(mask, (150, 230, 330), (25, 20, 20), rng)
    _ellipsoid(cavity, (150, 230, 330), (7, 5, 5), rng, 0.0)
    mask &= ~cavity
    _ellipsoid(mask, (330, 330, 330), (35, 30, 30), rng, 0.15)
    _ellipsoid(mask, (380, 150, 150), (20, 15, 15), rng, 0.0)
    _ellipsoid(mask, (380, 150, 150 + 33), (20, 15, 15), rng, 0.0)  # 3 mm apart at x: the closing bridges it
    for _ in range(40):
        z, y, x = (int(rng.integers(5, n - 10)) for n in SHAPE)
        mask[z:z + int(rng.integers(1, 3)), y:y + int(rng.integers(1, 3)), x:x + int(rng.integers(1, 3))] = True
    return mask


def explicit_ball(radius_mm: float) -> np.ndarray:
    """The structuring element of voxel offsets whose centre lies within ``radius_mm`` (spacing :data:`SPACING`)."""
    reach = [int(radius_mm / s * (1 + 1e-6)) for s in SPACING]
    offsets = np.indices([2 * r + 1 for r in reach]).reshape(3, -1).T - reach
    inside = ((offsets * np.asarray(SPACING)) ** 2).sum(axis=1) <= radius_mm ** 2 * (1 + 1e-6)
    return inside.reshape([2 * r + 1 for r in reach])


def _image(mask: np.ndarray):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.SetSpacing(SPACING[::-1])
    return image


def _array(image) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(image).astype(bool)


def sitk_runs(mask: np.ndarray) -> dict:
    """SimpleITK's operations (each a no-argument function returning a numpy array)."""
    import SimpleITK as sitk

    image = _image(mask)

    def ball_radius(r):
        return [max(1, round(r / s)) for s in SPACING[::-1]]

    def exact_dilation(source, r):
        distance = sitk.SignedMaurerDistanceMap(source, insideIsPositive=False, squaredDistance=True,
                                                useImageSpacing=True)
        return sitk.GetArrayFromImage(distance) <= r * r * (1 + 1e-6)

    def exact_closing():
        grown = exact_dilation(image, CLOSING_MM)
        outside = _image(~grown)
        return grown & ~exact_dilation(outside, CLOSING_MM) if (~grown).any() else grown

    return {
        "components": lambda: sitk.GetArrayFromImage(sitk.ConnectedComponent(image, True)),
        "largest": lambda: sitk.GetArrayFromImage(sitk.RelabelComponent(sitk.ConnectedComponent(image, True))) == 1,
        "holes": lambda: _array(sitk.BinaryFillhole(image, fullyConnected=False, foregroundValue=1)),
        "dilation": lambda: _array(sitk.BinaryDilate(image, ball_radius(DILATION_MM), sitk.sitkBall, 0, 1)),
        "dilation exact": lambda: exact_dilation(image, DILATION_MM),
        "closing": lambda: _array(sitk.BinaryMorphologicalClosing(image, ball_radius(CLOSING_MM), sitk.sitkBall, 1)),
        "closing exact": exact_closing,
    }


def scipy_runs(mask: np.ndarray) -> dict:
    """scipy.ndimage's operations."""
    from scipy import ndimage

    full = ndimage.generate_binary_structure(3, 3)
    ball = explicit_ball(CLOSING_MM)

    def largest():
        labels, _ = ndimage.label(mask, full)
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        return labels == np.argmax(sizes)

    return {
        "components": lambda: ndimage.label(mask, full)[0],
        "largest": largest,
        "holes": lambda: ndimage.binary_fill_holes(mask),
        "dilation exact": lambda: ndimage.distance_transform_edt(~mask, sampling=SPACING) <= DILATION_MM * (1 + 1e-6),
        "closing exact": lambda: ndimage.binary_erosion(ndimage.binary_dilation(mask, ball), ball, border_value=1),
    }


def radconf_runs(mask: np.ndarray, threads: int) -> dict:
    """radconf.contours' operations, and the two margins only radconf has."""
    from radconf import contours

    barriers = np.zeros(SHAPE, dtype=bool)
    barriers[40:80, 180:300, 365:372] = True  # a 7 mm wall 8 mm beside the GTV-like blob, 10 cm tall
    ptv = contours.Margin(radial=7.0, superior=12.0, inferior=7.0, anterior=10.0, posterior=5.0)
    gtv = np.zeros(SHAPE, dtype=bool)
    gtv[40:80, 180:300, 280:380] = mask[40:80, 180:300, 280:380]
    return {
        "components": lambda: contours.connected_components(mask, 26)[0],
        "largest": lambda: contours.largest_component(mask),
        "holes": lambda: contours.fill_holes(mask),
        "dilation": lambda: contours.dilate(mask, SPACING, DILATION_MM, threads=threads),
        "closing": lambda: contours.closing(mask, SPACING, CLOSING_MM, threads=threads),
        "asymmetric margin": lambda: contours.expand(mask, SPACING, ptv, threads=threads),
        "barrier-aware 10 mm": lambda: contours.expand_within(gtv, SPACING, 10.0, barriers=barriers, threads=threads),
    }


def same_partition(ours: np.ndarray, theirs: np.ndarray) -> str:
    """'identical' when two label maps have the same background and a one-to-one label correspondence."""
    if not np.array_equal(ours > 0, theirs > 0):
        return f"{int(((ours > 0) != (theirs > 0)).sum())} voxels differ"
    inside = ours > 0
    pairs = np.unique(np.stack([ours[inside], theirs[inside]]).astype(np.int64), axis=1).shape[1]
    count, other = int(ours.max()), int(theirs.max())
    return "identical" if pairs == count == other else f"{count} vs {other} components, {pairs} label pairs"


def compare(operation: str, ours: np.ndarray, theirs: np.ndarray) -> str:
    if operation == "components":
        return same_partition(ours, theirs)
    differ = int((ours != theirs).sum())
    return "identical" if differ == 0 else f"{differ} voxels differ"


OPERATIONS = (
    ("components", "connected components, 26"),
    ("largest", "largest component, 26"),
    ("holes", "fill holes 3D, background 6"),
    ("dilation", f"dilation {DILATION_MM:g} mm"),
    ("closing", f"closing {CLOSING_MM:g} mm"),
    ("asymmetric margin", "margin sup 12, inf 7, ant 10, post 5, left/right 7 mm"),
    ("barrier-aware 10 mm", "10 mm around a 7 mm wall (GTV-like blob)"),
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per tool (best is reported)")
    parser.add_argument("--threads", type=int, default=1, help="threads of radconf's EDT and of SimpleITK")
    parser.add_argument("--out", default="benchmark_contour_ops", help="output prefix for .md and .csv")
    args = parser.parse_args(argv)

    import scipy
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    mask = make_mask()
    print(f"mask {SHAPE[::-1]} (x, y, z), spacing {SPACING[::-1]} mm (x, y, z), {int(mask.sum())} voxels")
    tools = [("radconf", radconf_runs(mask, args.threads)), (f"SimpleITK {sitk.Version_VersionString()}",
                                                             sitk_runs(mask)),
             (f"scipy.ndimage {scipy.__version__}", scipy_runs(mask))]
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for operation, description in OPERATIONS:
            reference = None
            for tool, runs in tools:
                for key in (operation, f"{operation} exact"):
                    if key not in runs:
                        continue
                    seconds, result = best_time(runs[key], args.repeats)
                    reference = result if reference is None else reference
                    variant = "exact mm ball" if key.endswith("exact") else (
                        "ball kernel in voxels" if tool.startswith("SimpleITK") and key in ("dilation", "closing")
                        else "")
                    same = "-" if result is reference else compare(operation, reference, result)
                    rows.append({"operation": description, "tool": tool, "variant": variant,
                                 "seconds": round(seconds, 3), "result vs radconf": same})
                    print(f"{description:52s} {tool:22s} {variant:22s} {seconds:8.3f} s  {same}")

    command = (f"taskset -c 1 python benchmarks/benchmark_contour_ops.py --repeats {args.repeats} --threads "
               f"{args.threads}")
    machine = (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), "
               f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} usable, "
               f"{args.threads} thread(s) per tool.")
    lines = [f"`{command}`", "", machine, "",
             f"| operation | tool | variant | seconds (best of {args.repeats}) | result vs radconf |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['operation']} | {r['tool']} | {r['variant']} | {r['seconds']:.3f} | {r['result vs radconf']} |"
              for r in rows]
    write_tables(args.out, lines, rows)


if __name__ == "__main__":
    main()
