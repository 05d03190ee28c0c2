"""Real data through radconf's DICOM-RT exchange.

A. slicerio's sample chest CT (``CTChest4.nrrd``) and its 7-segment Slicer segmentation: written as a TPS export
   (CT series + one RTSTRUCT), each ROI rasterised back, imported with ``import_dicom``, the label map exported with
   ``export_dicom`` (RTSTRUCT, SEG, .seg.nrrd) and the .seg.nrrd read back with slicerio. Every mask must come back
   voxel for voxel.
B. dicompyler-core's clinical breast RTSTRUCT (vendored, ``data/dicompyler_rtss.dcm``) on its CT grid, rebuilt from
   the values of the sdist's ``ct.0.dcm`` and the contours' slice positions. Oracles: polygon areas (shoelace, even-odd
   nesting) x slice spacing, dcmrtstruct2nii's rasteriser, and the round trip through radconf's own writers.

``benchmarks/real_data_roundtrip.py`` runs the same on every ROI (dcmrtstruct2nii included) and prints the figures;
its helpers (the grids, the comparisons, the polygon volumes, the export) are imported from it.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.identity import PatientStudy
from radconf.dicom.structure_sets import rasterise_roi, read_structure_set
from radconf.dicom.tps_export import StructureSetContent, write_tps_export

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import real_data_roundtrip as rdr

slicerio = pytest.importorskip("slicerio")

SLICER_DATA = Path(slicerio.__file__).parent / "data"
RTSS = rdr.RTSS  # data/dicompyler_rtss.dcm
RTSS_SHA256 = "8fe3e3a20d1acf911f5c284dc40288d46f97acd43e4a63753cd6e3e1dac398cb"
PATIENT = PatientStudy("RADCONF-TEST", "Test^Real^Data", "1.2.826.0.1.3680043.10.543.7")

# the Slicer segmentation's segments: voxel counts of each label value in Segmentation.seg.nrrd (np.unique)
CHEST_SEGMENTS = {"ribs": 8487, "cervical vertebral column": 1216, "thoracic vertebral column": 2712,
                  "lumbar vertebral column": 3259, "right lung": 34450, "left lung": 33700, "tissue": 154589}

# closed contours per ROI (pydicom count of the file's ContourSequence items)
DICOMPYLER_CONTOURS = {"BODY": 141, "Areola": 0, "Borders": 2, "Breast": 48, "Heart": 33, "Lt Lung": 165, "Nodes": 4,
                       "Scar": 6, "Tumor Bed": 18, "Tumor Bed Block": 24}
# ROIs compared with dcmrtstruct2nii here (its per-point SimpleITK calls take ~9 s for BODY alone); all in the benchmark
ORACLE_ROIS = ("Borders", "Heart", "Nodes", "Scar", "Tumor Bed", "Tumor Bed Block")


def _assert_reads_back_exactly(rtstruct: Path, geometry: SeriesGeometry, masks: dict, names: list) -> None:
    """The RTSTRUCT's ROIs are ``names`` in that order, and each rasterises back to its mask, without a warning."""
    back = rdr.read_back(rtstruct, geometry)
    assert list(back) == names
    for name, (mask, warnings) in back.items():
        assert rdr.no_warnings(warnings), name
        assert rdr.differ(mask, masks[name]) == 0 and rdr.dice(mask, masks[name]) == 1.0, name


# --------------------------------------------------------------------------------------------------- A: Slicer chest


@pytest.fixture(scope="module")
def chest(tmp_path_factory) -> dict:
    """The Slicer sample written as a TPS export: CT series + one RTSTRUCT with the 7 segments."""
    root = tmp_path_factory.mktemp("chest")
    ct = sitk.ReadImage(str(SLICER_DATA / "CTChest4.nrrd"))
    segmentation = slicerio.read_segmentation(str(SLICER_DATA / "Segmentation.seg.nrrd"))
    labels, grid_note = rdr.labels_on_ct_grid(segmentation, ct)  # the CT's grid (checked below): not resampled
    masks = {s["name"]: labels == s["labelValue"] for s in segmentation["segments"]}
    hu = sitk.GetArrayFromImage(ct)
    geometry = SeriesGeometry.from_image(ct)
    rtstruct = write_tps_export(root / "tps", hu, geometry, PATIENT, [StructureSetContent("Slicer", masks)])
    return {"root": root, "ct": ct, "hu": hu, "geometry": geometry, "segmentation": segmentation, "labels": labels,
            "grid_note": grid_note, "masks": masks, "rtstruct": rtstruct}


@pytest.fixture(scope="module")
def chest_imported(chest) -> dict:
    from radconf.dicom.importer import import_dicom

    result = import_dicom(chest["root"] / "tps", 543, "Chest", raw_root=chest["root"] / "nnUNet_raw", progress=False)
    dataset = json.loads((result.folder / "dataset.json").read_text())
    return {"result": result, "dataset": dataset,
            "image": sitk.ReadImage(str(result.folder / "imagesTr" / "CASE_0001_0000.nii.gz")),
            "labels": sitk.GetArrayFromImage(sitk.ReadImage(str(result.folder / "labelsTr" / "CASE_0001.nii.gz")))}


def test_slicer_segmentation_is_one_layer_of_seven_segments_on_the_ct_grid(chest):
    segmentation, ct = chest["segmentation"], chest["ct"]
    assert np.asarray(segmentation["voxels"]).ndim == 3  # one layer: no two segments share a voxel
    assert {s["layer"] for s in segmentation["segments"]} == {0}
    assert np.asarray(segmentation["voxels"]).shape == ct.GetSize() == (128, 128, 34)
    assert np.allclose(segmentation["ijkToLPS"], rdr.ijk_to_lps(ct), atol=1e-4)  # same grid: nothing to resample
    assert list(segmentation["referenceImageExtentOffset"]) == [0, 0, 0] and chest["grid_note"].startswith("same grid")
    assert np.allclose(ct.GetSpacing(), (3.046876, 3.046876, 10.0), atol=1e-5)
    assert {name: int(mask.sum()) for name, mask in chest["masks"].items()} == CHEST_SEGMENTS
    assert np.array_equal(chest["labels"], np.asarray(segmentation["voxels"]).transpose(2, 1, 0))  # ijk -> kji


def test_slicer_overlapping_segments_compare_one_roi_at_a_time(chest, tmp_path):
    """slicerio's SegmentationOverlapping.seg.nrrd: a sphere in a second layer overlapping the lungs; written as
    ROIs of one RTSTRUCT, each ROI rasterises back to its own mask, shared voxels included."""
    from radconf.dicom.identity import referenced_series_of
    from radconf.dicom.rtstruct_writer import build_rtstruct, write_dataset
    from radconf.dicom.tps_export import mask_rois

    overlapping = slicerio.read_segmentation(str(SLICER_DATA / "SegmentationOverlapping.seg.nrrd"))
    layers = np.asarray(overlapping["voxels"]).transpose(0, 3, 2, 1)  # (layer, k, j, i)
    sphere_segment = next(s for s in overlapping["segments"] if s["layer"] == 1)
    sphere = layers[1] == sphere_segment["labelValue"]
    masks = {"overlapping sphere": sphere, "left lung": chest["masks"]["left lung"]}
    assert int((masks["left lung"] & sphere).sum()) == 8723  # voxels of both ROIs
    folder = chest["root"] / "tps" / "CT"
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(folder.iterdir())]
    reference = referenced_series_of(headers)  # CT_0000.dcm ... are in slice order
    path = write_dataset(build_rtstruct(reference, mask_rois(masks, chest["geometry"]), label="Overlap"),
                         tmp_path / "overlap.dcm")
    _assert_reads_back_exactly(path, chest["geometry"], masks, list(masks))


def test_chest_rtstruct_rasterises_back_to_every_segment(chest):
    _assert_reads_back_exactly(chest["rtstruct"][0], chest["geometry"], chest["masks"], list(CHEST_SEGMENTS))


def test_chest_import_keeps_ct_voxels_geometry_and_labels(chest, chest_imported):
    image, ct = chest_imported["image"], chest["ct"]
    assert np.array_equal(sitk.GetArrayFromImage(image), chest["hu"])  # HU -3024..3070, stored as int16
    assert int(chest["hu"].min()) == -3024 and int(chest["hu"].max()) == 3070
    assert np.allclose(image.GetOrigin(), ct.GetOrigin(), atol=1e-4)
    assert np.allclose(image.GetSpacing(), ct.GetSpacing(), atol=1e-5)
    assert np.allclose(image.GetDirection(), ct.GetDirection(), atol=1e-6)  # (-1, -1, 1): LPS as Slicer has it
    names = [name.replace(" ", "_") for name in CHEST_SEGMENTS]  # no mapping file: normalised ROI names
    assert chest_imported["dataset"]["labels"] == {"background": 0, **{n: i + 1 for i, n in enumerate(names)}}
    assert np.array_equal(chest_imported["labels"], chest["labels"])  # segment i has label value i in both
    result = chest_imported["result"].results[0]
    assert not result.missing and not result.unmapped and not result.warnings


def test_chest_export_reads_back_in_slicerio(chest, chest_imported, tmp_path):
    from radconf.io.tables import read_csv

    labels = chest_imported["dataset"]["labels"]
    report = rdr.export_label_map(chest_imported["result"].folder / "labelsTr" / "CASE_0001.nii.gz", labels,
                                  chest["root"] / "tps", tmp_path)  # export_dicom: RTSTRUCT, SEG, .seg.nrrd
    assert report == tmp_path / "out" / "export_report.csv"
    rows = read_csv(report)
    assert [r["structure"] for r in rows] == [n for n in labels if n != "background"]
    assert all(float(r["rtstruct_readback_dice"]) == 1.0 for r in rows)
    assert [int(r["voxels"]) for r in rows] == list(CHEST_SEGMENTS.values())
    back = slicerio.read_segmentation(str(tmp_path / "out" / "CASE_0001" / "CASE_0001.seg.nrrd"))
    assert [(s["name"], s["labelValue"]) for s in back["segments"]] == [(n, v) for n, v in labels.items() if v]
    colours = [tuple(s["color"]) for s in back["segments"]]
    assert all(len(c) == 3 and all(0.0 <= v <= 1.0 for v in c) for c in colours) and len(set(colours)) == 7
    assert np.array_equal(np.asarray(back["voxels"]).transpose(2, 1, 0), chest["labels"])
    assert np.allclose(back["ijkToLPS"], rdr.ijk_to_lps(chest["ct"]), atol=1e-4)
    seg = pydicom.dcmread(tmp_path / "out" / "CASE_0001" / "CASE_0001_SEG.dcm", stop_before_pixels=True)
    assert [str(s.SegmentLabel) for s in seg.SegmentSequence] == [n for n in labels if n != "background"]


# ------------------------------------------------------------------------------------------ B: dicompyler-core RTSS


@pytest.fixture(scope="module")
def dicompyler() -> dict:
    structure_set = read_structure_set(RTSS)
    full = rdr.rebuilt_geometry(structure_set)  # ct.0.dcm's in-plane grid, one slice at each z of the contours
    geometry, start = rdr.cropped_geometry(full, structure_set)  # the same masks, cut: halves this file's run time
    rasters = {roi.name: rasterise_roi(roi, geometry) for roi in structure_set.rois}
    return {"structure_set": structure_set, "full": full, "geometry": geometry, "start": start,
            "masks": {n: m for n, (m, _) in rasters.items()}, "warnings": {n: w for n, (_, w) in rasters.items()}}


@pytest.fixture(scope="module")
def dicompyler_round_trip(dicompyler, tmp_path_factory) -> Path:
    """Every ROI mask traced and written as write_tps_export does it (``mask_rois`` + ``build_rtstruct``), on a
    series of the rebuilt grid that exists only as its UIDs: writing 98 CT files would double this file's run time
    (the CT writer is covered by part A; the benchmark writes them and runs dcmrtstruct2nii on them)."""
    from radconf.dicom.ct_writer import CT_IMAGE_STORAGE
    from radconf.dicom.identity import ReferencedSeries, new_uid
    from radconf.dicom.rtstruct_writer import build_rtstruct, write_dataset
    from radconf.dicom.tps_export import mask_rois

    geometry = dicompyler["geometry"]
    reference = ReferencedSeries(PATIENT, new_uid(), new_uid(), CT_IMAGE_STORAGE,
                                 tuple(new_uid() for _ in range(geometry.n_slices)))
    ds = build_rtstruct(reference, mask_rois(dicompyler["masks"], geometry), label="dicompyler")
    return write_dataset(ds, tmp_path_factory.mktemp("dicompyler") / "RTSTRUCT_dicompyler_1.dcm")


def test_vendored_rtss_is_the_anonymised_demo_patient():
    assert hashlib.sha256(RTSS.read_bytes()).hexdigest() == RTSS_SHA256  # as in dicompyler-core 0.5.6
    ds = pydicom.dcmread(RTSS, stop_before_pixels=True)
    assert (str(ds.PatientName), str(ds.PatientID), str(ds.PatientBirthDate)) == ("boost^breast", "123456", "")
    assert str(ds.StudyDate) == "19010101" and str(ds.ReferringPhysicianName) == "physician"
    assert not [element for element in ds if element.tag.is_private]


def test_rebuilt_grid_has_the_98_referenced_slices(dicompyler):
    full, structure_set = dicompyler["full"], dicompyler["structure_set"]
    assert full.n_slices == 98 == len(structure_set.contour_image_uids)
    assert np.allclose(np.diff(full.slice_positions), 3.0, atol=1e-6)  # uniform 3 mm (SliceThickness 3)
    assert abs(full.slice_positions[-1] - rdr.CT0_POSITION[2]) < 1e-3  # the top slice is ct.0.dcm
    assert full.shape == (98, 512, 512) and full.max_slice_deviation_mm() < 1e-6
    cropped, (i0, j0) = dicompyler["geometry"], dicompyler["start"]
    assert cropped.shape == (98, 295, 447) and (i0, j0) == (40, 95)  # contours: columns 42.4..483.8, rows 97.3..386.3
    assert np.allclose(cropped.positions[:, :2] - full.positions[:, :2], [40 * 1.074219, 95 * 1.074219])


def test_every_dicompyler_roi_lands_on_slices_with_plausible_volumes(dicompyler):
    structure_set, geometry, masks = dicompyler["structure_set"], dicompyler["geometry"], dicompyler["masks"]
    assert {roi.name: len(roi.closed_contours) for roi in structure_set.rois} == DICOMPYLER_CONTOURS
    assert all(rdr.no_warnings(w) for w in dicompyler["warnings"].values())  # no off-slice, clipped or skipped contour
    volumes = {name: float(mask.sum()) * geometry.voxel_volume_mm3 / 1000.0 for name, mask in masks.items()}
    for roi in structure_set.rois:  # the voxels' volume is the contours' (partial voxels at the edges aside)
        expected = rdr.polygon_volume_cm3(roi, 3.0)
        assert volumes[roi.name] == pytest.approx(expected, rel=0.02, abs=0.05), roi.name
    plausible = {"BODY": (8000, 30000), "Lt Lung": (1000, 3500), "Heart": (250, 900), "Breast": (150, 2000),
                 "Tumor Bed Block": (20, 200), "Tumor Bed": (2, 60)}
    for name, (low, high) in plausible.items():
        assert low < volumes[name] < high, (name, volumes[name])
    assert volumes["Areola"] == 0.0  # an ROI without contours
    for name in ("Breast", "Heart", "Lt Lung", "Tumor Bed", "Tumor Bed Block", "Nodes"):
        assert not np.any(masks[name] & ~masks["BODY"]), name  # organs and targets lie inside the body
    assert not np.any(masks["Tumor Bed"] & ~masks["Tumor Bed Block"])
    assert not np.any(masks["Tumor Bed"] & ~masks["Breast"])


def _oracle_contours(path: Path, names) -> dict[str, list[dict]]:
    """The named ROIs' contours in dcmrtstruct2nii's intermediate form, read with pydicom (its own reader takes
    ~3 s on this file: every coordinate goes through pydicom's DS one by one)."""
    ds = pydicom.dcmread(path)
    numbers = {int(item.ROINumber): str(item.ROIName) for item in ds.StructureSetROISequence}
    contours = {}
    for item in ds.ROIContourSequence:
        name = numbers[int(item.ReferencedROINumber)]
        if name in names:
            contours[name] = []
            for contour in item.ContourSequence:
                xyz = np.asarray(contour.ContourData, float).reshape(-1, 3)
                contours[name].append({"type": str(contour.ContourGeometricType),
                                       "points": {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]}})
    return contours


def test_dicompyler_rois_match_dcmrtstruct2nii(dicompyler):
    pytest.importorskip("dcmrtstruct2nii")
    from dcmrtstruct2nii.adapters.convert.rtstructcontour2mask import DcmPatientCoords2Mask

    geometry = dicompyler["geometry"]
    image = geometry.to_image(np.zeros(geometry.shape, np.uint8))  # what SimpleITK reads from a series of this grid
    assert image.GetSize() == (447, 295, 98)
    oracle = _oracle_contours(RTSS, ORACLE_ROIS)
    for name in ORACLE_ROIS:
        theirs = sitk.GetArrayFromImage(DcmPatientCoords2Mask().convert(oracle[name], image, 0, 1)) > 0
        ours = dicompyler["masks"][name]
        assert rdr.differ(theirs, ours) == 0, name


def test_dicompyler_round_trip_is_exact(dicompyler, dicompyler_round_trip):
    _assert_reads_back_exactly(dicompyler_round_trip, dicompyler["geometry"], dicompyler["masks"],
                               list(DICOMPYLER_CONTOURS))
