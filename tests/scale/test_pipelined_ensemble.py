"""The pipelined ensemble (nnU-Net's background preprocessing, a writer thread) gives the sequential ensemble's
results bit for bit: segmentations, probabilities and disagreement maps, with worker threads (-np 1) and with
nnU-Net's spawned worker processes (-np 2); its timing.json holds each case's stages."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from radconf.api import ModelSpec, RunOptions
from radconf.ensembles.prediction import EnsembleOptions, predict_ensemble

CASES = ("phantom_000", "phantom_001", "phantom_005")


def _images(organ_model, tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for case in CASES:
        split = "Ts" if case == "phantom_005" else "Tr"
        name = f"{case}_0000.nii.gz"
        os.symlink(organ_model.phantom.folder / f"images{split}" / name, images / name)
    return images


def _outputs(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for case in CASES:
        arrays[case] = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}.nii.gz")))
        arrays[f"{case}.npz"] = np.load(folder / f"{case}.npz")["probabilities"]
        arrays[f"{case}.disagreement"] = sitk.GetArrayFromImage(sitk.ReadImage(
            str(folder / "disagreement" / f"{case}.nii.gz")))
    return arrays


def test_pipelined_equals_sequential_bit_for_bit(organ_model, tmp_path):
    images = _images(organ_model, tmp_path)
    spec = ModelSpec.parse(organ_model.spec)
    members = [spec, spec]  # one plans/configuration: one preprocessing per case for both
    results = {}
    for name, pipelined, workers in (("sequential", False, 1), ("threads", True, 1), ("processes", True, 2)):
        run = RunOptions(device="cpu", num_processes=workers, use_mirroring=False, save_probabilities=True)
        options = EnsembleOptions(weights=(0.3, 0.7), save_disagreement=True, pipelined=pipelined)
        predict_ensemble(images, tmp_path / name, members, ensemble=options, run=run)
        results[name] = _outputs(tmp_path / name)
    assert any(results["sequential"][case].any() for case in CASES)  # something was segmented
    for name in ("threads", "processes"):
        for key, array in results["sequential"].items():
            assert results[name][key].dtype == array.dtype and np.array_equal(results[name][key], array), (name, key)
    timing = json.loads((tmp_path / "threads" / "timing.json").read_text())
    assert [c["case"] for c in timing["cases"]] == list(CASES)
    for record in timing["cases"]:
        image = sitk.ReadImage(str(images / f"{record['case']}_0000.nii.gz"))
        assert record["slices"] == image.GetSize()[2]
        assert record["preprocessing_s"] > 0 and record["network_s"] > 0 and record["export_s"] > 0


def test_pipelined_samples_equal_sequential_bit_for_bit(organ_model, tmp_path):
    """The sample path (``--uncertainty``): nnU-Net's workers preprocess ahead, the samples (flips and an affine
    warp) see the same data; every image, probability and per-case JSON equals the sequential run's."""
    from radconf.uncertainty.prediction import predict_with_samples
    from radconf.uncertainty.sources import UncertaintyOptions

    images = _images(organ_model, tmp_path)
    sampling = UncertaintyOptions(source="tta", samples=2, tta_affine=1, seed=4)
    run = RunOptions(device="cpu", num_processes=1, save_probabilities=True)
    for name, pipelined in (("sequential", False), ("pipelined", True)):
        predict_with_samples(images, tmp_path / name, [ModelSpec.parse(organ_model.spec)], sampling=sampling,
                             run=run, pipelined=pipelined)
    written = sorted(p.relative_to(tmp_path / "sequential") for p in (tmp_path / "sequential").rglob("*")
                     if p.is_file() and p.name not in ("timing.json",))
    assert len([p for p in written if p.suffix == ".gz"]) > len(CASES)  # segmentations and uncertainty maps
    for path in written:
        ours, theirs = tmp_path / "pipelined" / path, tmp_path / "sequential" / path
        if path.name.endswith(".nii.gz"):
            assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(ours))),
                                  sitk.GetArrayFromImage(sitk.ReadImage(str(theirs)))), path
        elif path.suffix == ".npz":
            assert np.array_equal(np.load(ours)["probabilities"], np.load(theirs)["probabilities"]), path
        elif path.suffix == ".json":  # the same content, but for the seconds
            assert _untimed(json.loads(ours.read_text())) == _untimed(json.loads(theirs.read_text())), path
        elif path.suffix != ".png":
            assert ours.read_bytes() == theirs.read_bytes(), path
    record = json.loads((tmp_path / "pipelined" / "uncertainty.json").read_text())  # the run's record, not a case's
    assert record["source"] == "tta" and "mirror_axes_per_sample" in record
    timing = json.loads((tmp_path / "pipelined" / "timing.json").read_text())
    assert [c["case"] for c in timing["cases"]] == list(CASES)
    assert all(c["preprocessing_s"] > 0 and c["slices"] for c in timing["cases"])


def _untimed(value):
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not k.endswith("_s")}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value
