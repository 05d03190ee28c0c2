"""radconf_evaluate end to end on small NIfTI folders written with SimpleITK into tmp_path."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from radconf.cli.evaluate import main, parse_label_arguments
from radconf.evaluation import EvaluationWarning, compute_metrics, evaluate_folders

SPACING_ZYX = (2.5, 1.1, 0.8)  # as written; NIfTI stores float32, so compare with the spacing read back


def _spacing_zyx(path):
    import SimpleITK as sitk

    return sitk.ReadImage(str(path)).GetSpacing()[::-1]


def _read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _snapshot(*folders):
    return {p: p.read_bytes() for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def test_cli_writes_all_outputs_and_matches_compute_metrics(label_folders, tmp_path):
    out = tmp_path / "eval"
    before = _snapshot(label_folders["ref"].parent, label_folders["pred"])
    code = main(["-ref", str(label_folders["ref"]), "-pred", str(label_folders["pred"]), "-o", str(out)])
    assert code == 0
    assert _snapshot(label_folders["ref"].parent, label_folders["pred"]) == before  # inputs untouched
    for name in ("metrics_per_case.csv", "summary.json", "summary.md", "plots/metric_dice.png",
                 "plots/metric_hd95_mm.png", "plots/metric_surface_dice_2p0mm.png"):
        assert (out / name).is_file(), name
    rows = _read_rows(out / "metrics_per_case.csv")
    assert len(rows) == 3 * 2  # cases x structures (names from dataset.json found next to labelsTr)
    assert {r["structure"] for r in rows} == {"bladder", "rectum"}
    ref, pred = label_folders["arrays"]["case_001"]
    expected = compute_metrics(ref == 2, pred == 2, _spacing_zyx(label_folders["ref"] / "case_001.nii.gz"))
    row = next(r for r in rows if r["case"] == "case_001" and r["structure"] == "rectum")
    for key in ("dice", "hd95_mm", "assd_mm", "surface_dice_2.0mm", "volume_ref_cm3"):
        assert float(row[key]) == pytest.approx(expected[key], abs=1e-9), key
    summary = json.loads((out / "summary.json").read_text())
    dice = [float(r["dice"]) for r in rows if r["structure"] == "bladder"]
    stats = summary["per_structure"]["bladder"]["dice"]
    assert stats["mean"] == pytest.approx(np.mean(dice)) and stats["sd"] == pytest.approx(np.std(dice, ddof=1))
    assert stats["n"] == 3 and stats["min"] == pytest.approx(min(dice))
    assert stats["worst_case"] == rows[[float(r["dice"]) if r["structure"] == "bladder" else 9 for r in rows].index(
        min(dice))]["case"]
    assert summary["settings"]["hd95_convention"] == "surface-distance"
    assert "± " in (out / "summary.md").read_text()
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_api_result(label_folders):
    result = evaluate_folders(reference_dir=label_folders["ref"], prediction_dir=label_folders["pred"],
                              labels={"bladder": 1, "rectum": 2}, dataset_json=None, tolerances_mm=(2.0, 3.0),
                              output_dir=None, allow_missing=False, num_processes=1, progress=False)
    assert result.cases == ["case_000", "case_001", "case_002"]
    keys = {"case", "structure", "label", "dice", "iou", "sensitivity", "precision", "hd95_mm", "hd_max_mm",
            "assd_mm", "msd_mm", "surface_dice_2.0mm", "surface_dice_3.0mm", "volume_ref_cm3", "volume_pred_cm3"}
    assert keys <= set(result.rows[0])
    means = [result.summary[s]["dice"]["mean"] for s in ("bladder", "rectum")]
    assert result.mean_dice == pytest.approx(np.mean(means))
    assert set(result.summary["rectum"]["hd95_mm"]) >= {"mean", "sd", "median", "min", "max", "n"}


def test_missing_prediction_is_an_error_naming_the_case(label_folders, capsys):
    (label_folders["pred"] / "case_002.nii.gz").unlink()
    code = main(["-ref", str(label_folders["ref"]), "-pred", str(label_folders["pred"]), "-o",
                 str(label_folders["tmp"] / "eval"), "--no_plots"])
    assert code == 2
    err = capsys.readouterr().err
    assert "case_002" in err and "--allow_missing" in err


def test_allow_missing_lists_and_evaluates_the_rest(label_folders, capsys):
    (label_folders["pred"] / "case_002.nii.gz").unlink()
    out = label_folders["tmp"] / "eval"
    with pytest.warns(EvaluationWarning, match="case_002"):
        code = main(["-ref", str(label_folders["ref"]), "-pred", str(label_folders["pred"]), "-o", str(out),
                     "--allow_missing", "--no_plots"])
    assert code == 0
    assert "case_002" in capsys.readouterr().out
    assert {r["case"] for r in _read_rows(out / "metrics_per_case.csv")} == {"case_000", "case_001"}
    assert json.loads((out / "summary.json").read_text())["missing_cases"] == ["case_002"]


def test_geometry_mismatch_is_an_error(label_folders, write_label_image, capsys, shapes):
    _, pred = label_folders["arrays"]["case_001"]
    write_label_image(label_folders["pred"] / "case_001.nii.gz", pred, shapes.spacing_xyz, origin=(12.0, -5.0, 3.0))
    code = main(["-ref", str(label_folders["ref"]), "-pred", str(label_folders["pred"]), "-o",
                 str(label_folders["tmp"] / "eval"), "--no_plots"])
    assert code == 2
    err = capsys.readouterr().err
    assert "Geometry mismatch" in err and "case_001.nii.gz" in err and "origin" in err


def test_unknown_label_and_float_image_errors(label_folders, write_label_image, shapes):
    _, pred = label_folders["arrays"]["case_000"]
    bad = pred.copy()
    bad[0, 0, 0] = 7
    write_label_image(label_folders["pred"] / "case_000.nii.gz", bad, shapes.spacing_xyz, origin=(10.0, -5.0, 3.0))
    with pytest.raises(ValueError, match=r"\[7\].*dataset.json"):
        evaluate_folders(reference_dir=label_folders["ref"], prediction_dir=label_folders["pred"], progress=False)
    soft = pred.astype(np.float32) * 0.5
    write_label_image(label_folders["pred"] / "case_000.nii.gz", soft, shapes.spacing_xyz, origin=(10.0, -5.0, 3.0))
    with pytest.raises(ValueError, match="not an integer label image"):
        evaluate_folders(reference_dir=label_folders["ref"], prediction_dir=label_folders["pred"], progress=False)


def test_extra_prediction_warns_and_is_recorded(label_folders, write_label_image, shapes):
    _, pred = label_folders["arrays"]["case_000"]
    write_label_image(label_folders["pred"] / "case_999.nii.gz", pred, shapes.spacing_xyz)
    with pytest.warns(EvaluationWarning, match="case_999"):
        result = evaluate_folders(reference_dir=label_folders["ref"], prediction_dir=label_folders["pred"],
                                  progress=False)
    assert result.extra_predictions == ["case_999"] and "case_999" not in result.cases


def test_discovered_labels_fill_absent_structures(tmp_path, write_label_image):
    """Without dataset.json: ids are discovered; a case lacking an id gets a both-empty row (Dice NaN)."""
    a = np.zeros((6, 8, 8), dtype=np.uint8)
    a[2:4, 2:5, 2:5] = 1
    b = a.copy()
    b[1:3, 5:7, 5:7] = 3
    for folder in ("ref", "pred"):
        write_label_image(tmp_path / folder / "x.nii.gz", a)
        write_label_image(tmp_path / folder / "y.nii.gz", b)
    result = evaluate_folders(reference_dir=tmp_path / "ref", prediction_dir=tmp_path / "pred", progress=False)
    rows = {(r["case"], r["structure"]): r for r in result.rows}
    assert set(rows) == {("x", "1"), ("x", "3"), ("y", "1"), ("y", "3")}
    assert math.isnan(rows[("x", "3")]["dice"]) and rows[("y", "3")]["dice"] == 1.0
    assert result.summary["3"]["dice"]["n"] == 1 and result.summary["3"]["dice"]["n_nan"] == 1


def test_region_labels_are_unions(label_folders):
    result = evaluate_folders(reference_dir=label_folders["ref"], prediction_dir=label_folders["pred"],
                              labels={"pelvis": [1, 2]}, progress=False)
    ref, pred = label_folders["arrays"]["case_000"]
    expected = compute_metrics(ref > 0, pred > 0, _spacing_zyx(label_folders["ref"] / "case_000.nii.gz"))
    assert result.rows[0]["label"] == "1+2"
    assert result.rows[0]["dice"] == pytest.approx(expected["dice"])


def test_confidence_levels(tmp_path, write_label_image, shapes):
    rng = np.random.default_rng(0)
    for i in range(2):
        shape = (10, 16, 16)
        ref = sum((shapes.ellipsoid(shape, (5, 8, 8), (4.5 - k, 6 - k, 6 - k))).astype(np.uint8) for k in range(3))
        pred = np.clip(ref.astype(int) + (rng.random(shape) > 0.9) * (ref > 0), 0, 3).astype(np.uint8)
        write_label_image(tmp_path / "ref" / f"c{i}.nii.gz", ref, (1.0, 1.0, 2.0))
        write_label_image(tmp_path / "pred" / f"c{i}.nii.gz", pred, (1.0, 1.0, 2.0))
    out = tmp_path / "eval"
    code = main(["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-o", str(out), "--confidence", "3"])
    assert code == 0
    rows = _read_rows(out / "metrics_per_case.csv")
    assert {r["structure"] for r in rows} == {"level>=1", "level>=2", "level>=3"}
    for name in ("continuous_per_case.csv", "calibration.csv", "plots/levels.png", "plots/reliability.png"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert "continuous_dice" in summary["per_structure"]["continuous"]
    assert sum(row["n_voxels"] for row in summary["calibration"]) == 2 * 10 * 16 * 16
    assert main(["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "-o", str(out),
                 "--confidence", "2", "--no_plots"]) == 2  # level 3 present: K = 2 is wrong


def test_parallel_equals_serial(label_folders):
    serial = evaluate_folders(reference_dir=label_folders["ref"], prediction_dir=label_folders["pred"],
                              progress=False)
    parallel = evaluate_folders(reference_dir=label_folders["ref"], prediction_dir=label_folders["pred"],
                                num_processes=2, progress=False)
    assert [r["dice"] for r in serial.rows] == [r["dice"] for r in parallel.rows]
    assert [r["hd95_mm"] for r in serial.rows] == [r["hd95_mm"] for r in parallel.rows]


def test_2d_png_folder_with_file_ending(tmp_path, write_label_image):
    """Any SimpleITK format: 2D PNG label maps, file ending given on the command line."""
    ref = np.zeros((20, 24), dtype=np.uint8)
    ref[5:15, 4:12] = 1
    pred = np.roll(ref, 2, axis=1)
    write_label_image(tmp_path / "ref" / "slice_01.png", ref, (1.0, 1.0), origin=(0.0, 0.0))
    write_label_image(tmp_path / "pred" / "slice_01.png", pred, (1.0, 1.0), origin=(0.0, 0.0))
    out = tmp_path / "eval"
    assert main(["-ref", str(tmp_path / "ref"), "-pred", str(tmp_path / "pred"), "--file_ending", ".png", "-o",
                 str(out), "--no_plots"]) == 0
    row = _read_rows(out / "metrics_per_case.csv")[0]
    assert float(row["dice"]) == pytest.approx(2 * 60 / 160)  # 10 x 8 squares overlapping on 10 x 6
    assert float(row["hd_max_mm"]) == pytest.approx(2.0)


def test_output_into_an_input_folder_is_refused(label_folders):
    with pytest.raises(ValueError, match="input folder"):
        evaluate_folders(reference_dir=label_folders["ref"], prediction_dir=label_folders["pred"],
                         output_dir=label_folders["pred"], progress=False)


def test_label_argument_parsing():
    assert parse_label_arguments(["1", "2"]) == {"1": 1, "2": 2}
    assert parse_label_arguments(["bladder=1", "pelvis=1,2"]) == {"bladder": 1, "pelvis": [1, 2]}
    with pytest.raises(ValueError, match="integers"):
        parse_label_arguments(["bladder=one"])
