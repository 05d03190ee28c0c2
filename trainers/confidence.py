"""Trainers for ordinal confidence-level maps 0..K (datasets written by radconf_fuse_readers).

``ConfidenceTrainer`` learns the K cumulative channels [level >= c] with nnU-Net's region-based training (sigmoid,
region Dice + BCE, deep supervision, AMP and ``--c`` unchanged); its BCE weights every voxel by the reciprocal
training-set frequency of its level (the paper's weighted loss). ``ConfidenceTrainerUnweighted`` uses nnU-Net's plain
BCE, ``ConfidenceSoftmaxTrainer`` is the multi-class softmax baseline on the same levels. All of them finish their
validation with the continuous Dice and the per-level table of radconf's evaluation
(``fold_X/validation/confidence_evaluation``).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from radconf.trainers.slice_context import SliceContextMixin

from radconf.confidence.ordinal import (
    LevelWeightedBCE,
    cumulative_dataset_json,
    level_dataset_json,
    ordinal_levels,
)
from radconf.losses import reciprocal_frequency_weights
from radconf.trainers.no_augmentation import no_augmentation


class _LevelTrainer:
    """Dataset view and end-of-training validation of the confidence trainers (mixed in before nnU-Net's trainer).

    ``cumulative_outputs``: K sigmoid channels [level >= c] (nnU-Net regions) if True, else K + 1 softmax classes.
    """

    cumulative_outputs = True

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        view = cumulative_dataset_json if self.cumulative_outputs else level_dataset_json
        super().__init__(plans, configuration, fold, view(dataset_json), device)
        self.num_levels = ordinal_levels(self.dataset_json)

    def perform_actual_validation(self, save_probabilities: bool = False):
        # nnU-Net's own validation; cumulative models export probabilities so that radconf can re-decode them
        # monotonically (a softmax model's argmax is already a level map)
        super().perform_actual_validation(save_probabilities or self.cumulative_outputs)
        if self.local_rank != 0:
            return
        from radconf.confidence.outputs import finish_level_predictions

        folder = Path(self.output_folder) / "validation"
        finish_level_predictions(folder, self.num_levels, self.dataset_json["file_ending"],
                                 cumulative=self.cumulative_outputs, keep_npz=save_probabilities)
        if self.cumulative_outputs:  # the files changed: nnU-Net's summary.json scored its own decoding of them
            self._recompute_validation_summary(folder)
        self._log_level_metrics(folder)

    def _recompute_validation_summary(self, folder: Path) -> dict:
        """Rewrites nnU-Net's ``summary.json`` of ``folder`` from the level maps now there, with nnU-Net's evaluation.

        nnU-Net scores its validation files as it exported them (the cumulative regions decoded last-region-wins);
        radconf then re-decodes them monotonically. Scoring again, with the arguments nnU-Net's validation uses,
        keeps nnU-Net's format and makes the summary describe the files.

        Returns:
            nnU-Net's metrics dictionary (as written to ``summary.json``).
        """
        import sys

        from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder

        labels = self.label_manager
        regions_or_labels = labels.foreground_regions if labels.has_regions else labels.foreground_labels
        metrics = compute_metrics_on_folder(
            str(Path(self.preprocessed_dataset_folder_base) / "gt_segmentations"), str(folder),
            str(folder / "summary.json"), self.plans_manager.image_reader_writer_class(),
            self.dataset_json["file_ending"], regions_or_labels, labels.ignore_label, chill=True,
            num_processes=sys.modules[nnUNetTrainer.__module__].default_num_processes)  # nnU-Net's setting, read now
        for label in metrics["mean"]:
            self.logger.log_summary(f"final_val/class_{label}_dice", metrics["mean"][label]["Dice"])
        self.logger.log_summary("final_val/foreground_dice", metrics["foreground_mean"]["Dice"])
        self.print_to_log_file(f"validation/summary.json recomputed from the monotonically re-decoded level maps "
                               f"(nnU-Net's evaluation): mean validation Dice {metrics['foreground_mean']['Dice']:.4f}",
                               also_print_to_console=True)
        return metrics

    def _log_level_metrics(self, folder: Path) -> None:
        from radconf.evaluation import EvaluationWarning, evaluate_folders

        with warnings.catch_warnings():  # the reference folder holds every training case, validation only its fold
            warnings.simplefilter("ignore", EvaluationWarning)
            result = evaluate_folders(reference_dir=Path(self.preprocessed_dataset_folder_base) / "gt_segmentations",
                                      prediction_dir=folder, output_dir=folder / "confidence_evaluation",
                                      allow_missing=True, confidence_levels=self.num_levels, progress=False)
        summary = result.summary
        continuous = summary["continuous"]["continuous_dice"]["mean"]
        per_level = {level: summary[f"level>={level}"]["dice"]["mean"] for level in range(1, self.num_levels + 1)}
        self.print_to_log_file(f"Confidence validation ({len(result.cases)} cases): continuous Dice "
                               f"{continuous:.4f}; per-level Dice " + json.dumps({k: round(v, 4)
                                                                                 for k, v in per_level.items()}),
                               also_print_to_console=True)
        self.logger.log_summary("final_val/continuous_dice", continuous)
        for level, value in per_level.items():
            self.logger.log_summary(f"final_val/level_{level}_dice", value)


class ConfidenceTrainer(_LevelTrainer, nnUNetTrainer):
    """K sigmoid outputs, channel c = [level >= c]; level-weighted BCE + nnU-Net's region Dice."""

    weighted_bce = True

    def _build_loss(self):
        loss = super()._build_loss()  # DC_and_BCE_loss on the regions, wrapped for deep supervision
        if self.weighted_bce:
            inner = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
            inner.ce = LevelWeightedBCE(self._training_level_weights())
        return loss

    def _training_level_weights(self) -> np.ndarray:
        """Reciprocal level frequencies over the training split's preprocessed segmentations (logged and saved)."""
        from radconf.io.files import atomic_write_json
        from radconf.scale.ranks import is_rank_zero, rank_zero_value
        from radconf.training import training_label_counts

        # on rank 0, sent to every rank of a multi-GPU run: all ranks train with the same loss
        counts, train_keys = rank_zero_value(lambda: training_label_counts(self, self.num_levels + 1))
        weights = reciprocal_frequency_weights(counts)
        if is_rank_zero():
            atomic_write_json(Path(self.output_folder) / "level_weights.json",
                              {"level_voxel_counts": counts.tolist(), "weights": weights.tolist(),
                               "training_cases": len(train_keys)})
        self.print_to_log_file(f"Level weights (reciprocal frequency over {len(train_keys)} training cases): "
                               + ", ".join(f"{w:.4g}" for w in weights))
        return weights


class ConfidenceTrainerUnweighted(ConfidenceTrainer):
    """ConfidenceTrainer with nnU-Net's unweighted BCE."""

    weighted_bce = False


class ConfidenceSoftmaxTrainer(_LevelTrainer, nnUNetTrainer):
    """Baseline: the levels as K + 1 unordered classes (softmax, nnU-Net's Dice + CE, argmax decoding)."""

    cumulative_outputs = False


# 2.5D (the paper's input): 2d configuration, 5 neighbouring slices as channels (trainers/slice_context.py)
class ConfidenceTrainer2p5D(SliceContextMixin, ConfidenceTrainer):
    """ConfidenceTrainer on 5 neighbouring axial slices as input channels; use with ``-c 2d``."""


# Without data augmentation: converge within CPU budgets (the demo, the phantom benchmark); use the above on real data.
ConfidenceTrainerNoDA = no_augmentation(ConfidenceTrainer)
ConfidenceTrainerUnweightedNoDA = no_augmentation(ConfidenceTrainerUnweighted)
ConfidenceSoftmaxTrainerNoDA = no_augmentation(ConfidenceSoftmaxTrainer)
ConfidenceTrainer2p5DNoDA = no_augmentation(ConfidenceTrainer2p5D)
