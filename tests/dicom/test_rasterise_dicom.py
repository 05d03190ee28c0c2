"""Rasterisation through real DICOM files: analytic contours in patient mm -> RTSTRUCT -> radconf's masks.

Each case writes a CT series (``write_ct_series``) and an RTSTRUCT whose contours are analytic polygons in patient
coordinates, reads both back from disk (``scan_folder``/``check_series``, ``read_structure_set``) and rasterises with
``rasterise_roi``. Expected masks are lattice-point sets of the analytic shapes at the voxel centres
``P = S_k + X * dc * i + Y * dr * j``, computed here without radconf; every shape is checked to have no centre within
1e-3 mm of its boundary. matplotlib's ``Path`` is the polygon oracle and dcmrtstruct2nii 5 the reference converter.
"""
from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from radconf.dicom.ct_writer import write_ct_series
from radconf.dicom.geometry import SeriesGeometry
from radconf.dicom.identity import PatientStudy
from radconf.dicom.rtstruct_writer import RoiContours, build_rtstruct, write_dataset
from radconf.dicom.scan import scan_folder
from radconf.dicom.series import check_series
from radconf.dicom.structure_sets import rasterise_roi, read_structure_set, warning_lines

ROWS = COLUMNS = 64
PIXEL_SPACING = (1.25, 0.977)  # DICOM order: dr (between rows), dc (between columns)
DR, DC = PIXEL_SPACING
ORIGIN = np.array([-249.61, -180.37, -31.7])
AXIAL = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
UNIFORM_Z = 2.5 * np.arange(6)
NON_UNIFORM_Z = np.array([0.0, 2.5, 5.0, 8.0, 10.5, 13.0])  # steps 2.5 2.5 3 2.5 2.5 (mean 2.6)
# Mean step 2.4: slice 3 (9 mm) is 1.8 mm = 0.75 mean steps off the uniform grid a NIfTI reader assumes.
STRONGLY_NON_UNIFORM_Z = np.array([0.0, 3.0, 6.0, 9.0, 10.5, 12.0])
MARGIN = 1e-3  # no voxel centre lies closer than this (mm) to a shape's boundary
DISC_CENTRE = (-218.43, -140.77)
SMALL_DISC_CENTRE = (-230.2, -160.3)
CLIPPED_CENTRE = (-252.0, -105.0)  # beyond the image's first column, near its last row
MIXED_CENTRE = (-203.9, -120.4)
# (x0, x1, y0, y1) mm: a square, a square hole in it and an island in the hole
SQUARES = ((-240.3, -205.1, -165.2, -125.6), (-233.4, -212.2, -158.1, -132.9), (-226.6, -219.3, -150.4, -140.2))
PATIENT = PatientStudy("RT-TEST-0001", "Phantom^Rasterise", "1.2.826.0.1.3680043.10.999.1")


@dataclass(frozen=True)
class Case:
    """A CT series and its RTSTRUCT on disk, as read back."""

    geometry: SeriesGeometry
    ct_folder: Path
    rtstruct: Path
    rois: dict


def _geometry(z: np.ndarray, directions=AXIAL, origin=ORIGIN) -> SeriesGeometry:
    normal = np.cross(directions[0], directions[1])
    positions = np.asarray(origin, float) + np.asarray(z, float)[:, None] * normal
    return SeriesGeometry(ROWS, COLUMNS, directions[0], directions[1], PIXEL_SPACING, positions)


def _write_case(folder: Path, geometry: SeriesGeometry, rois: dict[str, list], edit: Callable | None = None) -> Case:
    """Writes the series and one RTSTRUCT of ``rois`` (name -> [(k, (N, 3) points)]), reads both back."""
    reference = write_ct_series(np.zeros(geometry.shape, np.int16), geometry, folder / "CT", PATIENT,
                                series_description="rasterise test")
    (headers,) = scan_folder(folder / "CT").ct_series.values()
    read_back = check_series(headers)
    assert read_back == geometry
    items = [RoiContours(n, name, (200, 40, 40), contours) for n, (name, contours) in enumerate(rois.items(), 1)]
    ds = build_rtstruct(reference, items, label="analytic")
    if edit is not None:
        edit(ds)
    path = write_dataset(ds, folder / "RS_analytic.dcm")
    return Case(read_back, folder / "CT", path, {roi.name: roi for roi in read_structure_set(path).rois})


def _circle(centre, radius: float, directions=AXIAL, n: int = 360) -> np.ndarray:
    """(n, 3) vertices of an inscribed n-gon of the circle in the plane spanned by ``directions``."""
    t = np.arange(n) * (2 * np.pi / n)
    x, y = (np.asarray(d, float) for d in directions)
    return np.asarray(centre, float) + radius * (np.cos(t)[:, None] * x + np.sin(t)[:, None] * y)


def _rectangle(box, z: float) -> np.ndarray:
    x0, x1, y0, y1 = box
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])


def _centres(position, directions=AXIAL) -> np.ndarray:
    """(rows, columns, 3) voxel centres of one slice: P = S + X * dc * i + Y * dr * j."""
    j, i = np.mgrid[:ROWS, :COLUMNS]
    x, y = (np.asarray(d, float) for d in directions)
    return np.asarray(position, float) + i[..., None] * DC * x + j[..., None] * DR * y


def _axial_xy() -> np.ndarray:
    return _centres(ORIGIN)[..., :2]


def _in_disc(centres: np.ndarray, centre, radius: float) -> np.ndarray:
    """Centres strictly inside the circle (after checking that none is within MARGIN of it)."""
    distance = np.linalg.norm(centres - np.asarray(centre, float), axis=-1)
    assert np.min(np.abs(distance - radius)) > MARGIN
    return distance < radius


def _in_polygon(points2d: np.ndarray, polygon2d: np.ndarray) -> np.ndarray:
    """matplotlib's point-in-polygon test of (..., 2) points."""
    flat = points2d.reshape(-1, 2)
    return MplPath(np.asarray(polygon2d, float)).contains_points(flat).reshape(points2d.shape[:-1])


def _in_box(xy: np.ndarray, box) -> np.ndarray:
    x0, x1, y0, y1 = box
    x, y = xy[..., 0], xy[..., 1]
    assert min(np.min(np.abs(x - x0)), np.min(np.abs(x - x1)), np.min(np.abs(y - y0)), np.min(np.abs(y - y1))) > MARGIN
    return (x0 < x) & (x < x1) & (y0 < y) & (y < y1)


def _volume(slices: dict[int, np.ndarray]) -> np.ndarray:
    return np.stack([slices.get(k, np.zeros((ROWS, COLUMNS), bool)) for k in range(6)])


def _z(k: int, z=UNIFORM_Z) -> float:
    return float(ORIGIN[2] + z[k])


def _mark_point_and_open(ds) -> None:
    """Makes contour 1 of ROI 'Mixed' a POINT and contour 2 an OPEN_PLANAR contour."""
    (number,) = [int(r.ROINumber) for r in ds.StructureSetROISequence if r.ROIName == "Mixed"]
    (item,) = [c for c in ds.ROIContourSequence if int(c.ReferencedROINumber) == number]
    point, open_planar = item.ContourSequence[1], item.ContourSequence[2]
    point.ContourGeometricType = "POINT"
    point.ContourData = [f"{v:.6f}" for v in np.asarray(point.ContourData, float)[:3]]
    point.NumberOfContourPoints = 1
    open_planar.ContourGeometricType = "OPEN_PLANAR"


@pytest.fixture(scope="module")
def uniform(tmp_path_factory) -> Case:
    """Axial, uniform 2.5 mm slices, off-grid origin, 0.977 x 1.25 mm pixels; one ROI per analytic shape."""
    rois = {
        "Disc": [(k, _circle((*DISC_CENTRE, _z(k)), 20.0)) for k in (1, 2, 3, 4)],
        "Annulus": [(2, _circle((*DISC_CENTRE, _z(2)), 20.0)), (2, _circle((*DISC_CENTRE, _z(2)), 9.0))],
        "SmallDisc": [(3, _circle((*SMALL_DISC_CENTRE, _z(3)), 3.0))],
        "SquareHole": [(1, _rectangle(box, _z(1))) for box in SQUARES],
        "Clipped": [(4, _circle((*CLIPPED_CENTRE, _z(4)), 20.0))],
        "Mixed": [(0, _circle((*MIXED_CENTRE, _z(0)), 6.0)), (0, _circle((*MIXED_CENTRE, _z(0)), 14.0, n=8)),
                  (0, _circle((*MIXED_CENTRE, _z(0)), 14.0))],
    }
    return _write_case(tmp_path_factory.mktemp("uniform"), _geometry(UNIFORM_Z), rois, _mark_point_and_open)


def _expected_uniform(name: str) -> np.ndarray:
    """The lattice oracle of each ROI of the ``uniform`` case, computed in patient mm."""
    xy = _axial_xy()
    if name == "Disc":
        disc = _in_disc(xy, DISC_CENTRE, 20.0)
        return _volume({k: disc for k in (1, 2, 3, 4)})
    if name == "Annulus":
        return _volume({2: _in_disc(xy, DISC_CENTRE, 20.0) & ~_in_disc(xy, DISC_CENTRE, 9.0)})
    if name == "SquareHole":
        outer, hole, island = (_in_box(xy, box) for box in SQUARES)
        return _volume({1: outer ^ hole ^ island})
    raise KeyError(name)


def test_disc_polygon_and_circle_hold_the_same_centres_and_radconf_finds_exactly_them(uniform):
    xy = _axial_xy()
    circle = _in_disc(xy, DISC_CENTRE, 20.0)
    polygon = _in_polygon(xy, _circle((*DISC_CENTRE, 0.0), 20.0)[:, :2])
    np.testing.assert_array_equal(polygon, circle)  # the 360-gon (sag 7.6e-4 mm) holds the circle's centres
    assert circle.sum() == 1034
    assert abs(circle.sum() * DC * DR / (np.pi * 20.0 ** 2) - 1) < 0.01
    mask, warnings = rasterise_roi(uniform.rois["Disc"], uniform.geometry)
    assert mask.dtype == bool and mask.shape == (6, ROWS, COLUMNS)
    np.testing.assert_array_equal(mask, _expected_uniform("Disc"))
    assert mask.sum() == 4 * 1034
    assert warning_lines(warnings, "Disc") == []


def test_annulus_inner_contour_is_a_hole(uniform):
    mask, warnings = rasterise_roi(uniform.rois["Annulus"], uniform.geometry)
    expected = _expected_uniform("Annulus")
    np.testing.assert_array_equal(mask, expected)
    assert mask.sum() == 1034 - 210  # both contours run the same way: even-odd, not non-zero winding
    assert warning_lines(warnings, "Annulus") == []


def test_small_disc_has_its_exact_handful_of_voxels(uniform):
    mask, _ = rasterise_roi(uniform.rois["SmallDisc"], uniform.geometry)
    expected = _in_disc(_axial_xy(), SMALL_DISC_CENTRE, 3.0)
    assert expected.sum() == 22
    np.testing.assert_array_equal(mask, _volume({3: expected}))


def test_square_with_hole_and_island_follows_the_even_odd_rule(uniform):
    mask, _ = rasterise_roi(uniform.rois["SquareHole"], uniform.geometry)
    x = ORIGIN[0] + DC * np.arange(COLUMNS)
    y = ORIGIN[1] + DR * np.arange(ROWS)
    sizes = [np.count_nonzero((x0 < x) & (x < x1)) * np.count_nonzero((y0 < y) & (y < y1))
             for x0, x1, y0, y1 in SQUARES]
    # by hand, e.g. outer: -249.61 + 0.977 i in (-240.3, -205.1) -> i = 10..45; -180.37 + 1.25 j in (-165.2, -125.6)
    # -> j = 13..43; hole: i = 17..38, j = 18..37; island: i = 24..31, j = 24..32
    assert sizes == [36 * 31, 22 * 20, 8 * 9]
    assert mask.sum() == sizes[0] - sizes[1] + sizes[2]
    np.testing.assert_array_equal(mask, _expected_uniform("SquareHole"))
    island = mask[1][_in_box(_axial_xy(), SQUARES[2])]
    assert island.all() and island.size == 72


def test_point_and_open_planar_contours_are_skipped_with_one_warning_each(uniform):
    roi = uniform.rois["Mixed"]
    assert [c.geometric_type for c in roi.contours] == ["CLOSED_PLANAR", "POINT", "OPEN_PLANAR"]
    assert roi.contours[1].points.shape == (1, 3)
    mask, warnings = rasterise_roi(roi, uniform.geometry)
    np.testing.assert_array_equal(mask, _volume({0: _in_disc(_axial_xy(), MIXED_CENTRE, 6.0)}))  # no 14 mm ring
    assert warnings.skipped_types == {"OPEN_PLANAR": 1, "POINT": 1}
    lines = warning_lines(warnings, "ROI Mixed")
    assert len(lines) == 2
    assert "1 OPEN_PLANAR contour(s) skipped" in lines[0] and "1 POINT contour(s) skipped" in lines[1]
    assert all(line.startswith("ROI Mixed: ") for line in lines)


def test_contour_partly_outside_the_image_is_clipped_and_reported(uniform):
    mask, warnings = rasterise_roi(uniform.rois["Clipped"], uniform.geometry)
    expected = _in_disc(_axial_xy(), CLIPPED_CENTRE, 20.0)
    assert expected.sum() == 285
    np.testing.assert_array_equal(mask, _volume({4: expected}))
    points = _circle((*CLIPPED_CENTRE, 0.0), 20.0)
    x_edges = ORIGIN[0] + DC * np.array([-0.5, COLUMNS - 0.5])
    y_edges = ORIGIN[1] + DR * np.array([-0.5, ROWS - 0.5])
    outside = ((points[:, 0] < x_edges[0]) | (points[:, 0] > x_edges[1]) | (points[:, 1] < y_edges[0])
               | (points[:, 1] > y_edges[1]))
    assert 0 < outside.sum() < len(points)
    assert warnings.outside_vertices == outside.sum()
    (line,) = warning_lines(warnings, "Clipped")
    assert f"{outside.sum()} contour point(s) lie outside the image" in line


def test_supersampled_fractions_approximate_the_disc_area(uniform):
    fractions, _ = rasterise_roi(uniform.rois["Disc"], uniform.geometry, supersampling=4)
    assert fractions.dtype == np.float32
    np.testing.assert_array_equal(fractions * 16, np.round(fractions * 16))
    assert not fractions[0].any() and not fractions[5].any()
    offset = np.abs(_axial_xy() - np.asarray(DISC_CENTRE))
    farthest = np.hypot(offset[..., 0] + DC / 2, offset[..., 1] + DR / 2)
    nearest = np.hypot(np.maximum(offset[..., 0] - DC / 2, 0), np.maximum(offset[..., 1] - DR / 2, 0))
    for k in (1, 2, 3, 4):
        area = float(fractions[k].sum(dtype=np.float64)) * DC * DR
        assert abs(area / (np.pi * 20.0 ** 2) - 1) < 0.01
        assert np.all(fractions[k][farthest < 20.0 - MARGIN] == 1)
        assert np.all(fractions[k][nearest > 20.0 + MARGIN] == 0)


@pytest.fixture(scope="module")
def non_uniform(tmp_path_factory) -> Case:
    """Axial slices at 0, 2.5, 5, 8, 10.5 and 13 mm (+ origin): contours on, near and between slices."""
    def disc(z):
        return [(3, _circle((*DISC_CENTRE, ORIGIN[2] + z), 20.0))]

    rois = {"OnSlice": disc(8.0), "Near": disc(8.3), "NearLimit": disc(8.6), "Between": disc(6.5),
            "BeyondTolerance": disc(8.7), "Last": [(5, _circle((*DISC_CENTRE, _z(5, NON_UNIFORM_Z)), 20.0))]}
    return _write_case(tmp_path_factory.mktemp("non_uniform"), _geometry(NON_UNIFORM_Z), rois)


def test_non_uniform_slices_match_contours_by_their_actual_positions(non_uniform):
    geometry = non_uniform.geometry
    np.testing.assert_allclose(geometry.slice_positions, ORIGIN[2] + NON_UNIFORM_Z, atol=1e-6)
    assert geometry.slice_tolerance(3) == pytest.approx(0.625)  # 0.25 x min(3, 2.5)
    disc = _in_disc(_axial_xy(), DISC_CENTRE, 20.0)
    for name, k in (("OnSlice", 3), ("Near", 3), ("NearLimit", 3), ("Last", 5)):
        mask, warnings = rasterise_roi(non_uniform.rois[name], geometry)
        np.testing.assert_array_equal(mask, _volume({k: disc}), err_msg=name)
        assert warning_lines(warnings, name) == []
    for name in ("Between", "BeyondTolerance"):
        mask, warnings = rasterise_roi(non_uniform.rois[name], geometry)
        assert not mask.any() and warnings.off_slice == 1
        (line,) = warning_lines(warnings, name)
        assert line.startswith(f"{name}: 1 contour(s) lie on no slice of the CT series")


def _rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    if axis == "z":
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


@pytest.mark.parametrize("rotation", [_rotation("z", 30.0), _rotation("x", 25.0),
                                      _rotation("x", 25.0) @ _rotation("z", 30.0)],
                         ids=["30deg_about_z", "25deg_about_x", "both"])
def test_oblique_series_contours_land_on_their_slice_and_voxels(tmp_path, rotation):
    directions = (tuple(rotation[:, 0]), tuple(rotation[:, 1]))
    geometry = _geometry(2.5 * np.arange(6), directions, origin=(-101.3, 57.9, 212.45))
    ic, jc = 30.37, 28.61
    disc_centre = geometry.positions[2] + rotation[:, 0] * DC * ic + rotation[:, 1] * DR * jc
    triangle_ij = np.array([[10.3, 12.6], [50.7, 20.2], [25.4, 55.9]])
    triangle = (geometry.positions[4] + triangle_ij[:, :1] * DC * rotation[:, 0]
                + triangle_ij[:, 1:] * DR * rotation[:, 1])
    case = _write_case(tmp_path, geometry, {"Disc": [(2, _circle(disc_centre, 20.0, directions))],
                                            "Triangle": [(4, triangle)]})
    # Oracle: the contour points read back, mapped to (i, j, k) through the inverse of the affine grid.
    affine = np.column_stack([rotation[:, 0] * DC, rotation[:, 1] * DR, rotation[:, 2] * 2.5])
    j, i = np.mgrid[:ROWS, :COLUMNS]
    lattice = np.stack([i, j], axis=-1).astype(float)
    lattice_mm = lattice * [DC, DR]
    for name, k in (("Disc", 2), ("Triangle", 4)):
        (contour,) = case.rois[name].contours
        ijk = np.linalg.solve(affine, (contour.points - geometry.positions[0]).T).T
        np.testing.assert_allclose(ijk[:, 2], k, atol=1e-4)
        expected = _in_polygon(lattice, ijk[:, :2])
        if name == "Disc":
            np.testing.assert_array_equal(expected, _in_disc(lattice_mm, (ic * DC, jc * DR), 20.0))
        else:
            np.testing.assert_array_equal(expected, _in_polygon(lattice, triangle_ij))
            assert _min_distance_to_edges(lattice_mm, triangle_ij * [DC, DR]) > MARGIN
        mask, warnings = rasterise_roi(case.rois[name], case.geometry)
        np.testing.assert_array_equal(mask, _volume({k: expected}), err_msg=name)
        assert warning_lines(warnings, name) == []
        # the same voxels in patient mm: centres of slice k within 20 mm of the disc centre
        if name == "Disc":
            np.testing.assert_array_equal(mask[2], _in_disc(_centres(geometry.positions[2], directions),
                                                            disc_centre, 20.0))


def _min_distance_to_edges(points: np.ndarray, polygon: np.ndarray) -> float:
    """Smallest distance of (..., 2) points to the edges of a closed polygon."""
    p = points.reshape(-1, 1, 2)
    a, b = polygon, np.roll(polygon, -1, axis=0)
    t = np.clip(np.sum((p - a) * (b - a), axis=-1) / np.sum((b - a) ** 2, axis=-1), 0, 1)
    return float(np.min(np.linalg.norm(p - (a + t[..., None] * (b - a)), axis=-1)))


# --- dcmrtstruct2nii 5 as the reference converter ---------------------------------------------------------------


def _dcmrtstruct2nii(case: Case, output: Path, names: list[str], monkeypatch) -> dict:
    """dcmrtstruct2nii's masks (SimpleITK images) of the named ROIs, its logging and ITK warnings silenced."""
    with contextlib.redirect_stdout(io.StringIO()):  # it prints a citation on import
        converter = pytest.importorskip("dcmrtstruct2nii")
    import pydicom
    import SimpleITK as sitk

    monkeypatch.setattr(pydicom, "read_file", pydicom.dcmread, raising=False)  # removed in pydicom 3; v5 calls it
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # "Non uniform sampling" on the non-uniform series
    logging.disable(logging.CRITICAL)
    try:
        converter.dcmrtstruct2nii(str(case.rtstruct), str(case.ct_folder), str(output), structures=names,
                                  gzip=False, convert_original_dicom=False)
    finally:
        logging.disable(logging.NOTSET)
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    return {name: sitk.ReadImage(str(output / f"mask_{name}.nii")) for name in names}


def test_dcmrtstruct2nii_agrees_voxel_for_voxel_on_a_uniform_series(uniform, tmp_path, monkeypatch):
    import SimpleITK as sitk

    names = ["Disc", "Annulus", "SquareHole"]
    images = _dcmrtstruct2nii(uniform, tmp_path, names, monkeypatch)
    reference = uniform.geometry.to_image(np.zeros(uniform.geometry.shape, np.uint8))
    for name in names:
        image = images[name]
        # its axes: (column, row, slice), slices ascending in z, no flip; align explicitly all the same
        np.testing.assert_allclose(image.GetDirection(), np.eye(3).ravel(), atol=1e-6)
        np.testing.assert_allclose(image.GetOrigin(), uniform.geometry.positions[0], atol=1e-4)
        np.testing.assert_allclose(image.GetSpacing(), uniform.geometry.spacing, rtol=1e-6)
        aligned = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        theirs = sitk.GetArrayFromImage(aligned) > 0
        np.testing.assert_array_equal(theirs, sitk.GetArrayFromImage(image) > 0)
        ours, _ = rasterise_roi(uniform.rois[name], uniform.geometry)
        np.testing.assert_array_equal(theirs, ours, err_msg=name)
        np.testing.assert_array_equal(ours, _expected_uniform(name), err_msg=name)
    assert [int(_expected_uniform(n).sum()) for n in names] == [4136, 824, 748]


def test_dcmrtstruct2nii_misplaces_contours_on_non_uniform_slices(non_uniform, tmp_path, monkeypatch):
    import SimpleITK as sitk

    disc = _in_disc(_axial_xy(), DISC_CENTRE, 20.0)
    # Slices 0 2.5 5 8 10.5 13: its uniform grid (mean step 2.6) is within 0.2 mm of every slice, so contours on
    # and near slices agree; the contour between slices 2 and 3 (6.5 mm), which radconf leaves out, it rasterises.
    images = _dcmrtstruct2nii(non_uniform, tmp_path / "mild", ["OnSlice", "Near", "Between"], monkeypatch)
    assert images["OnSlice"].GetSpacing()[2] == pytest.approx(2.6)
    for name in ("OnSlice", "Near"):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(images[name]) > 0, _volume({3: disc}))
    between = sitk.GetArrayFromImage(images["Between"]) > 0
    assert between.sum() == disc.sum() and not rasterise_roi(non_uniform.rois["Between"], non_uniform.geometry)[0].any()
    # Slices 0 3 6 9 10.5 12: the contour on slice 3 (9 mm) is at index 3.75 of its uniform grid -> slice 4.
    contours = {"Slice1": [(1, _circle((*DISC_CENTRE, _z(1, STRONGLY_NON_UNIFORM_Z)), 20.0))],
                "Slice3": [(3, _circle((*DISC_CENTRE, _z(3, STRONGLY_NON_UNIFORM_Z)), 20.0))]}
    strong = _write_case(tmp_path / "strong", _geometry(STRONGLY_NON_UNIFORM_Z), contours)
    images = _dcmrtstruct2nii(strong, tmp_path / "strong_out", ["Slice1", "Slice3"], monkeypatch)
    for name, k, theirs_k in (("Slice1", 1, 1), ("Slice3", 3, 4)):
        ours, _ = rasterise_roi(strong.rois[name], strong.geometry)
        np.testing.assert_array_equal(ours, _volume({k: disc}), err_msg=name)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(images[name]) > 0, _volume({theirs_k: disc}))
