"""What radconf_import_dicom tells: import_report.csv, the dataset.json, the key file and the printed summary.

No patient name or id reaches the report, the dataset.json or the summary; the key file (case -> PatientID,
StudyInstanceUID, SeriesInstanceUID, structure sets used) is the only link back, and it is written beside the
dataset, never inside it.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from radconf.dicom.import_case import CaseResult, CaseSource, ImportSettings
from radconf.io.tables import write_csv

GENERATOR = "radconf.dicom.import"
KEY_COLUMNS = ("case", "patient_id", "study_instance_uid", "series_instance_uid", "structure_sets",
               "structure_set_files")


def report_rows(sources: Sequence[CaseSource], results: Sequence[CaseResult],
                settings: ImportSettings) -> tuple[list[dict], list[str]]:
    """One row per case, and the column order."""
    rows = []
    structures = settings.structures.structures
    for source, result in zip(sources, results):
        dc, dr, dz = source.geometry.spacing
        row = {"case": source.case, "split": "train" if source.labelled else "test",
               "series": str(getattr(source.headers[0], "series_description", "") or ""),
               "slices": source.geometry.n_slices, "size": f"{source.geometry.columns}x{source.geometry.rows}",
               "spacing_mm": f"{dc:.4g}x{dr:.4g}x{dz:.4g}",
               "slice_deviation_mm": round(source.geometry.max_slice_deviation_mm(), 4),
               "structure_sets": "; ".join(t.name for t in source.trials),
               "unmapped": "; ".join(result.unmapped), "warnings": len(result.warnings)}
        for structure in structures:
            found = result.structures.get(structure)
            row[f"{structure}_status"] = "" if not source.labelled else ("found" if found else "missing")
            row[f"{structure}_cm3"] = round(found["volume_cm3"], 3) if found else ""
            row[f"{structure}_source"] = found["source"] if found else ""
            if structure in settings.multi_reader:
                row[f"{structure}_reader_masks"] = found.get("readers", 0) if found else 0
        rows.append(row)
    columns = ["case", "split", "series", "slices", "size", "spacing_mm", "slice_deviation_mm", "structure_sets"]
    for structure in structures:
        columns += [f"{structure}_status", f"{structure}_cm3", f"{structure}_source"]
        if structure in settings.multi_reader:
            columns.append(f"{structure}_reader_masks")
    return rows, columns + ["unmapped", "warnings"]


def dataset_json(name: str, sources: Sequence[CaseSource], results: Sequence[CaseResult],
                 settings: ImportSettings, options: dict) -> dict:
    """nnU-Net's dataset.json plus the radconf entry (missing structures per case, readers folders)."""
    labels = {"background": 0, **{s: i + 1 for i, s in enumerate(settings.structures.structures)}}
    train = [s.case for s in sources if s.labelled]
    entry = {
        "generator": GENERATOR,
        "missing_structures": {r.case: r.missing for r in results if r.missing},
        "unmapped_rois": sorted({n for r in results for n in r.unmapped}),
        "test_cases": [s.case for s in sources if not s.labelled],
        "import_options": options,
    }
    if settings.multi_reader:
        entry["readers_folders"] = dict(settings.readers_folders)
        if len(settings.multi_reader) == 1:
            entry["readers_folder"] = settings.readers_folders[settings.multi_reader[0]]
    return {"channel_names": {"0": "CT"}, "labels": labels, "numTraining": len(train), "file_ending": ".nii.gz",
            "name": name, "description": "CT series and RT structure sets imported with radconf_import_dicom",
            "radconf": entry}


def write_key(path: Path, sources: Sequence[CaseSource]) -> Path:
    """The key file: the only place that links cases to patients."""
    rows = []
    for source in sources:
        first = source.headers[0]
        rows.append({"case": source.case, "patient_id": first.patient_id,
                     "study_instance_uid": first.study_instance_uid,
                     "series_instance_uid": first.series_instance_uid,
                     "structure_sets": "; ".join(f"{t.name}={t.structure_set.sop_instance_uid}" for t in source.trials),
                     "structure_set_files": "; ".join(str(t.structure_set.path) for t in source.trials)})
    return write_csv(path, rows, KEY_COLUMNS)


def summary_lines(folder: Path, sources: Sequence[CaseSource], results: Sequence[CaseResult],
                  settings: ImportSettings, key: Path) -> list[str]:
    """The summary printed at the end (no patient identifiers)."""
    labelled = [r for s, r in zip(sources, results) if s.labelled]
    n_sets = sum(len(s.trials) for s in sources)
    lines = [(f"imported {len(sources)} CT series ({len(labelled)} with structure sets, {n_sets} structure sets) "
             f"into {folder}")]
    for structure in settings.structures.structures:
        found = sum(structure in r.structures for r in labelled)
        lines.append(f"  {structure}: found in {found}/{len(labelled)} cases"
                     + (f", missing in {', '.join(r.case for r in labelled if structure in r.missing)}"
                        if found < len(labelled) else ""))
    unmapped = sorted({n for r in results for n in r.unmapped})
    if unmapped:
        lines.append(f"  unmapped ROIs (not in the label map; map them with --structures): {', '.join(unmapped)}")
    n_warnings = sum(len(r.warnings) for r in results)
    if n_warnings:
        lines.append(f"  {n_warnings} warning(s), listed in {folder / 'import_warnings.txt'}")
    lines.append(f"  report: {folder / 'import_report.csv'}; key (case -> patient): {key}")
    return lines
