"""One predicted case -> RTSTRUCT, DICOM-SEG and Slicer ``.seg.nrrd`` on its source CT series.

Structures: one per foreground label of the prediction's dataset.json. A confidence-level map (an ordinal
dataset.json, levels 0..K) becomes K nested structures ``<structure>_level>=c``, coloured with the level scale.
RTSTRUCT contours run along voxel edges (:mod:`radconf.dicom.tracing`), so any reader that takes the voxels whose
centres lie inside gets back exactly the predicted mask; holes are inner contours. Every object is marked as
machine-made: ROI generation algorithm AUTOMATIC, Manufacturer radconf and its version, the model in the series
description, approval status UNAPPROVED.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.dicom.colours import level_colours, structure_colour
from radconf.dicom.geometry import SeriesGeometry

FORMATS = ("rtstruct", "seg", "segnrrd")


@dataclass(frozen=True)
class ExportStructure:
    """One exported structure: its name, colour and the label values that make its mask."""

    name: str
    colour: tuple[int, int, int]
    values: tuple[int, ...]

    def mask(self, labels: np.ndarray) -> np.ndarray:
        return np.isin(labels, self.values) if len(self.values) > 1 else labels == self.values[0]


def export_structures(dataset_json: Mapping) -> list[ExportStructure]:
    """The structures of a prediction's dataset.json (ordinal maps: nested ``<structure>_level>=c``)."""
    entry = dataset_json.get("radconf") or {}
    if entry.get("ordinal"):
        k = int(entry["levels"])
        structure = str(entry.get("structure", "target"))
        colours = level_colours(k)
        return [ExportStructure(f"{structure}_level>={c}", colours[c - 1], tuple(range(c, k + 1)))
                for c in range(1, k + 1)]
    structures = []
    for name, value in dataset_json.get("labels", {}).items():
        values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        if name in ("background", "ignore") or values == (0,):
            continue
        structures.append(ExportStructure(str(name), structure_colour(str(name), int(values[0])),
                                          tuple(int(v) for v in values)))
    return structures


def rtstruct_rois(labels: np.ndarray, geometry: SeriesGeometry, structures: Sequence[ExportStructure],
                  description: str, extra_rois: Sequence[tuple[str, np.ndarray]] = ()):
    """RTSTRUCT ROIs of a label map (contours on voxel edges, in patient coordinates), then one ROI per extra
    ``(name, mask)`` (e.g. the 95 % bounds of an uncertainty prediction)."""
    from radconf.dicom.rtstruct_writer import RoiContours
    from radconf.dicom.tracing import trace_volume

    masks = [(s.name, s.colour, s.mask(labels)) for s in structures]
    masks += [(name, structure_colour(name, len(masks) + i + 1), mask) for i, (name, mask) in enumerate(extra_rois)]
    rois = []
    for number, (name, colour, mask) in enumerate(masks, start=1):
        contours = []
        for k, traced in sorted(trace_volume(mask).items()):
            contours.extend((k, geometry.index_to_patient(c.points, k)) for c in traced)
        rois.append(RoiContours(number=number, name=name, colour=colour, contours=contours,
                                generation_algorithm="AUTOMATIC", generation_description=description))
    return rois


def write_case_outputs(folder: Path, case: str, labels: np.ndarray, source, structures: Sequence[ExportStructure],
                       formats: Sequence[str], description: str, fractions: np.ndarray | None = None,
                       extra_rois: Sequence[tuple[str, np.ndarray]] = ()) -> list[Path]:
    """Writes the requested formats of one case into ``folder`` and returns the files.

    Args:
        folder: the case's output folder.
        case: case id (file names).
        labels: the predicted label map, (slices, rows, columns) on the series' grid.
        source: the series (:class:`radconf.dicom.exporter.SourceSeries`): geometry, reference, CT headers.
        structures: what to export.
        formats: among ``FORMATS``.
        description: model spec, in the series descriptions and ROI generation descriptions.
        fractions: optional (n_structures, slices, rows, columns) probabilities: the SEG is FRACTIONAL.
        extra_rois: ``(name, mask)`` pairs added to the RTSTRUCT after the structures (the 95 % bounds).
    """
    written = []
    if "rtstruct" in formats:
        from radconf.dicom.rtstruct_writer import build_rtstruct, write_dataset

        rois = rtstruct_rois(labels, source.geometry, structures, description, extra_rois)
        ds = build_rtstruct(source.reference, rois, label="radconf", description=f"radconf {description}"[:64],
                            series_description=f"radconf {description}"[:64])
        written.append(write_dataset(ds, folder / f"{case}_RTSTRUCT.dcm"))
    if "seg" in formats:
        from radconf.dicom.seg_writer import SegmentInfo, write_dicom_seg

        masks = fractions if fractions is not None else np.stack([s.mask(labels) for s in structures])
        segments = [SegmentInfo(s.name, s.colour) for s in structures]
        written.append(write_dicom_seg(folder / f"{case}_SEG.dcm", masks, source.ct_headers(), segments,
                                       fractional=fractions is not None,
                                       series_description=f"radconf {description}"[:64]))
    if "segnrrd" in formats:
        written.append(_write_segnrrd(folder / f"{case}.seg.nrrd", labels, source.geometry, structures))
    return written


def _write_segnrrd(path: Path, labels: np.ndarray, geometry: SeriesGeometry,
                   structures: Sequence[ExportStructure]) -> Path:
    """Slicer segmentation: one segment per label value (nested level structures become their level bands)."""
    from radconf.dicom.segnrrd import write_segnrrd

    nested = any(len(s.values) > 1 for s in structures)  # level structures: their label values are the bands
    segments = [(s.values[0], s.name.replace(">=", "_") if nested else s.name, s.colour) for s in structures]
    return write_segnrrd(path, labels, geometry.to_image(labels), segments)
