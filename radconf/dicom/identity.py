"""Who and what a written DICOM object belongs to: the patient and study, and the CT series it references.

Shared by the writers (:mod:`radconf.dicom.ct_writer`, :mod:`radconf.dicom.rtstruct_writer`,
:mod:`radconf.dicom.seg_writer`) and the readers. Patient names and IDs are kept out of ``repr`` so that a logged or
printed object never shows them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from radconf.errors import InvalidInput

SOFTWARE = "radconf"


def software_version() -> str:
    """The installed radconf version (``"0+unknown"`` when it is not installed as a package).

    Returns:
        The version string, for SoftwareVersions (0018,1020).
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("radconf")
    except PackageNotFoundError:
        return "0+unknown"


def new_uid() -> str:
    """A new DICOM UID (pydicom's generator, radconf's implementation root not needed).

    Returns:
        The UID string.
    """
    from pydicom.uid import generate_uid

    return str(generate_uid())


# (keyword, attribute) of the Patient and General Study modules that PatientStudy carries
_PATIENT_STUDY_ATTRIBUTES = (
    ("PatientName", "patient_name"), ("PatientID", "patient_id"), ("PatientBirthDate", "patient_birth_date"),
    ("PatientSex", "patient_sex"), ("StudyInstanceUID", "study_instance_uid"), ("StudyDate", "study_date"),
    ("StudyTime", "study_time"), ("ReferringPhysicianName", "referring_physician_name"), ("StudyID", "study_id"),
    ("AccessionNumber", "accession_number"),
)


@dataclass(frozen=True)
class PatientStudy:
    """Patient and study of a DICOM object (the Patient and General Study modules).

    Attributes:
        patient_id: PatientID (0010,0020); not shown by ``repr``.
        patient_name: PatientName (0010,0010), DICOM PN string (``Family^Given``); not shown by ``repr``.
        study_instance_uid: StudyInstanceUID (0020,000D).
        study_date: StudyDate, ``YYYYMMDD`` or empty.
        study_time: StudyTime, ``HHMMSS[.ffffff]`` or empty.
        study_id: StudyID.
        accession_number: AccessionNumber.
        patient_birth_date: PatientBirthDate, ``YYYYMMDD`` or empty; not shown by ``repr``.
        patient_sex: PatientSex (``M``/``F``/``O``) or empty.
        referring_physician_name: ReferringPhysicianName (PN); not shown by ``repr``.
    """

    patient_id: str = field(repr=False)
    patient_name: str = field(repr=False)
    study_instance_uid: str
    study_date: str = ""
    study_time: str = ""
    study_id: str = ""
    accession_number: str = ""
    patient_birth_date: str = field(default="", repr=False)
    patient_sex: str = ""
    referring_physician_name: str = field(default="", repr=False)

    def copy_to(self, ds) -> None:
        """Writes the Patient and General Study module attributes into ``ds`` (type 2 ones even when empty).

        Args:
            ds: a pydicom Dataset; its existing values of these attributes are replaced.
        """
        for keyword, attribute in _PATIENT_STUDY_ATTRIBUTES:
            setattr(ds, keyword, str(getattr(self, attribute)))
        if any(not str(getattr(self, a)).isascii() for _, a in _PATIENT_STUDY_ATTRIBUTES):
            ds.SpecificCharacterSet = "ISO_IR 192"

    @classmethod
    def from_dataset(cls, ds) -> PatientStudy:
        """The patient and study of a DICOM header (missing attributes become empty strings).

        Args:
            ds: a pydicom Dataset (e.g. a CT slice read with ``stop_before_pixels=True``).

        Returns:
            The PatientStudy.

        Raises:
            InvalidInput: the dataset has no StudyInstanceUID.
        """
        values = {attribute: str(ds.get(keyword, "") or "") for keyword, attribute in _PATIENT_STUDY_ATTRIBUTES}
        if not values["study_instance_uid"]:
            where = getattr(ds, "filename", None) or f"series {ds.get('SeriesInstanceUID', '?')}"
            raise InvalidInput(f"{where}: no StudyInstanceUID; the CT series cannot be referenced (fix its headers).")
        return cls(**values)


@dataclass(frozen=True)
class ReferencedSeries:
    """The CT series an RTSTRUCT or SEG refers to.

    Attributes:
        patient: the series' patient and study.
        series_instance_uid: SeriesInstanceUID of the CT series.
        frame_of_reference_uid: its FrameOfReferenceUID.
        sop_class_uid: SOPClassUID of its images (CT Image Storage).
        sop_instance_uids: SOPInstanceUID of each slice, ordered by slice index k (geometry order).
    """

    patient: PatientStudy
    series_instance_uid: str
    frame_of_reference_uid: str
    sop_class_uid: str
    sop_instance_uids: tuple[str, ...]

    @property
    def n_slices(self) -> int:
        return len(self.sop_instance_uids)


def referenced_series_of(headers: Sequence) -> ReferencedSeries:
    """What an RTSTRUCT on a CT series references, from the slices' headers in geometry order.

    Args:
        headers: pydicom Datasets of the slices (no pixel data needed), ordered by slice index k.

    Returns:
        The ReferencedSeries (patient and study copied from the first slice).

    Raises:
        InvalidInput: no headers, or the slices do not share one series, frame of reference and SOP class.
    """
    if not headers:
        raise InvalidInput("referenced_series_of: no CT slice headers given; pass the series' slices in order.")
    first = headers[0]
    series = str(first.get("SeriesInstanceUID", ""))
    for keyword in ("SeriesInstanceUID", "FrameOfReferenceUID", "SOPClassUID"):
        values = {str(h.get(keyword, "")) for h in headers}
        if len(values) != 1 or not next(iter(values)):
            raise InvalidInput(f"series {series or '?'}: the slices do not share one {keyword} (or lack it); "
                               f"pass the headers of a single CT series.")
    uids = tuple(str(h.SOPInstanceUID) for h in headers)
    if len(set(uids)) != len(uids):
        raise InvalidInput(f"series {series}: {len(uids) - len(set(uids))} duplicate SOPInstanceUIDs; remove the "
                           f"duplicate files from the series.")
    return ReferencedSeries(PatientStudy.from_dataset(first), series, str(first.FrameOfReferenceUID),
                            str(first.SOPClassUID), uids)
