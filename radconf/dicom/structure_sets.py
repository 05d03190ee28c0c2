"""RT structure sets in: parse an RTSTRUCT file, rasterise its ROIs on a CT series' grid.

Rasterisation convention (documentation/dicom_rt.md): every contour point goes through the full image geometry to
continuous voxel indices (:mod:`radconf.dicom.geometry`); a contour lies on the slice whose position along the
normal matches its own within a quarter of the local slice spacing; a voxel belongs to the ROI when its centre is
inside the slice's contours under the even-odd rule (inner contours make holes, :mod:`radconf.dicom.polygons`).
POINT and OPEN_PLANAR/OPEN_NONPLANAR contours carry no area and are skipped with a warning.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radconf.dicom.geometry import SeriesGeometry
from radconf.errors import InvalidInput

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
CONTOUR_DATA = 0x30060050


@dataclass(frozen=True)
class Contour:
    geometric_type: str
    points: np.ndarray  # (N, 3) patient coordinates, mm


@dataclass(frozen=True)
class Roi:
    number: int
    name: str
    colour: tuple[int, int, int] | None
    contours: tuple[Contour, ...]
    interpreted_type: str = ""

    @property
    def closed_contours(self) -> list[Contour]:
        return [c for c in self.contours if c.geometric_type == "CLOSED_PLANAR"]


@dataclass(frozen=True)
class StructureSet:
    """One RTSTRUCT file: what it references and its ROIs (no patient identifiers kept)."""

    path: Path
    sop_instance_uid: str
    label: str
    date_time: str
    frame_of_reference_uids: tuple[str, ...]
    referenced_series_uids: tuple[str, ...]
    contour_image_uids: frozenset[str]
    rois: tuple[Roi, ...]


@dataclass
class RasterWarnings:
    """What rasterising one ROI had to skip or clip (counts, for one warning line each)."""

    skipped_types: dict[str, int] = field(default_factory=dict)
    off_slice: int = 0
    outside_vertices: int = 0
    not_planar: int = 0


def _contour_points(item, path: Path, roi_name: str) -> np.ndarray:
    raw = item.get_item(CONTOUR_DATA)
    if raw is None:
        return np.zeros((0, 3))
    value = raw.value
    if isinstance(value, (bytes, bytearray)):
        text = value.decode("ascii", "replace").replace("\\", " ")
        try:
            numbers = np.array(text.split(), dtype=np.float64)
        except ValueError:
            raise InvalidInput(f"{path}: ROI {roi_name!r} has ContourData that is not numbers; re-export the "
                               f"structure set.") from None
    else:
        numbers = np.asarray(item.ContourData, dtype=np.float64).ravel()
    if numbers.size % 3:
        raise InvalidInput(f"{path}: ROI {roi_name!r} has a contour of {numbers.size} values (not x, y, z triples); "
                           f"re-export the structure set.")
    return numbers.reshape(-1, 3)


def _referenced(ds) -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]:
    frames, series, images = [], [], set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []):
        frames.append(str(frame.get("FrameOfReferenceUID", "")))
        for study in frame.get("RTReferencedStudySequence", []):
            for ref in study.get("RTReferencedSeriesSequence", []):
                series.append(str(ref.get("SeriesInstanceUID", "")))
                images.update(str(i.get("ReferencedSOPInstanceUID", "")) for i in ref.get("ContourImageSequence", []))
    return tuple(f for f in frames if f), tuple(s for s in series if s), frozenset(images - {""})


def read_structure_set(path: str | Path) -> StructureSet:
    """Parses an RTSTRUCT file.

    Raises:
        InvalidInput: not an RT structure set, two ROIs of the same name, malformed contour data.
    """
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for damaged files
        raise InvalidInput(f"{path}: cannot read the structure set ({error}); re-export it.") from None
    if str(ds.get("SOPClassUID", "")) != RTSTRUCT_SOP_CLASS and ds.get("Modality") != "RTSTRUCT":
        raise InvalidInput(f"{path} is not an RT structure set (Modality {ds.get('Modality')!r}).")
    names: dict[int, str] = {}
    for item in ds.get("StructureSetROISequence", []):
        names[int(item.ROINumber)] = str(item.get("ROIName", "")).strip()
    seen: dict[str, int] = {}
    for number, name in names.items():
        if name.lower() in seen:
            raise InvalidInput(f"{path}: two ROIs are named {name!r} (numbers {seen[name.lower()]} and {number}); "
                               f"rename one in the TPS and export the structure set again.")
        seen[name.lower()] = number
    types = {int(o.ReferencedROINumber): str(o.get("RTROIInterpretedType", ""))
             for o in ds.get("RTROIObservationsSequence", []) if "ReferencedROINumber" in o}
    rois = []
    contoured: dict[int, tuple] = {}
    for item in ds.get("ROIContourSequence", []):
        number = int(item.ReferencedROINumber)
        name = names.get(number, f"ROI {number}")
        colour = tuple(int(c) for c in item.ROIDisplayColor) if "ROIDisplayColor" in item else None
        contours = tuple(Contour(str(c.get("ContourGeometricType", "CLOSED_PLANAR")), _contour_points(c, path, name))
                         for c in item.get("ContourSequence", []))
        contoured[number] = (colour, contours)
    for number, name in names.items():
        colour, contours = contoured.get(number, (None, ()))
        rois.append(Roi(number, name, colour, contours, types.get(number, "")))
    frames, series, images = _referenced(ds)
    date_time = f"{ds.get('StructureSetDate', '')}{ds.get('StructureSetTime', '')}"
    return StructureSet(path, str(ds.get("SOPInstanceUID", "")), str(ds.get("StructureSetLabel", "")).strip(),
                        date_time, frames, series, images, tuple(rois))


def rasterise_roi(roi: Roi, geometry: SeriesGeometry, *, supersampling: int | None = None,
                  ) -> tuple[np.ndarray, RasterWarnings]:
    """The ROI's mask (bool, or float32 partial-volume fractions with ``supersampling``) on the series' grid.

    Contours whose position matches no slice (outside the image or between slices) are counted in the warnings and
    left out; vertices beyond the image edges are clipped (counted).
    """
    from radconf.dicom.polygons import rasterise_fractions, rasterise_slice, vertices_outside

    warnings = RasterWarnings()
    per_slice: dict[int, list[np.ndarray]] = defaultdict(list)
    for contour in roi.contours:
        if contour.geometric_type != "CLOSED_PLANAR":
            warnings.skipped_types[contour.geometric_type] = warnings.skipped_types.get(contour.geometric_type, 0) + 1
            continue
        if len(contour.points) < 3:
            continue
        along = geometry.along_normal(contour.points)
        k = geometry.slice_of(float(np.median(along)))
        if k is None:
            warnings.off_slice += 1
            continue
        if float(np.ptp(along)) > 2 * geometry.slice_tolerance(k):
            warnings.not_planar += 1
        ij = geometry.in_plane_index(contour.points)
        warnings.outside_vertices += vertices_outside(ij, geometry.rows, geometry.columns)
        per_slice[k].append(ij)
    dtype = np.float32 if supersampling else bool
    mask = np.zeros(geometry.shape, dtype=dtype)
    for k, polygons in per_slice.items():
        if supersampling:
            mask[k] = rasterise_fractions(polygons, geometry.rows, geometry.columns, supersampling)
        else:
            mask[k] = rasterise_slice(polygons, geometry.rows, geometry.columns)
    return mask, warnings


def warning_lines(warnings: RasterWarnings, where: str) -> list[str]:
    """One line per kind of skipped or clipped contour data."""
    lines = [f"{where}: {n} {kind} contour(s) skipped (no area: only CLOSED_PLANAR contours are rasterised)"
             for kind, n in sorted(warnings.skipped_types.items())]
    if warnings.off_slice:
        lines.append(f"{where}: {warnings.off_slice} contour(s) lie on no slice of the CT series (outside its extent "
                     f"or between slices) and were left out")
    if warnings.outside_vertices:
        lines.append(f"{where}: {warnings.outside_vertices} contour point(s) lie outside the image; the mask is "
                     f"clipped to the image")
    if warnings.not_planar:
        lines.append(f"{where}: {warnings.not_planar} contour(s) are not parallel to the CT slices; each was put on "
                     f"the slice of its median position")
    return lines
