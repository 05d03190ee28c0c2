"""Which structure set belongs to which CT series, and which reader drew it.

Series of a structure set, in this order: the series its RT Referenced Series names; else the one CT series of its
Referenced Frame of Reference; else (several series share that frame) the series that holds the SOP instances its
ContourImageSequence names. A structure set that matches no series of the input is an error (its CT series is
missing from the input).

Readers (documentation/dicom_rt.md): each structure set on a series is one reader's trial. The reader is the
StructureSetLabel (``--reader_from label``, the default; the file's folder name when the label is empty) or the
file's folder name (``--reader_from folder``). Structure sets of one reader are trials 1, 2, ... in the order of
StructureSetDate/Time, then file path. ``--reader_pattern REGEX`` names readers inside ROI names instead (e.g.
``(?P<structure>.+)_R(?P<reader>\\d+)`` for ``GTV_R2``): a ROI that matches is that reader's contour of the
structure, whatever structure set holds it.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from radconf.dicom.structure_sets import StructureSet
from radconf.errors import InvalidInput

READER_SOURCES = ("label", "folder")
_FILE_SAFE = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class ReaderTrial:
    """One structure set as one reader's trial."""

    structure_set: StructureSet
    reader: str
    trial: int

    @property
    def name(self) -> str:
        """The file stem of this trial's masks: ``<reader>_<trial>``."""
        return f"{self.reader}_{self.trial}"


def series_of(structure_set: StructureSet, series_frames: Mapping[str, str],
              series_instances: Mapping[str, frozenset[str]]) -> str | None:
    """The CT series a structure set contours (see the module docstring), or None."""
    for uid in structure_set.referenced_series_uids:
        if uid in series_frames:
            return uid
    candidates = [uid for uid, frame in series_frames.items() if frame in structure_set.frame_of_reference_uids]
    if len(candidates) == 1:
        return candidates[0]
    if structure_set.contour_image_uids:
        holding = [uid for uid in (candidates or series_frames) if structure_set.contour_image_uids
                   & series_instances.get(uid, frozenset())]
        if len(holding) == 1:
            return holding[0]
    return None


def unmatched_message(structure_set: StructureSet) -> str:
    series = ", ".join(structure_set.referenced_series_uids) or "none named"
    frames = ", ".join(structure_set.frame_of_reference_uids) or "none named"
    return (f"{structure_set.path}: the CT series it contours is not in the input (referenced series: {series}; "
            f"frame of reference: {frames}). Add that CT series to the input folder, or move the structure set out.")


def reader_name(text: str) -> str:
    """A reader label as a file-name-safe word (``"Dr. A / contour 2"`` -> ``"Dr_A_contour_2"``)."""
    return _FILE_SAFE.sub("_", text).strip("_") or "reader"


def assign_readers(structure_sets: Sequence[StructureSet], reader_from: str = "label") -> list[ReaderTrial]:
    """The reader and trial of each structure set of one series (see the module docstring)."""
    if reader_from not in READER_SOURCES:
        raise InvalidInput(f"--reader_from {reader_from!r}: choose one of {', '.join(READER_SOURCES)}.")
    ordered = sorted(structure_sets, key=lambda s: (s.date_time, str(s.path)))
    trials: dict[str, int] = defaultdict(int)
    assigned = []
    for structure_set in ordered:
        label = structure_set.label if reader_from == "label" else ""
        reader = reader_name(label or structure_set.path.parent.name)
        trials[reader] += 1
        assigned.append(ReaderTrial(structure_set, reader, trials[reader]))
    return assigned


def compile_reader_pattern(pattern: str | None) -> re.Pattern | None:
    """Checks ``--reader_pattern``: a regular expression with named groups ``structure`` and ``reader``."""
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise InvalidInput(f"--reader_pattern {pattern!r} is not a regular expression ({error}).") from None
    if not {"structure", "reader"} <= set(compiled.groupindex):
        raise InvalidInput(f"--reader_pattern {pattern!r} needs the named groups (?P<structure>...) and "
                           f"(?P<reader>...), e.g. '(?P<structure>.+)_R(?P<reader>\\d+)' for GTV_R2.")
    return compiled


def split_reader_roi(name: str, pattern: re.Pattern | None) -> tuple[str, str | None]:
    """(structure part, reader) of a ROI name under ``--reader_pattern``; (name, None) when it does not match."""
    if pattern is None:
        return name, None
    match = pattern.fullmatch(name.strip())
    if match is None:
        return name, None
    reader = reader_name(match.group("reader"))
    return match.group("structure"), f"reader{reader}" if reader.isdigit() else reader


def series_order(ct_series: Mapping[str, Sequence]) -> list[str]:
    """Series UIDs in the order cases are numbered: patient, study, series (so CASE_0001 ... are stable)."""
    return sorted(ct_series, key=lambda u: (str(ct_series[u][0].patient_id), str(ct_series[u][0].study_instance_uid),
                                            u))


def case_names(series_headers: Sequence[Sequence], keep_patient_ids: bool) -> list[str]:
    """CASE_0001, ... for series in :func:`series_order`; or their PatientIDs made file-safe (numbered when a
    patient has several series)."""
    if not keep_patient_ids:
        return [f"CASE_{i + 1:04d}" for i in range(len(series_headers))]
    names, used = [], {}
    for headers in series_headers:
        base = _FILE_SAFE.sub("_", str(headers[0].patient_id)).strip("_") or "patient"
        used[base] = used.get(base, 0) + 1
        names.append(base if used[base] == 1 else f"{base}_{used[base]}")
    return names
