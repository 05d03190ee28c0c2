"""Benchmark: fusing 12 reader masks of 512 x 512 x 200 voxels with radconf and with SimpleITK.

Twelve binary masks (4 readers x 3 trials, seeded) of a perturbed ellipsoid (semi-axes ~ 0.15 of the volume in each
direction, i.e. ~ 30 x 66 x 77 voxels; each reader shifts and scales it, each trial adds a smooth surface perturbation)
are built in memory. On the same masks the script times

* radconf ``fuse_masks`` (counts, levels 0..5 and the majority mask, full grid),
* SimpleITK ``LabelVoting`` (majority label per voxel) and ``STAPLE`` (on ``sitk.Image`` copies made beforehand),

then writes the masks as .nii.gz files and times the file-level path: ``fuse_case`` (read + check + fuse + pairwise
Dice of 12 files) and ``fuse_reader_dataset`` on that one case (also copying the image and writing the level map,
the consensus, the CSV tables, the figure and dataset.json).

    python benchmarks/benchmark_fusion.py --repeats 3 --out /tmp/benchmark_fusion

Checks: radconf's majority equals LabelVoting's label 1 everywhere (LabelVoting gives ties, c = n/2, its
"undecided" label max + 1 = 2; radconf's strict majority c > n/2 gives 0 there) and the file path's levels equal the
in-memory ones. Results are printed and written to ``<out>.md`` and ``<out>.csv``.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from benchmark_common import (  # benchmarks/ is on sys.path when a script runs
    best_time,
    write_tables,
)


def make_masks(shape=(200, 512, 512), n_masks=12, n_readers=4, seed=0) -> list[np.ndarray]:
    """``n_masks`` uint8 masks (numpy (z, y, x)) of one perturbed ellipsoid, readers x trials (see module docstring)."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    centre = np.array(shape) / 2.0
    semi = 0.15 * np.array(shape) * np.array([1.0, 0.86, 1.0])
    margin = (semi * 1.35).astype(int) + 4
    lo, hi = np.maximum((centre - margin).astype(int), 0), np.minimum((centre + margin).astype(int), shape)
    z, y, x = np.meshgrid(*[np.arange(a, b, dtype=np.float32) for a, b in zip(lo, hi)], indexing="ij", sparse=True)
    readers = [(rng.normal(0.0, 2.0, 3), 1.0 + rng.normal(0.0, 0.04, 3)) for _ in range(n_readers)]
    masks = []
    for index in range(n_masks):
        shift, scale = readers[index % n_readers]
        shift = shift + rng.normal(0.0, 0.7, 3)
        coarse = rng.standard_normal((6, 8, 8))
        noise = ndimage.zoom(coarse, [(b - a) / n for a, b, n in zip(lo, hi, coarse.shape)], order=1)
        noise = noise[: hi[0] - lo[0], : hi[1] - lo[1], : hi[2] - lo[2]]
        radius = sum(((c - centre[a] - shift[a]) / (semi[a] * scale[a])) ** 2 for a, c in enumerate((z, y, x)))
        mask = np.zeros(shape, np.uint8)
        mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = radius <= 1.0 + 0.06 * noise
        masks.append(mask)
    return masks



def write_case(folder: Path, masks: list[np.ndarray], spacing=(0.98, 0.98, 2.5)) -> Path:
    """A one-case source dataset: a CT-like int16 image and the masks as readers/case_000/reader<r>_trial<t>."""
    import SimpleITK as sitk

    from radconf.io.files import atomic_write_json

    def write(array, path):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(spacing)
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path), True)

    image = np.full(masks[0].shape, -1000, np.int16)
    image[masks[0] > 0] = 40
    write(image, folder / "imagesTr" / "case_000_0000.nii.gz")
    for index, mask in enumerate(masks):
        write(mask, folder / "readers" / "case_000" / f"reader{index % 4 + 1}_trial{index // 4 + 1}.nii.gz")
    atomic_write_json(folder / "dataset.json", {"channel_names": {"0": "CT"}, "labels": {"background": 0, "ctv": 1},
                                                "numTraining": 1, "file_ending": ".nii.gz"})
    return folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", type=int, nargs=3, default=[200, 512, 512], metavar=("Z", "Y", "X"),
                        help="numpy (z, y, x) shape of the masks (default 200 512 512)")
    parser.add_argument("--masks", type=int, default=12, help="number of masks (default 12: 4 readers x 3 trials)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per tool (best is reported)")
    parser.add_argument("--out", default="benchmark_fusion", help="output prefix for .md and .csv")
    parser.add_argument("--staple-repeats", type=int, default=1,
                        help="timed STAPLE runs (default 1, no warm-up: STAPLE takes minutes at full size)")
    parser.add_argument("--work", default=None, help="folder for the temporary .nii.gz files (default: a temp dir)")
    args = parser.parse_args(argv)

    import SimpleITK as sitk

    from radconf.confidence.dataset import fuse_case, fuse_reader_dataset
    from radconf.confidence.fusion import fuse_masks

    shape = tuple(args.shape)
    start = time.perf_counter()
    masks = make_masks(shape, args.masks)
    print(f"{args.masks} masks of {shape[::-1]} (x, y, z) voxels built in {time.perf_counter() - start:.1f} s; "
          f"foreground {np.mean([m.sum() for m in masks]) / 1e6:.2f} M voxels per mask; SimpleITK threads "
          f"{sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()}")
    images = [sitk.GetImageFromArray(m) for m in masks]
    rows: list[dict] = []

    def record(tool: str, what: str, seconds: float) -> None:
        rows.append({"tool": tool, "what": what, "seconds": seconds})
        print(f"{tool:44s} {seconds:8.3f} s")

    seconds, fused = best_time(lambda: (lambda f: (f, f.majority))(fuse_masks(masks, 5)), args.repeats)
    record("radconf fuse_masks", "counts + levels 0..5 + majority, in memory", seconds)
    fusion, majority = fused
    seconds, voted = best_time(lambda: sitk.GetArrayFromImage(sitk.LabelVoting(images)), args.repeats)
    record("SimpleITK LabelVoting", "majority label, in memory (sitk.Image inputs)", seconds)
    seconds, stapled = best_time(lambda: sitk.GetArrayFromImage(sitk.STAPLE(images, 1.0)), args.staple_repeats,
                                 warm_up=False)
    record("SimpleITK STAPLE", f"probabilistic consensus, in memory (sitk.Image inputs; best of "
                               f"{args.staple_repeats}, no warm-up)", seconds)

    ties = 2 * fusion.counts.astype(np.int32) == len(masks)
    undecided = int(voted.max()) if ties.any() else None
    majority_equal = bool(np.array_equal(majority, voted == 1))
    ties_equal = bool(np.array_equal(ties, voted == undecided)) if undecided is not None else True
    staple_mask = stapled > 0.5
    staple_dice = 2.0 * np.logical_and(staple_mask, majority).sum() / (staple_mask.sum() + majority.sum())
    print(f"majority == (LabelVoting == 1): {majority_equal}; tie voxels (c = n/2): {int(ties.sum())}, LabelVoting "
          f"labels them {undecided} everywhere: {ties_equal}; Dice(STAPLE > 0.5, majority) = {staple_dice:.4f}")
    images.clear()  # free the SimpleITK copies before the file-level runs

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="radconf_bench_fusion_"))
    try:
        source = write_case(work / "Dataset900_Bench", masks)
        mask_paths = {p.name[:-7]: p for p in sorted((source / "readers" / "case_000").iterdir())}
        image_path = source / "imagesTr" / "case_000_0000.nii.gz"
        seconds, case = best_time(lambda: fuse_case(image_path, mask_paths, 5), args.repeats)
        record("radconf fuse_case (files)", f"read + check {args.masks} .nii.gz, fuse, pairwise Dice", seconds)
        files_equal = bool(np.array_equal(case.levels, fusion.levels))

        def end_to_end():
            return fuse_reader_dataset(source, 901, raw_root=work / "raw", overwrite=True, progress=False)

        seconds, _ = best_time(end_to_end, args.repeats)
        record("radconf fuse_reader_dataset (1 case)", "fuse_case + copy image + write levels, consensus, CSV, PNG",
               seconds)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(f"file path levels == in-memory levels: {files_equal}")

    base = rows[0]["seconds"]
    for row in rows:
        row["ratio_to_radconf_fuse_masks"] = row["seconds"] / base
    command = (f"python benchmarks/benchmark_fusion.py --shape {' '.join(map(str, shape))} --masks {args.masks} "
               f"--repeats {args.repeats} --staple-repeats {args.staple_repeats}")
    machine = (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), Python "
               f"{platform.python_version()}, numpy {np.__version__}, SimpleITK {sitk.Version.VersionString()}  ")
    lines = [f"Command: `{command}`  ", machine,
             f"majority == LabelVoting label 1: {majority_equal} (ties c = n/2: {int(ties.sum())} voxels, LabelVoting "
             f"label {undecided}: {ties_equal}); file-level levels == in-memory levels: {files_equal}; "
             f"Dice(STAPLE > 0.5, majority) = {staple_dice:.4f}", "",
             f"| tool | what | seconds (best of {args.repeats}) | x radconf fuse_masks |", "|---|---|--:|--:|"]
    lines += [f"| {r['tool']} | {r['what']} | {r['seconds']:.3f} | {r['ratio_to_radconf_fuse_masks']:.1f} |"
              for r in rows]
    write_tables(args.out, lines, rows)


if __name__ == "__main__":
    main()
