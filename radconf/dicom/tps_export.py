"""Write an image and its masks as a treatment planning system would export them: a CT series plus one RTSTRUCT per
structure set (reader, trial, session), contours traced on voxel edges.

Used by the demo (the phantom as a TPS export), the tests and the benchmarks; also a way to send any NIfTI image with
label maps to a TPS. Layout::

    <folder>/CT/CT_0000.dcm ...             one file per slice
    <folder>/RTSTRUCT_<label>_<n>.dcm       one file per structure set
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.dicom.colours import structure_colour
from radconf.dicom.geometry import SeriesGeometry


@dataclass(frozen=True)
class StructureSetContent:
    """One structure set to write: its label (the reader), ROI names -> masks (slices, rows, columns)."""

    label: str
    masks: Mapping[str, np.ndarray]
    date_time: str = ""  # StructureSetDate + StructureSetTime, "YYYYMMDDHHMMSS" (empty: now)


def mask_rois(masks: Mapping[str, np.ndarray], geometry: SeriesGeometry, *, algorithm: str = "MANUAL",
              description: str = "") -> list:
    """RTSTRUCT ROIs of named masks, contours on voxel edges in patient coordinates."""
    from radconf.dicom.rtstruct_writer import RoiContours
    from radconf.dicom.tracing import trace_volume

    rois = []
    for number, (name, mask) in enumerate(masks.items(), start=1):
        contours = [(k, geometry.index_to_patient(c.points, k))
                    for k, traced in sorted(trace_volume(np.asarray(mask) > 0).items()) for c in traced]
        rois.append(RoiContours(number=number, name=name, colour=structure_colour(name, number), contours=contours,
                                generation_algorithm=algorithm, generation_description=description))
    return rois


def write_tps_export(folder: str | Path, hu: np.ndarray, geometry: SeriesGeometry, patient,
                     structure_sets: Sequence[StructureSetContent], *, series_description: str = "CT",
                     ct_file_names: Sequence[str] | None = None) -> list[Path]:
    """Writes the CT series and its structure sets into ``folder``; returns the RTSTRUCT files.

    Args:
        folder: output folder (created).
        hu: CT in HU, (slices, rows, columns) on ``geometry``.
        geometry: the series' grid (:meth:`SeriesGeometry.from_image` for a NIfTI image).
        patient: :class:`radconf.dicom.identity.PatientStudy` of the export.
        structure_sets: one entry per RTSTRUCT.
        series_description: the CT series' description.
        ct_file_names: file names of the slices (default ``CT_0000.dcm`` ...).
    """
    from radconf.dicom.ct_writer import write_ct_series
    from radconf.dicom.rtstruct_writer import build_rtstruct, write_dataset

    folder = Path(folder)
    reference = write_ct_series(hu, geometry, folder / "CT", patient, series_description=series_description,
                                file_names=ct_file_names)
    written, count = [], {}
    for content in structure_sets:
        ds = build_rtstruct(reference, mask_rois(content.masks, geometry), label=content.label,
                            series_description=f"{content.label} structures")
        if content.date_time:
            ds.StructureSetDate, ds.StructureSetTime = content.date_time[:8], content.date_time[8:14]
        count[content.label] = count.get(content.label, 0) + 1
        written.append(write_dataset(ds, folder / f"RTSTRUCT_{content.label}_{count[content.label]}.dcm"))
    return written
