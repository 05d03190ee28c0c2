"""``timing.json`` of ``radconf_predict``: one entry per predicted case, each stage measured, ms per slice from the
network's seconds and the image's axial slices; the pipeline's outputs are those of an untimed nnU-Net run."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.timing import timing_report


def test_report_derives_ms_per_slice_and_means_by_hand():
    records = [{"case": "a", "preprocessing_s": 1.0, "waited_s": 0.5, "network_s": 0.2, "export_s": 0.3,
                "slices": 40},
               {"case": "b", "preprocessing_s": 3.0, "waited_s": 0.0, "network_s": 0.6, "export_s": 0.1,
                "slices": 20}]
    report = timing_report(records, model="m", device="cpu", wall_s=9.0)
    assert [c["ms_per_slice"] for c in report["cases"]] == pytest.approx([5.0, 30.0])
    assert report["mean"] == pytest.approx({"preprocessing_s": 2.0, "waited_s": 0.25, "network_s": 0.4,
                                            "export_s": 0.2, "ms_per_slice": 17.5})
    assert "ms_per_slice" not in records[0]  # the caller's records are not changed


def test_predict_writes_timing_per_case(organ_model, tmp_path, capsys):
    from radconf.cli import predict

    images = tmp_path / "images"
    images.mkdir()
    source = organ_model.phantom.folder / "imagesTs"
    for path in sorted(source.glob("*_0000.nii.gz"))[:2]:
        os.symlink(path, images / path.name)
    output = tmp_path / "out"
    assert predict.main(["-i", str(images), "-o", str(output), "-m", organ_model.spec, "-device", "cpu",
                         "--disable_tta", "-np", "1"]) == 0
    timing = json.loads((output / "timing.json").read_text())
    cases = {c["case"]: c for c in timing["cases"]}
    assert set(cases) == {p.name[:-len("_0000.nii.gz")] for p in images.iterdir()}
    assert timing["model"] == organ_model.spec and timing["device"] == "cpu" and timing["wall_s"] > 0
    for name, case in cases.items():
        slices = sitk.ReadImage(str(images / f"{name}_0000.nii.gz")).GetSize()[2]
        assert case["slices"] == slices
        for key in ("preprocessing_s", "waited_s", "network_s", "export_s"):
            assert 0 <= case[key] < timing["wall_s"], (key, case)
        assert case["network_s"] > 0 and case["preprocessing_s"] > 0 and case["export_s"] > 0
        assert case["ms_per_slice"] == pytest.approx(1000 * case["network_s"] / slices)
        prediction = sitk.ReadImage(str(output / f"{name}.nii.gz"))
        assert prediction.GetSize() == sitk.ReadImage(str(images / f"{name}_0000.nii.gz")).GetSize()
        assert set(np.unique(sitk.GetArrayFromImage(prediction))) <= {0, 1, 2, 3, 4}
