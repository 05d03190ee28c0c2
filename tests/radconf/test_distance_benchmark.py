"""Metrics of benchmarks/benchmark_distance_maps.py on hand-made distance maps (nothing trained or predicted)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.anatomy.distance import distance_to_structure

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import benchmark_distance_maps as bench

TRUE = np.arange(60, dtype=np.float32).reshape(1, 1, 60)  # a 1D-like volume: true distances 0, 1, ..., 59 mm


def test_prediction_one_mm_too_far_has_mae_one_in_every_band():
    bands = bench.band_metrics(TRUE, TRUE + 1)
    assert {name: b["voxels"] for name, b in bands.items()} == {
        "inside": 1, "0-5": 5, "5-10": 5, "10-20": 10, "20-40": 20, ">40": 19}  # d = 0 | 1..5 | 6..10 | ...
    assert all(b["mae_mm"] == pytest.approx(1.0) for b in bands.values())
    assert bands["inside"]["median_pred_mm"] == 1.0
    assert bands["0-5"]["median_pred_mm"] == 4.0  # 2..6
    assert bands["10-20"]["median_pred_mm"] == 16.5  # 12..21
    assert bands[">40"]["median_pred_mm"] == 51.0  # 42..60


def test_band_mae_by_hand_and_empty_band():
    true = np.array([0.0, 0.0, 3.0, 7.0])
    predicted = np.array([0.5, 1.5, 1.0, 7.0])
    bands = bench.band_metrics(true, predicted)
    assert bands["inside"] == {"mae_mm": 1.0, "median_pred_mm": 1.0, "voxels": 2}
    assert bands["0-5"]["mae_mm"] == 2.0 and bands["5-10"]["mae_mm"] == 0.0
    assert bands[">40"] == {"mae_mm": None, "median_pred_mm": None, "voxels": 0}


def test_spearman_is_one_for_a_monotone_shift_and_minus_one_reversed():
    assert bench.spearman_within(TRUE, TRUE + 1) == pytest.approx(1.0)
    assert bench.spearman_within(TRUE, 100 - TRUE) == pytest.approx(-1.0)
    scrambled = TRUE.copy()
    scrambled[0, 0, 41:] = 0.0  # beyond 40 mm: not part of the correlation
    assert bench.spearman_within(TRUE, scrambled) == pytest.approx(1.0)
    assert np.isnan(bench.spearman_within(TRUE, np.zeros_like(TRUE)))  # constant prediction


def test_far_voxels_predicted_as_inside_by_hand():
    predicted = TRUE.copy()
    predicted[0, 0, [20, 21, 30, 59]] = [0.0, 0.0, 0.99, 1.0]  # 20 mm is not far; 1.0 is not below 1 mm
    assert bench.far_as_inside(TRUE, predicted) == (2, 39)  # far: 21..59 mm


def test_profile_quartiles_per_bin_of_true_distance():
    true = np.array([0.0, 1.0, 2.0, 3.0, 7.5, 65.0])
    predicted = np.array([1.0, 2.0, 3.0, 10.0, 8.0, 70.0])
    profile = bench.distance_profile(true, predicted)
    assert profile["edges_mm"][0] == 0.0 and profile["edges_mm"][-1] == 60.0 and len(profile["p50"]) == 24
    assert profile["voxels"][:4] == [3, 1, 0, 1] and sum(profile["voxels"]) == 5  # 65 mm is beyond the plot
    assert (profile["p25"][0], profile["p50"][0], profile["p75"][0]) == (1.5, 2.0, 2.5)
    assert profile["p50"][1] == 10.0 and profile["p50"][2] is None and profile["p50"][3] == 8.0


def test_summary_pools_bands_and_reports_spearman_per_case():
    infinite = np.full((1, 1, 2), np.inf, np.float32)  # voxels without a defined distance are left out
    summary = bench.summarise([("a", TRUE, TRUE + 1), ("b", TRUE, 100 - TRUE),
                               ("c", np.concatenate([TRUE, infinite], axis=2),
                                np.concatenate([TRUE, np.zeros_like(infinite)], axis=2))])
    assert summary["cases"] == ["a", "b", "c"]
    assert summary["spearman_per_case"] == pytest.approx({"a": 1.0, "b": -1.0, "c": 1.0})
    assert summary["spearman_mean"] == pytest.approx(1 / 3) and summary["spearman_min"] == pytest.approx(-1.0)
    assert summary["bands"]["0-5"]["voxels"] == 15
    # case b: 100 - d >= 41 everywhere, so no far voxel is predicted inside; 3 x 39 far voxels
    assert summary["far_as_inside_fraction"] == 0.0 and summary["far_voxels"] == 117
    json.dumps(summary)  # stored as JSON


def _write(path: Path, array: np.ndarray, spacing=(1.0, 2.0, 3.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def test_read_case_exact_distance_positive_part_and_refusals(tmp_path):
    mask = np.zeros((4, 5, 6), np.uint8)
    mask[1:3, 2, 2:4] = 1
    exact = distance_to_structure(mask, (3.0, 2.0, 1.0))  # x, y, z spacing (1, 2, 3) reversed
    assert exact[0, 2, 2] == 3.0 and exact[1, 0, 2] == 4.0 and exact[1, 2, 0] == 2.0
    reference = _write(tmp_path / "ref.nii.gz", mask)
    signed = exact.copy()
    signed[mask == 1] = -1.5
    true_mm, predicted_mm, negative = bench.read_case(reference, _write(tmp_path / "map.nii.gz", signed))
    assert np.array_equal(true_mm, exact) and np.array_equal(predicted_mm, exact) and negative == 4
    other_grid = _write(tmp_path / "other.nii.gz", exact, spacing=(1.0, 2.0, 2.5))
    with pytest.raises(SystemExit, match=r"other\.nii\.gz: its spacing"):
        bench.read_case(reference, other_grid)
    broken = exact.copy()
    broken[0, 0, 0] = np.nan
    with pytest.raises(SystemExit, match=r"nan\.nii\.gz"):
        bench.read_case(reference, _write(tmp_path / "nan.nii.gz", broken))


def _result(tag: str, mae: float, spearman: float) -> dict:
    bands = {name: {"mae_mm": mae, "median_pred_mm": 1.0, "voxels": 1} for name, *_ in bench.BANDS}
    return {"tag": tag, "trainer": "T", "test_set": "shifted", "cases": ["a"], "bands": bands,
            "spearman_mean": spearman, "spearman_min": spearman, "far_as_inside_fraction": 0.01, "created": 0.0}


def test_targets_and_table_rows(tmp_path):
    assert bench.missed_targets(_result("before", 1.0, 0.95)) == []
    assert bench.missed_targets(_result("after", 2.5, float("nan"))) == [
        "MAE inside 2.50 mm", "MAE 0-5 2.50 mm", "MAE 5-10 2.50 mm", "MAE 10-20 2.50 mm", "Spearman nan"]
    (tmp_path / "distance_before_T_shifted.json").write_text(json.dumps(_result("before", 1.0, 0.95)))
    (tmp_path / "distance_not_a_result.json").write_text(json.dumps({"checkpoint": "x"}))
    lines, rows = bench._table(bench._read_results(tmp_path))
    assert len(rows) == 1 and rows[0]["MAE 0-5 mm"] == "1.00" and rows[0]["far as inside % (> 20 mm, < 1 mm)"] == "1.00"
    assert lines[-1] == "- before, T, shifted: met"


def test_tag_is_required_and_checked(capsys):
    assert bench.build_parser().parse_args(["--tag", "before"]).trainers == list(bench.DEFAULT_TRAINERS)
    for argv in ([], ["--tag", "../x"]):
        with pytest.raises(SystemExit) as exit_info:
            bench.build_parser().parse_args(argv)
        assert exit_info.value.code == 2
    assert "--tag" in capsys.readouterr().err


def test_models_are_found_on_their_dataset_or_refused(tmp_path):
    for dataset, trainer in (("Dataset503_PhantomCTV", "DistanceMapTrainerNoDA"),
                             ("Dataset504_PhantomCTVAnatomy", "AnatomyGuidedMultiTaskTrainerNoDA")):
        fold = tmp_path / dataset / f"{trainer}__radconfCPUPlans__3d_fullres" / "fold_all"
        fold.mkdir(parents=True)
        (fold / "checkpoint_final.pth").write_bytes(b"")
    assert bench._model(tmp_path, "DistanceMapTrainerNoDA")[0] == 503
    assert bench._model(tmp_path, "AnatomyGuidedMultiTaskTrainerNoDA")[0] == 504
    with pytest.raises(SystemExit, match="No trained DistanceMapTrainerSigned .* train it first"):
        bench._model(tmp_path, "DistanceMapTrainerSigned")


def test_plot_has_one_panel_per_test_set(tmp_path):
    profile = bench.distance_profile(TRUE.ravel(), TRUE.ravel() + 1)
    results = [{**_result(tag, 1.0, 0.9), "test_set": test_set, "profile": profile}
               for tag in ("before", "after") for test_set in bench.TEST_SETS]
    bench._plot(results, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000
