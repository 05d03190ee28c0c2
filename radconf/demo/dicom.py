"""The demo's clinical path: the phantom as a TPS export (DICOM), imported back, and predictions sent as RTSTRUCT.

1. ``tps_export/train/<patient>/``: each training case as a CT series, a "clinical" structure set (organs, GTV,
   CTV) and one structure set per simulated reader trial (the GTV), the way a planning system exports them;
   ``tps_export/new_patients/<patient>/CT/``: the held-out cases as CT series only.
2. ``radconf_import_dicom`` turns the training export into an nnU-Net dataset (organs and GTV from the clinical set,
   the readers' GTVs into ``readers/``); the demo checks it voxel for voxel against the phantom it came from.
3. After prediction, ``radconf_export_dicom`` writes the held-out predictions onto the new patients' CT series
   as RTSTRUCT and Slicer ``.seg.nrrd`` files (``dicom_predictions/``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radconf.demo.common import CommandContext, run_command

# ROI names as a planning system would write them, and the mapping file the demo imports them with
ROI_NAMES = {"bladder": "Bladder", "rectum": "Rectum", "gluteal_muscles": "Gluteal Muscles", "gtv": "GTV"}
REFERENCE_READER = "clinical"


@dataclass
class DicomResult:
    export: Path
    dataset: Path
    cases: int
    structure_sets: int
    label_voxels: int
    label_differences: int
    reader_masks: int
    reader_differences: int
    predictions: Path | None = None
    readback_dice: list[float] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _read(path: Path) -> tuple[np.ndarray, object]:
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    return sitk.GetArrayFromImage(image), image


def write_phantom_export(phantom, export: Path) -> int:
    """Writes the phantom as a TPS export (see the module docstring); returns the number of structure sets."""
    from radconf.dicom.geometry import SeriesGeometry
    from radconf.dicom.identity import PatientStudy, new_uid
    from radconf.dicom.tps_export import StructureSetContent, write_tps_export

    n_sets = 0
    for split, cases in (("train", phantom.train_cases), ("new_patients", phantom.test_cases)):
        suffix = "Tr" if split == "train" else "Ts"
        for case in cases:
            hu, image = _read(phantom.folder / f"images{suffix}" / f"{case}_0000.nii.gz")
            geometry = SeriesGeometry.from_image(image)
            patient = PatientStudy(case, f"Phantom^{case}", new_uid())
            sets = _structure_sets(phantom.folder, case) if split == "train" else []
            write_tps_export(export / split / case, hu.astype(np.int16), geometry, patient,
                             [StructureSetContent(label, masks, when) for label, masks, when in sets],
                             series_description="Phantom pelvis CT")
            n_sets += len(sets)
    return n_sets


def _structure_sets(folder: Path, case: str) -> list[tuple[str, dict, str]]:
    from radconf.datasets.phantom import LABELS

    labels, _ = _read(folder / "labelsTr" / f"{case}.nii.gz")
    ctv, _ = _read(folder / "ctvTr" / f"{case}.nii.gz")
    clinical = {ROI_NAMES[name]: labels == value for name, value in LABELS.items() if name in ROI_NAMES}
    clinical["CTV"] = ctv > 0  # not in the label map: the import lists it as unmapped
    sets = [(REFERENCE_READER, clinical, "20240101080000")]
    for n, path in enumerate(sorted((folder / "readers" / case).glob("*.nii.gz"))):
        reader = path.name.split("_trial")[0]
        sets.append((reader, {"GTV": _read(path)[0] > 0}, f"202401{n + 2:02d}090000"))
    return sets


def clinical_path_import(phantom, context: CommandContext, output: Path) -> DicomResult:
    """Steps 1 and 2: the TPS export (written afresh) and its import, compared with the phantom."""
    import shutil

    export = output / "tps_export"
    if export.exists():
        shutil.rmtree(export)  # the demo's own folder: a rerun writes the export again
    n_sets = write_phantom_export(phantom, export)
    dataset = import_phantom_export(context, export, context.settings.dicom_dataset_id, output)
    return compare_with_phantom(phantom, dataset, export, n_sets)


def import_phantom_export(context: CommandContext, export: Path, dataset_id: int, output: Path) -> Path:
    """``radconf_import_dicom`` of the training export, with the demo's mapping file."""
    mapping = output / "structures.json"
    mapping.write_text(json.dumps({name: [roi] for name, roi in ROI_NAMES.items()}, indent=1), encoding="utf-8")
    run_command(["radconf.cli.import_dicom", str(export / "train"), "-d", str(dataset_id), "-n", "PhantomDICOM",
                 "--structures", str(mapping), "--multi_reader", "gtv", "--reference_reader", REFERENCE_READER,
                 "--overwrite"], context.environment, context.log)
    return next(Path(context.environment["nnUNet_raw"]).glob(f"Dataset{dataset_id:03d}_PhantomDICOM"))


def compare_with_phantom(phantom, dataset: Path, export: Path, n_sets: int) -> DicomResult:
    """Voxel differences between the imported dataset and the phantom it was exported from."""
    from radconf.io.tables import read_csv

    key = {row["case"]: row["patient_id"] for row in read_csv(dataset.parent / f"{dataset.name}_key.csv")}
    label_voxels = label_diff = reader_masks = reader_diff = 0
    for case, source in key.items():
        imported, _ = _read(dataset / "labelsTr" / f"{case}.nii.gz")
        original, _ = _read(phantom.folder / "labelsTr" / f"{source}.nii.gz")
        label_voxels += int(np.count_nonzero(original))
        label_diff += int(np.count_nonzero(imported != original))
        trials: dict[str, int] = {}
        for path in sorted((phantom.folder / "readers" / source).glob("*.nii.gz")):
            reader = path.name.split("_trial")[0]  # a TPS export numbers the trials that exist: 1, 2, ...
            trials[reader] = trials.get(reader, 0) + 1
            mine, _ = _read(dataset / "readers" / case / f"{reader}_{trials[reader]}.nii.gz")
            reader_masks += 1
            reader_diff += int(np.count_nonzero((mine > 0) != (_read(path)[0] > 0)))
    return DicomResult(export, dataset, len(key), n_sets, label_voxels, label_diff, reader_masks, reader_diff)


def export_predictions(context: CommandContext, export: Path, predictions: Path, output: Path, model: str,
                       result: DicomResult) -> None:
    """``radconf_export_dicom`` of the held-out predictions onto the new patients' CT series (matched by grid)."""
    from radconf.io.tables import read_csv

    target = output / "dicom_predictions"
    run_command(["radconf.cli.export_dicom", "-i", str(predictions), "--dicom", str(export / "new_patients"), "-o",
                 str(target), "--format", "rtstruct", "segnrrd", "--description", model, "--overwrite"],
                context.environment, context.log)
    rows = read_csv(target / "export_report.csv")
    result.predictions = target
    result.readback_dice = [float(r["rtstruct_readback_dice"]) for r in rows if r["rtstruct_readback_dice"]]
    result.files = sorted(str(p.relative_to(output)) for p in target.glob("*/*") if p.is_file())


def dicom_section(result: DicomResult) -> list[str]:
    """The report's section on the clinical path."""
    lines = [
        "## Clinical path: DICOM in, RTSTRUCT out",
        "",
        (f"The phantom was written as a TPS export (`{result.export.name}/`: {result.cases} CT series with "
         f"{result.structure_sets} RT structure sets: one clinical set and one per simulated reader trial) and "
         f"imported with `radconf_import_dicom` as `{result.dataset.name}`."),
        "",
        "| imported vs phantom | compared | differing voxels |",
        "|---|---|---|",
        f"| label maps (organs, GTV) | {result.label_voxels} labelled voxels | {result.label_differences} |",
        f"| readers' GTV masks | {result.reader_masks} masks | {result.reader_differences} |",
        "",
    ]
    if result.predictions is not None:
        low = min(result.readback_dice) if result.readback_dice else float("nan")
        lines += [(f"The held-out predictions were written onto the new patients' CT series with `radconf_export_dicom "
                   f"--format rtstruct segnrrd` (`radconf_predict -i CT_FOLDER --output_format rtstruct` does both "
                   f"steps in one command). Each RTSTRUCT, read back with radconf's centre-inclusion reader, gives the "
                   f"predicted masks with Dice >= {low:.3f} (`{result.predictions.name}/export_report.csv`). Files:"),
                  "",
                  *[f"- `{name}`" for name in result.files], ""]
    return lines
