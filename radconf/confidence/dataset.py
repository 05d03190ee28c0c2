"""File-level multi-reader fusion: a raw dataset with reader masks -> an nnU-Net raw dataset of confidence levels.

``fuse_case`` fuses one case's mask files (pure: reads, returns arrays); ``fuse_reader_dataset`` runs it over every
case of a source dataset and writes ``$nnUNet_raw/DatasetXXX_<Name>`` (layout in documentation/fusion.md). Inputs
are found and checked by :mod:`radconf.fusion_checks`; the tables and the figure come from
:mod:`radconf.fusion_report`. The quantisation rule is :mod:`radconf.fusion`'s (``FUSION_RULE``).

Masks are cropped to the union of their bounding boxes as they are read, so counting, levels and the pairwise Dice
only touch the region some reader drew; the level map is then placed back on the image's full grid.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radconf.confidence.case import Box, CaseFusion
from radconf.confidence.checks import CaseInputs, binarise, scan_source
from radconf.confidence.fusion import (
    DEFAULT_LEVELS,
    Fusion,
    agreement,
    fuse_masks,
    level_lookup,
)
from radconf.confidence.report import case_rows, dataset_json, summarise, write_reports
from radconf.errors import InvalidInput
from radconf.io.files import (
    atomic_write_bytes,
    atomic_write_image,
    atomic_write_json,
    staged_folder,
)
from radconf.io.images import (
    RESAMPLE_HINT,
    Geometry,
    check_volume_file,
    geometry_difference,
    read_header,
)
from radconf.raw.derived import check_output_dataset, derived_target
from radconf.raw.entry import RadconfEntry

FUSION_RULE = ("level = 0 if c == 0, K if c == n, else 1 + floor((K - 1) * c / n); c = number of masks that include "
               "the voxel, n = number of masks of the case")


GENERATOR = "radconf.fusion_dataset"


READ_THREADS = 2  # mask files decoded concurrently within a case (SimpleITK releases the GIL while reading)


def _bounding_box(mask: np.ndarray) -> Box | None:
    """Smallest box holding every True voxel of a bool array; None when there is none."""
    rows = np.flatnonzero(mask.reshape(mask.shape[0], -1).max(axis=1)) if mask.size else np.array([])
    if rows.size == 0:
        return None
    box = [slice(int(rows[0]), int(rows[-1]) + 1)]
    inner = mask[box[0]]
    for axis in range(1, mask.ndim):
        hits = np.flatnonzero(inner.max(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _read_mask(path: Path, geometry: Geometry, threshold: float | None) -> tuple[Box | None, np.ndarray]:
    """(bounding box, binary mask cropped to it) of one mask file, checked (whole, finite, scalar) and compared with
    the image geometry."""
    import SimpleITK as sitk

    check_volume_file(path, "mask")  # SimpleITK would read a truncated file, or NaN, as zeros
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise InvalidInput(f"SimpleITK cannot read {path} ({message}); re-export the file.") from None
    difference = geometry_difference(geometry, Geometry.of(image))
    if difference:
        raise InvalidInput(f"Mask {path} does not match its case's image: {difference}. {RESAMPLE_HINT}")
    binary = binarise(sitk.GetArrayViewFromImage(image), path, threshold)
    box = _bounding_box(binary)
    return box, (np.array(binary[box], dtype=bool) if box else np.zeros((0,) * binary.ndim, bool))


def fuse_case(image_path: str | os.PathLike, mask_paths: Mapping[str, str | os.PathLike], k: int = DEFAULT_LEVELS,
              threshold: float | None = None, *, num_threads: int = READ_THREADS) -> CaseFusion:
    """Fuses one case's mask files into confidence levels 0..k on the image's grid.

    Args:
        image_path: the case's image (channel 0); only its header is read.
        mask_paths: mask name (``<reader>_<trial>``) -> mask file, at least one.
        k: highest confidence level (2..255).
        threshold: None: masks must hold 0/1 only; a number T: mask = value > T (refused where it selects every
            voxel, or nothing of a two-valued mask: :func:`radconf.confidence.checks.apply_threshold`).
        num_threads: mask files read concurrently.

    Returns:
        Levels, counts, majority, agreement and the cropped masks.

    Raises:
        ValueError: no masks, k out of range, an unreadable, truncated or non-finite file, a non-binary mask, a
            threshold that cannot be meant, or a mask whose geometry differs from the image's (each naming the file).
    """
    if not mask_paths:
        raise InvalidInput(f"No masks given for image {image_path}; every case needs at least one reader mask.")
    level_lookup(len(mask_paths), k)  # validates k before any file is read
    geometry = Geometry.of(read_header(Path(image_path)))
    names, paths = list(mask_paths), [Path(p) for p in mask_paths.values()]
    if num_threads > 1 and len(paths) > 1:
        with ThreadPoolExecutor(min(num_threads, len(paths))) as pool:
            read = list(pool.map(lambda p: _read_mask(p, geometry, threshold), paths))
    else:
        read = [_read_mask(p, geometry, threshold) for p in paths]
    shape = tuple(reversed(geometry.size))
    boxes = [box for box, _ in read if box is not None]
    if boxes:
        union = tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(len(shape)))
    else:
        union = tuple(slice(0, 0) for _ in shape)
    masks: dict[str, np.ndarray] = {}
    for name, (box, crop) in zip(names, read):
        placed = np.zeros(tuple(s.stop - s.start for s in union), bool)
        if box is not None:
            placed[tuple(slice(b.start - u.start, b.stop - u.start) for b, u in zip(box, union))] = crop
        masks[name] = placed
    cropped = fuse_masks(list(masks.values()), k)
    levels, counts = np.zeros(shape, np.uint8), np.zeros(shape, cropped.counts.dtype)
    levels[union], counts[union] = cropped.levels, cropped.counts
    return CaseFusion(geometry, Fusion(levels, counts, cropped.n_masks, k), agreement(masks), union, masks)


def write_image(array: np.ndarray, geometry: Geometry, path: Path) -> Path:
    """Writes ``array`` (numpy (z, y, x)) atomically with the given geometry."""
    import SimpleITK as sitk

    return atomic_write_image(path, geometry.apply_to(sitk.GetImageFromArray(array)))


@dataclass(frozen=True)
class _CaseTask:
    inputs: CaseInputs
    staging: Path
    k: int
    threshold: float | None
    staple: bool
    ending: str


def _fuse_and_write(task: _CaseTask) -> tuple[dict, list[dict]]:
    """Fuses one case and writes its images, level map and consensus masks into the staging folder."""

    inputs, out, ending = task.inputs, task.staging, task.ending
    result = fuse_case(inputs.images[0], inputs.masks, task.k, task.threshold)
    suffix = "Tr" if inputs.split == "train" else "Ts"
    for image in inputs.images:
        atomic_write_bytes(out / f"images{suffix}" / image.name, image.read_bytes())
    write_image(result.levels, result.geometry, out / f"labels{suffix}" / f"{inputs.case}{ending}")
    write_image(result.majority, result.geometry, out / "consensus" / f"{inputs.case}{ending}")
    if task.staple:
        write_image(result.staple(), result.geometry, out / "consensus_staple" / f"{inputs.case}{ending}")
    return case_rows(inputs.case, inputs.split, result)


def _run(tasks: list[_CaseTask], num_workers: int, progress: bool) -> list[tuple[dict, list[dict]]]:
    from tqdm import tqdm

    bar = tqdm(total=len(tasks), desc="radconf_fuse_readers", unit="case", disable=not progress)
    try:
        if num_workers <= 1:
            outputs = []
            for task in tasks:
                bar.set_postfix_str(task.inputs.case)
                outputs.append(_fuse_and_write(task))
                bar.update()
            return outputs
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=num_workers, mp_context=context) as pool:
            futures = [pool.submit(_fuse_and_write, task) for task in tasks]
            try:
                for future in futures:
                    future.result()
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
            return [future.result() for future in futures]
    finally:
        bar.close()


@dataclass(frozen=True)
class FusedDataset:
    """Where the fused dataset was written and its agreement summary (see :func:`radconf.fusion_report.summarise`)."""

    folder: Path
    train_cases: list[str]
    test_cases: list[str]
    n_masks: int
    summary: dict[str, float]
    warnings: list[str] = field(default_factory=list)  # e.g. cases whose masks are all empty


def _is_fusion_output(folder: Path) -> bool:
    try:
        entry = RadconfEntry.read(folder / "dataset.json")
    except (OSError, ValueError):
        return False
    return entry.written_by(GENERATOR) and "fusion_rule" in entry.fields


def fuse_reader_dataset(source: str | os.PathLike, dataset_id: int, name: str | None = None, *,
                        readers_folder: str | os.PathLike | None = None, k: int = DEFAULT_LEVELS,
                        structure: str = "target", staple: bool = False, threshold: float | None = None,
                        overwrite: bool = False, num_workers: int = 1, raw_root: str | os.PathLike | None = None,
                        progress: bool = True) -> FusedDataset:
    """Fuses every case's reader masks into confidence levels and writes them as an nnU-Net raw dataset.

    Args:
        source: source dataset folder, or its id/name in ``raw_root``.
        dataset_id: id of the new dataset (1..999).
        name: its name (default ``<source name>Confidence``); the folder is ``DatasetXXX_<name>``.
        readers_folder: masks as ``<case>/<reader>_<trial><ending>`` (default ``<source>/readers``).
        k: highest confidence level (2..255); labels are 0..k.
        structure: name of the fused structure, recorded in dataset.json.
        staple: also write STAPLE consensus masks (``consensus_staple/``).
        threshold: None: masks must hold 0/1; T: mask = value > T (a finite number that separates background and
            contour, see :func:`radconf.confidence.checks.apply_threshold`).
        overwrite: replace an earlier output of this function (never anything else).
        num_workers: cases fused in parallel processes.
        raw_root: nnUNet_raw folder (default: ``$nnUNet_raw``, via :func:`radconf.paths.require_nnunet_paths`).
        progress: tqdm bar over cases.

    Returns:
        The written dataset's folder, cases, agreement summary and warnings (levels no case reaches, cases whose
        masks are all empty).

    Raises:
        FileNotFoundError: source dataset or readers folder missing.
        FileExistsError: the output exists and may not be replaced, or the id is used by another dataset.
        ValueError: k, the threshold or the id out of range, a bad name, an output that is, contains or lies inside
            an input folder, problems in the inputs, or every mask empty (each naming the file and fix).
    """

    if not 2 <= k <= 255:
        raise InvalidInput(f"The highest confidence level K (-k) must be in 2..255, got {k}.")
    if threshold is not None and not math.isfinite(threshold):
        raise InvalidInput(f"--threshold must be a finite number, got {threshold}.")
    if num_workers < 1:
        raise InvalidInput(f"The number of worker processes (-np) must be at least 1, got {num_workers}.")
    target = derived_target(source, dataset_id, name, "Confidence", raw_root)
    source_folder, folder, name = target.source, target.folder, target.name
    readers = Path(readers_folder) if readers_folder is not None else source_folder / "readers"
    check_output_dataset(folder, dataset_id, [("the source dataset", source_folder), ("the --readers folder", readers)],
                         overwrite, "radconf_fuse_readers", _is_fusion_output)
    inputs = scan_source(source_folder, readers_folder)
    warnings = unreachable_levels(k, [len(c.masks) for c in inputs.cases])

    with staged_folder(folder) as staging:  # replaces only an earlier output of ours (overwrite checked above)
        tasks = [_CaseTask(case, staging, k, threshold, staple, inputs.file_ending) for case in inputs.cases]
        outputs = _run(tasks, num_workers, progress)
        case_table = [row for row, _ in outputs]
        warnings += _empty_cases(case_table, inputs)
        pair_table = [pair for _, pairs in outputs for pair in pairs]
        summary = summarise(case_table)
        write_reports(staging, case_table, pair_table, k)
        atomic_write_json(staging / "dataset.json", dataset_json(
            inputs, k=k, structure=structure, name=name, generator=GENERATOR, fusion_rule=FUSION_RULE,
            consensus=["majority"] + (["staple"] if staple else []), threshold=threshold))
    return FusedDataset(folder, [c.case for c in inputs.cases if c.split == "train"],
                        [c.case for c in inputs.cases if c.split == "test"],
                        sum(len(c.masks) for c in inputs.cases), summary, warnings)


def unreachable_levels(k: int, masks_per_case: Sequence[int]) -> list[str]:
    """A warning line when some of the levels 1..K-1 occur in no case (K above the number of masks of every case)."""
    reachable = {int(level) for n in set(masks_per_case) for level in level_lookup(n, k)}
    missing = [str(level) for level in range(k + 1) if level not in reachable]
    if not missing:
        return []
    most = max(masks_per_case)
    fix = (f"-k {most} or less gives every level voxels" if most >= 2 else
           "fusion needs several masks per case to grade agreement")
    return [f"-k {k}: the cases have at most {most} masks, so levels {', '.join(missing)} never occur in any case "
            f"(n masks give n + 1 agreement counts); {fix}."]


def _empty_cases(case_table: Sequence[dict], inputs) -> list[str]:
    """A warning per case whose masks are all empty; InvalidInput if every case's are (nothing to learn)."""
    empty = [row for row in case_table if row["volume_ge_level_1_ml"] == 0]
    if case_table and len(empty) == len(case_table):
        raise InvalidInput(f"every reader mask of every case is empty ({inputs.readers_folder}): the fused dataset "
                           f"would hold background only. Check the mask files and --threshold (value > T is "
                           f"the contour).")
    return [f"case {row['case']}: all {row['n_masks']} reader masks are empty ({inputs.readers_folder / row['case']});"
            f" its level map is background only. Check its masks (and --threshold) if the structure is there."
            for row in empty]
