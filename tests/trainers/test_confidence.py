"""The confidence workflow on the command line: fuse readers -> plan -> ConfidenceTrainer (+ variants) -> predict."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import blosc2
import numpy as np
import pytest
import SimpleITK as sitk

BIN = Path(sys.executable).parent
K = 5


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run([str(BIN / command[0]), *command[1:]], env=env, capture_output=True, text=True,
                            timeout=900)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n"
                    f"{result.stderr[-3000:]}")
    return result


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _fuse_and_plan(source: Path, dataset_id: int, env: dict[str, str], *extra: str) -> Path:
    _run(["radconf_fuse_readers", str(source), "-d", str(dataset_id), "-n", f"Conf{dataset_id}", "-k", str(K),
          "--structure", "GTV", *extra], env)
    _run(["radconf_plan_and_preprocess", "-d", str(dataset_id), "--preset", "cpu", "-c", "3d_fullres", "-np", "1"],
         env)
    return Path(env["nnUNet_raw"]) / f"Dataset{dataset_id}_Conf{dataset_id}"


def _train(dataset_id: int, trainer: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return _run(["radconf_train", str(dataset_id), "3d_fullres", "0", "-tr", trainer, "-p", "radconfCPUPlans",
                 "-device", "cpu", "--iterations-per-epoch", "2", *extra],
                {**env, "nnUNet_n_proc_DA": "0"})  # single-threaded augmentation (planning needs it unset)


def _predict(dataset_id: int, trainer: str, images: Path, output: Path, env: dict[str, str], *extra: str) -> None:
    _run(["radconf_predict", "-i", str(images), "-o", str(output), "-d", str(dataset_id), "-tr", trainer,
          "-p", "radconfCPUPlans", "-f", "0", "-device", "cpu", "--disable_tta", "-np", "1", *extra], env)


def _assert_summary_describes_the_files(folder: Path) -> None:
    """nnU-Net's validation summary.json scores the level maps in ``folder`` (after radconf's re-decoding)."""
    summary = json.loads((folder / "summary.json").read_text())
    assert len(summary["metric_per_case"]) == len(list(folder.glob("*.nii.gz"))) > 0
    for case in summary["metric_per_case"]:
        prediction, reference = _array(Path(case["prediction_file"])), _array(Path(case["reference_file"]))
        for level in range(1, K + 1):
            region = str(tuple(range(level, K + 1)))  # nnU-Net's key of the region level >= c
            pred, ref = prediction >= level, reference >= level
            overlap, total = int((pred & ref).sum()), int(pred.sum() + ref.sum())
            recorded = case["metrics"][region]["Dice"]
            if total == 0:
                assert np.isnan(recorded)
            else:
                assert recorded == pytest.approx(2 * overlap / total, abs=1e-9), (case["prediction_file"], level)


@pytest.fixture
def env(nnunet_dirs) -> dict[str, str]:
    return {**os.environ, **{k: str(v) for k, v in nnunet_dirs.items()}}


def test_fuse_train_validate_resume_predict(tiny_phantom, nnunet_dirs, env, tmp_path):
    dataset = _fuse_and_plan(tiny_phantom.folder, 992, env)
    _train(992, "ConfidenceTrainer", env, "--epochs", "1")
    model = nnunet_dirs["nnUNet_results"] / dataset.name / "ConfidenceTrainer__radconfCPUPlans__3d_fullres"
    fold = model / "fold_0"

    # level weights: reciprocal frequencies of the training split's preprocessed levels, normalised
    recorded = json.loads((fold / "level_weights.json").read_text())
    counts = np.array(recorded["level_voxel_counts"], dtype=float)
    assert len(counts) == K + 1 and recorded["training_cases"] == 4
    expected = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0)
    np.testing.assert_allclose(recorded["weights"], expected / expected.sum(), rtol=1e-9)
    # nnU-Net's preprocessed segmentations of the training split, counted independently of the trainer
    splits = json.loads((nnunet_dirs["nnUNet_preprocessed"] / dataset.name / "splits_final.json").read_text())
    data = nnunet_dirs["nnUNet_preprocessed"] / dataset.name / "nnUNetPlans_3d_fullres"
    segs = [np.asarray(blosc2.open(urlpath=str(data / f"{c}_seg.b2nd"), mode="r")[:]) for c in splits[0]["train"]]
    np.testing.assert_array_equal(counts, sum(np.bincount(s[s >= 0].ravel(), minlength=K + 1) for s in segs))

    # the trained model's dataset.json is the cumulative region view; validation reports level metrics
    trained_json = json.loads((model / "dataset.json").read_text())
    assert trained_json["labels"]["level>=2"] == [2, 3, 4, 5] and trained_json["regions_class_order"] == [1, 2, 3, 4, 5]
    summary = json.loads((fold / "validation" / "confidence_evaluation" / "summary.json").read_text())
    assert "continuous_dice" in json.dumps(summary) and "level>=5" in json.dumps(summary)
    validation_levels = _array(next((fold / "validation").glob("*.nii.gz")))
    assert set(np.unique(validation_levels)) <= set(range(K + 1))
    _assert_summary_describes_the_files(fold / "validation")
    assert not list((fold / "validation").glob("*.npz"))  # probabilities only kept with --npz

    resumed = _train(992, "ConfidenceTrainer", env, "--epochs", "2", "--c", "--no-val")
    assert "Epoch 1" in resumed.stdout and "Epoch 0\n" not in resumed.stdout

    predictions = tmp_path / "predictions"
    _predict(992, "ConfidenceTrainer", dataset / "imagesTs", predictions, env, "--level", "3",
             "--level_probabilities")
    case = tiny_phantom.test_cases[0]
    image = sitk.ReadImage(str(dataset / "imagesTs" / f"{case}_0000.nii.gz"))
    levels_image = sitk.ReadImage(str(predictions / f"{case}.nii.gz"))
    assert levels_image.GetSize() == image.GetSize()
    assert np.allclose(levels_image.GetSpacing(), image.GetSpacing())
    levels = sitk.GetArrayFromImage(levels_image)
    assert set(np.unique(levels)) <= set(range(K + 1))
    np.testing.assert_array_equal(_array(predictions / "level3_masks" / f"{case}.nii.gz"), levels >= 3)
    cumulative = np.stack([_array(predictions / "level_probabilities" / f"{case}_ge{c}.nii.gz")
                           for c in range(1, K + 1)])
    assert np.all(np.diff(cumulative, axis=0) <= 1e-6)  # P(level >= c) never increases with c
    np.testing.assert_array_equal((cumulative > 0.5).sum(0), levels)  # the level map is their monotone decoding
    assert not list(predictions.glob("*.npz"))


def test_softmax_baseline_and_finetuning_from_single_reader_model(tiny_phantom, nnunet_dirs, env, tmp_path):
    # single-reader data (n = 1 per case -> levels {0, K}): the pre-training path of the paper
    single = tmp_path / "single_reader"
    for case_folder in sorted((tiny_phantom.folder / "readers").iterdir()):
        first = sorted(case_folder.iterdir())[0]
        (single / case_folder.name).mkdir(parents=True)
        shutil.copyfile(first, single / case_folder.name / first.name)
    single_dataset = _fuse_and_plan(tiny_phantom.folder, 993, env, "--readers", str(single))
    assert set(np.unique(_array(next((single_dataset / "labelsTr").glob("*.nii.gz"))))) <= {0, K}
    _train(993, "ConfidenceTrainer", env, "--epochs", "1", "--no-val")
    pretrained = (nnunet_dirs["nnUNet_results"] / single_dataset.name /
                  "ConfidenceTrainer__radconfCPUPlans__3d_fullres" / "fold_0" / "checkpoint_final.pth")

    multi = _fuse_and_plan(tiny_phantom.folder, 994, env)
    finetuned = _train(994, "ConfidenceTrainerUnweighted", env, "--epochs", "1", "--no-val",
                       "-pretrained_weights", str(pretrained))
    assert "pretrained tensors" in finetuned.stdout

    _train(994, "ConfidenceSoftmaxTrainer", env, "--epochs", "1")
    fold = (nnunet_dirs["nnUNet_results"] / multi.name / "ConfidenceSoftmaxTrainer__radconfCPUPlans__3d_fullres" /
            "fold_0")
    assert json.loads((fold.parent / "dataset.json").read_text())["labels"]["level_3"] == 3  # plain classes
    assert (fold / "validation" / "confidence_evaluation" / "summary.json").is_file()
    predictions = tmp_path / "softmax_predictions"
    _predict(994, "ConfidenceSoftmaxTrainer", multi / "imagesTs", predictions, env, "--level", "2")
    case = tiny_phantom.test_cases[0]
    levels = _array(predictions / f"{case}.nii.gz")
    assert set(np.unique(levels)) <= set(range(K + 1))
    np.testing.assert_array_equal(_array(predictions / "level2_masks" / f"{case}.nii.gz"), levels >= 2)


def test_confidence_2p5d_trains_and_predicts_level_maps(tiny_phantom, env, tmp_path):
    _run(["radconf_fuse_readers", str(tiny_phantom.folder), "-d", "995", "-n", "Conf995", "--structure", "GTV"], env)
    _run(["radconf_plan_and_preprocess", "-d", "995", "--preset", "cpu", "-c", "2d", "-np", "1"], env)
    dataset = Path(env["nnUNet_raw"]) / "Dataset995_Conf995"
    _run(["radconf_train", "995", "2d", "0", "-tr", "ConfidenceTrainer2p5D", "-p", "radconfCPUPlans", "-device",
          "cpu", "--iterations-per-epoch", "2", "--epochs", "1", "--no-val"], {**env, "nnUNet_n_proc_DA": "0"})
    predictions = tmp_path / "predictions_2p5d"
    _run(["radconf_predict", "-i", str(dataset / "imagesTs"), "-o", str(predictions), "-d", "995", "-c", "2d",
          "-tr", "ConfidenceTrainer2p5D", "-p", "radconfCPUPlans", "-f", "0", "-device", "cpu", "--disable_tta",
          "-np", "1"], env)
    case = tiny_phantom.test_cases[0]
    image = sitk.ReadImage(str(dataset / "imagesTs" / f"{case}_0000.nii.gz"))
    levels = sitk.ReadImage(str(predictions / f"{case}.nii.gz"))
    assert levels.GetSize() == image.GetSize()
    assert set(np.unique(sitk.GetArrayFromImage(levels))) <= set(range(K + 1))


@pytest.mark.parametrize("trainer", ["ConfidenceTrainer", "ConfidenceSoftmaxTrainer"])
def test_confidence_trainers_refuse_non_ordinal_datasets(trainer):
    import torch

    from radconf.registry import find_class

    plain = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "gtv": 1}, "file_ending": ".nii.gz"}
    plans = {"configurations": {"2d": {"patch_size": [32, 32]}}}
    with pytest.raises(ValueError, match="not an ordinal confidence-level dataset.*radconf_fuse_readers"):
        find_class(trainer, "trainer")(plans, "2d", 0, plain, torch.device("cpu"))
