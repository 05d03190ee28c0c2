"""DICOM Segmentation writer (highdicom): masks or probability maps on a CT series -> one SEG instance.

BINARY segmentations take boolean masks; FRACTIONAL ones (PROBABILITY) take maps in [0, 1], stored as 8-bit
fractions of 255. Every segment is marked AUTOMATIC, identified by the radconf algorithm, with the generic property
category "Anatomical Structure" and type "Organ" (SNOMED CT) and its display colour. Frames in which a segment is
empty are omitted. The source images only need their headers (highdicom reads no pixel data from them).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.dicom.identity import SOFTWARE, new_uid, software_version
from radconf.errors import InvalidInput


@dataclass(frozen=True)
class SegmentInfo:
    """One segment of a SEG.

    Attributes:
        label: SegmentLabel (the structure name).
        colour: display colour, RGB 0-255 (stored as CIELab, RecommendedDisplayCIELabValue).
    """

    label: str
    colour: tuple[int, int, int]


def _check_masks(path: Path, masks: np.ndarray, source_images: Sequence, segments: Sequence[SegmentInfo],
                 fractional: bool) -> np.ndarray:
    """The masks as highdicom's (frames, rows, columns, segments) array (bool or float), after the checks."""
    masks = np.asarray(masks)
    if masks.ndim != 4 or masks.shape[0] != len(segments) or masks.shape[1] != len(source_images):
        raise InvalidInput(f"{path}: masks of shape {masks.shape}; pass (n_segments={len(segments)}, "
                           f"slices={len(source_images)}, rows, columns), one mask per segment and CT slice.")
    rows, columns = int(source_images[0].Rows), int(source_images[0].Columns)
    if masks.shape[2:] != (rows, columns):
        raise InvalidInput(f"{path}: masks of {masks.shape[2]} x {masks.shape[3]} pixels on a CT series of "
                           f"{rows} x {columns}; resample the masks onto the series' grid.")
    if not segments:
        raise InvalidInput(f"{path}: no segments given; a SEG needs at least one.")
    if fractional:
        if masks.dtype.kind not in "biuf" or not np.all(np.isfinite(masks)) or masks.min() < 0 or masks.max() > 1:
            raise InvalidInput(f"{path}: fractional masks must be finite values in [0, 1] (probabilities).")
        return np.moveaxis(masks.astype(np.float32), 0, -1)
    if masks.dtype != bool and not np.isin(masks, (0, 1)).all():
        raise InvalidInput(f"{path}: binary masks must be boolean or 0/1; pass fractional=True for probabilities.")
    return np.moveaxis(masks.astype(bool), 0, -1)


def _segment_descriptions(segments: Sequence[SegmentInfo], algorithm_name: str, algorithm_version: str) -> list:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(name=algorithm_name, family=codes.cid7162.ArtificialIntelligence,
                                                   version=algorithm_version or software_version())
    descriptions = []
    for number, segment in enumerate(segments, start=1):
        if len(segment.colour) != 3 or not all(0 <= int(c) <= 255 for c in segment.colour):
            raise InvalidInput(f"segment {segment.label!r}: colour {tuple(segment.colour)} is not RGB 0-255.")
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=segment.label[:64],
            segmented_property_category=codes.SCT.AnatomicalStructure, segmented_property_type=codes.SCT.Organ,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
            tracking_uid=new_uid(), tracking_id=segment.label[:64],
            display_color=hd.color.CIELabColor.from_rgb(*(int(c) for c in segment.colour))))
    return descriptions


def write_dicom_seg(path: Path, masks: np.ndarray, source_images: Sequence, segments: Sequence[SegmentInfo], *,
                    fractional: bool = False, series_description: str = "", algorithm_name: str = SOFTWARE,
                    algorithm_version: str = "") -> Path:
    """Writes a DICOM SEG on a CT series (atomically).

    Args:
        path: output file.
        masks: (n_segments, slices, rows, columns): bool (BINARY) or floats in [0, 1] (FRACTIONAL).
        source_images: the CT slices' pydicom headers (pixel data not needed), ordered by slice index k.
        segments: label and colour of each segment, in the order of ``masks``.
        fractional: write a FRACTIONAL (PROBABILITY) segmentation, 8 bits (max fractional value 255).
        series_description: SeriesDescription of the new SEG series.
        algorithm_name: algorithm name of every segment.
        algorithm_version: its version (default: radconf's version).

    Returns:
        ``path``.

    Raises:
        InvalidInput: the masks do not match the segments or the series' grid, or hold invalid values.
    """
    import highdicom as hd

    from radconf.dicom.rtstruct_writer import write_dataset

    path = Path(path)
    if not source_images:
        raise InvalidInput(f"{path}: no CT slice headers given; pass the series' slices in slice order.")
    pixels = _check_masks(path, masks, source_images, segments, fractional)
    seg = hd.seg.Segmentation(
        source_images=list(source_images), pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else
        hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_segment_descriptions(segments, algorithm_name, algorithm_version),
        series_instance_uid=new_uid(), series_number=1, sop_instance_uid=new_uid(), instance_number=1,
        manufacturer=SOFTWARE, manufacturer_model_name=SOFTWARE, software_versions=software_version(),
        device_serial_number="0", fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY,
        max_fractional_value=255, content_description=series_description[:64] or None,
        content_label="RADCONF", omit_empty_frames=bool(np.any(pixels)))
    if series_description:
        seg.SeriesDescription = series_description[:64]
    return write_dataset(seg, os.fspath(path))
