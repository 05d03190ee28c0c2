"""radconf_import_dicom: a folder tree of CT series and RT structure sets -> an nnU-Net raw dataset.

Every check runs before the first file is written; the dataset is written into a staging folder and appears whole
or not at all (:func:`radconf.io.files.staged_folder`); the input is only read. Layout of the output::

    DatasetID_NAME/imagesTr/CASE_0001_0000.nii.gz    CT of a series with structure sets (imagesTs: without)
    DatasetID_NAME/labelsTr/CASE_0001.nii.gz         label map of the mapped structures
    DatasetID_NAME/readers/CASE_0001/<reader>_<trial>.nii.gz   each --multi_reader structure per reader trial
    DatasetID_NAME/dataset.json                      labels; "radconf": missing structures per case, ...
    DatasetID_NAME/import_report.csv, import_warnings.txt
    DatasetID_NAME_key.csv (beside the dataset)      case -> PatientID, study, series, structure sets
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from radconf.dicom.import_case import CaseResult, CaseSource, ImportSettings, import_case
from radconf.dicom.import_report import GENERATOR, dataset_json, report_rows, summary_lines, write_key
from radconf.dicom.matching import (
    assign_readers,
    case_names,
    compile_reader_pattern,
    series_of,
    series_order,
    unmatched_message,
)
from radconf.dicom.names import (
    check_priority,
    implicit_structure_map,
    load_structure_map,
    normalise_name,
)
from radconf.dicom.structure_sets import read_structure_set
from radconf.errors import InvalidInput, MissingInput, OutputExists
from radconf.raw.derived import check_dataset_name, check_output_dataset, raise_problems
from radconf.raw.entry import written_by


@dataclass(frozen=True)
class ImportResult:
    folder: Path
    key: Path
    sources: tuple[CaseSource, ...]
    results: tuple[CaseResult, ...]
    summary: tuple[str, ...]


@dataclass(frozen=True)
class ImportRequest:
    """The checked arguments of one import (see :func:`import_dicom`)."""

    input_folder: Path
    folder: Path
    key: Path
    structures_file: Path | None
    multi_reader: tuple[str, ...]
    priority: tuple[str, ...] | None
    reader_from: str
    reader_pattern: str | None
    reference_reader: str | None
    reader_fractions: int | None
    keep_patient_ids: bool
    skip_unreadable: bool
    overwrite: bool


def _check_request(request: ImportRequest, dataset_id: int) -> None:
    if not request.input_folder.is_dir():
        raise MissingInput(f"DICOM input folder {request.input_folder} does not exist (or is not a folder).")
    if request.structures_file is not None and not request.structures_file.is_file():
        raise MissingInput(f"--structures {request.structures_file} does not exist.")
    if request.reader_fractions is not None and not 2 <= request.reader_fractions <= 16:
        raise InvalidInput(f"--reader_fractions {request.reader_fractions}: use 2..16 sub-samples per voxel edge.")
    check_output_dataset(request.folder, dataset_id, [("the DICOM input folder", request.input_folder)],
                         request.overwrite, "radconf_import_dicom", lambda f: written_by(f, GENERATOR))
    from radconf.io.locations import check_output_location

    check_output_location(request.key.parent, [("the DICOM input folder", request.input_folder)], "--key",
                          relations=("is", "lies inside"), subject=f"The key file {request.key}",
                          fix="Write the key outside {what} (--key FILE).")
    if request.key.resolve().is_relative_to(request.folder.resolve()):
        raise InvalidInput(f"--key {request.key} lies inside the dataset; the key links cases to patients and goes "
                           f"beside the dataset (the default) or anywhere else outside it.")
    if request.key.exists() and not request.overwrite:
        raise OutputExists(f"The key file {request.key} exists; pass --overwrite to replace it, or choose --key.")


def _explicit_map(request: ImportRequest):
    """The mapping file's structures, checked with --priority and --multi_reader before any DICOM is read."""
    structure_map = load_structure_map(request.structures_file) if request.structures_file is not None else None
    check_priority(request.priority, structure_map)
    if structure_map is not None:
        _check_multi_reader(request, structure_map)
    return structure_map


def _check_multi_reader(request: ImportRequest, structure_map) -> None:
    unknown = [s for s in request.multi_reader if normalise_name(s) not in structure_map.structures]
    if unknown:
        raise InvalidInput(f"--multi_reader {' '.join(unknown)}: not structures of this import "
                           f"({', '.join(structure_map.structures) or 'no ROI found'}); use the structure names of "
                           f"the --structures file.")


def _settings(request: ImportRequest, roi_names: Sequence[str], structure_map) -> ImportSettings:
    pattern = compile_reader_pattern(request.reader_pattern)
    if structure_map is None:
        names = [pattern.fullmatch(n.strip()).group("structure") if pattern and pattern.fullmatch(n.strip()) else n
                 for n in roi_names]
        structure_map = implicit_structure_map(names)
        _check_multi_reader(request, structure_map)
    multi = tuple(normalise_name(s) for s in request.multi_reader)
    folders = {s: "readers" if len(multi) == 1 else f"readers_{s}" for s in multi}
    return ImportSettings(structure_map, multi, tuple(request.priority) if request.priority else None, pattern,
                          request.reference_reader, request.reader_fractions, folders)


def _plan(request: ImportRequest, inventory) -> tuple[list[CaseSource], list]:
    """The cases (series, structure sets, readers), checked; every problem of the input reported together."""
    from radconf.dicom.series import check_series

    problems: list[str] = []
    structure_sets = []
    for found in inventory.structure_sets:
        try:
            structure_sets.append(read_structure_set(found.path))
        except InvalidInput as error:
            problems.append(str(error))
    frames = {uid: headers[0].frame_of_reference_uid for uid, headers in inventory.ct_series.items()}
    instances = {uid: frozenset(h.sop_instance_uid for h in headers) for uid, headers in inventory.ct_series.items()}
    by_series: dict[str, list] = {uid: [] for uid in inventory.ct_series}
    for structure_set in structure_sets:
        uid = series_of(structure_set, frames, instances)
        if uid is None:
            problems.append(unmatched_message(structure_set))
        else:
            by_series[uid].append(structure_set)
    geometries = {}
    for uid, headers in inventory.ct_series.items():
        try:
            geometries[uid] = check_series(headers)
        except InvalidInput as error:
            problems.append(str(error))
    raise_problems(f"radconf_import_dicom {request.input_folder}", problems)
    order = series_order(inventory.ct_series)
    names = case_names([inventory.ct_series[u] for u in order], request.keep_patient_ids)
    sources = [CaseSource(name, tuple(inventory.ct_series[uid]), geometries[uid],
                          tuple(assign_readers(by_series[uid], request.reader_from)), bool(by_series[uid]))
               for name, uid in zip(names, order)]
    return sources, structure_sets


def import_dicom(input_folder: str | os.PathLike, dataset_id: int, name: str | None = None, *,
                 structures_file: str | os.PathLike | None = None, multi_reader: Sequence[str] = (),
                 key_file: str | os.PathLike | None = None, priority: Sequence[str] | None = None,
                 reader_from: str = "label", reader_pattern: str | None = None, reference_reader: str | None = None,
                 reader_fractions: int | None = None, keep_patient_ids: bool = False, skip_unreadable: bool = False,
                 overwrite: bool = False, raw_root: str | os.PathLike | None = None,
                 progress: bool = True) -> ImportResult:
    """Imports CT series and their RT structure sets as an nnU-Net raw dataset (see the module docstring).

    Args:
        input_folder: any folder tree of DICOM files (other files are ignored).
        dataset_id: nnU-Net dataset id (1..999); name: dataset name (default ``DICOM``).
        structures_file: mapping file ``{"structure": ["ROI name", ...]}`` (default: every ROI name a structure).
        multi_reader: structures written per reader trial into ``readers/`` for ``radconf_fuse_readers``.
        key_file: case -> patient table (default ``<dataset folder>_key.csv`` beside the dataset).
        priority: structures that win shared voxels, first wins (default: the smallest structure wins).
        reader_from, reader_pattern, reference_reader: the reader rule (:mod:`radconf.dicom.matching`).
        reader_fractions: write reader masks as partial-volume fractions with this many sub-samples per voxel edge.
        keep_patient_ids: name cases after PatientID instead of CASE_0001, ...
        skip_unreadable: skip (list) DICOM files that cannot be read instead of refusing.
        overwrite: replace an earlier radconf_import_dicom output and key file.
        raw_root: nnUNet_raw (default ``$nnUNet_raw``).
        progress: progress bars.

    Raises:
        InvalidInput, MissingInput, OutputExists: before anything is written, naming the file and the fix.
    """
    from radconf.dicom.scan import scan_folder
    from radconf.paths import require_nnunet_paths

    name = name or "DICOM"
    check_dataset_name(name)
    if not 1 <= int(dataset_id) <= 999:
        raise InvalidInput(f"-d {dataset_id}: nnU-Net dataset ids are 1..999.")
    root = Path(raw_root) if raw_root is not None else require_nnunet_paths().raw
    folder = root / f"Dataset{int(dataset_id):03d}_{name}"
    request = ImportRequest(Path(input_folder), folder, Path(key_file) if key_file else root / f"{folder.name}_key.csv",
                            Path(structures_file) if structures_file else None, tuple(multi_reader),
                            tuple(priority) if priority else None, reader_from, reader_pattern, reference_reader,
                            reader_fractions, keep_patient_ids, skip_unreadable, overwrite)
    _check_request(request, int(dataset_id))
    compile_reader_pattern(reader_pattern)
    structure_map = _explicit_map(request)
    inventory = scan_folder(request.input_folder, skip_unreadable=skip_unreadable, progress=progress)
    if not inventory.ct_series:
        raise MissingInput(f"No CT series found in {request.input_folder} (searched every file below it); point the "
                           f"command at the folder of the TPS export.")
    sources, structure_sets = _plan(request, inventory)
    settings = _settings(request, [roi.name for s in structure_sets for roi in s.rois], structure_map)
    results = _write(request, sources, settings, name, progress)
    summary = [f"found {inventory.summary()}", *summary_lines(folder, sources, results, settings, request.key)]
    return ImportResult(folder, request.key, tuple(sources), tuple(results), tuple(summary))


def _options(request: ImportRequest, settings: ImportSettings) -> dict:
    return {"structures": list(settings.structures.structures), "explicit_mapping": settings.structures.explicit,
            "multi_reader": list(settings.multi_reader), "priority": list(settings.priority or []),
            "reader_from": request.reader_from, "reader_pattern": request.reader_pattern,
            "reference_reader": request.reference_reader, "reader_fractions": request.reader_fractions,
            "patient_ids_as_case_names": request.keep_patient_ids}


def _write(request: ImportRequest, sources: Sequence[CaseSource], settings: ImportSettings, name: str,
           progress: bool) -> list[CaseResult]:
    from radconf.io.files import staged_folder

    results: list[CaseResult] = []
    request.folder.parent.mkdir(parents=True, exist_ok=True)
    key_existed = request.key.exists()
    try:
        with staged_folder(request.folder) as staging:
            _write_into(staging, request, sources, settings, name, progress, results)
    except BaseException:
        if not key_existed:
            request.key.unlink(missing_ok=True)
        raise
    return results


def _write_into(staging: Path, request: ImportRequest, sources: Sequence[CaseSource], settings: ImportSettings,
                name: str, progress: bool, results: list[CaseResult]) -> None:
    from tqdm import tqdm

    from radconf.io.files import atomic_write_text
    from radconf.io.tables import write_csv, write_json

    for folder in ("imagesTr", "labelsTr"):
        (staging / folder).mkdir()
    for source in tqdm(sources, desc="radconf_import_dicom", unit="series", disable=not progress):
        results.append(import_case(staging, source, settings))
    rows, columns = report_rows(sources, results, settings)
    write_csv(staging / "import_report.csv", rows, columns)
    warnings = [line for r in results for line in r.warnings]
    atomic_write_text(staging / "import_warnings.txt", "".join(f"{w}\n" for w in warnings))
    write_json(staging / "dataset.json", dataset_json(name, sources, results, settings,
                                                      _options(request, settings)))
    write_key(request.key, sources)

