"""Confidence validation: nnU-Net's summary.json is recomputed from the re-decoded level maps, so the two agree."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from nnunetv2.evaluation.evaluate_predictions import (
    compute_metrics_on_folder,
    load_summary_json,
)
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
from nnunetv2.utilities.label_handling.label_handling import LabelManager
from radconf.trainers.confidence import _LevelTrainer

from radconf.confidence.ordinal import cumulative_dataset_json

K = 2
# one case of 1 x 1 x 4 voxels; P(level >= 1), P(level >= 2) per voxel. Voxel 1 is not monotone (0.3 < 0.7):
# nnU-Net's last-region-wins decoding gives it level 2, radconf's monotone decoding (running minimum) level 0.
PROBABILITIES = np.array([[0.9, 0.3, 0.8, 0.1], [0.2, 0.7, 0.9, 0.1]], dtype=np.float32).reshape(K, 1, 1, 4)
NNUNET_LEVELS = np.array([1, 2, 2, 0])
MONOTONE_LEVELS = np.array([1, 0, 2, 0])
REFERENCE = np.array([1, 0, 2, 2])
# Dice of [level >= c] against the reference, by hand (2 tp / (2 tp + fp + fn)):
# monotone: >= 1: pred {0, 2}, ref {0, 2, 3} -> 4 / 5; >= 2: pred {2}, ref {2, 3} -> 2 / 3
# nnU-Net's: >= 1: pred {0, 1, 2} -> 4 / 6; >= 2: pred {1, 2} -> 2 / 4
MONOTONE_DICE = (0.8, 2 / 3)
NNUNET_DICE = (4 / 6, 0.5)


def _write(path: Path, levels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(levels.reshape(1, 1, 4).astype(np.uint8))
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(path))


class _Log:
    def __init__(self):
        self.summaries: dict[str, float] = {}

    def log_summary(self, key: str, value: float) -> None:
        self.summaries[key] = value


class _NnunetValidation:
    """What nnU-Net's validation leaves: its level maps, the probabilities, and a summary.json scoring those maps."""

    def perform_actual_validation(self, save_probabilities: bool = False):
        assert save_probabilities  # cumulative models always export probabilities for the re-decoding
        folder = Path(self.output_folder) / "validation"
        _write(folder / "case.nii.gz", NNUNET_LEVELS)
        np.savez(folder / "case.npz", probabilities=PROBABILITIES)
        compute_metrics_on_folder(self.preprocessed_dataset_folder_base + "/gt_segmentations", str(folder),
                                  str(folder / "summary.json"), SimpleITKIO(), ".nii.gz", self._regions(), None,
                                  num_processes=1)


class _Trainer(_LevelTrainer, _NnunetValidation):
    def __init__(self, root: Path):  # the attributes nnU-Net's trainer would set
        self.dataset_json = cumulative_dataset_json({"labels": {"background": 0, "level_1": 1, "level_2": 2},
                                                     "radconf": {"ordinal": True, "levels": K},
                                                     "channel_names": {"0": "CT"}, "file_ending": ".nii.gz"})
        self.num_levels, self.local_rank = K, 0
        self.label_manager = LabelManager(self.dataset_json["labels"], self.dataset_json["regions_class_order"])
        self.plans_manager = type("Plans", (), {"image_reader_writer_class": SimpleITKIO})()
        self.output_folder = str(root / "fold_0")
        self.preprocessed_dataset_folder_base = str(root / "preprocessed")
        self.logger, self.log_lines = _Log(), []

    def _regions(self):
        return self.label_manager.foreground_regions

    def print_to_log_file(self, *args, **kwargs):
        self.log_lines.append(" ".join(map(str, args)))


def _per_case_dice(summary_file: Path, regions) -> tuple[float, ...]:
    summary = load_summary_json(str(summary_file))
    (case,) = summary["metric_per_case"]
    return tuple(case["metrics"][region]["Dice"] for region in regions)


@pytest.fixture
def one_process(monkeypatch):
    monkeypatch.setattr("nnunetv2.training.nnUNetTrainer.nnUNetTrainer.default_num_processes", 1)


def test_summary_scores_the_redecoded_files(tmp_path, one_process):
    _write(tmp_path / "preprocessed" / "gt_segmentations" / "case.nii.gz", REFERENCE)
    trainer = _Trainer(tmp_path)
    regions = trainer.label_manager.foreground_regions
    assert len(regions) == K

    trainer.perform_actual_validation(save_probabilities=False)
    folder = tmp_path / "fold_0" / "validation"
    levels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "case.nii.gz"))).ravel()
    np.testing.assert_array_equal(levels, MONOTONE_LEVELS)  # the files were re-decoded ...
    np.testing.assert_allclose(_per_case_dice(folder / "summary.json", regions), MONOTONE_DICE)  # ... and scored
    summary = load_summary_json(str(folder / "summary.json"))
    assert summary["foreground_mean"]["Dice"] == pytest.approx(np.mean(MONOTONE_DICE))
    assert trainer.logger.summaries["final_val/foreground_dice"] == pytest.approx(np.mean(MONOTONE_DICE))
    assert any("summary.json recomputed" in line for line in trainer.log_lines)
    assert not (folder / "case.npz").exists()  # probabilities only kept with --npz


def test_nnunets_own_summary_disagreed_with_the_redecoded_files(tmp_path):
    # the stub writes what nnU-Net's validation writes; without the recomputation this summary would remain
    _write(tmp_path / "preprocessed" / "gt_segmentations" / "case.nii.gz", REFERENCE)
    trainer = _Trainer(tmp_path)
    (tmp_path / "fold_0" / "validation").mkdir(parents=True)
    _NnunetValidation.perform_actual_validation(trainer, save_probabilities=True)
    summary = tmp_path / "fold_0" / "validation" / "summary.json"
    np.testing.assert_allclose(_per_case_dice(summary, trainer.label_manager.foreground_regions), NNUNET_DICE)
