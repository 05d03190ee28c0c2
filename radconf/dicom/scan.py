"""Finding DICOM files: walk a folder tree once, read each file's header, sort what is there by kind.

Files are recognised by content, never by name; any layout works (nesting, several patients mixed). Links to files
and folders are followed; a folder or file reached twice is read once. Each file is one of:

* a CT slice (CT Image Storage): a :class:`SliceHeader`, grouped by SeriesInstanceUID;
* an RT structure set (RT Structure Set Storage or Modality RTSTRUCT): a :class:`StructureSetFile` (what matching
  needs; the contours are parsed later by :mod:`radconf.dicom.structure_sets`);
* another series (MR, RTDOSE, RTPLAN, Enhanced CT: not supported...): its UID and modality, counted, not read;
* ignored: not DICOM (no ``DICM`` preamble, no dataset start), DICOM without a series (DICOMDIR), broken links;
* unreadable: looks like DICOM but cannot be read (truncated, damaged, no permission).

Headers are read with pydicom's ``read_partial`` up to the pixel data (CT) or the ROI contours (RTSTRUCT)
(``specific_tags`` saves nothing). Patient IDs are kept for grouping, never shown (``repr=False``).
"""
from __future__ import annotations

import os
import stat
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from radconf.errors import InvalidInput, MissingInput

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
UNSUPPORTED_CT = {"1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
                  "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage"}
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
MAX_LISTED = 10  # unreadable files named in the error before "and N more"
_PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_PIXEL_DATA = 0x7FE00010
_ROI_CONTOUR_SEQUENCE = 0x30060039
_DATASET_START_GROUPS = (0x0002, 0x0008)  # a DICOM stream without preamble starts with file meta or group 0008


@dataclass(frozen=True)
class SliceHeader:
    """What later steps need of one CT slice (never the dataset itself).

    ``image_orientation`` is ImageOrientationPatient (row direction X, then column direction Y) and ``pixel_spacing``
    is PixelSpacing (between rows, between columns), as in :mod:`radconf.dicom.geometry`.
    """

    path: Path
    sop_instance_uid: str
    sop_class_uid: str
    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str
    image_position: tuple[float, float, float]
    image_orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]
    rows: int
    columns: int
    transfer_syntax_uid: str = EXPLICIT_VR_LITTLE_ENDIAN
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    gantry_tilt: float = 0.0
    instance_number: int | None = None
    patient_id: str = field(default="", repr=False)
    series_description: str = ""
    series_number: int | None = None
    slice_thickness: float | None = None
    bits_allocated: int = 16
    samples_per_pixel: int = 1
    number_of_frames: int = 1
    modality: str = "CT"


@dataclass(frozen=True)
class StructureSetFile:
    """An RTSTRUCT file found by the scan: its path and what matching it to a CT series needs."""

    path: Path
    sop_instance_uid: str
    patient_id: str = field(repr=False)
    study_instance_uid: str
    frame_of_reference_uids: tuple[str, ...]
    referenced_series_uids: tuple[str, ...]
    structure_set_label: str
    contour_image_uids: frozenset[str] = frozenset()
    series_instance_uid: str = ""
    structure_set_date_time: str = ""
    series_description: str = ""


@dataclass(frozen=True)
class DicomInventory:
    """Everything :func:`scan_folder` found under one folder.

    Attributes:
        ct_series: SeriesInstanceUID -> its CT slices (in path order; :mod:`radconf.dicom.series` sorts them).
        structure_sets: the RTSTRUCT files, in path order.
        other_series: SeriesInstanceUID -> modality of the series that are not read (MR, RTDOSE, Enhanced CT...).
        unreadable: (path, one-line reason) of files that look like DICOM but cannot be read.
        n_ignored: files that are not DICOM, or DICOM without a series (DICOMDIR).
    """

    ct_series: dict[str, tuple[SliceHeader, ...]]
    structure_sets: tuple[StructureSetFile, ...]
    other_series: dict[str, str]
    unreadable: tuple[tuple[Path, str], ...]
    n_ignored: int

    @property
    def unsupported_series(self) -> dict[str, str]:
        """The other series that are CT but in a SOP class radconf cannot read (Enhanced CT)."""
        return {uid: kind for uid, kind in self.other_series.items() if "not supported" in kind}

    def summary(self) -> str:
        """One line for the log (no patient identifiers)."""
        n_slices = sum(len(s) for s in self.ct_series.values())
        parts = [f"{len(self.ct_series)} CT series ({n_slices} slices)", f"{len(self.structure_sets)} structure set(s)"]
        if self.other_series:
            kinds = sorted({kind.split(" ")[0] for kind in self.other_series.values()})
            parts.append(f"{len(self.other_series)} other series not read ({', '.join(kinds)})")
        if self.unsupported_series:
            parts.append(f"{len(self.unsupported_series)} Enhanced CT series not supported (export them as CT Image "
                         f"Storage, one file per slice)")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable file(s) skipped")
        parts.append(f"{self.n_ignored} non-DICOM file(s) ignored")
        return "; ".join(parts)


class _Unreadable(Exception):
    """A file that looks like DICOM but cannot be used; the message is the one-line reason."""


def _one_line(error: BaseException | str, limit: int = 160) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _walk(root: Path) -> tuple[list[Path], list[tuple[Path, str]], int]:
    """Regular files under ``root`` (sorted, each file and folder once), what could not be listed or opened, and the
    number of entries that are not regular files (sockets, devices, broken links)."""
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    n_special = 0
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()

    def on_error(error: OSError) -> None:
        problems.append((Path(error.filename or root), f"cannot list it ({_one_line(error.strerror or error)})"))

    for folder, dirs, names in os.walk(root, onerror=on_error, followlinks=True):
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen_dirs:
            dirs[:] = []
            continue
        seen_dirs.add((info.st_dev, info.st_ino))
        dirs.sort()
        for name in sorted(names):
            path = Path(folder) / name
            try:
                info = path.stat()
            except OSError as error:
                if path.is_symlink():
                    n_special += 1  # a broken link: nothing to read
                else:
                    problems.append((path, f"cannot open it ({_one_line(error.strerror or error)})"))
                continue
            if not stat.S_ISREG(info.st_mode):
                n_special += 1
            elif (info.st_dev, info.st_ino) not in seen_files:
                seen_files.add((info.st_dev, info.st_ino))
                files.append(path)
    return files, problems, n_special


def _stop(tag: int, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_TAGS or tag == _ROI_CONTOUR_SEQUENCE


def _looks_like_dicom(head: bytes) -> tuple[bool, bool]:
    """(has the 'DICM' preamble, may be a DICOM stream without preamble)."""
    if head[128:132] == b"DICM":
        return True, True
    return False, len(head) >= 8 and struct.unpack("<H", head[:2])[0] in _DATASET_START_GROUPS


def _text(ds, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _numbers(ds, keyword: str, count: int) -> tuple[float, ...]:
    value = ds.get(keyword)
    if value is None or value == "":
        raise _Unreadable(f"CT image without {keyword}")
    try:
        items = value if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)) else [value]
        numbers = tuple(float(v) for v in items)
    except (TypeError, ValueError) as error:
        raise _Unreadable(f"{keyword} is not numbers ({_one_line(error, 60)})") from None
    if len(numbers) != count:
        raise _Unreadable(f"{keyword} has {len(numbers)} values, not {count}")
    return numbers


def _optional_number(ds, keyword: str, kind: type = float):
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return kind(float(value))
    except (TypeError, ValueError) as error:
        raise _Unreadable(f"{keyword} is not a number ({_one_line(error, 60)})") from None


def _pixel_problem(handle, ds, header: SliceHeader, size: int) -> str | None:
    """Why the pixel data element (where the header read stopped) cannot hold the slice, or None."""
    if header.transfer_syntax_uid == "1.2.840.10008.1.2.1.99":  # deflated: positions are in the inflated stream
        return None
    start = handle.tell()
    head = handle.read(12)
    if len(head) < 12:
        return "no pixel data (the file is truncated)"
    implicit, little = ds.original_encoding
    endian = "<" if little is not False else ">"
    group, element = struct.unpack(endian + "HH", head[:4])
    if (group << 16 | element) != _PIXEL_DATA:
        return "no Pixel Data element (the file is truncated, or is not a CT image)"
    if implicit:
        length, offset = struct.unpack(endian + "I", head[4:8])[0], 8
    elif head[4:6] in (b"OB", b"OW", b"UN", b"OF", b"OD", b"OL", b"OV", b"UT", b"SQ"):
        length, offset = struct.unpack(endian + "I", head[8:12])[0], 12
    else:
        length, offset = struct.unpack(endian + "H", head[6:8])[0], 8
    if length == 0xFFFFFFFF:
        return None  # encapsulated (compressed): checked when decoded
    present = size - start - offset
    if present < length:
        return f"truncated: the pixel data has {max(present, 0)} of its {length} bytes"
    needed = header.rows * header.columns * header.number_of_frames * header.samples_per_pixel
    needed = (needed * header.bits_allocated + 7) // 8
    if length < needed:
        return f"the pixel data has {length} bytes, {header.rows} x {header.columns} pixels need {needed}"
    return None


def _transfer_syntax(ds) -> str:
    uid = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) is not None else None
    if uid:
        return str(uid)
    implicit, little = ds.original_encoding
    if implicit:
        return "1.2.840.10008.1.2"
    return EXPLICIT_VR_LITTLE_ENDIAN if little is not False else "1.2.840.10008.1.2.2"


def _slice_header(path: Path, ds) -> SliceHeader:
    if not _text(ds, "SeriesInstanceUID") or not _text(ds, "SOPInstanceUID"):
        raise _Unreadable("CT image without SeriesInstanceUID or SOPInstanceUID")
    rows, columns = _optional_number(ds, "Rows", int), _optional_number(ds, "Columns", int)
    if not rows or not columns:
        raise _Unreadable("CT image without Rows/Columns")
    slope = _optional_number(ds, "RescaleSlope")
    intercept = _optional_number(ds, "RescaleIntercept")
    return SliceHeader(
        path, _text(ds, "SOPInstanceUID"), _text(ds, "SOPClassUID"), _text(ds, "SeriesInstanceUID"),
        _text(ds, "StudyInstanceUID"), _text(ds, "FrameOfReferenceUID"), _numbers(ds, "ImagePositionPatient", 3),
        _numbers(ds, "ImageOrientationPatient", 6), _numbers(ds, "PixelSpacing", 2), rows, columns,
        transfer_syntax_uid=_transfer_syntax(ds), rescale_slope=1.0 if slope is None else slope,
        rescale_intercept=0.0 if intercept is None else intercept,
        gantry_tilt=_optional_number(ds, "GantryDetectorTilt") or 0.0,
        instance_number=_optional_number(ds, "InstanceNumber", int), patient_id=_text(ds, "PatientID"),
        series_description=_text(ds, "SeriesDescription"), series_number=_optional_number(ds, "SeriesNumber", int),
        slice_thickness=_optional_number(ds, "SliceThickness"),
        bits_allocated=_optional_number(ds, "BitsAllocated", int) or 16,
        samples_per_pixel=_optional_number(ds, "SamplesPerPixel", int) or 1,
        number_of_frames=_optional_number(ds, "NumberOfFrames", int) or 1, modality=_text(ds, "Modality"))


def _structure_set_file(path: Path, ds) -> StructureSetFile:
    frames, series, images = [], [], set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence", None) or []:
        frames.append(str(frame.get("FrameOfReferenceUID", "")).strip())
        for study in frame.get("RTReferencedStudySequence", None) or []:
            for ref in study.get("RTReferencedSeriesSequence", None) or []:
                series.append(str(ref.get("SeriesInstanceUID", "")).strip())
                images.update(str(i.get("ReferencedSOPInstanceUID", "")).strip()
                              for i in ref.get("ContourImageSequence", None) or [])
    return StructureSetFile(
        path, _text(ds, "SOPInstanceUID"), _text(ds, "PatientID"), _text(ds, "StudyInstanceUID"),
        tuple(dict.fromkeys(f for f in frames if f)), tuple(dict.fromkeys(s for s in series if s)),
        _text(ds, "StructureSetLabel"), frozenset(images - {""}), _text(ds, "SeriesInstanceUID"),
        f"{_text(ds, 'StructureSetDate')}{_text(ds, 'StructureSetTime')}", _text(ds, "SeriesDescription"))


def _read_file(path: Path):
    """('ct', SliceHeader) | ('rtstruct', StructureSetFile) | ('other', (uid, modality)) | ('ignored', None).

    Raises:
        _Unreadable: the file looks like DICOM but cannot be read.
    """
    from pydicom.filereader import read_partial

    try:
        with open(path, "rb") as handle:
            preamble, maybe = _looks_like_dicom(handle.read(132))
            if not maybe:
                return "ignored", None
            handle.seek(0)
            try:
                ds = read_partial(handle, _stop, force=not preamble)
            except Exception as error:  # noqa: BLE001 - pydicom raises many types for damaged files
                if not preamble:
                    return "ignored", None
                raise _Unreadable(_one_line(error)) from None
            try:
                return _classify(path, ds, handle, preamble)
            except _Unreadable:
                raise
            except Exception as error:  # noqa: BLE001 - damaged values surface when pydicom converts them
                raise _Unreadable(_one_line(error)) from None
    except OSError as error:
        raise _Unreadable(f"cannot read it ({_one_line(error.strerror or error)})") from None


def _classify(path: Path, ds, handle, preamble: bool):
    meta = getattr(ds, "file_meta", None)
    sop_class = _text(ds, "SOPClassUID") or (_text(meta, "MediaStorageSOPClassUID") if meta is not None else "")
    modality, series_uid = _text(ds, "Modality"), _text(ds, "SeriesInstanceUID")
    if not sop_class and not modality:
        if preamble:
            raise _Unreadable("neither SOPClassUID nor Modality (the file is truncated or damaged)")
        return "ignored", None
    if sop_class == CT_IMAGE_STORAGE:
        header = _slice_header(path, ds)
        problem = _pixel_problem(handle, ds, header, os.fstat(handle.fileno()).st_size)
        if problem:
            raise _Unreadable(problem)
        return "ct", header
    if sop_class == RT_STRUCTURE_SET_STORAGE or modality == "RTSTRUCT":
        return "rtstruct", _structure_set_file(path, ds)
    if not series_uid:
        return "ignored", None  # DICOMDIR and other files without a series
    if sop_class in UNSUPPORTED_CT:
        return "other", (series_uid, f"CT ({UNSUPPORTED_CT[sop_class]}: not supported)")
    return "other", (series_uid, modality or "unknown modality")


def _refuse_unreadable(root: Path, unreadable: list[tuple[Path, str]]) -> None:
    listed = "; ".join(f"{path} ({reason})" for path, reason in unreadable[:MAX_LISTED])
    more = f"; and {len(unreadable) - MAX_LISTED} more" if len(unreadable) > MAX_LISTED else ""
    raise InvalidInput(f"{root}: {len(unreadable)} file(s) look like DICOM but cannot be read: {listed}{more}. "
                       f"Remove or re-export them, or pass --skip_unreadable.")


def scan_folder(root: str | os.PathLike, *, skip_unreadable: bool = False, progress: bool = False) -> DicomInventory:
    """Finds the CT series, RT structure sets and other DICOM files under a folder (any layout).

    Args:
        root: a folder (searched recursively, links followed) or a single file.
        skip_unreadable: list files that look like DICOM but cannot be read in ``unreadable`` instead of refusing.
        progress: show a tqdm progress bar over the files.

    Returns:
        The inventory; CT slices are grouped by series but not yet sorted or checked
        (:func:`radconf.dicom.series.check_series`).

    Raises:
        MissingInput: ``root`` does not exist.
        InvalidInput: some files look like DICOM but cannot be read (unless ``skip_unreadable``).
    """
    root = Path(root)
    if not root.exists():
        raise MissingInput(f"{root}: no such folder; give the folder that holds the DICOM files.")
    files, unreadable, n_ignored = _walk(root) if root.is_dir() else ([root], [], 0)
    ct: dict[str, list[SliceHeader]] = {}
    structure_sets: list[StructureSetFile] = []
    other: dict[str, str] = {}
    from tqdm import tqdm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's value warnings may quote names; the checks below say enough
        for path in tqdm(files, desc="Reading DICOM headers", unit="file", disable=not progress):
            try:
                kind, value = _read_file(path)
            except _Unreadable as reason:
                unreadable.append((path, str(reason)))
                continue
            if kind == "ct":
                ct.setdefault(value.series_instance_uid, []).append(value)
            elif kind == "rtstruct":
                structure_sets.append(value)
            elif kind == "other":
                other.setdefault(*value)
            else:
                n_ignored += 1
    if unreadable and not skip_unreadable:
        _refuse_unreadable(root, unreadable)
    return DicomInventory({uid: tuple(headers) for uid, headers in ct.items()}, tuple(structure_sets), other,
                          tuple(unreadable), n_ignored)
