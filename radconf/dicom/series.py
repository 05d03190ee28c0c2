"""One CT series: its checks, its slice order and its pixel data in Hounsfield units.

Slices are ordered by ImagePositionPatient along the slice normal (X x Y of ImageOrientationPatient), never by file
name or InstanceNumber (:mod:`radconf.dicom.geometry`). A series is refused, with one error naming it and the fix,
when it has no slices, slices of different size, spacing, orientation or frame of reference, two slices at one
position, a gantry tilt (the tag, or positions that move sideways), or missing slices (a step over 1.5 x the median).
A single slice is fine.

HU = stored value x RescaleSlope + RescaleIntercept, slice by slice; the volume is int16 when every slope and
intercept is an integer and the values fit, else float32.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.scan import SliceHeader
from radconf.errors import InvalidInput

GAP_FACTOR = 1.5  # a step over 1.5 x the median slice spacing means missing slices
DUPLICATE_TOLERANCE_MM = 0.01  # two slices closer than this along the normal are at the same position
SPACING_RTOL = 1e-4  # pixel spacing may differ by this fraction between slices
ORIENTATION_ATOL = 1e-4  # direction cosines may differ by this between slices
TILT_TOLERANCE_MM = 0.02  # sideways drift of the slice positions allowed (rounding of ImagePositionPatient) ...
TILT_TOLERANCE_RELATIVE = 1e-3  # ... or this fraction of the distance along the normal (a tilt of 0.06 degrees)
GANTRY_TILT_TOLERANCE_DEG = 0.01
MAX_LISTED = 5
_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}
_JPEG = "pylibjpeg pylibjpeg-libjpeg (or python-gdcm)"
_J2K = "pylibjpeg pylibjpeg-openjpeg (or python-gdcm)"
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": _JPEG, "1.2.840.10008.1.2.4.51": _JPEG, "1.2.840.10008.1.2.4.57": _JPEG,
    "1.2.840.10008.1.2.4.70": _JPEG,
    "1.2.840.10008.1.2.4.80": "pyjpegls (or pylibjpeg pylibjpeg-libjpeg, or python-gdcm)",
    "1.2.840.10008.1.2.4.81": "pyjpegls (or pylibjpeg pylibjpeg-libjpeg, or python-gdcm)",
    "1.2.840.10008.1.2.4.90": _J2K, "1.2.840.10008.1.2.4.91": _J2K,
    "1.2.840.10008.1.2.4.201": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.5": "nothing (pydicom decodes RLE itself; the file may be damaged) or pylibjpeg pylibjpeg-rle",
}


@dataclass(frozen=True)
class CTVolume:
    """A loaded CT series.

    Attributes:
        geometry: the voxel grid (slices sorted along the normal).
        hu: Hounsfield units, numpy (k, j, i) = (slice, row, column) in the geometry's slice order; int16 or float32.
        headers_in_order: the slices' headers, in the same order.
    """

    geometry: SeriesGeometry
    hu: np.ndarray
    headers_in_order: tuple[SliceHeader, ...]

    def to_image(self):
        """The volume as a SimpleITK image (:meth:`SeriesGeometry.to_image`)."""
        return self.geometry.to_image(self.hu)


def series_label(headers: Sequence[SliceHeader]) -> str:
    """How errors name a series: its description, folder and first file (never patient identifiers).

    Args:
        headers: the slices of one series, in any order.

    Returns:
        e.g. ``CT series 'Pelvis' in /data/p1/ct (first file IM0001, 120 file(s))``.
    """
    if not headers:
        return "CT series (no slices)"
    paths = sorted(Path(h.path) for h in headers)
    try:
        folder = os.path.commonpath([str(p.parent) for p in paths])
    except ValueError:
        folder = str(paths[0].parent)
    description = next((h.series_description for h in headers if h.series_description), "")
    described = f" {description!r}" if description else ""
    return f"CT series{described} in {folder} (first file {paths[0].name}, {len(headers)} file(s))"


def _check_uniform(headers: Sequence[SliceHeader], name: str) -> None:
    first = headers[0]
    for attribute, label in (("rows", "Rows"), ("columns", "Columns"), ("frame_of_reference_uid",
                                                                          "FrameOfReferenceUID")):
        values = sorted({str(getattr(h, attribute)) for h in headers})
        if len(values) > 1:
            raise InvalidInput(f"{name}: {label} differs between slices ({', '.join(values[:MAX_LISTED])}); a CT "
                               f"series needs one grid: export each reconstruction as its own series.")
    spacing = np.array([h.pixel_spacing for h in headers], float)
    if np.any(spacing <= 0) or not np.allclose(spacing, spacing[0], rtol=SPACING_RTOL, atol=0):
        values = sorted({f"{a:g} x {b:g}" for a, b in spacing})
        raise InvalidInput(f"{name}: PixelSpacing differs between slices or is not positive "
                           f"({', '.join(values[:MAX_LISTED])} mm); export the series again with one pixel spacing.")
    orientation = np.array([h.image_orientation for h in headers], float)
    if not np.allclose(orientation, orientation[0], rtol=0, atol=ORIENTATION_ATOL):
        raise InvalidInput(f"{name}: ImageOrientationPatient differs between slices (e.g. {first.path.name} and "
                           f"{headers[int(np.argmax(np.abs(orientation - orientation[0]).max(axis=1)))].path.name}); "
                           f"a CT series needs one orientation: export each orientation as its own series.")
    x, y = orientation[0, :3], orientation[0, 3:]
    if abs(np.linalg.norm(x) - 1) > 1e-3 or abs(np.linalg.norm(y) - 1) > 1e-3 or abs(x @ y) > 1e-3:
        raise InvalidInput(f"{name}: ImageOrientationPatient {tuple(orientation[0])} is not two orthogonal unit "
                           f"vectors; the files are damaged: export the series again.")
    frames = max(h.number_of_frames for h in headers)
    samples = max(h.samples_per_pixel for h in headers)
    if frames != 1 or samples != 1:
        raise InvalidInput(f"{name}: slices with {frames} frame(s) of {samples} sample(s) per pixel are not CT "
                           f"slices radconf reads; export the series as single-frame greyscale CT images.")


def _check_tilt(headers: Sequence[SliceHeader], geometry: SeriesGeometry, name: str) -> None:
    tilted = [h for h in headers if abs(h.gantry_tilt) > GANTRY_TILT_TOLERANCE_DEG]
    fix = ("radconf needs slices stacked along their normal: reconstruct the series without tilt, or resample it "
           "onto an untilted grid first")
    if tilted:
        raise InvalidInput(f"{name}: the series was scanned with a gantry tilt of {tilted[0].gantry_tilt:g} degrees "
                           f"(GantryDetectorTilt); {fix}.")
    offsets = geometry.positions - geometry.positions[0]
    along = offsets @ geometry.normal
    sideways = np.linalg.norm(offsets - along[:, None] * geometry.normal, axis=1)
    limit = np.maximum(TILT_TOLERANCE_MM, TILT_TOLERANCE_RELATIVE * np.abs(along))
    if np.any(sideways > limit):
        k = int(np.argmax(sideways - limit))
        angle = np.degrees(np.arctan2(sideways[k], abs(along[k])))
        raise InvalidInput(f"{name}: the slice positions move sideways by {sideways[k]:.3g} mm over {abs(along[k]):.3g}"
                           f" mm along the slice normal (a gantry tilt of about {angle:.2g} degrees, or a sheared "
                           f"series); {fix}.")


def _check_positions(ordered: Sequence[SliceHeader], positions: np.ndarray, name: str) -> None:
    steps = np.diff(positions)
    same = np.flatnonzero(steps <= DUPLICATE_TOLERANCE_MM)
    if same.size:
        pairs = [f"{ordered[k].path.name} and {ordered[k + 1].path.name} at {positions[k]:.2f} mm"
                 + (" (the same image twice)" if ordered[k].sop_instance_uid == ordered[k + 1].sop_instance_uid else "")
                 for k in same[:MAX_LISTED]]
        more = f" and {same.size - MAX_LISTED} more" if same.size > MAX_LISTED else ""
        raise InvalidInput(f"{name}: {same.size} pair(s) of slices share a position: {'; '.join(pairs)}{more}. "
                           f"Remove the duplicate files (one image exported twice, or two reconstructions in one "
                           f"series: keep one).")
    if steps.size < 2:
        return
    median = float(np.median(steps))
    gaps = np.flatnonzero(steps > GAP_FACTOR * median)
    if gaps.size:
        listed = [f"between {positions[k]:.2f} and {positions[k + 1]:.2f} mm (about "
                  f"{max(1, round(float(steps[k] / median)) - 1)} slice(s) missing)" for k in gaps[:MAX_LISTED]]
        more = f" and {gaps.size - MAX_LISTED} more gap(s)" if gaps.size > MAX_LISTED else ""
        raise InvalidInput(f"{name}: slices are missing (steps over {GAP_FACTOR:g} x the median spacing of "
                           f"{median:.3g} mm, positions along the slice normal): {'; '.join(listed)}{more}. Export "
                           f"the complete series again.")


def _ordered(headers: Sequence[SliceHeader]) -> tuple[SeriesGeometry, tuple[SliceHeader, ...]]:
    headers = list(headers)
    if not headers:
        raise InvalidInput("CT series with no slices: give a folder that holds the CT images of the series.")
    name = series_label(headers)
    _check_uniform(headers, name)
    first = headers[0]
    iop = first.image_orientation
    positions = np.array([h.image_position for h in headers], float)
    geometry = SeriesGeometry(first.rows, first.columns, tuple(iop[:3]), tuple(iop[3:]), tuple(first.pixel_spacing),
                              positions)
    order = np.argsort(positions @ geometry.normal, kind="stable")  # the order SeriesGeometry sorted its positions in
    ordered = tuple(headers[k] for k in order)
    _check_positions(ordered, geometry.slice_positions, name)
    _check_tilt(ordered, geometry, name)
    return geometry, ordered


def check_series(headers: Sequence[SliceHeader]) -> SeriesGeometry:
    """Checks that slices form one regular CT volume and returns its geometry.

    Args:
        headers: the slices of one series, in any order (e.g. ``DicomInventory.ct_series[uid]``).

    Returns:
        The geometry, slices sorted along the normal.

    Raises:
        InvalidInput: no slices, varying grid/spacing/orientation, duplicate positions, gantry tilt, missing slices.
    """
    return _ordered(headers)[0]


def _check_decoder(header: SliceHeader) -> None:
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    uid = UID(header.transfer_syntax_uid)
    if uid in _NATIVE:
        return
    try:
        available = get_decoder(uid).is_available
    except NotImplementedError:
        raise InvalidInput(f"{header.path}: its transfer syntax {uid.name} ({uid}) cannot be decoded by pydicom; "
                           f"export the series uncompressed (Explicit VR Little Endian).") from None
    if not available:
        raise InvalidInput(f"{header.path}: the pixel data is compressed as {uid.name} and no installed package "
                           f"decodes it; install {_DECODER_PACKAGES.get(uid, 'pylibjpeg with its plugins, or gdcm')} "
                           f"(pip), or export the series uncompressed.")


def _stored_pixels(header: SliceHeader) -> np.ndarray:
    import pydicom
    from pydicom.uid import UID

    try:
        ds = pydicom.dcmread(header.path, force=True)
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for damaged files
        raise InvalidInput(f"{header.path}: cannot read the file ({' '.join(str(error).split())[:160]}); "
                           f"export the series again.") from None
    if str(ds.get("SOPInstanceUID", "")).strip() != header.sop_instance_uid:
        raise InvalidInput(f"{header.path}: the file changed since the folder was scanned; scan it again.")
    if "TransferSyntaxUID" not in ds.file_meta:  # a stream without file meta: what the scan found
        ds.file_meta.TransferSyntaxUID = UID(header.transfer_syntax_uid)
    try:
        pixels = ds.pixel_array
    except Exception as error:  # noqa: BLE001 - decoders raise RuntimeError, ValueError, NotImplementedError...
        uid = UID(header.transfer_syntax_uid)
        hint = (f"; install {_DECODER_PACKAGES.get(uid, 'pylibjpeg with its plugins, or gdcm')} (pip), or export "
                f"the series uncompressed" if uid not in _NATIVE else "; export the series again")
        raise InvalidInput(f"{header.path}: cannot decode its {uid.name} pixel data "
                           f"({' '.join(str(error).split())[:160]}){hint}.") from None
    if pixels.shape != (header.rows, header.columns):
        raise InvalidInput(f"{header.path}: the pixel data is {pixels.shape}, not Rows x Columns "
                           f"({header.rows}, {header.columns}); export the series as single-frame CT images.")
    return pixels


def load_series(headers: Sequence[SliceHeader]) -> CTVolume:
    """Checks a CT series (:func:`check_series`) and reads its pixel data as Hounsfield units.

    Args:
        headers: the slices of one series, in any order.

    Returns:
        The volume, numpy (k, j, i) in the geometry's slice order.

    Raises:
        InvalidInput: the series is refused by :func:`check_series`, a file cannot be read or decoded (the message
            names the package to install for compressed pixel data), or its pixel data has the wrong shape.
    """
    geometry, ordered = _ordered(headers)
    for uid in dict.fromkeys(h.transfer_syntax_uid for h in ordered):
        _check_decoder(next(h for h in ordered if h.transfer_syntax_uid == uid))
    integral = all(float(h.rescale_slope).is_integer() and float(h.rescale_intercept).is_integer() for h in ordered)
    hu = np.empty(geometry.shape, np.int16 if integral else np.float32)
    limits = np.iinfo(np.int16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value warnings may quote names
        for k, header in enumerate(ordered):
            stored = _stored_pixels(header)
            if hu.dtype == np.int16 and np.issubdtype(stored.dtype, np.integer):
                values = stored.astype(np.int64) * int(header.rescale_slope) + int(header.rescale_intercept)
                if values.size == 0 or (values.min() >= limits.min and values.max() <= limits.max):
                    hu[k] = values
                    continue
            if hu.dtype != np.float32:
                hu = hu.astype(np.float32)
            hu[k] = stored.astype(np.float64) * header.rescale_slope + header.rescale_intercept
    return CTVolume(geometry, hu, ordered)
