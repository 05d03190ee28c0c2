"""benchmarks/benchmark_dicom_rt.py at a tiny size: its cases' truth masks (dicom_rt_cases.py), agreement
numbers and tables."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from radconf.dicom.geometry import SeriesGeometry

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import benchmark_dicom_rt as bench
import dicom_rt_cases as cases

ROIS = ["Body", "Rectum", "Bladder"]  # an outer structure, a ring (inner contour) and a hole on some slices


def _grid(rows: int = 9, columns: int = 9, slices: int = 3) -> SeriesGeometry:
    positions = np.arange(slices)[:, None] * np.array([0.0, 0.0, 2.0]) + np.array([-4.0, -4.0, -2.0])
    return SeriesGeometry(rows, columns, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (1.0, 1.0), positions)


def test_truth_of_a_circle_and_of_a_ring_by_hand():
    # radius 2.5 mm on a 1 mm grid, centred on a voxel centre: the centres with i^2 + j^2 < 6.25 are 1 + 4 + 4
    # (|i|, |j| <= 1), 4 at distance 2 on the axes, 8 at (2, 1)-type offsets: 21. The hole of radius 1.2 holds 5.
    disc = cases.build_case(_grid(), {"disc": lambda t: [cases.Ellipse(0.0, 0.0, 2.5, 2.5)] if t == 0 else []})
    assert [int(m.sum()) for m in disc.truth["disc"]] == [0, 21, 0]
    assert disc.truth["disc"][1, 4, 2] and disc.truth["disc"][1, 5, 6] and not disc.truth["disc"][1, 6, 6]
    assert disc.polygon_vs_analytic["disc"] == 0 and [k for k, _ in disc.contours["disc"]] == [1]
    ring = cases.build_case(_grid(), {"ring": lambda t: [cases.Ellipse(0.0, 0.0, 2.5, 2.5),
                                                         cases.Ellipse(0.0, 0.0, 1.2, 1.2)]})
    assert [int(m.sum()) for m in ring.truth["ring"]] == [16, 16, 16] and not ring.truth["ring"][0, 4, 4]


def test_compare_and_agreement_count_by_hand():
    truth, mask = np.zeros((1, 2, 4), bool), np.zeros((1, 2, 4), bool)
    truth[0, 0, :3], mask[0, 0, 1:] = True, True  # 2 shared, 1 missed, 1 extra
    assert cases.compare(mask, truth) == {"voxels": 3, "truth_voxels": 3, "dice": 2 * 2 / 6, "differing": 2}
    assert cases.compare(np.zeros(3), np.zeros(3))["dice"] == 1.0
    summary = cases.agreement({"a": mask, "b": truth}, {"a": truth, "b": truth})
    assert summary["total_differing"] == 2 and not summary["exact"] and summary["rois"]["b"]["dice"] == 1.0


@pytest.fixture(scope="module")
def radconf_only(tmp_path_factory) -> dict:
    return bench.run_benchmark(tmp_path_factory.mktemp("bench"), size=64, slices=8, n_readers=2, names=ROIS,
                               peers=False, log=lambda line: None)


def test_radconf_import_and_export_are_exact_at_a_tiny_size(radconf_only):
    for task, n_masks in (("rois", 3), ("readers", 2), ("3 ROIs, non-uniform slices", 3)):
        for tool in ("radconf import_dicom", "radconf read + rasterise"):
            result = radconf_only["import"][task][tool]
            assert len(result["rois"]) == n_masks and result["exact"] and result["total_differing"] == 0
            assert all(r["truth_voxels"] > 0 and r["dice"] == 1.0 for r in result["rois"].values())
    back = radconf_only["export"]["radconf"]["read_back"]["radconf"]
    assert back["exact"] and set(back["rois"]) == set(ROIS)
    # the label map paints Body first: its exported structure is Body minus the others
    body = radconf_only["export"]["radconf"]["read_back"]["radconf"]["rois"]["Body"]["truth_voxels"]
    inner = sum(radconf_only["rois"][n]["truth_voxels"] for n in ROIS[1:])
    assert body == radconf_only["rois"]["Body"]["truth_voxels"] - inner
    # 7 steps of 56.25 mm (150 / 8 x 3) with 3 of 37.5 mm from the second on: median 56.25, mean 48.21, so slice 4
    # is 4 x 48.21 - (56.25 + 3 x 37.5) = 24.1 mm from the uniform grid (and the series check accepts it: exact above)
    grid = radconf_only["nonuniform"]
    assert grid["steps_mm"] == [37.5, 56.25] and grid["median_step_mm"] == 56.25
    assert grid["max_deviation_mm"] == pytest.approx(4 * 337.5 / 7 - 168.75, abs=1e-3)


def test_tables_have_a_row_per_tool_and_roi(radconf_only):
    radconf_only.update(command="test", machine="test")
    lines = bench.header_lines(radconf_only) + bench.import_lines(radconf_only) + bench.export_lines(radconf_only)
    timing = [line for line in lines if line.startswith(("| rois |", "| readers |", "| 3 ROIs, non-uniform slices |"))]
    assert len(timing) == 6 and all(line.endswith("| 0 | yes |") for line in timing)
    assert sum(line.startswith("| Rectum |") for line in lines) == 3  # 2 imports and the export round trip
    assert [r["tool"] for r in bench.timing_rows(radconf_only)].count("radconf") == 1


def test_peers_on_the_same_files(tmp_path):
    pytest.importorskip("rt_utils")
    pytest.importorskip("dcmrtstruct2nii")
    results = bench.run_benchmark(tmp_path, size=32, slices=4, n_readers=1, names=["Body", "Bladder"],
                                  nonuniform=False, log=lambda line: None)
    assert results["import"]["rois"]["dcmrtstruct2nii"]["exact"]  # centre inclusion too (skimage polygon2mask)
    assert results["import"]["rois"]["rt-utils"]["total_differing"] > 0  # vertices rounded to voxels, filled
    export = results["export"]
    assert export["radconf"]["read_back"]["dcmrtstruct2nii"]["exact"]
    assert export["rt-utils"]["read_back"]["rt-utils"]["exact"]  # rt-utils agrees with itself only
    assert not export["rt-utils"]["read_back"]["radconf"]["exact"]
