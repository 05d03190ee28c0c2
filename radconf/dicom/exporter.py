"""radconf_export_dicom: predicted label maps -> RTSTRUCT / DICOM-SEG / Slicer .seg.nrrd on their source CT series.

Each prediction ``<case>.nii.gz`` (and its folder's dataset.json for names) is matched to its CT series in the
DICOM folder: through the key file of radconf_import_dicom (case -> SeriesInstanceUID), or else through the grid
(the one series whose size, spacing, origin and direction are the prediction's). Output:
``OUT/<case>/<case>_RTSTRUCT.dcm``,
``<case>_SEG.dcm``, ``<case>.seg.nrrd`` and ``OUT/export_report.csv`` (per case and structure: voxels, and the
RTSTRUCT read back with radconf's reader against the prediction). Inputs are only read; a failed export leaves
``OUT`` as it was found.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from radconf.dicom.export_case import FORMATS, ExportStructure, export_structures, write_case_outputs
from radconf.dicom.geometry import SeriesGeometry
from radconf.errors import InvalidInput, MissingInput, OutputExists


@dataclass(frozen=True)
class SourceSeries:
    """A CT series that predictions go back onto."""

    headers: tuple  # SliceHeaders in geometry order
    geometry: SeriesGeometry

    @property
    def series_instance_uid(self) -> str:
        return str(self.headers[0].series_instance_uid)

    def ct_headers(self) -> list:
        """The slices' DICOM headers (no pixel data), in geometry order (read once)."""
        return list(self._ct_headers)

    @cached_property
    def _ct_headers(self) -> tuple:
        import pydicom

        by_position = sorted(self.headers, key=lambda h: float(np.dot(h.image_position, self.geometry.normal)))
        return tuple(pydicom.dcmread(h.path, stop_before_pixels=True) for h in by_position)

    @cached_property
    def reference(self):
        """What an RTSTRUCT on this series references (patient and study copied from its first slice)."""
        from radconf.dicom.identity import referenced_series_of

        return referenced_series_of(self.ct_headers())


def series_geometry_table(inventory, strict: bool = False) -> dict[str, SourceSeries]:
    """Every usable CT series of a scanned DICOM folder, by SeriesInstanceUID.

    Args:
        inventory: what :func:`radconf.dicom.scan.scan_folder` found.
        strict: refuse (one message listing them) series that fail the checks, as for an input to predict; else
            leave them out (a prediction cannot come from them).
    """
    from radconf.dicom.series import check_series
    from radconf.raw.derived import raise_problems

    table, problems = {}, []
    for uid, headers in inventory.ct_series.items():
        try:
            table[uid] = SourceSeries(tuple(headers), check_series(headers))
        except InvalidInput as error:
            problems.append(str(error))
    if strict:
        raise_problems("the DICOM input", problems)
    return table


def read_key(path: Path) -> dict[str, str]:
    """case -> SeriesInstanceUID of a radconf_import_dicom key file."""
    from radconf.io.tables import read_csv

    if not path.is_file():
        raise MissingInput(f"--key {path} does not exist; give the key file radconf_import_dicom wrote "
                           f"(<dataset folder>_key.csv), or leave --key out to match series by their grid.")
    rows = read_csv(path)
    if not rows or not {"case", "series_instance_uid"} <= set(rows[0]):
        raise InvalidInput(f"--key {path} has no case and series_instance_uid columns; it is not a radconf key file.")
    return {row["case"]: row["series_instance_uid"] for row in rows}


def match_by_grid(case: str, image_geometry, table: Mapping[str, SourceSeries]) -> SourceSeries:
    """The one series whose grid is the prediction's (radconf.io.images tolerances)."""
    from radconf.io.images import Geometry, geometry_difference

    matches = []
    for source in table.values():
        g = source.geometry
        candidate = Geometry((g.columns, g.rows, g.n_slices), g.spacing, tuple(float(v) for v in g.positions[0]),
                             tuple(float(v) for v in g.direction.ravel()))
        if geometry_difference(candidate, image_geometry) is None:
            matches.append(source)
    if len(matches) != 1:
        how = "no CT series" if not matches else f"{len(matches)} CT series"
        raise InvalidInput(f"{case}: {how} of the DICOM folder {'has' if not matches else 'have'} the prediction's "
                           f"grid; pass --key (the key file of radconf_import_dicom) to say which series it is.")
    return matches[0]


@dataclass(frozen=True)
class ExportRequest:
    predictions: Path
    dicom: Path
    output: Path
    formats: tuple[str, ...]
    key: Path | None
    description: str
    overwrite: bool
    fractional: bool = False


def probability_files(predictions: Path, case: str, structures: Sequence[ExportStructure]) -> list[Path]:
    """The files a FRACTIONAL SEG of ``case`` is made of: the confidence model's ``level_probabilities/
    <case>_ge<c>.nii.gz`` (nested level structures), else nnU-Net's ``<case>.npz`` (--save_probabilities)."""
    if structures and all(">=" in s.name for s in structures):
        return [predictions / "level_probabilities" / f"{case}_ge{s.values[0]}.nii.gz" for s in structures]
    return [predictions / f"{case}.npz"]


def read_fractions(files: Sequence[Path], structures: Sequence[ExportStructure], shape: tuple) -> np.ndarray:
    """(structures, slices, rows, columns) probabilities in [0, 1] from :func:`probability_files`."""
    import SimpleITK as sitk

    from radconf.io.integrity import check_complete

    for path in files:
        check_complete(path)
    if files[0].suffix == ".npz":
        from radconf.io.probabilities import load_probabilities

        probabilities = load_probabilities(files[0])
        fractions = np.stack([probabilities[list(s.values)].sum(0) for s in structures])
    else:
        fractions = np.stack([sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in files])
    if fractions.shape[1:] != tuple(shape):
        raise InvalidInput(f"{files[0]}: probabilities of shape {fractions.shape[1:]}, not the label map's {shape}.")
    return np.clip(fractions.astype(np.float32), 0.0, 1.0)


def bound_masks(predictions: Path, case: str, shape: tuple) -> list[tuple[str, np.ndarray]]:
    """The 95 % bounds an uncertainty prediction wrote (``uncertainty/CASE_<structure>_inner95|outer95.nii.gz``) as
    ``(<structure>_inner95, mask)`` pairs, for extra RTSTRUCT ROIs; none for other predictions."""
    from radconf.io.images import read_label_image

    pairs = []
    for path in sorted((predictions / "uncertainty").glob(f"{case}_*_*95.nii.gz")):
        name = path.name[len(case) + 1:-len(".nii.gz")]
        if not name.endswith(("_inner95", "_outer95")):
            continue
        mask, _ = read_label_image(path)
        if mask.shape != shape:
            raise InvalidInput(f"{path}: shape {mask.shape} is not the prediction's {shape}; predict the case again.")
        pairs.append((name, mask > 0))
    return pairs


def _check_request(request: ExportRequest) -> list[Path]:
    from radconf.io.cases import format_case_list
    from radconf.io.locations import check_output_location

    for flag, folder in (("-i", request.predictions), ("--dicom", request.dicom)):
        if not folder.is_dir():
            raise MissingInput(f"{flag} {folder} does not exist (or is not a folder).")
    bad = [f for f in request.formats if f not in FORMATS]
    if bad or not request.formats:
        raise InvalidInput(f"--format {' '.join(bad) or '(none)'}: choose among {', '.join(FORMATS)}.")
    check_output_location(request.output, [("the prediction folder -i", request.predictions),
                                           ("the DICOM folder --dicom", request.dicom)])
    files = sorted(p for p in request.predictions.glob("*.nii.gz") if p.is_file())
    if not files:
        raise MissingInput(f"{request.predictions} holds no predicted label maps (<case>.nii.gz).")
    if request.fractional and "seg" not in request.formats:
        raise InvalidInput("--fractional writes a FRACTIONAL DICOM-SEG: add seg to --format.")
    existing = [p.name[:-7] for p in files if (request.output / p.name[:-7]).exists()]
    if existing and not request.overwrite:
        raise OutputExists(f"{request.output} already holds exports of {format_case_list(existing)}; pass "
                           f"--overwrite to replace them, or choose another -o.")
    return files


def _dataset_json(predictions: Path, dataset_json: str | os.PathLike | None) -> dict:
    from radconf.io.dataset_json import load_dataset_json

    path = Path(dataset_json) if dataset_json else predictions / "dataset.json"
    if not path.is_file():
        raise MissingInput(f"{path} does not exist: structure names come from the model's dataset.json (radconf_"
                           f"predict writes it into its output folder); pass --dataset_json FILE.")
    return load_dataset_json(path)


def export_dicom(prediction_dir: str | os.PathLike, dicom_dir: str | os.PathLike, output: str | os.PathLike, *,
                 formats: Sequence[str] = ("rtstruct",), key_file: str | os.PathLike | None = None,
                 dataset_json: str | os.PathLike | None = None, description: str = "", overwrite: bool = False,
                 series_by_case: Mapping[str, SourceSeries] | None = None, fractional: bool = False,
                 progress: bool = True) -> Path:
    """Exports every prediction of ``prediction_dir`` onto its CT series (see the module docstring).

    Args:
        prediction_dir: ``<case>.nii.gz`` label maps (and the model's dataset.json).
        dicom_dir: folder tree holding the source CT series.
        output: output folder (one subfolder per case).
        formats: among ``rtstruct``, ``seg``, ``segnrrd``.
        key_file: radconf_import_dicom's key file (case -> series); default: match by grid.
        dataset_json: structure names (default: ``prediction_dir/dataset.json``).
        description: the model, written into series and ROI generation descriptions.
        overwrite: replace earlier exports of the same cases.
        series_by_case: the series of each case when already known (radconf_predict on a DICOM input).
        fractional: the SEG is FRACTIONAL, from the probabilities saved with the prediction
            (:func:`probability_files`).
        progress: progress bar.

    Returns:
        The path of ``export_report.csv``.
    """
    request = ExportRequest(Path(prediction_dir), Path(dicom_dir), Path(output), tuple(formats),
                            Path(key_file) if key_file else None, description, overwrite, fractional)
    files = _check_request(request)
    structures = export_structures(_dataset_json(request.predictions, dataset_json))
    if fractional:
        missing = [p for f in files for p in probability_files(request.predictions, f.name[:-7], structures)
                   if not p.is_file()]
        if missing:
            raise MissingInput(f"--fractional: {missing[0]} does not exist ({len(missing)} probability file(s) "
                               f"missing); predict with --save_probabilities (confidence models: "
                               f"--level_probabilities).")
    key = read_key(request.key) if request.key else None
    if series_by_case is None:
        from radconf.dicom.scan import scan_folder

        table = series_geometry_table(scan_folder(request.dicom, skip_unreadable=True, progress=progress))
        series_by_case = _match_cases(files, table, key)
    return _export_all(request, files, structures, series_by_case, progress)


def _match_cases(files: Sequence[Path], table: Mapping[str, SourceSeries],
                 key: Mapping[str, str] | None) -> dict[str, SourceSeries]:
    from radconf.io.images import read_geometry

    matched = {}
    for path in files:
        case = path.name[:-7]
        if key is not None:
            uid = key.get(case)
            if uid is None or uid not in table:
                raise InvalidInput(f"{case}: " + ("not in the key file" if uid is None else
                                                  "its CT series (from the key file) is not in the DICOM folder")
                                   + "; give the DICOM folder the case was imported from and its key file.")
            matched[case] = table[uid]
        else:
            matched[case] = match_by_grid(case, read_geometry(path), table)
    return matched


def _export_all(request: ExportRequest, files: Sequence[Path], structures: Sequence[ExportStructure],
                series_by_case: Mapping[str, SourceSeries], progress: bool) -> Path:
    from tqdm import tqdm

    from radconf.io.files import removed_on_failure
    from radconf.io.images import read_label_image
    from radconf.io.tables import write_csv

    rows = []
    with removed_on_failure(request.output):
        for path in tqdm(files, desc="radconf_export_dicom", unit="case", disable=not progress):
            case = path.name[:-7]
            labels, _ = read_label_image(path)
            source = series_by_case[case]
            if labels.shape != source.geometry.shape:
                raise InvalidInput(f"{path}: shape {labels.shape} is not its CT series' {source.geometry.shape}.")
            fractions = (read_fractions(probability_files(request.predictions, case, structures), structures,
                                        labels.shape) if request.fractional else None)
            bounds = bound_masks(request.predictions, case, labels.shape) if "rtstruct" in request.formats else []
            written = write_case_outputs(request.output / case, case, labels, source, structures, request.formats,
                                         request.description, fractions, bounds)
            rows.extend(_report_rows(case, labels, source, structures, written))
        columns = ["case", "series", "structure", "voxels", "volume_cm3", "rtstruct_readback_dice", "files"]
        from radconf.scale.parts import part_file_name

        return write_csv(request.output / part_file_name("export_report.csv"), rows, columns)


def _report_rows(case: str, labels: np.ndarray, source: SourceSeries, structures: Sequence[ExportStructure],
                 written: Sequence[Path]) -> list[dict]:
    """Per structure: size, and the written RTSTRUCT read back with radconf's own reader against the prediction."""
    from radconf.dicom.structure_sets import rasterise_roi, read_structure_set

    rtstruct = next((p for p in written if p.name.endswith("_RTSTRUCT.dcm")), None)
    readback = {roi.name: roi for roi in read_structure_set(rtstruct).rois} if rtstruct else {}
    rows = []
    for structure in structures:
        mask = structure.mask(labels)
        dice = ""
        if structure.name in readback:
            back, _ = rasterise_roi(readback[structure.name], source.geometry)
            total = int(mask.sum()) + int(back.sum())
            dice = 1.0 if total == 0 else 2.0 * float(np.logical_and(mask, back).sum()) / total
        rows.append({"case": case, "series": str(getattr(source.headers[0], "series_description", "") or ""),
                     "structure": structure.name, "voxels": int(mask.sum()),
                     "volume_cm3": round(float(mask.sum()) * source.geometry.voxel_volume_mm3 / 1000.0, 3),
                     "rtstruct_readback_dice": dice, "files": "; ".join(p.name for p in written)})
    return rows
