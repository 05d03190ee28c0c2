"""Folder scan (radconf.dicom.scan) and CT series checks / pixel data (radconf.dicom.series).

Series are built from pydicom's CT_small.dcm (128 x 128, int16, slope 1, intercept -1024) with edited positions and
UIDs; expected orders, gaps and HU values are computed by hand or with pydicom's own rescale as the oracle.
"""
from __future__ import annotations

import copy
import hashlib
import os
import struct
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_rescale
from pydicom.uid import ImplicitVRLittleEndian, JPEGLossless, RLELossless

from radconf.dicom.scan import SliceHeader, scan_folder
from radconf.dicom.series import check_series, load_series
from radconf.errors import InvalidInput, MissingInput

CT_SMALL = get_testdata_file("CT_small.dcm")
RTSTRUCT = get_testdata_file("rtstruct.dcm")
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def template() -> pydicom.Dataset:
    return pydicom.dcmread(CT_SMALL)


def _ds(values) -> list[str]:
    return [f"{v:.6f}" for v in values]


def write_ct(template, path: Path, position, *, series="1.2.826.0.1.1", instance=1, patient="P1", fill=None,
             orientation=AXIAL, spacing=(0.661468, 0.661468), slope=1, intercept=-1024, tilt=0.0,
             description="Test CT", frame="1.2.826.0.1.9", sop=None) -> Path:
    """One CT slice at ``position`` (x, y, z); ``fill`` sets every stored pixel."""
    ds = copy.deepcopy(template)
    uid = sop or f"{series}.{abs(hash((str(path), tuple(position)))) % 10**12}"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.SeriesInstanceUID, ds.FrameOfReferenceUID, ds.PatientID = series, frame, patient
    ds.StudyInstanceUID = f"{series}.0"
    ds.InstanceNumber, ds.SeriesDescription = instance, description
    ds.ImagePositionPatient, ds.ImageOrientationPatient = _ds(position), _ds(orientation)
    ds.PixelSpacing, ds.GantryDetectorTilt = _ds(spacing), f"{tilt:g}"
    ds.RescaleSlope, ds.RescaleIntercept = f"{slope:g}", f"{intercept:g}"
    if fill is not None:
        ds.PixelData = np.full((ds.Rows, ds.Columns), fill, np.int16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path)
    return path


def png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\1\2\0\3\4"))
            + chunk(b"IEND", b""))


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def header(z: float, name: str = "s", **changes) -> SliceHeader:
    base = SliceHeader(Path(f"/data/ct/{name}{z:g}.dcm"), f"1.2.{z:g}", "1.2.840.10008.5.1.4.1.1.2", "1.2.3",
                       "1.2", "1.2.9", (0.0, 0.0, z), AXIAL, (1.0, 1.0), 4, 4, series_description="Pelvis")
    return replace(base, **changes)


def test_mixed_tree_sorted_by_position_and_inputs_unchanged(template, tmp_path):
    root = tmp_path / "in"
    zs = [-40.0, -35.0, -30.0, -25.0, -20.0]
    names = ["zz.dcm", "a/b/c/IM0007", "a/b/x1", "mm.dcm", "a/0001.dcm"]  # shuffled names and InstanceNumbers
    for z, name, instance in zip(zs, names, [3, 5, 1, 4, 2]):
        write_ct(template, root / name, (-100.0, -120.0, z), instance=instance, fill=int(z) + 2000)
    for k, z in enumerate([10.0, 0.0, 5.0]):  # patient 2, partly in the same folders
        write_ct(template, root / ("a/b" if k else "other") / f"p2_{k}", (0.0, 0.0, z), series="1.2.826.0.2.1",
                 patient="P2", frame="1.2.826.0.2.9")
    (root / "notes.txt").write_text("not DICOM\n")
    (root / "a" / "thumb.png").write_bytes(png_bytes())
    before = tree_hash(root)

    inventory = scan_folder(root)
    assert sorted(inventory.ct_series) == ["1.2.826.0.1.1", "1.2.826.0.2.1"]
    assert inventory.n_ignored == 2 and inventory.unreadable == () and inventory.other_series == {}
    volume = load_series(inventory.ct_series["1.2.826.0.1.1"])
    assert [h.path for h in volume.headers_in_order] == [root / n for n in names]
    np.testing.assert_allclose(volume.geometry.slice_positions, zs)
    assert volume.hu.shape == (5, 128, 128) and volume.hu.dtype == np.int16
    np.testing.assert_array_equal(volume.hu[:, 0, 0], [int(z) + 2000 - 1024 for z in zs])
    other = check_series(inventory.ct_series["1.2.826.0.2.1"])
    np.testing.assert_allclose(other.slice_positions, [0.0, 5.0, 10.0])
    assert "P1" not in repr(inventory) and "P2" not in repr(inventory)
    assert "2 CT series (8 slices)" in inventory.summary()
    assert tree_hash(root) == before


def test_links_followed_and_folders_read_once(template, tmp_path):
    root, outside = tmp_path / "in", tmp_path / "elsewhere"
    for z in (0.0, 2.0):
        write_ct(template, root / "real" / f"{z:g}.dcm", (0.0, 0.0, z))
    os.symlink(write_ct(template, outside / "s4.dcm", (0.0, 0.0, 4.0)), root / "linked_file")
    os.symlink(root / "real", root / "same_folder_again")
    os.symlink(root, root / "real" / "loop")
    os.symlink(root / "real" / "0.dcm", root / "duplicate_link")
    os.symlink(tmp_path / "missing", root / "broken_link")
    inventory = scan_folder(root)
    (headers,) = inventory.ct_series.values()
    assert len(headers) == 3 and inventory.n_ignored == 1
    np.testing.assert_allclose(check_series(headers).slice_positions, [0.0, 2.0, 4.0])


def test_unreadable_files_refused_or_skipped(template, tmp_path):
    root = tmp_path / "in"
    for z in (0.0, 3.0):
        write_ct(template, root / f"ok{z:g}.dcm", (0.0, 0.0, z))
    data = (root / "ok0.dcm").read_bytes()
    cuts = [len(data) // 2, 3000, 140] * 4  # in the pixel data, in the header, right after the preamble
    for k, cut in enumerate(cuts):
        (root / "bad" / f"t{k:02d}.dcm").parent.mkdir(exist_ok=True)
        (root / "bad" / f"t{k:02d}.dcm").write_bytes(data[:cut])
    with pytest.raises(InvalidInput) as caught:
        scan_folder(root)
    message = str(caught.value)
    assert "\n" not in message and "12 file(s)" in message and "and 2 more" in message
    assert str(root / "bad" / "t00.dcm") in message and "truncated" in message and "--skip_unreadable" in message
    inventory = scan_folder(root, skip_unreadable=True)
    assert len(inventory.unreadable) == 12 and len(next(iter(inventory.ct_series.values()))) == 2
    assert all(reason and "\n" not in reason for _, reason in inventory.unreadable)


def test_missing_folder(tmp_path):
    with pytest.raises(MissingInput, match="no such folder"):
        scan_folder(tmp_path / "nothing")


def test_structure_sets_other_series_and_enhanced_ct(template, tmp_path):
    root = tmp_path / "in"
    (root / "rt").mkdir(parents=True)
    (root / "rt" / "rs_no_preamble").write_bytes(Path(RTSTRUCT).read_bytes())  # pydicom's file has no preamble
    rt = pydicom.dcmread(RTSTRUCT, force=True)
    rt2 = copy.deepcopy(rt)
    rt2.SOPInstanceUID = "1.2.826.0.5.5"
    rt2.ensure_file_meta()
    rt2.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    rt2.save_as(root / "rt" / "rs_preamble.dcm", enforce_file_format=True)
    mr = copy.deepcopy(template)
    mr.SOPClassUID = mr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    mr.Modality, mr.SeriesInstanceUID = "MR", "1.2.826.0.7.1"
    mr.save_as(root / "mr.dcm")
    mr.SOPClassUID = mr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    mr.Modality, mr.SeriesInstanceUID = "CT", "1.2.826.0.7.2"
    mr.save_as(root / "enhanced.dcm")

    inventory = scan_folder(root)
    assert inventory.ct_series == {} and inventory.n_ignored == 0
    first, second = sorted(inventory.structure_sets, key=lambda s: s.path.name)
    assert first.path.name == "rs_no_preamble" and second.sop_instance_uid == "1.2.826.0.5.5"
    frame = rt.ReferencedFrameOfReferenceSequence[0]
    assert first.sop_instance_uid == rt.SOPInstanceUID and first.structure_set_label == rt.StructureSetLabel
    assert first.frame_of_reference_uids == (frame.FrameOfReferenceUID,)
    assert first.referenced_series_uids == (
        frame.RTReferencedStudySequence[0].RTReferencedSeriesSequence[0].SeriesInstanceUID,)
    assert first.study_instance_uid == rt.StudyInstanceUID and first.patient_id == rt.PatientID
    assert first.patient_id not in repr(first)
    assert inventory.other_series["1.2.826.0.7.1"] == "MR"
    assert "not supported" in inventory.other_series["1.2.826.0.7.2"]
    assert list(inventory.unsupported_series) == ["1.2.826.0.7.2"] and "Enhanced CT" in inventory.summary()


def test_oblique_series_sorted_along_its_normal(template, tmp_path):
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    orientation = (1.0, 0.0, 0.0, 0.0, c, s)
    normal = np.array([0.0, -s, c])  # X x Y by hand
    origin = np.array([-50.0, 20.0, 30.0])
    steps = [4, 0, 2, 1, 3]
    for k, step in enumerate(steps):
        write_ct(template, tmp_path / f"f{k}.dcm", origin + 2.5 * step * normal, instance=k + 1, fill=100 * step,
                 orientation=orientation)
    (headers,) = scan_folder(tmp_path).ct_series.values()
    volume = load_series(headers)
    np.testing.assert_allclose(np.diff(volume.geometry.slice_positions), 2.5, atol=1e-4)
    np.testing.assert_array_equal(volume.hu[:, 5, 7], [100 * k - 1024 for k in range(5)])
    assert [h.path.name for h in volume.headers_in_order] == [f"f{steps.index(k)}.dcm" for k in range(5)]
    image = volume.to_image()
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3))[:, 2], normal, atol=1e-5)
    np.testing.assert_allclose(image.GetOrigin(), origin, atol=1e-4)
    np.testing.assert_allclose(image.GetSpacing(), (0.661468, 0.661468, 2.5), atol=1e-4)


def test_gap_refused_and_listed():
    headers = [header(z) for z in (10.0, 0.0, 2.0, 4.0, 12.0, 16.0, 18.0)]
    with pytest.raises(InvalidInput) as caught:
        check_series(headers)
    message = str(caught.value)
    assert "between 4.00 and 10.00 mm (about 2 slice(s) missing)" in message
    assert "between 12.00 and 16.00 mm (about 1 slice(s) missing)" in message
    assert "'Pelvis'" in message and "/data/ct" in message and "\n" not in message


def test_duplicate_position_refused():
    headers = [header(z) for z in (0.0, 2.0, 4.0)] + [header(2.0, name="copy")]
    with pytest.raises(InvalidInput, match=r"share a position: (s2\.dcm and copy2\.dcm|copy2\.dcm and s2\.dcm) at 2"):
        check_series(headers)


def test_gantry_tilt_tag_refused(template, tmp_path):
    for z in (0.0, 1.0, 2.0):
        write_ct(template, tmp_path / f"{z:g}.dcm", (0.0, 0.0, z), tilt=12.0)
    (headers,) = scan_folder(tmp_path).ct_series.values()
    with pytest.raises(InvalidInput, match="gantry tilt of 12 degrees"):
        check_series(headers)


def test_sheared_positions_refused_rounding_accepted():
    tilt = np.tan(np.radians(5))
    with pytest.raises(InvalidInput, match="move sideways by 0.35 mm over 4 mm"):  # 4 mm x tan(5 degrees) = 0.350
        check_series([header(z, image_position=(0.0, z * tilt, z)) for z in (0.0, 2.0, 4.0)])
    jitter = [0.004, -0.005, 0.0, 0.005]  # ImagePositionPatient rounded to 0.01 mm
    geometry = check_series([header(z, image_position=(j, -j, z)) for z, j in zip((0.0, 1.0, 2.0, 3.0), jitter)])
    assert geometry.n_slices == 4


@pytest.mark.parametrize(("changes", "expected"), [
    ({"pixel_spacing": (1.0, 1.2)}, "PixelSpacing differs"),
    ({"image_orientation": (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)}, "ImageOrientationPatient differs"),
    ({"rows": 8}, "Rows differs"),
    ({"columns": 8}, "Columns differs"),
])
def test_varying_grid_refused(changes, expected):
    with pytest.raises(InvalidInput, match=expected):
        check_series([header(0.0), header(1.0, **changes), header(2.0)])


def test_single_slice_ok_and_no_slices_refused(template, tmp_path):
    write_ct(template, tmp_path / "one.dcm", (1.0, 2.0, 3.0), fill=50)
    (headers,) = scan_folder(tmp_path).ct_series.values()
    volume = load_series(headers)
    assert volume.hu.shape == (1, 128, 128) and volume.geometry.slice_spacing == 1.0 and volume.hu[0, 0, 0] == -974
    with pytest.raises(InvalidInput, match="no slices"):
        check_series([])


@pytest.mark.parametrize(("slopes", "intercepts", "dtype"), [
    ((1, 2, 1), (-1024, -1000, 0), np.int16),
    ((0.5, 1, 1), (-1024.5, -1024, -1024), np.float32),
    ((20, 1, 1), (-1024, -1024, -1024), np.float32),  # 2191 x 20 does not fit int16
])
def test_hu_is_stored_times_slope_plus_intercept(template, tmp_path, slopes, intercepts, dtype):
    paths = [write_ct(template, tmp_path / f"{k}.dcm", (0.0, 0.0, 2.0 * k), slope=slope, intercept=intercept)
             for k, (slope, intercept) in enumerate(zip(slopes, intercepts))]
    (headers,) = scan_folder(tmp_path).ct_series.values()
    volume = load_series(headers)
    assert volume.hu.dtype == dtype
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        np.testing.assert_array_equal(volume.hu[k], apply_rescale(ds.pixel_array, ds))


def test_rle_and_stream_without_file_meta_decoded(template, tmp_path):
    rle = write_ct(template, tmp_path / "rle.dcm", (0.0, 0.0, 0.0))
    ds = pydicom.dcmread(rle)
    ds.compress(RLELossless)
    ds.save_as(rle)
    raw = copy.deepcopy(template)
    raw.ImagePositionPatient, raw.SOPInstanceUID = _ds((0.0, 0.0, 2.0)), "9"
    raw.SeriesInstanceUID, raw.FrameOfReferenceUID = ds.SeriesInstanceUID, ds.FrameOfReferenceUID
    del raw.file_meta
    raw.preamble = None
    pydicom.dcmwrite(tmp_path / "raw", raw, implicit_vr=True, little_endian=True)
    assert (tmp_path / "raw").read_bytes()[128:132] != b"DICM"
    (headers,) = scan_folder(tmp_path).ct_series.values()
    volume = load_series(headers)
    expected = template.pixel_array.astype(np.int16) - 1024
    np.testing.assert_array_equal(volume.hu, np.stack([expected, expected]))


def test_compressed_without_decoder_refused_naming_the_package(template, tmp_path):
    path = write_ct(template, tmp_path / "jpeg.dcm", (0.0, 0.0, 0.0))
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([ds.PixelData])  # marked JPEG Lossless: no decoder for it is installed here
    ds.file_meta.TransferSyntaxUID = JPEGLossless
    ds.save_as(path)
    (headers,) = scan_folder(tmp_path).ct_series.values()
    with pytest.raises(InvalidInput) as caught:
        load_series(headers)
    message = str(caught.value)
    assert str(path) in message and "JPEG Lossless" in message and "pylibjpeg-libjpeg" in message
    assert "\n" not in message
