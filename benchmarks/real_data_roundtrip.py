"""Real-data round trips of radconf's DICOM-RT exchange, with the figures as a Markdown table.

A. slicerio's sample chest CT (``CTChest4.nrrd``, 128 x 128 x 34) and its 7-segment ``Segmentation.seg.nrrd``:
   written as a TPS export (CT series + one RTSTRUCT), each ROI rasterised back (``read_structure_set`` +
   ``rasterise_roi``) and compared with the segment; ``import_dicom`` (CT voxels and label map compared);
   ``export_dicom`` of the imported label map (RTSTRUCT, SEG, .seg.nrrd), the .seg.nrrd read back with slicerio.
B. dicompyler-core 0.5.6's clinical breast RTSTRUCT (``tests/dicom/data/dicompyler_rtss.dcm``) on its CT grid,
   rebuilt from the sdist's ``ct.0.dcm`` values and the contours' slice positions (512 x 512 x 98): every ROI
   rasterised; its volume against the contours' polygon area (even-odd) x 3 mm; dcmrtstruct2nii 5 on the same
   RTSTRUCT and a synthetic CT series of that grid (its whole command, every ROI; it calls ``pydicom.read_file``,
   which pydicom 3 removed, so the script aliases it); the masks traced and written again with
   ``write_tps_export`` and rasterised back. The in-plane crop the test uses is checked against the full grid.

    python benchmarks/real_data_roundtrip.py [--out FILE] [--work DIR] [--no-dcmrtstruct2nii]

The table goes to stdout and to ``--out`` (default ``benchmarks/results/real_data_roundtrip.md``).
``tests/dicom/test_real_data.py`` imports the helpers (grids, comparisons, the export) from here.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RTSS = REPO / "tests" / "dicom" / "data" / "dicompyler_rtss.dcm"
# dicompyler-core 0.5.6 tests/testdata/example_data/ct.0.dcm: the in-plane grid (only rtss.dcm is vendored)
CT0_POSITION = (-275.0, -524.0, 168.5593)
CT0_ORIENTATION = ((1.0, 0.0, -1.224647e-16), (0.0, 1.0, 0.0))
CT0_PIXEL_SPACING = (1.074219, 1.074219)
CT0_ROWS = CT0_COLUMNS = 512


def _patient():
    from radconf.dicom.identity import PatientStudy

    return PatientStudy("RADCONF-BENCH", "Bench^Real^Data", "1.2.826.0.1.3680043.10.543.8")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two boolean masks (1.0 when both are empty)."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def differ(a: np.ndarray, b: np.ndarray) -> int:
    """How many voxels two boolean masks disagree on."""
    return int(np.logical_xor(a, b).sum())


def no_warnings(warnings) -> bool:
    """True when a rasterisation's warnings are empty: no skipped, off-slice, clipped or non-planar contour."""
    return not (warnings.skipped_types or warnings.off_slice or warnings.outside_vertices or warnings.not_planar)


def read_back(rtstruct: Path, geometry) -> dict:
    """Every ROI of an RTSTRUCT file rasterised on ``geometry``: name -> (mask, warnings), in the file's order."""
    from radconf.dicom.structure_sets import rasterise_roi, read_structure_set

    return {roi.name: rasterise_roi(roi, geometry) for roi in read_structure_set(rtstruct).rois}


def ijk_to_lps(image) -> np.ndarray:
    """The 4 x 4 voxel-index-to-LPS matrix of a SimpleITK image (slicerio's ``ijkToLPS``)."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.asarray(image.GetDirection(), float).reshape(3, 3) * np.asarray(image.GetSpacing())[None, :]
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def labels_on_ct_grid(segmentation: dict, ct) -> tuple[np.ndarray, str]:
    """A single-layer slicerio segmentation as a (k, j, i) label map on the CT's grid, and what was done: nothing
    when the grids are equal, else a nearest-neighbour resampling (zero outside the segmentation's extent)."""
    import SimpleITK as sitk

    labels = np.ascontiguousarray(np.asarray(segmentation["voxels"]).transpose(2, 1, 0))
    if (labels.shape == sitk.GetArrayViewFromImage(ct).shape
            and np.allclose(segmentation["ijkToLPS"], ijk_to_lps(ct), atol=1e-4)
            and list(segmentation.get("referenceImageExtentOffset", [0, 0, 0])) == [0, 0, 0]):
        return labels, "same grid as the CT (size, ijkToLPS, extent offset 0): used as is"
    image = sitk.GetImageFromArray(labels)
    matrix = np.asarray(segmentation["ijkToLPS"], float)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    image.SetSpacing(tuple(spacing))
    image.SetDirection(tuple((matrix[:3, :3] / spacing).ravel()))
    image.SetOrigin(tuple(matrix[:3, 3]))
    resampled = sitk.Resample(image, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(resampled), "grid differs from the CT's: resampled (nearest neighbour)"


def export_label_map(labels_file: Path, labels: dict, dicom: Path, work: Path) -> Path:
    """``labels_file`` (a label map of the dataset.json ``labels``) as the prediction of CASE_0001, exported with
    ``export_dicom`` onto its CT series under ``dicom`` as RTSTRUCT, SEG and .seg.nrrd.

    Args:
        labels_file: the label map (.nii.gz); labels: structure name -> value; dicom: the TPS export's folder;
        work: an existing folder: the predictions go to ``work/predictions``, the export to ``work/out``.

    Returns:
        The path of ``export_report.csv`` (in ``work/out``; the files in ``work/out/CASE_0001``).
    """
    import json
    import shutil

    from radconf.dicom.exporter import export_dicom

    predictions = work / "predictions"
    predictions.mkdir()
    shutil.copy(labels_file, predictions / "CASE_0001.nii.gz")
    (predictions / "dataset.json").write_text(json.dumps({"labels": labels, "channel_names": {"0": "CT"},
                                                          "numTraining": 1, "file_ending": ".nii.gz"}))
    return export_dicom(predictions, dicom, work / "out", formats=("rtstruct", "seg", "segnrrd"), progress=False)


def _chest_run(work: Path) -> dict:
    """Part A's pipeline; returns what the rows and notes are made of."""
    import json

    import SimpleITK as sitk
    import slicerio

    from radconf.dicom.geometry import SeriesGeometry
    from radconf.dicom.importer import import_dicom
    from radconf.dicom.tps_export import StructureSetContent, write_tps_export
    from radconf.io.tables import read_csv

    data = Path(slicerio.__file__).parent / "data"
    ct = sitk.ReadImage(str(data / "CTChest4.nrrd"))
    segmentation = slicerio.read_segmentation(str(data / "Segmentation.seg.nrrd"))
    labels, grid_note = labels_on_ct_grid(segmentation, ct)
    segments = {s["name"]: int(s["labelValue"]) for s in segmentation["segments"]}
    masks = {name: labels == value for name, value in segments.items()}
    hu, geometry = sitk.GetArrayFromImage(ct), SeriesGeometry.from_image(ct)
    start = time.perf_counter()
    rtstruct = write_tps_export(work / "tps", hu, geometry, _patient(), [StructureSetContent("Slicer", masks)])[0]
    back = read_back(rtstruct, geometry)
    result = import_dicom(work / "tps", 543, "Chest", raw_root=work / "nnUNet_raw", progress=False)
    image = sitk.ReadImage(str(result.folder / "imagesTr" / "CASE_0001_0000.nii.gz"))
    labels_file = result.folder / "labelsTr" / "CASE_0001.nii.gz"
    dataset_labels = json.loads((result.folder / "dataset.json").read_text())["labels"]
    report = export_label_map(labels_file, dataset_labels, work / "tps", work)
    seconds = time.perf_counter() - start
    exported = slicerio.read_segmentation(str(report.parent / "CASE_0001" / "CASE_0001.seg.nrrd"))
    return {"ct": ct, "hu": hu, "geometry": geometry, "segmentation": segmentation, "grid_note": grid_note,
            "labels": labels, "masks": masks, "back": back, "image": image, "dataset_labels": dataset_labels,
            "imported": sitk.GetArrayFromImage(sitk.ReadImage(str(labels_file))), "exported": exported,
            "exported_labels": np.asarray(exported["voxels"]).transpose(2, 1, 0), "seconds": seconds,
            "readback": {r["structure"]: float(r["rtstruct_readback_dice"]) for r in read_csv(report)}}


def chest_rows(work: Path) -> tuple[list[dict], list[str]]:
    """Part A: per segment, the RTSTRUCT read back, the imported label map and the exported .seg.nrrd."""
    import SimpleITK as sitk

    run = _chest_run(work)
    geometry, values = run["geometry"], run["dataset_labels"]
    structures = [n for n in values if n != "background"]
    rows = []
    for name, structure in zip(run["masks"], structures):
        mask, (raster, warnings) = run["masks"][name], run["back"][name]
        rows.append({"segment": name, "voxels": int(mask.sum()),
                     "volume_cm3": mask.sum() * geometry.voxel_volume_mm3 / 1000.0, "dice": dice(raster, mask),
                     "differing": differ(raster, mask), "clean": no_warnings(warnings),
                     "imported_differing": differ(run["imported"] == values[structure], mask),
                     "segnrrd_differing": differ(run["exported_labels"] == values[structure], mask),
                     "export_readback_dice": run["readback"].get(structure, float("nan"))})
    layers = "one layer" if np.asarray(run["segmentation"]["voxels"]).ndim == 3 else "several layers"
    segments = run["exported"]["segments"]
    notes = [f"Slicer segmentation: {layers}, {len(run['masks'])} segments; {run['grid_note']}.",
             (f"CT {geometry.describe()}; imported CT voxels equal: "
              f"{np.array_equal(sitk.GetArrayFromImage(run['image']), run['hu'])}; geometry equal: "
              f"{_same_geometry(run['image'], run['ct'])}; label map equal: "
              f"{np.array_equal(run['imported'], run['labels'])}."),
             (f".seg.nrrd back in slicerio: names {[s['name'] for s in segments] == structures}, "
              f"{len({tuple(s['color']) for s in segments})} distinct colours, voxels equal: "
              f"{np.array_equal(run['exported_labels'], run['imported'])}."),
             f"write_tps_export + read back + import_dicom + export_dicom (3 formats): {run['seconds']:.1f} s."]
    return rows, notes


def _same_geometry(a, b) -> bool:
    return bool(np.allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-4) and np.allclose(a.GetSpacing(), b.GetSpacing(),
                atol=1e-5) and np.allclose(a.GetDirection(), b.GetDirection(), atol=1e-6))


def rebuilt_geometry(structure_set):
    """ct.0.dcm's in-plane grid, one slice at each z of the contours (ct.0.dcm is one of them: the top slice)."""
    from radconf.dicom.geometry import SeriesGeometry

    z = sorted({round(float(v), 4) for roi in structure_set.rois for c in roi.contours for v in c.points[:, 2]})
    positions = np.array([[CT0_POSITION[0], CT0_POSITION[1], value] for value in z])
    return SeriesGeometry(CT0_ROWS, CT0_COLUMNS, CT0_ORIENTATION[0], CT0_ORIENTATION[1], CT0_PIXEL_SPACING, positions)


def cropped_geometry(geometry, structure_set, margin: int = 2):
    """The same voxel lattice cut down to the contours' in-plane extent (plus ``margin`` pixels): with every contour
    inside it, the masks are the full grid's masks cut the same way (centre inclusion sees only voxel centres).
    Returns the grid and its first (column, row) in the full grid."""
    from radconf.dicom.geometry import SeriesGeometry

    ij = geometry.in_plane_index(np.concatenate([c.points for roi in structure_set.rois for c in roi.contours]))
    start = np.maximum(np.floor(ij.min(axis=0)).astype(int) - margin, 0)
    stop = np.minimum(np.ceil(ij.max(axis=0)).astype(int) + margin + 1, (geometry.columns, geometry.rows))
    positions = np.concatenate([geometry.index_to_patient(start[None, :].astype(float), k)
                                for k in range(geometry.n_slices)])
    return SeriesGeometry(int(stop[1] - start[1]), int(stop[0] - start[0]), geometry.row_direction,
                          geometry.column_direction, geometry.pixel_spacing, positions), (int(start[0]), int(start[1]))


def polygon_volume_cm3(roi, slice_spacing: float) -> float:
    """Even-odd area of each slice's contours (shoelace; a contour inside an odd number of others is a hole) times
    the slice spacing: an estimate independent of any voxel rasterisation."""
    from matplotlib.path import Path as PolygonPath

    by_slice = defaultdict(list)
    for contour in roi.closed_contours:
        by_slice[round(float(contour.points[0, 2]), 2)].append(contour.points[:, :2])
    area = 0.0
    for polygons in by_slice.values():
        for i, p in enumerate(polygons):
            depth = sum(PolygonPath(q).contains_point(p[0]) for j, q in enumerate(polygons) if j != i)
            shoelace = 0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], -1)) - np.dot(p[:, 1], np.roll(p[:, 0], -1)))
            area += shoelace if depth % 2 == 0 else -shoelace
    return area * slice_spacing / 1000.0


def _dcmrtstruct2nii_masks(rtss: Path, ct_folder: Path, out: Path) -> tuple[dict[str, np.ndarray], float]:
    """Every ROI through dcmrtstruct2nii's command (its masks as bool arrays by ROI name) and its run time."""
    import pydicom
    import SimpleITK as sitk

    if not hasattr(pydicom, "read_file"):
        pydicom.read_file = pydicom.dcmread  # dcmrtstruct2nii 5 predates pydicom 3
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a citation on import
        from dcmrtstruct2nii import dcmrtstruct2nii, list_rt_structs
        from dcmrtstruct2nii.adapters.convert.filenameconverter import FilenameConverter
    start = time.perf_counter()
    dcmrtstruct2nii(str(rtss), str(ct_folder), str(out), convert_original_dicom=False)
    seconds = time.perf_counter() - start
    masks = {}
    for name in list_rt_structs(str(rtss)):
        path = out / f"{FilenameConverter().convert(f'mask_{name}')}.nii.gz"
        if path.is_file():
            masks[str(name)] = sitk.GetArrayFromImage(sitk.ReadImage(str(path))) > 0
    return masks, seconds


def dicompyler_rows(work: Path, oracle: bool = True) -> tuple[list[dict], list[str]]:
    """Part B: per ROI, the rasterisation on the rebuilt grid, its oracles and the round trip."""
    from radconf.dicom.structure_sets import rasterise_roi, read_structure_set
    from radconf.dicom.tps_export import StructureSetContent, write_tps_export

    structure_set = read_structure_set(RTSS)
    geometry = rebuilt_geometry(structure_set)
    start = time.perf_counter()
    rasters = {roi.name: rasterise_roi(roi, geometry) for roi in structure_set.rois}
    read_seconds = time.perf_counter() - start
    masks = {name: mask for name, (mask, _) in rasters.items()}
    crop, (i0, j0) = cropped_geometry(geometry, structure_set)
    window = (slice(None), slice(j0, j0 + crop.rows), slice(i0, i0 + crop.columns))
    crop_equal = all(np.array_equal(rasterise_roi(roi, crop)[0], masks[roi.name][window])
                     and masks[roi.name][window].sum() == masks[roi.name].sum() for roi in structure_set.rois)
    start = time.perf_counter()
    rtstruct = write_tps_export(work / "export", np.zeros(geometry.shape, np.int16), geometry, _patient(),
                                [StructureSetContent("dicompyler", masks)])[0]
    back = read_back(rtstruct, geometry)
    trip_seconds = time.perf_counter() - start
    theirs, oracle_seconds = (_dcmrtstruct2nii_masks(RTSS, work / "export" / "CT", work / "oracle")
                              if oracle else ({}, float("nan")))
    rows = []
    for roi in structure_set.rois:
        mask, warnings = rasters[roi.name]
        raster, back_warnings = back[roi.name]
        other = theirs.get(roi.name)
        rows.append({"roi": roi.name, "contours": len(roi.closed_contours), "voxels": int(mask.sum()),
                     "volume_cm3": mask.sum() * geometry.voxel_volume_mm3 / 1000.0,
                     "polygon_cm3": polygon_volume_cm3(roi, geometry.slice_spacing), "clean": no_warnings(warnings),
                     "dcmrtstruct2nii_differing": "n/a" if other is None else differ(other, mask),
                     "dice": dice(raster, mask),
                     "differing": differ(raster, mask) if no_warnings(back_warnings) else -1})
    notes = [(f"Rebuilt grid {geometry.describe()}: {geometry.n_slices} slice positions from the contours, "
              f"{len(structure_set.contour_image_uids)} images referenced; top slice "
              f"{geometry.slice_positions[-1]:.4f} mm vs ct.0.dcm {CT0_POSITION[2]} mm."),
             (f"Cropped grid (the test's, {crop.columns} x {crop.rows} from column {i0}, row {j0}) gives the same "
              f"masks: {crop_equal}."),
             (f"read + rasterise {read_seconds:.1f} s; write_tps_export + read + rasterise {trip_seconds:.1f} s; "
              + (f"dcmrtstruct2nii (whole command) {oracle_seconds:.1f} s." if oracle else "dcmrtstruct2nii not run."))]
    return rows, notes


def markdown(chest: list[dict], chest_notes: list[str], rois: list[dict], roi_notes: list[str]) -> list[str]:
    """The two tables and their notes."""
    lines = ["# Real-data round trips", "", "## A. slicerio CTChest4 + Segmentation.seg.nrrd", "",
             ("| segment | voxels | volume cm^3 | RTSTRUCT Dice | differing voxels | import differing | .seg.nrrd "
              "differing | export read-back Dice |"), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['segment']} | {r['voxels']} | {r['volume_cm3']:.2f} | {r['dice']:.4f} | {r['differing']} | "
              f"{r['imported_differing']} | {r['segnrrd_differing']} | {r['export_readback_dice']:.4f} |"
              for r in chest]
    lines += ["", *[f"- {n}" for n in chest_notes], "", "## B. dicompyler-core rtss.dcm on the rebuilt CT grid", "",
              ("| ROI | contours | voxels | volume cm^3 | polygon cm^3 | dcmrtstruct2nii differing | round-trip Dice | "
               "differing voxels |"), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['roi']} | {r['contours']} | {r['voxels']} | {r['volume_cm3']:.2f} | {r['polygon_cm3']:.2f} | "
              f"{r['dcmrtstruct2nii_differing']} | {r['dice']:.4f} | {r['differing']} |" for r in rois]
    clean = all(r["clean"] for r in chest + rois)
    lines += ["", *[f"- {n}" for n in roi_notes], f"- Every contour on a slice, none clipped or skipped: {clean}."]
    return lines


def main(argv: list[str] | None = None) -> int:
    """Runs A and B, prints the Markdown and writes it to ``--out``."""
    from radconf.io.files import atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "real_data_roundtrip.md")
    parser.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary folder)")
    parser.add_argument("--no-dcmrtstruct2nii", dest="oracle", action="store_false",
                        help="leave out dcmrtstruct2nii (about a minute on the 512 x 512 x 98 grid)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="radconf_real_data_") as tmp:
        work = args.work or Path(tmp)
        for name in ("chest", "dicompyler"):
            (work / name).mkdir(parents=True, exist_ok=False)
        chest, chest_notes = chest_rows(work / "chest")
        rois, roi_notes = dicompyler_rows(work / "dicompyler", oracle=args.oracle)
    text = "\n".join(markdown(chest, chest_notes, rois, roi_notes)) + "\n"
    print(text, end="")
    atomic_write_text(args.out, text)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
