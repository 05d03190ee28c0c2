"""DICOM-SEG (read back with highdicom) and Slicer .seg.nrrd (read back with slicerio and SimpleITK) writers."""
from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import slicerio

from radconf.dicom.ct_writer import write_ct_series
from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.identity import PatientStudy, new_uid
from radconf.dicom.seg_writer import SegmentInfo, write_dicom_seg
from radconf.dicom.segnrrd import read_segnrrd, write_segnrrd
from radconf.errors import InvalidInput, MissingInput

SLICER_DATA = Path(slicerio.__file__).parent / "data"


def geometry() -> SeriesGeometry:
    """16 x 12 x 5 voxels, non-uniform slices."""
    positions = np.array([[-20.25, 10.5, z] for z in (-6.0, -3.5, -1.0, 4.0, 5.25)])
    return SeriesGeometry(12, 16, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.75, 0.5), positions)


@pytest.fixture
def series(tmp_path):
    g = geometry()
    ref = write_ct_series(np.zeros(g.shape, np.int16), g, tmp_path / "ct",
                          PatientStudy("SEG-1", "Seg^Test", new_uid()))
    # headers only, in slice order (file names are CT_0000 ... in slice order)
    headers = [pydicom.dcmread(tmp_path / "ct" / f"CT_{k:04d}.dcm", stop_before_pixels=True) for k in range(5)]
    assert [h.SOPInstanceUID for h in headers] == list(ref.sop_instance_uids)
    return g, ref, headers


def masks_back(path: Path, ref, n_segments: int, **options) -> np.ndarray:
    seg = hd.seg.segread(path)
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=list(ref.sop_instance_uids),
                                               segment_numbers=list(range(1, n_segments + 1)),
                                               assert_missing_frames_are_empty=True, **options)
    return np.moveaxis(pixels, -1, 0)  # (segments, slices, rows, columns)


def test_binary_seg_round_trip_segments_and_omitted_frames(series, tmp_path):
    g, ref, headers = series
    masks = np.zeros((3,) + g.shape, bool)
    masks[0, 1:3, 2:5, 3:9] = True  # slices 1, 2
    masks[1, 4, 0:2, 0:2] = True  # slice 4 only
    masks[1, 0, 11, 15] = True  # one voxel in the corner of slice 0
    # segment 3 stays empty
    segments = [SegmentInfo("GTV primary", (255, 0, 0)), SegmentInfo("Lung_L", (0, 128, 255)),
                SegmentInfo("Empty", (10, 200, 30))]
    path = write_dicom_seg(tmp_path / "out" / "seg.dcm", masks, headers, segments, series_description="radconf 501")
    assert [p.name for p in path.parent.iterdir()] == ["seg.dcm"]
    np.testing.assert_array_equal(masks_back(path, ref, 3).astype(bool), masks)
    seg = hd.seg.segread(path)
    assert seg.SegmentationType == "BINARY" and int(seg.NumberOfFrames) == 4  # empty frames omitted: 2 + 2 + 0
    assert seg.Modality == "SEG" and seg.SeriesDescription == "radconf 501" and seg.Manufacturer == "radconf"
    assert (seg.PatientID, seg.StudyInstanceUID) == ("SEG-1", ref.patient.study_instance_uid)
    assert seg.FrameOfReferenceUID == ref.frame_of_reference_uid
    assert seg.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    for number, (info, item) in enumerate(zip(segments, seg.SegmentSequence), start=1):
        assert (item.SegmentNumber, item.SegmentLabel, item.SegmentAlgorithmType) == (number, info.label, "AUTOMATIC")
        assert item.SegmentAlgorithmName == "radconf"
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "91723000"  # Anatomical Structure
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "91772007"  # Organ
        rgb = hd.color.CIELabColor.from_dicom_value(item.RecommendedDisplayCIELabValue).to_rgb()
        assert np.max(np.abs(np.subtract(rgb, info.colour))) <= 1


def test_fractional_seg_within_one_step_of_255(series, tmp_path):
    g, ref, headers = series
    rng = np.random.default_rng(3)
    maps = rng.random((2,) + g.shape)
    maps[1, 2] = 0.0  # an empty frame
    maps[0, 0, 0, :4] = [0.0, 1.0, 0.5, 1 / 255]
    path = write_dicom_seg(tmp_path / "prob.dcm", maps, headers, [SegmentInfo("a", (1, 2, 3)),
                                                                   SegmentInfo("b", (4, 5, 6))], fractional=True)
    seg = hd.seg.segread(path)
    assert seg.SegmentationType == "FRACTIONAL" and seg.SegmentationFractionalType == "PROBABILITY"
    assert int(seg.MaximumFractionalValue) == 255 and int(seg.NumberOfFrames) == 9
    back = masks_back(path, ref, 2, rescale_fractional=True)
    assert np.max(np.abs(back - maps)) <= 0.5 / 255 + 1e-6
    np.testing.assert_allclose(back[0, 0, 0, :4], [0.0, 1.0, 128 / 255, 1 / 255], atol=1e-6)


def test_seg_all_empty_and_invalid_inputs(series, tmp_path):
    g, ref, headers = series
    path = write_dicom_seg(tmp_path / "empty.dcm", np.zeros((1,) + g.shape, bool), headers,
                           [SegmentInfo("x", (0, 0, 0))])
    assert not masks_back(path, ref, 1).any()
    one = [SegmentInfo("x", (0, 0, 0))]
    with pytest.raises(InvalidInput, match="shape"):
        write_dicom_seg(tmp_path / "a.dcm", np.zeros((2,) + g.shape, bool), headers, one)
    with pytest.raises(InvalidInput, match="pixels"):
        write_dicom_seg(tmp_path / "a.dcm", np.zeros((1, 5, 16, 12), bool), headers, one)
    with pytest.raises(InvalidInput, match=r"\[0, 1\]"):
        write_dicom_seg(tmp_path / "a.dcm", np.full((1,) + g.shape, 1.5), headers, one, fractional=True)
    with pytest.raises(InvalidInput, match="fractional=True"):
        write_dicom_seg(tmp_path / "a.dcm", np.full((1,) + g.shape, 0.5), headers, one)
    with pytest.raises(InvalidInput, match="RGB"):
        write_dicom_seg(tmp_path / "a.dcm", np.zeros((1,) + g.shape, bool), headers, [SegmentInfo("x", (0, 0, 256))])
    assert not (tmp_path / "a.dcm").exists()


# --- Slicer .seg.nrrd ---------------------------------------------------------------------------------------------

def uniform_geometry() -> SeriesGeometry:
    return SeriesGeometry(12, 16, (0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (0.75, 0.5),
                          np.array([[-3.0 + 2.5 * k, 10.25, 40.5] for k in range(5)]))  # sagittal, X x Y = +x


def test_segnrrd_round_trip_with_slicerio_and_simpleitk(tmp_path):
    g = uniform_geometry()
    labels = np.zeros(g.shape, np.uint8)
    labels[1:3, 2:5, 3:9] = 1
    labels[4, 0:2, 0:2] = 3
    labels[0, 11, 15] = 3
    segments = [(1, "Liver", (255, 0, 0)), (3, "Kidney R", (0, 128, 255))]
    path = write_segnrrd(tmp_path / "case.seg.nrrd", labels, g.to_image(labels), segments)
    assert [p.name for p in tmp_path.iterdir()] == ["case.seg.nrrd"]
    raw = slicerio.read_segmentation(str(path))
    np.testing.assert_array_equal(raw["voxels"], labels.transpose(2, 1, 0))  # slicerio: (i, j, k)
    expected = np.eye(4)
    expected[:3, :3] = g.direction * np.array(g.spacing)
    expected[:3, 3] = g.positions[0]
    np.testing.assert_allclose(raw["ijkToLPS"], expected, atol=1e-9)
    assert [(s["labelValue"], s["name"], s["layer"]) for s in raw["segments"]] == [(1, "Liver", 0), (3, "Kidney R", 0)]
    np.testing.assert_allclose(raw["segments"][1]["color"], [0, 128 / 255, 1], atol=1e-6)
    image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), labels)
    assert SeriesGeometry.from_image(image) == g
    back, back_geometry, back_segments = read_segnrrd(path)
    np.testing.assert_array_equal(back, labels)
    assert back_geometry == g and back_segments == segments


def test_segnrrd_reads_slicer_sample_and_rejects_layers(tmp_path):
    labels, g, segments = read_segnrrd(SLICER_DATA / "Segmentation.seg.nrrd")
    assert len(segments) == 7 and segments[0][:2] == (1, "ribs") and segments[6][:2] == (7, "tissue")
    assert segments[0][2] == (253, 232, 158)  # 0.992157 0.909804 0.619608
    assert labels.shape == (34, 128, 128) and set(np.unique(labels)) == set(range(8))
    image = sitk.ReadImage(str(SLICER_DATA / "Segmentation.seg.nrrd"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), labels)
    assert SeriesGeometry.from_image(image) == g
    with pytest.raises(InvalidInput, match="2 layers"):
        read_segnrrd(SLICER_DATA / "SegmentationOverlapping.seg.nrrd")
    with pytest.raises(MissingInput, match="does not exist"):
        read_segnrrd(tmp_path / "nothing.seg.nrrd")
    (tmp_path / "bad.seg.nrrd").write_bytes(b"not a nrrd")
    with pytest.raises(InvalidInput, match="not a readable"):
        read_segnrrd(tmp_path / "bad.seg.nrrd")


def test_segnrrd_left_handed_file_is_read_with_slices_reversed(tmp_path):
    # a file whose third axis runs against X x Y: slice index 0 of the file is the highest position
    voxels = np.zeros((4, 3, 3), np.uint8)  # (i, j, k)
    for k in range(3):
        voxels[k, 0, k] = k + 1  # value k + 1 at (i=k, j=0) of file slice k
    ijk = np.diag([2.0, 2.0, -5.0, 1.0])
    ijk[:3, 3] = (1.0, 2.0, 30.0)
    slicerio.write_segmentation(str(tmp_path / "lh.seg.nrrd"), {"voxels": voxels, "ijkToLPS": ijk, "segments": [
        {"labelValue": v, "name": f"s{v}", "color": [0, 0, 1]} for v in (1, 2, 3)]})
    labels, g, segments = read_segnrrd(tmp_path / "lh.seg.nrrd")
    np.testing.assert_allclose(g.positions[:, 2], [20.0, 25.0, 30.0])  # ascending along the normal (0, 0, 1)
    np.testing.assert_allclose(g.positions[0], [1.0, 2.0, 20.0])
    for file_k in range(3):
        k = 2 - file_k
        assert labels[k, 0, file_k] == file_k + 1 and labels[k].sum() == file_k + 1
        z = 30.0 - 5.0 * file_k  # where file slice k lies
        assert g.slice_of(z) == k
    assert [s[1] for s in segments] == ["s1", "s2", "s3"] and segments[0][2] == (0, 0, 255)


def test_write_segnrrd_rejects_bad_input(tmp_path):
    g = uniform_geometry()
    labels = np.zeros(g.shape, np.uint8)
    image = g.to_image(labels)
    with pytest.raises(InvalidInput, match="shape"):
        write_segnrrd(tmp_path / "a.seg.nrrd", labels[:4], image, [(1, "a", (0, 0, 0))])
    with pytest.raises(InvalidInput, match="distinct and positive"):
        write_segnrrd(tmp_path / "a.seg.nrrd", labels, image, [(1, "a", (0, 0, 0)), (1, "b", (0, 0, 0))])
    with pytest.raises(InvalidInput, match="integer"):
        write_segnrrd(tmp_path / "a.seg.nrrd", labels.astype(float), image, [(1, "a", (0, 0, 0))])
    big = labels.astype(np.int32)
    big[0, 0, 0] = 300  # more than 8 bits: written as uint16
    write_segnrrd(tmp_path / "b.seg.nrrd", big, image, [(300, "a", (0, 0, 0))])
    back, _, segments = read_segnrrd(tmp_path / "b.seg.nrrd")
    assert back[0, 0, 0] == 300 and back.sum() == 300 and segments == [(300, "a", (0, 0, 0))]
    assert not (tmp_path / "a.seg.nrrd").exists()
