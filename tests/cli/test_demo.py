"""radconf_demo --fast: the whole main job (phantom -> plan -> train -> predict -> evaluate -> report) on CPU.

The console script runs once (its child-process check); the figures it prints and writes are then checked against
the files it wrote: every Dice is recomputed here with numpy from the predictions and the references.
"""
from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

STRUCTURES = {"bladder": 1, "rectum": 2, "gluteal_muscles": 3, "gtv": 4}  # the phantom's label map


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    both = int(reference.sum()) + int(prediction.sum())
    return 2.0 * int(np.logical_and(reference, prediction).sum()) / both if both else math.nan


def _inter_reader_dice(readers: Path) -> float:
    """Mean Dice over the pairs of masks of different readers (files ``readerR_trialT``) of one case."""
    masks = {p.name: _array(p) > 0 for p in sorted(readers.glob("*.nii.gz"))}
    values = [_dice(masks[a], masks[b]) for a, b in itertools.combinations(masks, 2)
              if a.split("_")[0] != b.split("_")[0]]
    return float(np.mean(values))


def test_fast_demo_writes_report_overlays_and_figures(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([str(Path(sys.executable).parent / "radconf_demo"), "--fast", "--out", str(out)],
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check_demo_output(out, result.stdout)


def check_demo_output(out: Path, printed: str) -> None:
    lines = printed.splitlines()
    for structure in (*STRUCTURES, "mean"):
        assert any(line.startswith(structure) for line in lines), structure
    report = (out / "report" / "report.md").read_text()
    overlays = sorted((out / "report").glob("overlay_*.png"))
    assert len(overlays) == 2 and all(p.stat().st_size > 10_000 for p in overlays)
    assert "radconf_train 501 3d_fullres all" in report  # the commands that produced the figures
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    # the user's own nnU-Net folders are not used: everything is under --out
    raw = out / "nnUNet_raw" / "Dataset501_Phantom"
    assert (raw / "imagesTs").is_dir()

    # the printed and written Dice are those of the files: per structure, the mean over the held-out cases (a
    # 20-iteration model segments little, so no lower bound on them: the values must be the files' values)
    cases = sorted(p.name for p in (raw / "labelsTs").glob("*.nii.gz"))
    assert len(cases) == 2 and sorted(p.name for p in (out / "predictions").glob("*.nii.gz")) == cases
    references = {case: _array(raw / "labelsTs" / case) for case in cases}
    predictions = {case: _array(out / "predictions" / case) for case in cases}
    dice = {}
    for name, value in STRUCTURES.items():
        assert all((references[c] == value).any() for c in cases)  # every held-out case holds every structure
        dice[name] = float(np.mean([_dice(references[c] == value, predictions[c] == value) for c in cases]))
        assert 0.0 <= dice[name] <= 1.0
        assert summary["per_structure"][name]["dice"]["mean"] == pytest.approx(dice[name], abs=1e-6), name
        shown = next(line for line in lines if line.startswith(name + " ")).split()
        assert float(shown[1]) == pytest.approx(dice[name], abs=5e-4), name
    mean_dice = float(next(line for line in lines if line.startswith("mean")).split()[1])
    assert not math.isnan(mean_dice) and mean_dice == pytest.approx(np.mean(list(dice.values())), abs=1e-3)
    assert summary["mean_dice"] == pytest.approx(np.mean(list(dice.values())), abs=1e-6)
    assert f"**Mean Dice over structures: {mean_dice:.3f}**" in report

    # the confidence workflow: fused dataset, level maps with level-3 masks, level overlays, figures in the report
    fused = out / "nnUNet_raw" / "Dataset502_PhantomConfidence"
    fused_json = json.loads((fused / "dataset.json").read_text())
    assert fused_json["radconf"]["ordinal"] is True
    levels = int(fused_json["radconf"]["levels"])
    level_maps = sorted((out / "confidence_predictions").glob("*.nii.gz"))
    masks = out / "confidence_predictions" / "level3_masks"
    assert [p.name for p in level_maps] == cases and len(list(masks.glob("*.nii.gz"))) == 2
    assert len(list((out / "report").glob("confidence_*.png"))) == 2
    assert "radconf_fuse_readers" in report and "Continuous Dice" in report
    # trained on crops around the readers' contours, predicted in the organ model's GTV boxes, pasted whole
    cropped = next((out / "nnUNet_raw").glob("Dataset503_*"))
    assert json.loads((cropped / "dataset.json").read_text())["radconf"]["levels"] == levels
    boxes = json.loads((out / "confidence_predictions" / "crop_boxes.json").read_text())
    assert sorted(boxes["cases"]) == [c.removesuffix(".nii.gz") for c in cases] and boxes["around"] == {"gtv": [4]}
    level3_dice = []
    for level_map in level_maps:
        predicted = _array(level_map)
        assert predicted.shape == _array(fused / "labelsTs" / level_map.name).shape
        assert predicted.min() >= 0 and predicted.max() <= levels
        assert np.array_equal(_array(masks / level_map.name) > 0, predicted >= 3)  # the level-3 mask of the map
        level3_dice.append(_dice(_array(fused / "labelsTs" / level_map.name) >= 3, predicted >= 3))
    confidence = re.search(r"continuous Dice ([\d.]+); per-level Dice (.*); readers' inter-reader Dice ([\d.]+)",
                           printed)
    assert confidence, printed[-2000:]
    continuous, readers = float(confidence[1]), float(confidence[3])
    per_level = {int(level): float(value) for level, value in re.findall(r"L(\d+) ([\d.]+)", confidence[2])}
    assert 0.0 <= continuous <= 1.0 and sorted(per_level) == list(range(1, levels + 1))
    assert per_level[3] == pytest.approx(np.mean(level3_dice), abs=5e-4)
    # the readers' figure is the phantom's: recomputed from the simulated readers' GTV masks of the held-out cases;
    # they agree well but not perfectly (as in test_fuse_readers)
    recomputed = np.mean([_inter_reader_dice(raw / "readers" / case.removesuffix(".nii.gz")) for case in cases])
    assert readers == pytest.approx(recomputed, abs=5e-4)
    assert 0.5 < readers < 1.0
    _check_clinical_path(out, report, cases)


def _check_clinical_path(out: Path, report: str, cases: list[str]) -> None:
    """The phantom went out as a TPS export, came back through radconf_import_dicom unchanged, and the held-out
    patients' predictions were written as RTSTRUCT onto their own CT series."""
    from radconf.dicom.geometry import SeriesGeometry
    from radconf.dicom.structure_sets import rasterise_roi, read_structure_set

    imported = out / "nnUNet_raw" / "Dataset511_PhantomDICOM"
    assert re.search(r"\| label maps \(organs, GTV\) \| \d+ labelled voxels \| 0 \|", report), report
    assert re.search(r"\| readers' GTV masks \| \d+ masks \| 0 \|", report)
    assert json.loads((imported / "dataset.json").read_text())["radconf"]["unmapped_rois"] == ["CTV"]
    structures = json.loads((out / "nnUNet_raw" / "Dataset501_Phantom" / "dataset.json").read_text())["labels"]
    rtstructs = sorted((out / "dicom_predictions").glob("*/*_RTSTRUCT.dcm"))
    assert sorted(p.parent.name for p in rtstructs) == sorted(c.removesuffix(".nii.gz") for c in cases)
    assert len(rtstructs) == len(cases) and len(list((out / "dicom_predictions").glob("*/*.seg.nrrd"))) == len(cases)
    for path in rtstructs:  # read back against the prediction it was exported from
        case = path.parent.name
        image = sitk.ReadImage(str(out / "nnUNet_raw" / "Dataset501_Phantom" / "imagesTs" / f"{case}_0000.nii.gz"))
        predicted = _array(out / "predictions" / f"{case}.nii.gz")
        rois = {roi.name: roi for roi in read_structure_set(path).rois}
        for name, value in structures.items():
            if name != "background":
                mask, _ = rasterise_roi(rois[name], SeriesGeometry.from_image(image))
                assert np.array_equal(mask, predicted == value), (path, name)
