"""CT series and RTSTRUCT writers: read back with pydicom, SimpleITK and rt-utils against hand-made volumes/points."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.valuerep import is_valid_ds

from radconf.dicom.ct_writer import CT_IMAGE_STORAGE, write_ct_series
from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.identity import PatientStudy, ReferencedSeries, new_uid, referenced_series_of, software_version
from radconf.dicom.rtstruct_writer import (
    RT_STRUCTURE_SET_STORAGE,
    RoiContours,
    build_rtstruct,
    format_ds,
    write_dataset,
)
from radconf.errors import InvalidInput

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
# typical CT grid values: 0.9765625 mm pixels, origin on a 1/1024 mm lattice -> voxel edges need 6+ decimals
SPACING = (0.9765625, 0.87890625)  # (between rows, between columns)
NON_UNIFORM_Z = (-101.25, -98.75, -96.25, -91.25, -90.0)


def patient() -> PatientStudy:
    return PatientStudy("RC-0001", "Tester^Ann", new_uid(), study_date="20240102", study_time="101500",
                        study_id="S1", accession_number="A77", patient_birth_date="19700101", patient_sex="F",
                        referring_physician_name="Doc^Who")


def geometry(z=NON_UNIFORM_Z, rows=12, columns=16, x=(1.0, 0.0, 0.0), y=(0.0, 1.0, 0.0)) -> SeriesGeometry:
    origin = np.array([-249.51171875, -180.123046875, 0.0])
    normal = np.cross(x, y)
    return SeriesGeometry(rows, columns, x, y, SPACING, np.array([origin + zz * normal for zz in z]))


def read_series(folder) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]


# --- identity -----------------------------------------------------------------------------------------------------

def test_identity_copies_patient_and_study_and_hides_them_in_repr():
    p = patient()
    assert "RC-0001" not in repr(p) and "Tester" not in repr(p) and "1970" not in repr(p)
    ds = pydicom.Dataset()
    p.copy_to(ds)
    assert (ds.PatientID, str(ds.PatientName), ds.StudyInstanceUID, ds.StudyDate, ds.AccessionNumber) == \
        ("RC-0001", "Tester^Ann", p.study_instance_uid, "20240102", "A77")
    assert "SpecificCharacterSet" not in ds
    assert PatientStudy.from_dataset(ds) == p
    umlaut = PatientStudy("X", "Müller^Jörg", new_uid())
    umlaut.copy_to(ds)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert software_version() and new_uid() != new_uid()
    assert pydicom.uid.UID(new_uid()).is_valid
    with pytest.raises(InvalidInput, match="StudyInstanceUID"):
        PatientStudy.from_dataset(pydicom.Dataset())


# --- DS formatting ------------------------------------------------------------------------------------------------

def test_format_ds_hand_values_and_bulk_precision():
    values = [0.0, -0.0000004, 100.0, -12345678.9, 0.5, 1.234567891, -0.9999996, 99999999.999999, -249.51171875,
              -0.0625, 7.0000004, 1e-7 * 6]
    expected = ["0", "0", "100", "-12345678.9", "0.5", "1.234568", "-1", "99999999.999999", "-249.511719",
                "-0.0625", "7", "0.000001"]
    assert format_ds(np.array(values)) == expected
    huge = format_ds(np.array([1e9, -3.5e12, 12.5]))  # fallback path beyond 1e8
    assert all(is_valid_ds(v) and len(v) <= 16 for v in huge)
    assert np.allclose([float(v) for v in huge], [1e9, -3.5e12, 12.5])
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-700, 700, 200_000), rng.uniform(-1e7, 1e7, 1000),
                        np.round(rng.normal(0, 50, 999))])
    strings = format_ds(x)
    assert max(map(len, strings)) <= 16 and all(is_valid_ds(s) for s in strings[::97])
    assert np.max(np.abs(np.array(strings, dtype=float) - x)) <= 5.0000001e-7
    with pytest.raises(InvalidInput, match="not finite"):
        format_ds(np.array([1.0, np.nan]))


# --- CT series ----------------------------------------------------------------------------------------------------

def test_ct_series_non_uniform_positions_shuffled_names_pixels(tmp_path):
    g = geometry()
    hu = np.random.default_rng(1).integers(-1024, 3000, g.shape).astype(np.int16)
    names = ["b.dcm", "e.dcm", "a.dcm", "d.dcm", "c.dcm"]  # slice k -> names[k]: name order is not slice order
    ref = write_ct_series(hu, g, tmp_path, patient(), series_description="phantom", file_names=names)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # no temporary files left behind
    for k, name in enumerate(names):
        ds = pydicom.dcmread(tmp_path / name)
        assert ds.file_meta.TransferSyntaxUID == EXPLICIT_VR_LE and ds.SOPClassUID == CT_IMAGE_STORAGE
        assert ds.SOPInstanceUID == ref.sop_instance_uids[k] and ds.InstanceNumber == k + 1
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], g.positions[k], atol=1e-6)
        assert float(ds.SliceLocation) == pytest.approx(g.slice_positions[k], abs=1e-6)
        np.testing.assert_allclose([float(v) for v in ds.PixelSpacing], SPACING, atol=1e-9)
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert (ds.PixelRepresentation, ds.BitsAllocated, float(ds.RescaleSlope), float(ds.RescaleIntercept)) == \
            (1, 16, 1.0, 0.0)
        np.testing.assert_array_equal(ds.pixel_array, hu[k])
        assert ds.Manufacturer == "radconf" and ds.Modality == "CT" and ds.SeriesDescription == "phantom"
        assert "KVP" in ds and list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert ds.StudyInstanceUID == ref.patient.study_instance_uid and ds.PatientID == "RC-0001"
    headers = sorted(read_series(tmp_path), key=lambda d: int(d.InstanceNumber))
    assert referenced_series_of(headers) == ref


def test_ct_series_read_by_simpleitk_with_same_grid(tmp_path):
    g = geometry(z=(-10.0, -7.5, -5.0, -2.5), x=(1.0, 0.0, 0.0), y=(0.0, 0.0, -1.0))  # coronal, axis-aligned
    hu = np.rint(np.random.default_rng(2).normal(0, 300, g.shape))  # float HU: rounded
    write_ct_series(hu + 0.2, g, tmp_path, patient())
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path)))
    image = reader.Execute()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), hu)
    np.testing.assert_allclose(image.GetSpacing(), g.spacing, atol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), g.positions[0], atol=1e-5)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), g.direction, atol=1e-6)
    assert SeriesGeometry.from_image(image) == g


def test_ct_series_rejects_bad_input(tmp_path):
    g = geometry()
    with pytest.raises(InvalidInput, match="shape"):
        write_ct_series(np.zeros((5, 16, 12)), g, tmp_path, patient())
    with pytest.raises(InvalidInput, match="16-bit"):
        write_ct_series(np.full(g.shape, 40000.0), g, tmp_path, patient())
    with pytest.raises(InvalidInput, match="NaN"):
        write_ct_series(np.full(g.shape, np.nan), g, tmp_path, patient())
    with pytest.raises(InvalidInput, match="file_names"):
        write_ct_series(np.zeros(g.shape), g, tmp_path, patient(), file_names=["a.dcm"] * 5)
    assert not list(tmp_path.iterdir())


# --- RTSTRUCT -----------------------------------------------------------------------------------------------------

def edge_square(g: SeriesGeometry, k: int, i0: int, i1: int, j0: int, j1: int) -> np.ndarray:
    """Patient points of the voxel-edge outline of columns i0..i1, rows j0..j1 (corners at half-integers)."""
    ij = np.array([[i0 - 0.5, j0 - 0.5], [i1 + 0.5, j0 - 0.5], [i1 + 0.5, j1 + 0.5], [i0 - 0.5, j1 + 0.5]])
    return g.index_to_patient(ij, k)


def written_series(tmp_path, g: SeriesGeometry) -> ReferencedSeries:
    return write_ct_series(np.zeros(g.shape, np.int16), g, tmp_path / "ct", patient())


@pytest.fixture
def structure_set(tmp_path):
    """Three ROIs (two contours on different slices, an outer contour with a hole, none) written and read back."""
    g = geometry()
    ref = written_series(tmp_path, g)
    circle = g.index_to_patient(np.stack([7.5 + 3.3 * np.cos(np.linspace(0, 6, 40)),
                                          5.5 + 2.7 * np.sin(np.linspace(0, 6, 40))], axis=1), 3)
    rois = [RoiContours(1, "GTVp", (255, 0, 0), [(0, edge_square(g, 0, 2, 5, 3, 6)), (3, circle)],
                        interpreted_type="GTV", generation_description="model 501"),
            RoiContours(2, "Lung_L", (0, 128, 255), [(4, edge_square(g, 4, 0, 15, 0, 11)),
                                                      (4, edge_square(g, 4, 6, 8, 4, 5)[::-1])]),  # hole
            RoiContours(5, "Empty", (1, 2, 3), [])]
    ds = build_rtstruct(ref, rois, label="radconf auto contours", description="test", series_description="auto",
                        manufacturer_model="501")
    path = write_dataset(ds, tmp_path / "rs" / "RS.dcm")
    assert [p.name for p in path.parent.iterdir()] == ["RS.dcm"]  # no temporary file left
    return g, ref, rois, ds, pydicom.dcmread(path)


def test_rtstruct_attributes_and_references(structure_set):
    _, ref, _, _, back = structure_set
    for keyword in ("SOPClassUID", "SOPInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
                    "AccessionNumber", "Modality", "SeriesInstanceUID", "SeriesNumber", "OperatorsName",
                    "Manufacturer", "SoftwareVersions", "ManufacturerModelName", "StructureSetLabel",
                    "StructureSetDate", "StructureSetTime", "ReferencedFrameOfReferenceSequence",
                    "StructureSetROISequence", "ROIContourSequence", "RTROIObservationsSequence", "ApprovalStatus"):
        assert keyword in back, keyword
    assert back.file_meta.TransferSyntaxUID == EXPLICIT_VR_LE and back.preamble is not None
    assert (back.SOPClassUID, back.Modality, back.Manufacturer, back.ApprovalStatus) == \
        (RT_STRUCTURE_SET_STORAGE, "RTSTRUCT", "radconf", "UNAPPROVED")
    assert back.StructureSetLabel == "radconf auto contours"[:16] and back.ManufacturerModelName == "501"
    assert (back.PatientID, back.StudyInstanceUID) == ("RC-0001", ref.patient.study_instance_uid)
    assert back.SeriesInstanceUID != ref.series_instance_uid and back.SeriesDescription == "auto"
    frame = back.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == ref.frame_of_reference_uid
    series = frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == ref.series_instance_uid
    assert [c.ReferencedSOPInstanceUID for c in series.ContourImageSequence] == list(ref.sop_instance_uids)
    assert [(r.ROINumber, r.ROIName, r.ROIGenerationAlgorithm) for r in back.StructureSetROISequence] == \
        [(1, "GTVp", "AUTOMATIC"), (2, "Lung_L", "AUTOMATIC"), (5, "Empty", "AUTOMATIC")]
    assert back.StructureSetROISequence[0].ROIGenerationDescription == "model 501"
    assert all(r.ReferencedFrameOfReferenceUID == ref.frame_of_reference_uid for r in back.StructureSetROISequence)
    assert [o.RTROIInterpretedType for o in back.RTROIObservationsSequence] == ["GTV", "ORGAN", "ORGAN"]
    assert [list(c.ROIDisplayColor) for c in back.ROIContourSequence] == [[255, 0, 0], [0, 128, 255], [1, 2, 3]]
    assert [c.ReferencedROINumber for c in back.ROIContourSequence] == [1, 2, 5]


def test_rtstruct_contours_points_and_slice_references(structure_set):
    g, ref, rois, ds, back = structure_set
    assert len(back.ROIContourSequence[2].ContourSequence) == 0  # an empty ROI: an empty sequence (rt-utils needs one)
    for roi, item in zip(rois[:2], back.ROIContourSequence[:2]):
        assert len(item.ContourSequence) == len(roi.contours)
        for (k, points), contour in zip(roi.contours, item.ContourSequence):
            assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID == ref.sop_instance_uids[k]
            assert contour.ContourImageSequence[0].ReferencedSOPClassUID == CT_IMAGE_STORAGE
            assert contour.ContourGeometricType == "CLOSED_PLANAR" and contour.NumberOfContourPoints == len(points)
            data = np.array([float(v) for v in contour.ContourData]).reshape(-1, 3)
            assert np.max(np.abs(data - points)) < 1e-4
            np.testing.assert_allclose(data[:, 2], g.positions[k][2], atol=1e-6)  # on the slice's plane
    # the in-memory dataset holds the same (its raw contour sequences parse on access)
    first = ds.ROIContourSequence[0].ContourSequence[1]
    np.testing.assert_allclose(np.reshape([float(v) for v in first.ContourData], (-1, 3)), rois[0].contours[1][1],
                               atol=1e-6)


def test_rtstruct_long_contour_beyond_64k_and_validation(tmp_path):
    g = geometry()
    ref = written_series(tmp_path, g)
    t = np.linspace(0, 2 * np.pi, 4000, endpoint=False)  # 12000 values of ~11 characters: > 64 KiB of DS
    points = g.index_to_patient(np.stack([7.5 + 5 * np.cos(t), 5.5 + 4 * np.sin(t)], axis=1), 2)
    ds = build_rtstruct(ref, [RoiContours(1, "Body", (0, 255, 0), [(2, points)], "EXTERNAL")], label="x")
    back = pydicom.dcmread(write_dataset(ds, tmp_path / "RS.dcm"))
    assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"  # no explicit VR encoding of > 64 KiB of DS
    contour = back.ROIContourSequence[0].ContourSequence[0]
    data = np.array([float(v) for v in contour.ContourData]).reshape(-1, 3)
    assert data.shape == (4000, 3) and np.max(np.abs(data - points)) < 1e-4
    assert contour.ContourImageSequence[0].ReferencedSOPInstanceUID == ref.sop_instance_uids[2]
    in_memory = ds.ROIContourSequence[0].ContourSequence[0]
    assert int(in_memory.NumberOfContourPoints) == 4000 and len(in_memory.ContourData) == 12000
    assert back.StructureSetROISequence[0].ROIName == "Body"
    assert back.RTROIObservationsSequence[0].RTROIInterpretedType == "EXTERNAL"
    square = edge_square(g, 0, 1, 2, 1, 2)
    for rois, message in (([RoiContours(1, "a", (0, 0, 0), [(5, square)])], "5 slices"),
                          ([RoiContours(1, "a", (0, 0, 0), [(0, square[:2])])], "N >= 3"),
                          ([RoiContours(1, "a", (0, 0, 0), []), RoiContours(1, "b", (0, 0, 0), [])], "unique"),
                          ([RoiContours(1, "a", (0, 0, 300), [])], "RGB"),
                          ([RoiContours(1, "a", (0, 0, 0), [(0, square * np.nan)])], "not finite")):
        with pytest.raises(InvalidInput, match=message):
            build_rtstruct(ref, rois, label="x")


def test_rtstruct_read_by_rt_utils_on_the_written_series(tmp_path):
    rt_utils = pytest.importorskip("rt_utils")
    # rt-utils' masks are (columns, rows, slices) and it mixes up the two pixel spacings: square pixels and grid
    g = SeriesGeometry(12, 12, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.9765625, 0.9765625),
                       np.array([[-249.51171875, -180.123046875, z] for z in NON_UNIFORM_Z]))
    ref = written_series(tmp_path, g)
    # corners on voxel centres: rt-utils rounds to pixels and fills inclusively -> columns 2..5, rows 3..6
    square = g.index_to_patient(np.array([[2, 3], [5, 3], [5, 6], [2, 6]], float), 3)
    ds = build_rtstruct(ref, [RoiContours(1, "Box", (10, 20, 30), [(3, square)]),
                              RoiContours(2, "Other", (0, 0, 0), [(1, square)])], label="x")
    path = write_dataset(ds, tmp_path / "RS.dcm")
    rt = rt_utils.RTStructBuilder.create_from(str(tmp_path / "ct"), str(path))
    assert rt.get_roi_names() == ["Box", "Other"]
    mask = rt.get_roi_mask_by_name("Box")  # (rows, columns, slices) for a square grid, slices by position
    expected = np.zeros((12, 12, 5), bool)
    expected[3:7, 2:6, 3] = True
    np.testing.assert_array_equal(mask, expected)
