"""What an uncertainty prediction writes, per case and for the run.

Per case, next to the segmentation ``CASE<ending>`` (the mean probabilities, decoded as usual) and the optional
``CASE.npz`` (the mean probabilities)::

    uncertainty/CASE.json                          per structure: quality score, volumes (mean, 95 % interval over
                                                   samples, of the mean, of the bounds), mean variance and mutual
                                                   information inside the outer bound; the samples' weights
    uncertainty/CASE_entropy<ending>               predictive entropy (total), nats
    uncertainty/CASE_expected_entropy<ending>      expected entropy (aleatoric)
    uncertainty/CASE_mutual_information<ending>    mutual information (epistemic)
    uncertainty/CASE_<structure>_variance<ending>  variance of the structure's probability over the samples
    uncertainty/CASE_<structure>_frequency<ending> share of the samples whose segmentation includes the voxel
    uncertainty/CASE_<structure>_inner95<ending>   inner 95 % bound (>= 97.5 % of the samples), 0/1
    uncertainty/CASE_<structure>_outer95<ending>   outer 95 % bound (>= 2.5 % of the samples), 0/1

Confidence models name their structures ``level_geC`` (level >= C). For the run: ``uncertainty.json`` (source,
samples, seeds, members, calibration) and ``uncertainty_summary.csv`` / ``.png``: every case and structure, the
lowest contour-quality scores first, the order in which to review.
"""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput
from radconf.io.files import atomic_save_figure, atomic_write_image, atomic_write_json, atomic_write_with
from radconf.io.tables import write_csv
from radconf.uncertainty.statistics import SampleAccumulator, structure_channels

UNCERTAINTY_FOLDER = "uncertainty"
RECORD = "uncertainty.json"
SUMMARY = "uncertainty_summary"
CASE_MAPS = ("entropy", "expected_entropy", "mutual_information")
STRUCTURE_MAPS = ("variance", "frequency", "inner95", "outer95")


def file_name(structure: str) -> str:
    """A structure name as it appears in file names (``level>=2`` -> ``level_ge2``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", structure.replace(">=", "_ge")).replace("__", "_")


def case_files(case: str, ending: str, structures: Sequence[str], save_maps: bool) -> list[str]:
    """The uncertainty files of ``case``, relative to the prediction folder."""
    files = [f"{UNCERTAINTY_FOLDER}/{case}.json"]
    if save_maps:
        files += [f"{UNCERTAINTY_FOLDER}/{case}_{name}{ending}" for name in CASE_MAPS]
        files += [f"{UNCERTAINTY_FOLDER}/{case}_{file_name(s)}_{kind}{ending}" for s in structures
                  for kind in STRUCTURE_MAPS]
    return files


def write_prediction(output_folder: Path, case: str, ending: str, mean: np.ndarray, space, write_npz: bool,
                     write_segmentation) -> Path:
    """The segmentation of the mean probabilities (nnU-Net's writer) and, when asked, ``CASE.npz``."""
    from radconf.ensembles.space import decode

    segmentation_file = output_folder / f"{case}{ending}"
    atomic_write_with(segmentation_file, lambda tmp: write_segmentation(decode(mean, space), tmp))
    if write_npz:
        atomic_write_with(output_folder / f"{case}.npz", lambda tmp: np.savez_compressed(tmp, probabilities=mean))
    return segmentation_file


def write_case_uncertainty(output_folder: Path, case: str, ending: str, accumulator: SampleAccumulator,
                           segmentation_file: Path, save_maps: bool) -> list[dict]:
    """The maps and ``uncertainty/CASE.json`` of one case (geometry of its segmentation); returns its rows."""
    import SimpleITK as sitk

    reference = sitk.ReadImage(str(segmentation_file))
    accumulator.voxel_volume_cm3 = float(np.prod(reference.GetSpacing())) / 1000.0
    folder = output_folder / UNCERTAINTY_FOLDER

    def write(name: str, array: np.ndarray) -> None:
        image = sitk.GetImageFromArray(array)
        image.CopyInformation(reference)
        atomic_write_image(folder / f"{case}_{name}{ending}", image)

    if save_maps:
        write("entropy", accumulator.predictive_entropy())
        write("expected_entropy", accumulator.expected_entropy())
        write("mutual_information", accumulator.mutual_information())
        variance = structure_channels(accumulator.variance(), accumulator.space)
        share = accumulator.inclusion_share()
        inner, outer = accumulator.bounds()
        for index, structure in enumerate(accumulator.space.structures):
            name = file_name(structure)
            write(f"{name}_variance", variance[index].astype(np.float32))
            write(f"{name}_frequency", share[index].astype(np.float32))
            write(f"{name}_inner95", inner[index].astype(np.uint8))
            write(f"{name}_outer95", outer[index].astype(np.uint8))
    rows = [{"case": case, **summary.as_row()} for summary in accumulator.summaries()]
    atomic_write_json(folder / f"{case}.json", {
        "case": case, "samples": accumulator.samples, "sample_weights": accumulator.sample_weights,
        "structures": rows})
    return rows


def read_case_rows(output_folder: Path, case: str) -> list[dict]:
    """The rows of ``uncertainty/CASE.json`` (a case predicted earlier, ``--continue_prediction``)."""
    path = output_folder / UNCERTAINTY_FOLDER / f"{case}.json"
    try:
        return list(json.loads(path.read_text())["structures"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"{path} is unreadable ({error}); predict the case again without --continue_prediction."
                           ) from None


def write_summary(output_folder: Path, rows: Sequence[dict], plots: bool = True) -> None:
    """``uncertainty_summary.csv`` (lowest quality first) and ``uncertainty_summary.png`` (quality per structure);
    a part of a sharded prediction names them for the part (:mod:`radconf.scale.parts`)."""
    from radconf.scale.parts import part_file_name

    ordered = sorted(rows, key=lambda row: (row["quality"], row["case"], row["structure"]))
    columns = list(ordered[0]) if ordered else ["case", "structure", "quality"]
    write_csv(output_folder / part_file_name(f"{SUMMARY}.csv"), ordered, columns)
    if plots and ordered:
        _plot_quality(output_folder / part_file_name(f"{SUMMARY}.png"), ordered)


def _plot_quality(path: Path, rows: Sequence[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    structures = sorted({row["structure"] for row in rows})
    figure, axis = plt.subplots(figsize=(max(4.0, 1.2 * len(structures) + 2), 3.6))
    for index, structure in enumerate(structures):
        values = [row["quality"] for row in rows if row["structure"] == structure]
        offsets = np.linspace(-0.15, 0.15, len(values)) if len(values) > 1 else [0.0]
        axis.scatter(index + np.asarray(offsets), values, s=14)
    axis.set_xticks(range(len(structures)), structures, rotation=30, ha="right")
    axis.set_ylabel("contour-quality score")
    axis.set_ylim(min(0.0, min(row["quality"] for row in rows)), 1.02)
    axis.set_title("Contour quality per case (lowest: review first)", fontsize=10)
    figure.tight_layout()
    atomic_save_figure(figure, path, dpi=120)
    plt.close(figure)
