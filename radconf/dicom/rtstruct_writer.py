"""RT Structure Set writer: contours in patient coordinates -> an RTSTRUCT on its CT series.

Contour points are written as DS strings formatted in bulk with numpy (fixed point, 6 decimals, trailing zeros
dropped: at most 16 characters, error <= 5e-7 mm) and stored as raw elements, so a structure set of many thousand
contours builds and writes without per-point Python work. The file is explicit VR little endian, unless a contour
holds more than 64 KiB of ContourData (some 6000 points), which explicit VR cannot encode: then the whole file is
implicit VR little endian. :func:`write_dataset` is the one file writer of all of radconf's DICOM writers (file
meta, atomic).
"""
from __future__ import annotations

import io
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from radconf.dicom.identity import SOFTWARE, ReferencedSeries, new_uid, software_version
from radconf.errors import InvalidInput

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_DECIMALS = 6
_MAX_FIXED = 1e8  # |value| below this fits "-dddddddd.dddddd" (16 characters)


@dataclass(frozen=True)
class RoiContours:
    """One ROI of a structure set.

    Attributes:
        number: ROINumber (unique in the structure set).
        name: ROIName.
        colour: ROIDisplayColor, RGB 0-255.
        contours: (slice index k into the referenced series, (N, 3) patient points) per CLOSED_PLANAR contour.
        interpreted_type: RTROIInterpretedType (ORGAN, PTV, CTV, GTV, AVOIDANCE, EXTERNAL, ...).
        generation_algorithm: ROIGenerationAlgorithm (AUTOMATIC, SEMIAUTOMATIC, MANUAL).
        generation_description: ROIGenerationDescription (e.g. the model).
    """

    number: int
    name: str
    colour: tuple[int, int, int]
    contours: Sequence[tuple[int, np.ndarray]]
    interpreted_type: str = "ORGAN"
    generation_algorithm: str = "AUTOMATIC"
    generation_description: str = ""


def _lut(pattern: str, n: int) -> np.ndarray:
    """``pattern % v`` for v < n, each 4 ASCII characters, as little-endian uint32 words."""
    return np.frombuffer("".join(pattern % v for v in range(n)).encode("ascii"), dtype="<u4")


_DIGITS4, _DOT_DIGITS3, _DIGITS3_SEPARATOR = _lut("%04d", 10000), _lut(".%03d", 1000), _lut("%03d\\", 1000)
_N_DIGITS4 = np.array([len(str(v)) for v in range(10000)], np.intp)
_TRAILING_ZEROS3 = np.array([3] + [len(f"{v:03d}") - len(f"{v:03d}".rstrip("0")) for v in range(1, 1000)], np.intp)
# slot of the separator after the decimals d of 0.dddddd (19 - trailing zeros; 12, the '.', when all are zeros)
_SEPARATOR_SLOT = np.where(np.arange(10 ** _DECIMALS) % 1000 == 0, 16 - np.repeat(_TRAILING_ZEROS3, 1000),
                           19 - np.tile(_TRAILING_ZEROS3, 1000)).astype(np.int8)
_SEPARATOR_SLOT[0] = 12
_SPANS = np.arange(20)[None, None, :]
_SPANS = ((_SPANS >= np.arange(20)[:, None, None]) & (_SPANS <= np.arange(20)[None, :, None])).reshape(400, 20)
_CHUNK = 1 << 18


def format_ds(values: np.ndarray) -> list[str]:
    """Valid DS strings (<= 16 characters) of many numbers, without per-value Python formatting.

    Args:
        values: any array of finite numbers.

    Returns:
        One string per value (row-major): fixed point, rounded to 6 decimals, trailing zeros dropped.

    Raises:
        InvalidInput: a value is NaN or infinite.
    """
    joined, lengths = format_ds_bytes(np.asarray(values, np.float64).ravel())
    ends = np.cumsum(lengths + 1)
    text = joined.decode("ascii")
    return [text[s:e - 1] for s, e in zip(np.concatenate([[0], ends[:-1]]).tolist(), ends.tolist())]


def format_ds_bytes(x: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The values of 1D ``x`` as DS strings, each followed by a backslash, in one bytes object; and their lengths.

    Args:
        x: float64 values.

    Returns:
        (ASCII bytes, length of each value's string without its backslash).

    Raises:
        InvalidInput: a value is NaN or infinite.
    """
    if not np.all(np.isfinite(x)):
        raise InvalidInput("contour or geometry values are not finite (NaN or inf); fix the input points.")
    if x.size and np.max(np.abs(np.rint(x * 10 ** _DECIMALS))) >= _MAX_FIXED * 10 ** _DECIMALS:
        from pydicom.valuerep import format_number_as_ds

        parts = [format_number_as_ds(float(v)) for v in x]  # beyond 100 km: never patient coordinates
        return "".join(p + "\\" for p in parts).encode("ascii"), np.array([len(p) for p in parts], np.intp)
    chunks = [_format_chunk(x[i:i + _CHUNK]) for i in range(0, x.size, _CHUNK)]
    return b"".join(c[0] for c in chunks), np.concatenate([c[1] for c in chunks] or [np.zeros(0, np.intp)])


def _format_chunk(x: np.ndarray) -> tuple[bytes, np.ndarray]:
    """20-byte slots ``[pad][int 4][int 4][.ddd][ddd\\]`` per value; sign, separator and kept span set per value."""
    scaled = np.rint(x * 10 ** _DECIMALS).astype(np.int64)
    negative = scaled < 0
    a = np.abs(scaled)
    integer = a // 10 ** _DECIMALS
    fraction = (a - integer * 10 ** _DECIMALS).astype(np.int32)
    integer = integer.astype(np.int32)
    high = integer // 10000
    low = integer - high * 10000
    first = fraction // 1000
    words = np.empty((5, x.size), "<u4")
    for row, (table, index) in enumerate(((_DIGITS4, high), (_DIGITS4, low), (_DOT_DIGITS3, first),
                                          (_DIGITS3_SEPARATOR, fraction - first * 1000)), start=1):
        np.take(table, index, out=words[row])
    chars = np.ascontiguousarray(words.T).view(np.uint8).reshape(-1)
    start = 12 - np.where(high > 0, 4 + _N_DIGITS4[high], _N_DIGITS4[low]) - negative
    end = _SEPARATOR_SLOT[fraction]
    base = np.arange(0, 20 * x.size, 20)
    chars[base + np.where(negative, start, 0)] = ord("-")  # slot 0 (never kept) for the others
    chars[base + end] = ord("\\")
    keep = np.take(_SPANS, start * 20 + end, axis=0)
    return chars.reshape(-1, 20)[keep].tobytes(), end - start


def _element(group: int, element: int, vr: bytes, value: bytes, implicit: bool) -> bytes:
    """One little endian data element, explicit or implicit VR (value padded to even length)."""
    if len(value) % 2:
        value += b"\0" if vr == b"UI" else b" "
    if implicit:
        return struct.pack("<HHI", group, element, len(value)) + value
    if vr == b"SQ":
        return struct.pack("<HH", group, element) + vr + struct.pack("<HI", 0, len(value)) + value
    return struct.pack("<HH", group, element) + vr + struct.pack("<H", len(value)) + value


def _item(content: bytes) -> bytes:
    return b"\xfe\xff\x00\xe0" + struct.pack("<I", len(content)) + content


def _contour_data(roi: RoiContours) -> list[bytes]:
    """The DS value (backslash-separated, unpadded) of each contour of ``roi``."""
    if not roi.contours:
        return []
    points = np.concatenate([np.asarray(p, np.float64).reshape(-1) for _, p in roi.contours])
    data, lengths = format_ds_bytes(points)
    last_value = np.cumsum([3 * len(p) for _, p in roi.contours]) - 1
    ends = np.cumsum(lengths + 1)[last_value].tolist()
    return [data[start:end - 1] for start, end in zip([0, *ends[:-1]], ends)]


def _contour_sequence(reference: ReferencedSeries, roi: RoiContours, data: Sequence[bytes], implicit: bool):
    """ContourSequence (3006,0040) of one ROI, encoded here (little endian): a raw element pydicom writes as is."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    sop_class = reference.sop_class_uid.encode("ascii")
    images: dict[int, bytes] = {}
    geometric_type = _element(0x3006, 0x0042, b"CS", b"CLOSED_PLANAR", implicit)
    items = []
    for (k, points), values in zip(roi.contours, data):
        k = int(k)
        if k not in images:
            uid = reference.sop_instance_uids[k].encode("ascii")
            image = _element(0x0008, 0x1150, b"UI", sop_class, implicit) + \
                _element(0x0008, 0x1155, b"UI", uid, implicit)
            images[k] = _element(0x3006, 0x0016, b"SQ", _item(image), implicit)
        count = _element(0x3006, 0x0046, b"IS", str(len(points)).encode("ascii"), implicit)
        items.append(_item(images[k] + geometric_type + count + _element(0x3006, 0x0050, b"DS", values, implicit)))
    value = b"".join(items)
    return RawDataElement(Tag(0x30060040), "SQ", len(value), value, 0, implicit, True)


def _check_rois(reference: ReferencedSeries, rois: Sequence[RoiContours]) -> None:
    numbers = [roi.number for roi in rois]
    if len(set(numbers)) != len(numbers):
        raise InvalidInput(f"RTSTRUCT on series {reference.series_instance_uid}: ROI numbers {numbers} are not "
                           f"unique; number the ROIs 1, 2, ...")
    for roi in rois:
        if len(roi.colour) != 3 or not all(0 <= int(c) <= 255 for c in roi.colour):
            raise InvalidInput(f"ROI {roi.name!r}: colour {tuple(roi.colour)} is not RGB 0-255.")
        for k, points in roi.contours:
            shape = np.shape(points)
            if not 0 <= int(k) < reference.n_slices:
                raise InvalidInput(f"ROI {roi.name!r}: contour on slice {k}, but series "
                                   f"{reference.series_instance_uid} has {reference.n_slices} slices (0..n-1).")
            if len(shape) != 2 or shape[1] != 3 or shape[0] < 3:
                raise InvalidInput(f"ROI {roi.name!r}, slice {k}: contour points of shape {shape}; a CLOSED_PLANAR "
                                   f"contour needs (N >= 3, 3) patient coordinates.")


def _dataset(keyword_values: dict):
    from pydicom.dataset import Dataset

    ds = Dataset()
    for keyword, value in keyword_values.items():
        setattr(ds, keyword, value)
    return ds


def _structure_set_module(ds, reference: ReferencedSeries, label: str, description: str, now: datetime) -> None:
    from pydicom.sequence import Sequence as DicomSequence

    ds.StructureSetLabel = label[:16]
    if description:
        ds.StructureSetDescription = description
    ds.StructureSetDate = now.strftime("%Y%m%d")
    ds.StructureSetTime = now.strftime("%H%M%S")
    images = DicomSequence([_dataset({"ReferencedSOPClassUID": reference.sop_class_uid,
                                      "ReferencedSOPInstanceUID": uid}) for uid in reference.sop_instance_uids])
    series = _dataset({"SeriesInstanceUID": reference.series_instance_uid, "ContourImageSequence": images})
    study = _dataset({"ReferencedSOPClassUID": "1.2.840.10008.3.1.2.3.1",  # Detached Study Management (retired)
                      "ReferencedSOPInstanceUID": reference.patient.study_instance_uid,
                      "RTReferencedSeriesSequence": DicomSequence([series])})
    frame = _dataset({"FrameOfReferenceUID": reference.frame_of_reference_uid,
                      "RTReferencedStudySequence": DicomSequence([study])})
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame])


def _roi_contour_item(reference: ReferencedSeries, roi: RoiContours, data: Sequence[bytes], implicit: bool):
    from pydicom.tag import Tag

    item = _dataset({"ROIDisplayColor": [int(c) for c in roi.colour], "ReferencedROINumber": int(roi.number)})
    if roi.contours:
        item[Tag(0x30060040)] = _contour_sequence(reference, roi, data, implicit)
        item.set_original_encoding(implicit, True, "iso8859")  # so that pydicom writes the raw sequence as it is
    else:  # an empty structure: an empty ContourSequence (readers such as rt-utils expect the element)
        from pydicom.sequence import Sequence as DicomSequence

        item.ContourSequence = DicomSequence([])
    return item


def _roi_modules(ds, reference: ReferencedSeries, rois: Sequence[RoiContours]) -> bool:
    from pydicom.sequence import Sequence as DicomSequence

    structure_rois, observations = [], []
    for roi in rois:
        item = {"ROINumber": int(roi.number), "ReferencedFrameOfReferenceUID": reference.frame_of_reference_uid,
                "ROIName": roi.name, "ROIGenerationAlgorithm": roi.generation_algorithm}
        if roi.generation_description:
            item["ROIGenerationDescription"] = roi.generation_description
        structure_rois.append(_dataset(item))
        observations.append(_dataset({"ObservationNumber": int(roi.number), "ReferencedROINumber": int(roi.number),
                                      "RTROIInterpretedType": roi.interpreted_type, "ROIInterpreter": ""}))
    ds.StructureSetROISequence = DicomSequence(structure_rois)
    data = [_contour_data(roi) for roi in rois]
    # a DS value over 64 KiB (a contour of some 6000 points) has no explicit VR encoding: implicit VR then
    implicit = any(len(values) > 0xFFFE for contours in data for values in contours)
    ds.ROIContourSequence = DicomSequence([_roi_contour_item(reference, roi, d, implicit)
                                           for roi, d in zip(rois, data)])
    ds.RTROIObservationsSequence = DicomSequence(observations)
    return implicit


def build_rtstruct(reference: ReferencedSeries, rois: Sequence[RoiContours], *, label: str, description: str = "",
                   series_description: str = "", approval: str = "UNAPPROVED", manufacturer_model: str = ""):
    """An RT Structure Set on a CT series.

    Args:
        reference: the CT series (patient, study, frame of reference, slice SOP instances in order k).
        rois: the ROIs, in the order they are written; contours reference the slice SOP instance of their k.
        label: StructureSetLabel (at most 16 characters are kept).
        description: StructureSetDescription.
        series_description: SeriesDescription of the new RTSTRUCT series.
        approval: ApprovalStatus (APPROVED, UNAPPROVED, REJECTED).
        manufacturer_model: ManufacturerModelName.

    Returns:
        The pydicom Dataset (with file meta); write it with :func:`write_dataset`.

    Raises:
        InvalidInput: duplicate ROI numbers, bad colours, slice indices outside the series, or malformed points.
    """
    from pydicom.dataset import Dataset

    _check_rois(reference, rois)
    now = datetime.now()
    ds = Dataset()
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = new_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    reference.patient.copy_to(ds)
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = new_uid()
    ds.SeriesNumber = 1
    ds.SeriesDate, ds.SeriesTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    if series_description:
        ds.SeriesDescription = series_description[:64]
    ds.OperatorsName = ""
    ds.Manufacturer = SOFTWARE
    ds.ManufacturerModelName = manufacturer_model
    ds.SoftwareVersions = software_version()
    ds.InstanceNumber = 1
    _structure_set_module(ds, reference, label, description, now)
    implicit = _roi_modules(ds, reference, rois)
    ds.ApprovalStatus = approval
    _add_file_meta(ds, IMPLICIT_VR_LITTLE_ENDIAN if implicit else EXPLICIT_VR_LITTLE_ENDIAN)
    # written as encoded (no re-encoding pass, which would parse the raw contour sequences back)
    ds.set_original_encoding(implicit, True, ds._character_set)
    return ds


def _add_file_meta(ds, transfer_syntax: str | None = None) -> None:
    from pydicom import __version__ as pydicom_version
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if transfer_syntax is not None or "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = transfer_syntax or EXPLICIT_VR_LITTLE_ENDIAN
    if "ImplementationClassUID" not in meta:
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = f"PYDICOM {pydicom_version}"[:16]
    ds.file_meta = meta


def write_dataset(ds, path: str | os.PathLike) -> Path:
    """Writes a DICOM dataset as a DICOM file (preamble, file meta; explicit VR little endian unless its file meta
    names another transfer syntax), atomically.

    Args:
        ds: the pydicom Dataset (e.g. from :func:`build_rtstruct`); file meta is added or completed.
        path: the output file.

    Returns:
        ``path``.
    """
    from radconf.io.files import atomic_write_bytes

    _add_file_meta(ds)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return atomic_write_bytes(path, buffer.getvalue())
