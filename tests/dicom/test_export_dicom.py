"""radconf_export_dicom and radconf_predict on DICOM: label maps back onto their CT series.

Each output is read back with an independent reader: the RTSTRUCT with radconf's centre-inclusion reader and with
dcmrtstruct2nii (test-only oracle), the SEG with highdicom, the .seg.nrrd with slicerio; all must give the exported
masks voxel for voxel.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from radconf.cli.export_dicom import main as export_main
from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.identity import PatientStudy
from radconf.dicom.structure_sets import rasterise_roi, read_structure_set
from radconf.dicom.tps_export import write_tps_export

SHAPE = (5, 18, 22)


def _geometry(origin=(-60.3, -40.45, 7.5)) -> SeriesGeometry:
    positions = np.asarray(origin) + np.arange(SHAPE[0])[:, None] * np.array([0.0, 0.0, 3.0])
    return SeriesGeometry(SHAPE[1], SHAPE[2], (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.9, 1.1), positions)


def _labels() -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[0:5, 2:15, 3:19] = 1
    labels[1:4, 5:11, 6:13] = 2
    labels[2, 7:9, 8:10] = 0  # a hole in the gtv, inside the bladder ring
    labels[1:4, 14:17, 1:4] = 3
    labels[3, 0, 0] = 3  # a corner voxel, on the image border
    return labels


@pytest.fixture
def case(tmp_path) -> dict:
    dicom = tmp_path / "dicom"
    hu = np.zeros(SHAPE, np.int16)
    write_tps_export(dicom / "p1", hu, _geometry(), PatientStudy("PID", "Doe^J", "1.2.3.4"), [])
    write_tps_export(dicom / "p2", hu, _geometry((0.0, 0.0, 0.0)), PatientStudy("PID2", "Roe^R", "1.2.3.5"), [])
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    sitk.WriteImage(_geometry().to_image(_labels()), str(predictions / "CASE_0001.nii.gz"))
    (predictions / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "bladder": 1, "gtv": 2, "rectum": 3}, "channel_names": {"0": "CT"},
         "file_ending": ".nii.gz", "numTraining": 1}))
    return {"dicom": dicom, "predictions": predictions, "out": tmp_path / "out"}


def _readback(path: Path, geometry: SeriesGeometry) -> dict[str, np.ndarray]:
    return {roi.name: rasterise_roi(roi, geometry)[0] for roi in read_structure_set(path).rois}


def test_export_all_formats_read_back_exactly(case, capsys):
    import highdicom
    import slicerio

    out = case["out"]
    assert export_main(["-i", str(case["predictions"]), "--dicom", str(case["dicom"]), "-o", str(out), "--format",
                        "rtstruct", "seg", "segnrrd", "--description", "501:nnUNetTrainer:fold0"]) == 0
    labels = _labels()
    names = {"bladder": 1, "gtv": 2, "rectum": 3}
    back = _readback(out / "CASE_0001" / "CASE_0001_RTSTRUCT.dcm", _geometry())
    for name, value in names.items():
        assert np.array_equal(back[name], labels == value), name
    ds = pydicom.dcmread(out / "CASE_0001" / "CASE_0001_RTSTRUCT.dcm")
    assert ds.ApprovalStatus == "UNAPPROVED" and ds.Manufacturer == "radconf"
    assert {str(r.ROIGenerationAlgorithm) for r in ds.StructureSetROISequence} == {"AUTOMATIC"}
    assert "501:nnUNetTrainer:fold0" in ds.SeriesDescription
    reference = pydicom.dcmread(next((case["dicom"] / "p1" / "CT").iterdir()), stop_before_pixels=True)
    assert ds.PatientID == reference.PatientID and ds.StudyInstanceUID == reference.StudyInstanceUID
    referenced = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == reference.SeriesInstanceUID
    seg = highdicom.seg.segread(out / "CASE_0001" / "CASE_0001_SEG.dcm")
    assert [seg.get_segment_description(i).SegmentLabel for i in (1, 2, 3)] == list(names)
    segnrrd = slicerio.read_segmentation(str(out / "CASE_0001" / "CASE_0001.seg.nrrd"))
    assert sorted(s["name"] for s in segnrrd["segments"]) == sorted(names)
    report = (out / "export_report.csv").read_text()
    assert report.count(",1.0,") == 3
    assert "PID" not in capsys.readouterr().out


def test_seg_frames_match_the_label_map(case):
    import highdicom

    from radconf.dicom.exporter import export_dicom

    export_dicom(case["predictions"], case["dicom"], case["out"], formats=["seg"], progress=False)
    seg = highdicom.seg.segread(case["out"] / "CASE_0001" / "CASE_0001_SEG.dcm")
    ct = sorted((case["dicom"] / "p1" / "CT").iterdir())
    headers = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in ct),
                     key=lambda h: float(h.ImagePositionPatient[2]))
    volume = seg.get_pixels_by_source_instance(source_sop_instance_uids=[h.SOPInstanceUID for h in headers],
                                               segment_numbers=[1, 2, 3], combine_segments=True,
                                               skip_overlap_checks=True)
    assert np.array_equal(np.asarray(volume), _labels())


def test_confidence_levels_export_as_nested_rois(case):
    from radconf.dicom.exporter import export_dicom

    levels = np.zeros(SHAPE, np.uint8)
    levels[1:4, 3:14, 3:18] = 1
    levels[1:4, 5:12, 5:15] = 2
    levels[2, 7:10, 7:12] = 3
    sitk.WriteImage(_geometry().to_image(levels), str(case["predictions"] / "CASE_0001.nii.gz"))
    (case["predictions"] / "dataset.json").write_text(json.dumps(
        {"labels": {"background": 0, "level_1": 1, "level_2": 2, "level_3": 3},
         "radconf": {"ordinal": True, "levels": 3, "structure": "gtv"}}))
    export_dicom(case["predictions"], case["dicom"], case["out"], formats=["rtstruct"], progress=False)
    path = case["out"] / "CASE_0001" / "CASE_0001_RTSTRUCT.dcm"
    back = _readback(path, _geometry())
    assert list(back) == ["gtv_level>=1", "gtv_level>=2", "gtv_level>=3"]
    for c in (1, 2, 3):
        assert np.array_equal(back[f"gtv_level>={c}"], levels >= c)
    colours = [tuple(r.ROIDisplayColor) for r in pydicom.dcmread(path).ROIContourSequence]
    assert len(set(colours)) == 3


def test_rtstruct_read_back_by_dcmrtstruct2nii(case, tmp_path, monkeypatch):
    dcmrtstruct2nii = pytest.importorskip("dcmrtstruct2nii")
    monkeypatch.setattr(pydicom, "read_file", pydicom.dcmread, raising=False)  # dcmrtstruct2nii 5 predates pydicom 3
    from radconf.dicom.exporter import export_dicom

    export_dicom(case["predictions"], case["dicom"], case["out"], formats=["rtstruct"], progress=False)
    oracle = tmp_path / "oracle"
    dcmrtstruct2nii.dcmrtstruct2nii(str(case["out"] / "CASE_0001" / "CASE_0001_RTSTRUCT.dcm"),
                                    str(case["dicom"] / "p1" / "CT"), str(oracle), convert_original_dicom=False)
    labels = _labels()
    for name, value in {"bladder": 1, "gtv": 2, "rectum": 3}.items():
        mask = sitk.GetArrayFromImage(sitk.ReadImage(str(oracle / f"mask_{name}.nii.gz"))) > 0
        assert np.array_equal(mask, labels == value), name


def test_refusals_name_the_fix(case, capsys):
    base = ["-i", str(case["predictions"]), "--dicom", str(case["dicom"])]
    assert export_main([*base, "-o", str(case["dicom"] / "out")]) == 2
    assert "--dicom" in capsys.readouterr().err
    twin = case["dicom"] / "p3"  # a second series on the same grid: the grid no longer says which one
    write_tps_export(twin, np.zeros(SHAPE, np.int16), _geometry(), PatientStudy("X", "Y^Z", "1.2.3.6"), [])
    assert export_main([*base, "-o", str(case["out"])]) == 2
    assert "--key" in capsys.readouterr().err and not case["out"].exists()
    shutil.rmtree(twin)
    (case["predictions"] / "dataset.json").unlink()
    assert export_main([*base, "-o", str(case["out"])]) == 2
    assert "--dataset_json" in capsys.readouterr().err


def test_predict_on_a_dicom_series_writes_rtstruct_onto_it(organ_model, tmp_path, capsys):
    from radconf.cli import predict

    phantom = organ_model.phantom.folder
    image_path = min((phantom / "imagesTs").glob("*_0000.nii.gz"))
    image = sitk.ReadImage(str(image_path))
    dicom = tmp_path / "ct_export"
    write_tps_export(dicom / "patient", sitk.GetArrayFromImage(image).astype(np.int16),
                     SeriesGeometry.from_image(image), PatientStudy("PID9", "Doe^K", "1.2.3.9"), [])
    out = tmp_path / "to_tps"
    common = ["-m", organ_model.spec, "-device", "cpu", "--disable_tta", "-np", "1"]
    assert predict.main(["-i", str(dicom), "-o", str(out), *common, "--output_format", "rtstruct", "nifti"]) == 0
    reference = tmp_path / "reference"
    assert predict.main(["-i", str(image_path.parent), "-o", str(reference), *common]) == 0
    capsys.readouterr()
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(reference / f"{image_path.name[:-12]}.nii.gz")))
    predicted = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "nifti" / "CASE_0001.nii.gz")))
    assert np.array_equal(predicted, expected)
    labels = json.loads((phantom / "dataset.json").read_text())["labels"]
    back = _readback(out / "CASE_0001" / "CASE_0001_RTSTRUCT.dcm", SeriesGeometry.from_image(image))
    for name, value in labels.items():
        if name != "background":
            assert np.array_equal(back[name], expected == value), name
    assert "CASE_0001" in (out / "cases.csv").read_text()
    assert predict.main(["-i", str(image_path.parent), "-o", str(tmp_path / "x"), *common,
                         "--output_format", "rtstruct"]) == 2
    assert "radconf_export_dicom" in capsys.readouterr().err


def test_fractional_seg_from_saved_probabilities(case, capsys):
    import highdicom

    from radconf.dicom.exporter import export_dicom

    rng = np.random.default_rng(4)
    logits = rng.normal(size=(4, *SHAPE))
    probabilities = (np.exp(logits) / np.exp(logits).sum(0)).astype(np.float32)
    args = ["-i", str(case["predictions"]), "--dicom", str(case["dicom"]), "-o", str(case["out"]), "--format", "seg",
            "--fractional"]
    assert export_main(args) == 2  # no probabilities saved yet
    assert "--save_probabilities" in capsys.readouterr().err and not case["out"].exists()
    np.savez_compressed(case["predictions"] / "CASE_0001.npz", probabilities=probabilities)
    export_dicom(case["predictions"], case["dicom"], case["out"], formats=["seg"], fractional=True, progress=False)
    seg = highdicom.seg.segread(case["out"] / "CASE_0001" / "CASE_0001_SEG.dcm")
    assert seg.SegmentationType == "FRACTIONAL"
    headers = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in (case["dicom"] / "p1" / "CT").iterdir()),
                     key=lambda h: float(h.ImagePositionPatient[2]))
    for number in (1, 2, 3):
        got = seg.get_pixels_by_source_instance(source_sop_instance_uids=[h.SOPInstanceUID for h in headers],
                                                segment_numbers=[number], rescale_fractional=True)[..., 0]
        assert np.abs(np.asarray(got, np.float64) - probabilities[number]).max() <= 0.5 / 255 + 1e-6, number
