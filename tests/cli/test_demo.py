"""radconf_demo --fast: the whole main job (phantom -> plan -> train -> predict -> evaluate -> report) on CPU."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path


def test_fast_demo_writes_report_overlays_and_figures(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([str(Path(sys.executable).parent / "radconf_demo"), "--fast", "--out", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    printed = result.stdout
    for structure in ("bladder", "rectum", "gluteal_muscles", "gtv", "mean"):
        assert any(line.startswith(structure) for line in printed.splitlines()), structure
    report = (out / "report" / "report.md").read_text()
    overlays = sorted((out / "report").glob("overlay_*.png"))
    assert len(overlays) == 2 and all(p.stat().st_size > 10_000 for p in overlays)
    assert "radconf_train 501 3d_fullres all" in report  # the commands that produced the figures
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert "gtv" in json.dumps(summary)
    mean_line = next(line for line in printed.splitlines() if line.startswith("mean"))
    mean_dice = float(mean_line.split()[1])
    assert 0.0 <= mean_dice <= 1.0 and not math.isnan(mean_dice)
    # the user's own nnU-Net folders are not used: everything is under --out
    assert (out / "nnUNet_raw" / "Dataset501_Phantom" / "imagesTs").is_dir()
    # the confidence workflow: fused dataset, level maps with level-3 masks, level overlays, figures in the report
    fused = out / "nnUNet_raw" / "Dataset502_PhantomConfidence"
    assert json.loads((fused / "dataset.json").read_text())["radconf"]["ordinal"] is True
    level_maps = sorted((out / "confidence_predictions").glob("*.nii.gz"))
    assert len(level_maps) == 2 and len(list((out / "confidence_predictions" / "level3_masks").glob("*.nii.gz"))) == 2
    assert len(list((out / "report").glob("confidence_*.png"))) == 2
    assert "radconf_fuse_readers" in report and "Continuous Dice" in report
    assert "readers' inter-reader Dice" in printed
