"""radconf_predict on DICOM: CT series in, RTSTRUCT / DICOM-SEG / .seg.nrrd (and NIfTI) out, in one command.

A DICOM input folder (any tree holding CT series, no nnU-Net images) is converted series by series into a temporary
folder of ``CASE_0001_0000.nii.gz`` ... (cases in patient, study, series order; no patient identifier in the
names); the model predicts them there, and each prediction goes back onto its own series
(:func:`radconf.dicom.exporter.export_dicom`) as ``OUT/<case>/<case>_RTSTRUCT.dcm`` etc. With ``nifti`` among the
formats, nnU-Net's outputs are kept in ``OUT/nifti/``. ``OUT/cases.csv`` says which series each case is.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from radconf.errors import InvalidInput, MissingInput
from radconf.scale.parts import Part, in_part, part_file_name

OUTPUT_FORMATS = ("nifti", "rtstruct", "seg", "segnrrd")
_SNIFF_FILES = 200


def is_dicom_folder(folder: str | Path) -> bool:
    """Whether ``folder`` holds DICOM files and no nnU-Net images (``*_0000.*``): looks at up to 200 files."""
    folder = Path(folder)
    if not folder.is_dir() or any(folder.glob("*_0000.*")):
        return False
    for n, path in enumerate(p for p in folder.rglob("*") if p.is_file()):
        if n >= _SNIFF_FILES:
            break
        try:
            with open(path, "rb") as handle:
                if handle.read(132)[128:132] == b"DICM":
                    return True
        except OSError:
            continue
    return False


def check_output_formats(formats: Sequence[str], dicom_input: bool) -> tuple[str, ...]:
    """``--output_format`` checked against the input kind."""
    formats = tuple(dict.fromkeys(formats or ("nifti",)))
    bad = [f for f in formats if f not in OUTPUT_FORMATS]
    if bad:
        raise InvalidInput(f"--output_format {' '.join(bad)}: choose among {', '.join(OUTPUT_FORMATS)}.")
    if not dicom_input and formats != ("nifti",):
        raise InvalidInput(f"--output_format {' '.join(formats)} needs a DICOM CT series as -i (the RTSTRUCT must "
                           f"reference it); for predictions of NIfTI images use radconf_export_dicom --dicom DIR.")
    return formats


@contextmanager
def dicom_as_nifti(folder: str | Path, progress: bool = True, part: Part = Part()) -> Iterator[tuple[Path, dict]]:
    """Yields a temporary folder of the folder's CT series as nnU-Net images, and case -> SourceSeries; with a
    ``part`` only that part's series are read (cases named from every series, so the names agree across parts)."""
    from tqdm import tqdm

    from radconf.dicom.exporter import series_geometry_table
    from radconf.dicom.matching import case_names, series_order
    from radconf.dicom.scan import scan_folder
    from radconf.dicom.series import load_series
    from radconf.io.files import atomic_write_image

    table = series_geometry_table(scan_folder(Path(folder), progress=False), strict=True)
    if not table:
        raise MissingInput(f"No usable CT series in {folder}; point -i at the folder of the CT export.")
    order = series_order({uid: source.headers for uid, source in table.items()})
    names = case_names([table[u].headers for u in order], keep_patient_ids=False)
    with tempfile.TemporaryDirectory(prefix="radconf_dicom_input_") as tmp:
        images = Path(tmp) / "images"
        series_by_case = {}
        chosen = set(part.select(names))
        series = [(case, uid) for case, uid in zip(names, order) if case in chosen]
        for case, uid in tqdm(series, desc="reading CT series", unit="series", disable=not progress):
            source = table[uid]
            volume = load_series(source.headers)
            atomic_write_image(images / f"{case}_0000.nii.gz", source.geometry.to_image(volume.hu))
            series_by_case[case] = source
        yield images, series_by_case


def write_dicom_outputs(predictions: Path, output: Path, dicom_folder: Path, formats: Sequence[str],
                        series_by_case: dict, description: str, fractional: bool = False) -> None:
    """Exports the DICOM formats into ``output/<case>/``, keeps nnU-Net's outputs in ``output/nifti`` if asked, and
    writes ``output/cases.csv``."""
    from radconf.dicom.exporter import export_dicom
    from radconf.io.tables import write_csv

    dicom_formats = [f for f in formats if f != "nifti"]
    if dicom_formats:
        export_dicom(predictions, dicom_folder, output, formats=dicom_formats, description=description,
                     overwrite=True, series_by_case=series_by_case, fractional=fractional and "seg" in formats)
    if "nifti" in formats:
        target = output / "nifti"
        if target.exists() and not in_part():  # a part adds its cases to the other parts'
            shutil.rmtree(target)
        shutil.copytree(predictions, target, dirs_exist_ok=True)
    rows = [{"case": case, "series_description": str(s.headers[0].series_description or ""),
             "series_instance_uid": s.series_instance_uid, "slices": s.geometry.n_slices}
            for case, s in series_by_case.items()]
    write_csv(output / part_file_name("cases.csv"), rows,
              ["case", "series_description", "series_instance_uid", "slices"])
