"""radconf_margin in-process on tiny hand-made NIfTI cases: counts, barriers, level maps, geometry, refusals."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from radconf.cli.margin import main
from radconf.margins import grow_folder
from tests.images import read_image, write_image

SPACING_XYZ = (1.0, 1.0, 3.0)
ORIGIN = (-12.5, 30.0, 7.25)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # x towards patient right, z towards inferior
LABELS = {"background": 0, "gtv": 1, "bone": 2, "body": 3, "organ": 4}
SHAPE = (9, 25, 25)  # (z, y, x)


def write_map(path: Path, array: np.ndarray, origin=ORIGIN, dtype=np.uint8) -> Path:
    return write_image(path, array, spacing_xyz=SPACING_XYZ, origin=origin, direction=DIRECTION, dtype=dtype)


read_map = read_image


def labels_folder(root: Path, cases=("a", "b"), wall: bool = False) -> Path:
    """GTV points (label 1) at (4, 12, 12), optionally a bone wall (label 2) at x = 14; a dataset.json."""
    folder = root / "labels"
    for case in cases:
        array = np.zeros(SHAPE, np.uint8)
        array[4, 12, 12] = 1
        if wall:
            array[:, :, 14] = 2
        write_map(folder / f"{case}.nii.gz", array)
    (folder / "dataset.json").write_text(json.dumps({"labels": LABELS, "file_ending": ".nii.gz"}))
    return folder


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def run(argv: list[str], capsys) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_point_grown_by_10_mm_with_geometry_and_report(tmp_path, capsys):
    source = labels_folder(tmp_path)
    code, out = run(["-i", source, "-o", tmp_path / "ctv", "--label", "gtv", "--margin", "10"], capsys)
    assert code == 0, out
    for case in ("a", "b"):
        image = sitk.ReadImage(str(tmp_path / "ctv" / f"{case}.nii.gz"))
        assert (image.GetSpacing(), image.GetOrigin(), image.GetDirection()) == (SPACING_XYZ, ORIGIN, DIRECTION)
        mask = sitk.GetArrayFromImage(image)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
        assert mask.sum() == 1419  # 317 + 2 * (293 + 197 + 61): (3k)^2 + j^2 + i^2 <= 100
    report = (tmp_path / "ctv" / "margin_report.csv").read_text().splitlines()
    assert report[0] == "case,gtv_cm3,ctv_cm3,clipped_at_border"
    assert report[1] == "a,0.003,4.257,no"  # 1 and 1419 voxels of 3 mm3
    dataset = json.loads((tmp_path / "ctv" / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "ctv": 1} and dataset["radconf"]["gtv"] == "label gtv (1)"


def test_superior_is_the_patient_direction_of_the_header(tmp_path, capsys):
    source = labels_folder(tmp_path, cases=("a",))
    code, out = run(["-i", source, "-o", tmp_path / "ctv", "--label", "1", "--margin", "0", "--sup", "6",
                     "--left", "2"], capsys)
    assert code == 0, out
    mask = read_map(tmp_path / "ctv" / "a.nii.gz")
    # z index increasing is inferior and x index increasing is patient right in this header; the superior-left
    # quarter of the ellipse (dz * 3 / 6)^2 + (dx / 2)^2 <= 1 also holds (dz, dx) = (-1, -1)
    assert sorted(map(tuple, np.argwhere(mask).tolist())) == [(2, 12, 12), (3, 12, 11), (3, 12, 12), (4, 12, 10),
                                                              (4, 12, 11), (4, 12, 12)]


def test_a_barrier_wall_stops_the_margin_and_a_gap_lets_it_around(tmp_path, capsys):
    source = labels_folder(tmp_path, wall=True)
    code, out = run(["-i", source, "-o", tmp_path / "closed", "--label", "gtv", "--margin", "8",
                     "--barrier_labels", "bone"], capsys)
    assert code == 0, out
    closed = read_map(tmp_path / "closed" / "a.nii.gz")
    assert not closed[:, :, 14:].any() and closed[4, 12, 13]
    barriers = tmp_path / "barriers"  # the wall in a separate folder, with a gap at y >= 16
    for case in ("a", "b"):
        wall = np.zeros(SHAPE, np.uint8)
        wall[:, :16, 14] = 2
        write_map(barriers / f"{case}.nii.gz", wall)
    code, out = run(["-i", source, "-o", tmp_path / "around", "--label", "gtv", "--margin", "8", "--barriers",
                     barriers, "--barrier_labels", "2", "-djfile", source / "dataset.json"], capsys)
    assert code == 0, out
    around = read_map(tmp_path / "around" / "a.nii.gz")
    assert around[4, 17, 15] and not around[:, :16, 14].any()  # through the gap
    assert not around[4, 12, 16]  # 4 mm through the wall, about 10 mm around it


def test_level_map_and_body(tmp_path, capsys):
    levels = np.zeros(SHAPE, np.uint8)
    levels[2:7, 8:17, 8:17] = 1
    levels[3:6, 10:15, 10:15] = 2
    levels[4, 12, 12] = 3
    write_map(tmp_path / "levels" / "a.nii.gz", levels)
    body = np.zeros(SHAPE, np.uint8)
    body[:, :, :13] = 1
    write_map(tmp_path / "body" / "a.nii.gz", body)
    code, out = run(["-i", tmp_path / "levels", "-o", tmp_path / "ctv", "--level", "2", "--margin", "1",
                     "--body_dir", tmp_path / "body"], capsys)
    assert code == 0, out
    in_plane = np.zeros((3, 3, 3), bool)
    in_plane[1] = ndimage.generate_binary_structure(2, 1)  # 1 mm reaches the 4 in-plane face neighbours, not 3 mm
    gtv = levels >= 2
    expected = ndimage.binary_dilation(gtv, in_plane) & (body == 1) | gtv  # cut to the body, the GTV kept
    assert np.array_equal(read_map(tmp_path / "ctv" / "a.nii.gz"), expected.astype(np.uint8))


def test_body_label_holds_the_structures_drawn_over_it(tmp_path, capsys):
    array = np.zeros(SHAPE, np.uint8)
    array[:, 2:23, 2:16] = 3  # the body label, ending at x = 15
    array[:, 13:16, 10:13] = 4  # an organ inside the body, not a barrier
    array[4, 12, 12] = 1
    write_map(tmp_path / "labels" / "a.nii.gz", array)
    (tmp_path / "labels" / "dataset.json").write_text(json.dumps({"labels": LABELS}))
    code, out = run(["-i", tmp_path / "labels", "-o", tmp_path / "ctv", "--label", "gtv", "--margin", "5", "--body",
                     "body"], capsys)
    assert code == 0, out
    mask = read_map(tmp_path / "ctv" / "a.nii.gz").astype(bool)
    free = ndimage.distance_transform_edt(array != 1, sampling=(3.0, 1.0, 1.0)) <= 5  # the oracle: scipy's EDT
    assert mask[4, 14, 11] and np.array_equal(mask, free & (np.arange(SHAPE[2]) < 16))


def test_rerun_replaces_an_earlier_output_and_a_failed_run_leaves_it(tmp_path, capsys):
    source = labels_folder(tmp_path)
    assert run(["-i", source, "-o", tmp_path / "ctv", "--label", "gtv", "--margin", "10"], capsys)[0] == 0
    reports = grow_folder(input_folder=source, output_folder=tmp_path / "ctv", margin=2, label="gtv", progress=False)
    assert [r.ctv_cm3 for r in reports] == [0.039, 0.039]  # 13 voxels of 3 mm3: j^2 + i^2 <= 4 in one slice
    before = snapshot(tmp_path)
    write_map(source / "b.nii.gz", np.full(SHAPE, 0.5), dtype=np.float32)  # not a label map: found while working
    after_input = snapshot(tmp_path)
    code, out = run(["-i", source, "-o", tmp_path / "ctv", "--label", "gtv", "--margin", "4"], capsys)
    assert code == 2 and "b.nii.gz" in out and "Traceback" not in out
    assert snapshot(tmp_path) == after_input and before["ctv/a.nii.gz"] == after_input["ctv/a.nii.gz"]


def _refusal_cases(root: Path) -> dict[str, tuple[list, str]]:
    source = labels_folder(root, wall=True)
    shifted = root / "shifted"
    write_map(shifted / "a.nii.gz", np.zeros(SHAPE), origin=(ORIGIN[0] + 1.0, *ORIGIN[1:]))
    write_map(shifted / "b.nii.gz", np.zeros(SHAPE))
    partial = root / "partial"
    write_map(partial / "a.nii.gz", np.zeros(SHAPE))
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    common = ["-i", source, "--margin", "5"]
    return {
        "another grid": ([*common, "-o", root / "out", "--label", "gtv", "--barriers", shifted, "--barrier_labels",
                          "2"], "shifted/a.nii.gz is not on the grid"),
        "unknown label": ([*common, "-o", root / "out", "--label", "gvt"], "Did you mean gtv?"),
        "unknown barrier": ([*common, "-o", root / "out", "--label", "gtv", "--barrier_labels", "bnoe"],
                            "Did you mean bone?"),
        "negative margin": (["-i", source, "-o", root / "out", "--label", "gtv", "--margin", "-2"], "--contract"),
        "level beyond": ([*common, "-o", root / "out", "--level", "4"], "--level 4 is beyond the maps' levels"),
        "output inside input": ([*common, "-o", source / "ctv", "--label", "gtv"], "never writes"),
        "missing barrier case": ([*common, "-o", root / "out", "--label", "gtv", "--barriers", partial,
                                  "--barrier_labels", "2"], "has no map for 1 case(s) of -i (b)"),
        "foreign output": ([*common, "-o", foreign, "--label", "gtv"], "did not write (e.g. notes.txt)"),
    }


@pytest.mark.parametrize("name", ["another grid", "unknown label", "unknown barrier", "negative margin",
                                  "level beyond", "output inside input", "missing barrier case", "foreign output"])
def test_refusals_name_the_fix_and_write_nothing(tmp_path, capsys, name):
    argv, expected = _refusal_cases(tmp_path)[name]
    before = snapshot(tmp_path)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as stopped:
        code = stopped.code
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert len([line for line in err.splitlines() if "error:" in line]) == 1, err
    assert snapshot(tmp_path) == before
