"""radconf_import_dicom end to end on small TPS exports written with radconf's own writers.

Two patients: P1 with a clinical structure set (bladder, rectum, gtv) and three reader structure sets of the GTV
(reader1 twice, reader2 once); P2 with another ROI spelling, no rectum, an unmapped couch and an empty ROI. The
expected label maps are composed by hand from the masks written (smallest structure wins shared voxels).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli.import_dicom import main as import_main
from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.identity import PatientStudy
from radconf.dicom.tps_export import StructureSetContent, write_tps_export

SHAPE = (6, 20, 24)  # slices, rows, columns
PATIENT_IDS = ("SECRET-ID-17", "SECRET-ID-42")
PATIENT_NAMES = ("Doe^Jane", "Roe^Richard")


def _geometry(origin=(-120.35, -80.6, 14.25)) -> SeriesGeometry:
    positions = np.asarray(origin) + np.arange(SHAPE[0])[:, None] * np.array([0.0, 0.0, 2.5])
    return SeriesGeometry(SHAPE[1], SHAPE[2], (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.3, 0.7), positions)


def _box(z, y, x) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    mask[z[0]:z[1], y[0]:y[1], x[0]:x[1]] = True
    return mask


def _masks() -> dict[str, np.ndarray]:
    gtv = _box((1, 5), (6, 12), (8, 15))
    gtv[2, 8:10, 10:12] = False  # a hole: an inner contour
    return {"bladder": _box((0, 6), (4, 16), (5, 20)), "rectum": _box((1, 4), (16, 19), (2, 9)), "gtv": gtv}


def _readers() -> dict[str, np.ndarray]:
    return {"reader1_1": _box((1, 5), (6, 12), (8, 16)), "reader1_2": _box((1, 5), (5, 12), (8, 15)),
            "reader2_1": _box((2, 5), (6, 13), (7, 15))}


def _patient(i: int) -> PatientStudy:
    return PatientStudy(PATIENT_IDS[i], PATIENT_NAMES[i], f"1.2.826.0.1.3680043.10.{i}.1")


def _export(root: Path) -> Path:
    masks, readers = _masks(), _readers()
    hu = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 300 - 100).astype(np.int16)
    sets = [StructureSetContent("Clinical", {"Bladder": masks["bladder"], "Rectum": masks["rectum"],
                                             "GTV": masks["gtv"]}, "20240101080000")]
    sets += [StructureSetContent(name.split("_")[0], {"GTV": mask}, f"2024010{i + 2}090000")
             for i, (name, mask) in enumerate(readers.items())]
    write_tps_export(root / "patient_a", hu, _geometry(), _patient(0), sets, ct_file_names=[
        f"img{(7 * k) % SHAPE[0]}.dcm" for k in range(SHAPE[0])])  # names do not follow the slice order
    empty = np.zeros(SHAPE, bool)
    write_tps_export(root / "nested" / "patient_b", hu + 1, _geometry((-90.0, -70.0, -30.0)), _patient(1),
                     [StructureSetContent("Clinical", {"BLADDER ": masks["bladder"], "gtv": masks["gtv"],
                                                       "Couch": masks["rectum"], "Rectum": empty})])
    (root / "notes.txt").write_text("not DICOM")
    return root


def _tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def tps_export(tmp_path_factory) -> Path:
    return _export(tmp_path_factory.mktemp("tps") / "export")


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_import_writes_the_dataset_readers_report_and_key(tps_export, nnunet_dirs, tmp_path, capsys):
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"bladder": ["Bladder"], "rectum": ["Rectum"], "gtv": ["GTV"]}))
    before = _tree_hash(tps_export)
    code = import_main([str(tps_export), "-d", "610", "-n", "Pelvis", "--structures", str(mapping),
                        "--multi_reader", "gtv"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert _tree_hash(tps_export) == before  # the input is only read
    folder = nnunet_dirs["nnUNet_raw"] / "Dataset610_Pelvis"
    masks = _masks()
    expected = np.zeros(SHAPE, np.uint8)  # painting order: largest first, the smallest wins
    for name, value in (("bladder", 1), ("gtv", 3), ("rectum", 2)):
        expected[masks[name]] = value
    assert np.array_equal(_array(folder / "labelsTr" / "CASE_0001.nii.gz"), expected)
    second = np.where(masks["bladder"], 1, 0).astype(np.uint8)
    second[masks["gtv"]] = 3
    assert np.array_equal(_array(folder / "labelsTr" / "CASE_0002.nii.gz"), second)
    image = sitk.ReadImage(str(folder / "imagesTr" / "CASE_0001_0000.nii.gz"))
    assert np.allclose(image.GetSpacing(), (0.7, 1.3, 2.5)) and np.allclose(image.GetOrigin(), (-120.35, -80.6, 14.25))
    hu = (np.arange(np.prod(SHAPE)).reshape(SHAPE) % 300 - 100).astype(np.int16)
    assert np.array_equal(sitk.GetArrayFromImage(image), hu)
    for name, mask in _readers().items():
        assert np.array_equal(_array(folder / "readers" / "CASE_0001" / f"{name}.nii.gz") > 0, mask), name
    assert sorted(p.name for p in (folder / "readers" / "CASE_0001").iterdir()) == [
        "Clinical_1.nii.gz", "reader1_1.nii.gz", "reader1_2.nii.gz", "reader2_1.nii.gz"]
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "bladder": 1, "rectum": 2, "gtv": 3}
    assert dataset["radconf"]["missing_structures"] == {"CASE_0002": ["rectum"]}
    assert dataset["radconf"]["unmapped_rois"] == ["Couch"] and dataset["numTraining"] == 2
    report = (folder / "import_report.csv").read_text()
    assert "CASE_0002" in report and "missing" in report and "Couch" in report
    key = (nnunet_dirs["nnUNet_raw"] / "Dataset610_Pelvis_key.csv").read_text()
    assert PATIENT_IDS[0] in key and PATIENT_IDS[1] in key
    for path in folder.rglob("*"):  # no patient identifier inside the dataset, nor in the printed summary
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in (*PATIENT_IDS, *PATIENT_NAMES)), path
    assert not any(s in out.out + out.err for s in (*PATIENT_IDS, *PATIENT_NAMES))
    assert "rectum: found in 1/2 cases, missing in CASE_0002" in out.out


def test_volumes_in_the_report_are_the_masks_volumes(tps_export, nnunet_dirs):
    from radconf.dicom.importer import import_dicom

    result = import_dicom(tps_export, 611, "Volumes", raw_root=nnunet_dirs["nnUNet_raw"], progress=False)
    first = result.results[0]
    voxel_cm3 = 0.7 * 1.3 * 2.5 / 1000.0
    assert [t.structure_set.label for t in result.sources[0].trials] == ["Clinical", "reader1", "reader1", "reader2"]
    # no mapping file: every normalised ROI name is a structure (couch included)
    assert set(first.structures) == {"bladder", "rectum", "gtv"}
    assert first.structures["gtv"]["volume_cm3"] == pytest.approx(_masks()["gtv"].sum() * voxel_cm3)
    assert "couch" in result.results[1].structures


def test_refusals_write_nothing(tps_export, nnunet_dirs, tmp_path, capsys):
    raw = nnunet_dirs["nnUNet_raw"]
    broken = tmp_path / "broken"
    _export(broken)
    ct = sorted((broken / "patient_a" / "CT").iterdir())
    positions = {p: float(__import__("pydicom").dcmread(p, stop_before_pixels=True).ImagePositionPatient[2])
                 for p in ct}
    middle = sorted(positions, key=positions.get)[3]
    middle.unlink()  # a missing slice
    (broken / "nested" / "patient_b" / "CT").rename(tmp_path / "elsewhere")  # its structure set is orphaned
    code = import_main([str(broken), "-d", "612", "-n", "Broken"])
    err = capsys.readouterr().err
    assert code == 2
    assert "slices are missing" in err and "between 19.25 and 24.25 mm" in err
    assert "RTSTRUCT_Clinical_1.dcm" in err and "not in the input" in err
    assert not any(raw.iterdir())
    assert import_main([str(tps_export), "-d", "613", "-n", "Inside", "--key", str(tps_export / "key.csv")]) == 2
    assert "key" in capsys.readouterr().err and not (tps_export / "key.csv").exists()
    assert import_main([str(tps_export), "-d", "614", "--multi_reader", "liver"]) == 2
    assert "--multi_reader liver" in capsys.readouterr().err
    assert not any(raw.iterdir())


def test_duplicate_names_refused_and_outside_contours_clipped_with_a_warning(tmp_path, nnunet_dirs, capsys):
    import pydicom

    export = tmp_path / "export"
    mask = _box((1, 3), (0, 5), (0, 6))  # touches the image corner
    paths = write_tps_export(export, np.zeros(SHAPE, np.int16), _geometry(), _patient(0),
                             [StructureSetContent("Clinical", {"Bladder": mask, "GTV": _box((2, 3), (8, 9), (8, 9))})])
    ds = pydicom.dcmread(paths[0])
    contour = ds.ROIContourSequence[0].ContourSequence[0]
    points = np.asarray(contour.ContourData, float).reshape(-1, 3)
    for axis in (0, 1):  # the contour's first-row and first-column edges moved 5 mm beyond the image
        points[points[:, axis] == points[:, axis].min(), axis] -= 5.0
    contour.ContourData = [f"{v:.4f}" for v in points.ravel()]
    ds.save_as(paths[0])
    assert import_main([str(export), "-d", "615", "-n", "Clipped"]) == 0
    err = capsys.readouterr().err
    assert "contour point(s) lie outside the image; the mask is clipped" in err and "CASE_0001 Clinical_1" in err
    labels = _array(nnunet_dirs["nnUNet_raw"] / "Dataset615_Clipped" / "labelsTr" / "CASE_0001.nii.gz")
    assert labels[1, 0, 0] == 1 and labels[2, 8, 8] == 2
    ds.StructureSetROISequence[1].ROIName = "bladder"  # two ROIs of one name (case differs only)
    ds.save_as(paths[0])
    assert import_main([str(export), "-d", "616", "-n", "Twice"]) == 2
    err = capsys.readouterr().err
    assert "two ROIs are named" in err and str(paths[0]) in err
    assert not (nnunet_dirs["nnUNet_raw"] / "Dataset616_Twice").exists()


def test_reader_fractions_and_reader_pattern(tps_export, tmp_path, nnunet_dirs):
    from radconf.dicom.importer import import_dicom

    raw = nnunet_dirs["nnUNet_raw"]
    result = import_dicom(tps_export, 617, "Soft", multi_reader=["gtv"], reference_reader="Clinical",
                          reader_fractions=4, raw_root=raw, progress=False)
    soft = _array(result.folder / "readers" / "CASE_0001" / "reader1_1.nii.gz")
    assert soft.dtype == np.float32 and np.array_equal(soft > 0.5, _readers()["reader1_1"])  # box edges on voxel edges
    assert not (result.folder / "readers" / "CASE_0001" / "Clinical_1.nii.gz").exists()  # the reference is no reader
    export = tmp_path / "suffixes"
    rois = {"GTV_R1": _readers()["reader1_1"], "GTV_R2": _readers()["reader2_1"], "Bladder": _masks()["bladder"]}
    write_tps_export(export, np.zeros(SHAPE, np.int16), _geometry(), _patient(0),
                     [StructureSetContent("Clinical", rois)])
    result = import_dicom(export, 618, "Suffix", multi_reader=["gtv"], raw_root=raw, progress=False,
                          reader_pattern=r"(?P<structure>.+)_R(?P<reader>\d)")
    assert result.results[0].structures.keys() == {"gtv", "bladder"}
    for name in ("reader1_1", "reader2_1"):
        got = _array(result.folder / "readers" / "CASE_0001" / f"{name}.nii.gz") > 0
        assert np.array_equal(got, _readers()[name]), name
