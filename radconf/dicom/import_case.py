"""One CT series and its structure sets -> one case of the imported nnU-Net dataset.

What a case gets (documentation/dicom_rt.md):

- ``images{Tr,Ts}/<case>_0000.nii.gz``: the CT in HU, the series' geometry with its direction cosines;
- ``labelsTr/<case>.nii.gz``: each structure from the first structure set that has it (``--reference_reader``
  first, then reader trials in date order), painted so that the smallest structure wins a shared voxel unless
  ``--priority`` says otherwise (:func:`radconf.dicom.names.priority_order`);
- ``readers/<case>/<reader>_<trial>.nii.gz``: for each ``--multi_reader`` structure, every reader trial's mask
  (the ``--reference_reader``, if given, is the reference and not one of the readers);
- the case's missing structures (mapped by no ROI, or only by empty ROIs) and unmapped ROI names.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.matching import ReaderTrial, split_reader_roi
from radconf.dicom.names import StructureMap, priority_order
from radconf.dicom.structure_sets import Roi, rasterise_roi, warning_lines
from radconf.io.files import atomic_write_image


@dataclass(frozen=True)
class CaseSource:
    """What one case is made of (found by the scan, before any voxel is read)."""

    case: str
    headers: tuple  # the series' SliceHeaders
    geometry: SeriesGeometry
    trials: tuple[ReaderTrial, ...]
    labelled: bool


@dataclass(frozen=True)
class ImportSettings:
    structures: StructureMap
    multi_reader: tuple[str, ...] = ()
    priority: tuple[str, ...] | None = None
    reader_pattern: re.Pattern | None = None
    reference_reader: str | None = None
    reader_fractions: int | None = None
    readers_folders: dict = field(default_factory=dict)  # structure -> folder name inside the dataset


@dataclass
class CaseResult:
    case: str
    structures: dict[str, dict] = field(default_factory=dict)  # structure -> {"source", "volume_cm3", "readers"}
    missing: list[str] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reader_masks: int = 0
    # masks already rasterised (the label map's and the readers' may be the same ROIs), and the ROIs warned about
    _masks: dict = field(default_factory=dict, repr=False)
    _warned: set = field(default_factory=set, repr=False)


@dataclass(frozen=True)
class Candidate:
    structure: str
    reader: str
    trial: int
    roi: Roi
    order: int  # position of its structure set among the case's


def _candidates(source: CaseSource, settings: ImportSettings, result: CaseResult) -> list[Candidate]:
    """Every mapped ROI of the case's structure sets; unmapped ROI names go into ``result``."""
    found: list[Candidate] = []
    pattern_trials: dict[tuple[str, str], int] = {}
    for order, trial in enumerate(source.trials):
        for roi in trial.structure_set.rois:
            structure_part, reader = split_reader_roi(roi.name, settings.reader_pattern)
            structure = settings.structures.structure_of(structure_part)
            if structure is None:
                result.unmapped.append(roi.name)
                continue
            if reader is None:
                found.append(Candidate(structure, trial.reader, trial.trial, roi, order))
            else:
                key = (structure, reader)
                pattern_trials[key] = pattern_trials.get(key, 0) + 1
                found.append(Candidate(structure, reader, pattern_trials[key], roi, order))
    return found


def _rank(candidate: Candidate, reference_reader: str | None) -> tuple:
    return (0 if reference_reader and candidate.reader == reference_reader else 1, candidate.order)


def _mask_of(candidates: Sequence[Candidate], source: CaseSource, result: CaseResult,
             supersampling: int | None = None) -> np.ndarray | None:
    """Union of the ROIs of one structure set mapped to one structure (None if all empty); each ROI's warnings are
    recorded once, and a mask asked for twice is rasterised once."""
    key = (tuple(id(c.roi) for c in candidates), supersampling)
    if key in result._masks:
        return result._masks[key]
    mask = None
    for candidate in candidates:
        roi_mask, raster = rasterise_roi(candidate.roi, source.geometry, supersampling=supersampling)
        if id(candidate.roi) not in result._warned:
            result._warned.add(id(candidate.roi))
            where = f"{source.case} {candidate.reader}_{candidate.trial} ROI {candidate.roi.name!r}"
            result.warnings.extend(warning_lines(raster, where))
        if not roi_mask.any():
            continue
        mask = roi_mask if mask is None else np.maximum(mask, roi_mask)
    if len(candidates) > 1 and not any(k[0] == key[0] for k in result._masks):
        names = ", ".join(repr(c.roi.name) for c in candidates)
        result.warnings.append(f"{source.case} {candidates[0].reader}_{candidates[0].trial}: ROIs {names} all map "
                               f"to {candidates[0].structure!r}; their union was used")
    result._masks[key] = mask
    return mask


def _groups(candidates: Sequence[Candidate]) -> dict[tuple[str, int, int], list[Candidate]]:
    """Candidates by (reader, trial, structure set order): one mask each."""
    groups: dict[tuple[str, int, int], list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault((candidate.reader, candidate.trial, candidate.order), []).append(candidate)
    return groups


def _label_masks(source: CaseSource, settings: ImportSettings, candidates: list[Candidate],
                 result: CaseResult) -> dict[str, np.ndarray]:
    """Each structure's mask for the label map, from its first non-empty source; missing ones recorded."""
    masks: dict[str, np.ndarray] = {}
    voxel_cm3 = source.geometry.voxel_volume_mm3 / 1000.0
    for structure in settings.structures.structures:
        mine = sorted((c for c in candidates if c.structure == structure),
                      key=lambda c: _rank(c, settings.reference_reader))
        for (reader, trial, _), group in _groups(mine).items():
            mask = _mask_of(group, source, result)
            if mask is not None:
                masks[structure] = mask
                result.structures[structure] = {"source": f"{reader}_{trial}",
                                                "volume_cm3": float(mask.sum()) * voxel_cm3}
                break
        else:
            result.missing.append(structure)
    return masks


def _label_map(masks: dict[str, np.ndarray], settings: ImportSettings, shape: tuple[int, ...]) -> np.ndarray:
    labels = {name: i + 1 for i, name in enumerate(settings.structures.structures)}
    dtype = np.uint8 if len(labels) < 256 else np.uint16
    label_map = np.zeros(shape, dtype=dtype)
    volumes = {name: float(mask.sum()) for name, mask in masks.items()}
    for name in priority_order(list(masks), volumes, settings.priority):
        label_map[masks[name]] = labels[name]
    return label_map


def _write_reader_masks(folder: Path, source: CaseSource, settings: ImportSettings, candidates: list[Candidate],
                        result: CaseResult) -> None:
    for structure in settings.multi_reader:
        mine = [c for c in candidates if c.structure == structure and c.reader != settings.reference_reader]
        target = folder / settings.readers_folders[structure] / source.case
        written = 0
        for (reader, trial, _), group in sorted(_groups(mine).items()):
            mask = _mask_of(group, source, result, supersampling=settings.reader_fractions)
            if mask is None:
                mask = np.zeros(source.geometry.shape, dtype=np.float32 if settings.reader_fractions else bool)
            array = mask.astype(np.float32) if settings.reader_fractions else mask.astype(np.uint8)
            atomic_write_image(target / f"{reader}_{trial}.nii.gz", source.geometry.to_image(array))
            written += 1
        result.reader_masks += written
        if structure in result.structures:
            result.structures[structure]["readers"] = written


def import_case(folder: Path, source: CaseSource, settings: ImportSettings) -> CaseResult:
    """Writes one case into the (staging) dataset folder and returns what the report says about it."""
    from radconf.dicom.series import load_series

    result = CaseResult(source.case)
    volume = load_series(source.headers)
    split = "Tr" if source.labelled else "Ts"
    atomic_write_image(folder / f"images{split}" / f"{source.case}_0000.nii.gz", source.geometry.to_image(volume.hu))
    if not source.labelled:
        return result
    candidates = _candidates(source, settings, result)
    masks = _label_masks(source, settings, candidates, result)
    label_map = _label_map(masks, settings, source.geometry.shape)
    atomic_write_image(folder / "labelsTr" / f"{source.case}.nii.gz", source.geometry.to_image(label_map))
    _write_reader_masks(folder, source, settings, candidates, result)
    result.unmapped = sorted(set(result.unmapped))
    result._masks.clear()  # the case is written: free its masks
    return result
