"""The confidence workflow, command by command in this process: fused readers -> plans -> ConfidenceTrainer
(+ variants) -> radconf_predict.

The fused and planned dataset (Dataset992_Conf992, levels 0..K) is the session's ``trainer_datasets`` store; one
ConfidenceTrainer model (1 epoch, with validation) is trained once per module and copied into every test's own
nnU-Net folders. Commands run through ``radconf.cli.<name>.main(argv)`` (same parsing and exit codes as the
console scripts) with one worker process and torch on one thread (``tests.conftest.in_process_nnunet``), nnU-Net's
prediction/validation workers as threads (``threaded_inference``).
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import blosc2
import numpy as np
import pytest
import SimpleITK as sitk

from .conftest import CONFIDENCE_K as K
from .conftest import (
    DATASET_IDS,
    PLANS,
    copy_trainer_datasets,
    quick_planning,
    threaded_inference,
)

DATASET = DATASET_IDS["confidence"]
FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _train(dataset_id: int, trainer: str, *extra: str, configuration: str = "3d_fullres") -> None:
    """``radconf_train`` in this process with single-threaded augmentation (planning needs it unset)."""
    from radconf.cli import train

    with pytest.MonkeyPatch.context() as local:
        local.setenv("nnUNet_n_proc_DA", "0")
        code = train.main([str(dataset_id), configuration, "0", "-tr", trainer, "-p", PLANS, "-device", "cpu",
                           "--iterations_per_epoch", "2", *extra])
    assert code == 0, f"radconf_train {dataset_id} {trainer} {' '.join(extra)} exited {code}"


def _predict(dataset_id: int, trainer: str, images: Path, output: Path, *extra: str) -> None:
    from radconf.cli import predict

    code = predict.main(["-i", str(images), "-o", str(output), "-d", str(dataset_id), "-tr", trainer, "-p", PLANS,
                         "-f", "0", "-device", "cpu", "--disable_tta", "-np", "1", *extra])
    assert code == 0, f"radconf_predict {trainer} {' '.join(extra)} exited {code}"


@contextmanager
def _nnunet(monkeypatch: pytest.MonkeyPatch, dirs: dict[str, Path]) -> Iterator[None]:
    """``in_process_nnunet`` for ``dirs`` and nnU-Net's inference workers as threads (``threaded_inference``); the
    commands' ``configure_threads`` (all cores, once per process) is switched off so that torch stays on one thread
    on the small shared machine."""
    import radconf.devices
    from tests.conftest import in_process_nnunet

    monkeypatch.setattr(radconf.devices, "configure_threads", lambda name: None)
    with in_process_nnunet(monkeypatch, dirs), threaded_inference(monkeypatch):
        yield


def _model(results: Path, trainer: str, configuration: str = "3d_fullres") -> Path:
    return results / f"Dataset{DATASET}_Conf{DATASET}" / f"{trainer}__{PLANS}__{configuration}"


@pytest.fixture(scope="module")
def confidence_store(trainer_datasets, tmp_path_factory) -> Path:
    """The store's datasets plus one ConfidenceTrainer model (fold 0, 1 epoch of 2 iterations, validated), trained
    once per module; never handed out (``confidence_dirs`` copies it)."""
    root = tmp_path_factory.mktemp("confidence_store")
    dirs = copy_trainer_datasets(trainer_datasets, root)
    with pytest.MonkeyPatch.context() as monkeypatch, _nnunet(monkeypatch, dirs):
        _train(DATASET, "ConfidenceTrainer", "--epochs", "1")
    return root


@pytest.fixture
def confidence_dirs(confidence_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """This test's own copy of ``confidence_store`` (nnU-Net's folders pointing there, in-process settings)."""
    dirs = {name: tmp_path / name for name in FOLDERS}
    for name in FOLDERS:
        shutil.copytree(confidence_store / name, dirs[name], symlinks=True)
    with _nnunet(monkeypatch, dirs):
        yield dirs


def _dataset(dirs: dict[str, Path]) -> Path:
    return dirs["nnUNet_raw"] / f"Dataset{DATASET}_Conf{DATASET}"


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


def test_level_weights_dataset_json_and_validation(confidence_dirs):
    dataset = _dataset(confidence_dirs)
    model = _model(confidence_dirs["nnUNet_results"], "ConfidenceTrainer")
    fold = model / "fold_0"

    # level weights: reciprocal frequencies of the training split's preprocessed levels, normalised
    recorded = json.loads((fold / "level_weights.json").read_text())
    counts = np.array(recorded["level_voxel_counts"], dtype=float)
    assert len(counts) == K + 1 and recorded["training_cases"] == 4
    expected = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0)
    np.testing.assert_allclose(recorded["weights"], expected / expected.sum(), rtol=1e-9)
    # nnU-Net's preprocessed segmentations of the training split, counted independently of the trainer
    splits = json.loads((confidence_dirs["nnUNet_preprocessed"] / dataset.name / "splits_final.json").read_text())
    data = confidence_dirs["nnUNet_preprocessed"] / dataset.name / "nnUNetPlans_3d_fullres"
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


def test_resume_continues_the_epochs(confidence_dirs, capsys):
    from radconf.nnunet_compat.checkpoints import safe_load_checkpoint

    fold = _model(confidence_dirs["nnUNet_results"], "ConfidenceTrainer") / "fold_0"
    logs_before = set(fold.glob("training_log_*.txt"))
    capsys.readouterr()
    _train(DATASET, "ConfidenceTrainer", "--epochs", "2", "--c", "--change_settings", "--no_val")
    resumed = capsys.readouterr().out
    assert "Epoch 1" in resumed and "Epoch 0\n" not in resumed
    new_logs = set(fold.glob("training_log_*.txt")) - logs_before  # nnU-Net's log of the resumed run says so too
    assert len(new_logs) == 1
    log = new_logs.pop().read_text()
    assert "Epoch 1" in log and "Epoch 0\n" not in log
    assert safe_load_checkpoint(fold / "checkpoint_final.pth")["current_epoch"] == 2  # epochs 0 and 1 done


def test_predict_levels_masks_and_probabilities(confidence_dirs, tmp_path):
    dataset = _dataset(confidence_dirs)
    predictions = tmp_path / "predictions"
    _predict(DATASET, "ConfidenceTrainer", dataset / "imagesTs", predictions, "--level", "3", "--level_probabilities")
    images = sorted((dataset / "imagesTs").glob("*_0000.nii.gz"))
    assert images
    case = images[0].name[: -len("_0000.nii.gz")]
    image = sitk.ReadImage(str(images[0]))
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


def test_finetuning_from_a_single_reader_model(confidence_dirs, monkeypatch, tmp_path, capsys):
    from radconf.cli import fuse_readers
    from radconf.planning import plan_and_preprocess

    # single-reader data (n = 1 per case -> levels {0, K}): the pre-training path of the paper
    phantom = confidence_dirs["nnUNet_raw"] / "Dataset990_Phantom"
    single = tmp_path / "single_reader"
    for case_folder in sorted((phantom / "readers").iterdir()):
        first = sorted(case_folder.iterdir())[0]
        (single / case_folder.name).mkdir(parents=True)
        shutil.copyfile(first, single / case_folder.name / first.name)
    assert fuse_readers.main([str(phantom), "-d", "993", "-n", "Conf993", "-k", str(K), "--structure", "GTV",
                              "--readers", str(single)]) == 0
    single_dataset = confidence_dirs["nnUNet_raw"] / "Dataset993_Conf993"
    assert set(np.unique(_array(next((single_dataset / "labelsTr").glob("*.nii.gz"))))) <= {0, K}
    with quick_planning(monkeypatch):
        plans_name, _ = plan_and_preprocess(993, planner="CPUPresetPlanner", configurations=("3d_fullres",),
                                            num_processes=1)
    assert plans_name == PLANS
    _train(993, "ConfidenceTrainer", "--epochs", "1", "--no_val")
    pretrained = (confidence_dirs["nnUNet_results"] / single_dataset.name / f"ConfidenceTrainer__{PLANS}__3d_fullres"
                  / "fold_0" / "checkpoint_final.pth")

    capsys.readouterr()
    _train(DATASET, "ConfidenceTrainerUnweighted", "--epochs", "1", "--no_val", "-pretrained_weights", str(pretrained))
    assert "pretrained tensors" in capsys.readouterr().out


def test_softmax_baseline_trains_validates_and_predicts(confidence_dirs, tmp_path):
    dataset = _dataset(confidence_dirs)
    _train(DATASET, "ConfidenceSoftmaxTrainer", "--epochs", "1")
    fold = _model(confidence_dirs["nnUNet_results"], "ConfidenceSoftmaxTrainer") / "fold_0"
    assert json.loads((fold.parent / "dataset.json").read_text())["labels"]["level_3"] == 3  # plain classes
    assert (fold / "validation" / "confidence_evaluation" / "summary.json").is_file()
    predictions = tmp_path / "softmax_predictions"
    _predict(DATASET, "ConfidenceSoftmaxTrainer", dataset / "imagesTs", predictions, "--level", "2")
    case = min((dataset / "imagesTs").glob("*_0000.nii.gz")).name[: -len("_0000.nii.gz")]
    levels = _array(predictions / f"{case}.nii.gz")
    assert set(np.unique(levels)) <= set(range(K + 1))
    np.testing.assert_array_equal(_array(predictions / "level2_masks" / f"{case}.nii.gz"), levels >= 2)


def test_confidence_2p5d_trains_and_predicts_level_maps(confidence_dirs, tmp_path):
    dataset = _dataset(confidence_dirs)
    _train(DATASET, "ConfidenceTrainer2p5D", "--epochs", "1", "--no_val", configuration="2d")
    predictions = tmp_path / "predictions_2p5d"
    _predict(DATASET, "ConfidenceTrainer2p5D", dataset / "imagesTs", predictions, "-c", "2d", "--level", "2",
             "--level_probabilities")
    image_file = min((dataset / "imagesTs").glob("*_0000.nii.gz"))
    case = image_file.name[: -len("_0000.nii.gz")]
    image = sitk.ReadImage(str(image_file))
    levels_image = sitk.ReadImage(str(predictions / f"{case}.nii.gz"))
    assert levels_image.GetSize() == image.GetSize()
    levels = sitk.GetArrayFromImage(levels_image)
    assert set(np.unique(levels)) <= set(range(K + 1))
    # the 2.5D level map is the monotone decoding of its own cumulative probabilities, and its masks agree
    cumulative = np.stack([_array(predictions / "level_probabilities" / f"{case}_ge{c}.nii.gz")
                           for c in range(1, K + 1)])
    assert cumulative.shape == (K, *levels.shape)
    assert np.all((cumulative >= 0) & (cumulative <= 1))
    assert np.all(np.diff(cumulative, axis=0) <= 1e-6)  # P(level >= c) never increases with c
    np.testing.assert_array_equal((cumulative > 0.5).sum(0), levels)
    np.testing.assert_array_equal(_array(predictions / "level2_masks" / f"{case}.nii.gz"), levels >= 2)
    assert np.ptp(cumulative[0]) > 0  # the probabilities vary over the volume: the network's output, not a constant


@pytest.mark.parametrize("trainer", ["ConfidenceTrainer", "ConfidenceSoftmaxTrainer"])
def test_confidence_trainers_refuse_non_ordinal_datasets(trainer):
    import torch

    from radconf.registry import find_class

    plain = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "gtv": 1}, "file_ending": ".nii.gz"}
    plans = {"configurations": {"2d": {"patch_size": [32, 32]}}}
    with pytest.raises(ValueError, match="not an ordinal confidence-level dataset.*radconf_fuse_readers"):
        find_class(trainer, "trainer")(plans, "2d", 0, plain, torch.device("cpu"))
