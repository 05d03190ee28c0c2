"""CT series writer: a (slices, rows, columns) HU volume -> one CT Image Storage file per slice.

Pixels are stored as signed 16-bit integers (PixelRepresentation 1) with RescaleSlope 1 and RescaleIntercept 0, so
the stored value is the HU value; float input is rounded to the nearest integer. Slice k is written at
``geometry.positions[k]`` (non-uniform positions are kept as they are) with InstanceNumber k + 1. Used to turn
images (phantoms, NIfTI cases) into DICOM series for tests, benchmarks and round trips.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np

from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.identity import SOFTWARE, PatientStudy, ReferencedSeries, new_uid, software_version
from radconf.dicom.rtstruct_writer import write_dataset
from radconf.errors import InvalidInput

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
_INT16 = np.iinfo(np.int16)


def _ds(values) -> list[str]:
    """DS strings at full precision (at most 16 characters each) of a few header values."""
    from pydicom.valuerep import format_number_as_ds

    return [format_number_as_ds(float(v)) for v in np.asarray(values, float).ravel()]


def _stored_pixels(hu: np.ndarray, geometry: SeriesGeometry, folder: Path) -> np.ndarray:
    """The volume as int16 stored values (= HU), after the shape and range checks."""
    hu = np.asarray(hu)
    if hu.shape != geometry.shape:
        raise InvalidInput(f"CT series for {folder}: volume shape {hu.shape} is not the geometry's "
                           f"{geometry.shape} (slices, rows, columns); pass a (k, j, i) array on that grid.")
    if hu.dtype.kind not in "biuf":
        raise InvalidInput(f"CT series for {folder}: voxel type {hu.dtype} is not numeric; pass HU values.")
    if hu.dtype.kind == "f":
        if not np.all(np.isfinite(hu)):
            raise InvalidInput(f"CT series for {folder}: the volume holds NaN or infinite values; fill them first.")
        hu = np.rint(hu)
    if hu.size and (hu.min() < _INT16.min or hu.max() > _INT16.max):
        raise InvalidInput(f"CT series for {folder}: values {hu.min()}..{hu.max()} do not fit signed 16-bit HU "
                           f"({_INT16.min}..{_INT16.max}); clip the volume first.")
    return hu.astype("<i2")


def _file_names(file_names: Sequence[str] | None, n: int, folder: Path) -> list[str]:
    if file_names is None:
        return [f"CT_{k:04d}.dcm" for k in range(n)]
    names = [str(name) for name in file_names]
    if len(names) != n or len(set(names)) != n or any(Path(name).name != name or not name for name in names):
        raise InvalidInput(f"CT series for {folder}: file_names must be {n} distinct plain file names (one per "
                           f"slice, no folders); got {len(names)}.")
    return names


def _series_dataset(geometry: SeriesGeometry, patient: PatientStudy, series_uid: str, frame_uid: str,
                    series_description: str, now: datetime):
    """The attributes every slice shares (patient, study, series, frame of reference, equipment, pixel format)."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.InstanceCreationDate, ds.InstanceCreationTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    patient.copy_to(ds)
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.SeriesDate, ds.SeriesTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    if series_description:
        ds.SeriesDescription = series_description
    ds.PatientPosition = ""
    ds.FrameOfReferenceUID = frame_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = SOFTWARE
    ds.SoftwareVersions = software_version()
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.AcquisitionNumber = ""
    ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
    ds.ImageOrientationPatient = _ds(np.concatenate([geometry.row_direction, geometry.column_direction]))
    ds.PixelSpacing = _ds(np.asarray(geometry.pixel_spacing, float))
    ds.SliceThickness = _ds(np.array([geometry.slice_spacing]))[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(geometry.rows), int(geometry.columns)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "HU"
    ds.KVP = ""
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    return ds


def write_ct_series(hu: np.ndarray, geometry: SeriesGeometry, folder: Path, patient: PatientStudy, *,
                    series_description: str = "", series_instance_uid: str | None = None,
                    frame_of_reference_uid: str | None = None,
                    file_names: Sequence[str] | None = None) -> ReferencedSeries:
    """Writes a CT series, one file per slice (each written atomically).

    Args:
        hu: (slices, rows, columns) HU values (integers, or floats rounded to integers), on ``geometry``'s grid.
        geometry: the grid; slice k goes to ``geometry.positions[k]``.
        folder: output folder (created if needed).
        patient: patient and study of the series.
        series_description: SeriesDescription.
        series_instance_uid: SeriesInstanceUID (default: a new one).
        frame_of_reference_uid: FrameOfReferenceUID (default: a new one).
        file_names: one file name per slice, in slice order (default ``CT_{k:04d}.dcm``).

    Returns:
        The written series as an RTSTRUCT references it (SOP instance UIDs in slice order).

    Raises:
        InvalidInput: the volume does not match the geometry, does not fit int16, or the file names are invalid.
    """
    from pydicom.dataset import Dataset

    folder = Path(folder)
    pixels = _stored_pixels(hu, geometry, folder)
    names = _file_names(file_names, geometry.n_slices, folder)
    series_uid = series_instance_uid or new_uid()
    frame_uid = frame_of_reference_uid or new_uid()
    template = _series_dataset(geometry, patient, series_uid, frame_uid, series_description, datetime.now())
    positions = _ds(geometry.positions)
    locations = _ds(geometry.slice_positions)
    uids = []
    for k, name in enumerate(names):
        ds = Dataset()
        ds.update(template)  # the series' elements, shared; the slice's own are new elements (add_new)
        ds.add_new(0x00080018, "UI", new_uid())  # SOPInstanceUID
        ds.add_new(0x00200013, "IS", k + 1)  # InstanceNumber
        ds.add_new(0x00200032, "DS", positions[3 * k:3 * k + 3])  # ImagePositionPatient
        ds.add_new(0x00201041, "DS", locations[k])  # SliceLocation
        ds.add_new(0x7FE00010, "OW", pixels[k].tobytes())  # PixelData
        write_dataset(ds, folder / name)
        uids.append(str(ds.SOPInstanceUID))
    return ReferencedSeries(patient, series_uid, frame_uid, CT_IMAGE_STORAGE, tuple(uids))
