"""Loss variants of the ensemble pool of seed 001 (METHODS.md section 5): Dice only, CE only, class-weighted CE.

The losses are nnU-Net's own (``nnUNetTrainerDiceLoss``, ``nnUNetTrainerCELoss``, deep supervision included); the
mixins make them combinable with any trainer (e.g. ``NoDA``, anatomy channels) and add the class-weighted CE:
weights from ``radconf_train --ce_weights W0 W1 ...`` (background first) or, by default, the reciprocal voxel
frequency of each class over the fold's training cases. The weights are recorded in ``class_weights.json`` and a
resumed run (``--c``) reuses them. nnU-Net's default Dice + CE is ``nnUNetTrainer`` itself.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.loss.nnUNetTrainerCELoss import (
    nnUNetTrainerCELoss,
)
from nnunetv2.training.nnUNetTrainer.variants.loss.nnUNetTrainerDiceLoss import (
    nnUNetTrainerDiceLoss,
)

from radconf.errors import InvalidInput
from radconf.trainers.no_augmentation import no_augmentation

CLASS_WEIGHTS_FILE = "class_weights.json"


class DiceLossMixin:
    """Soft Dice only (nnU-Net's ``MemoryEfficientSoftDiceLoss``; softmax without background, or sigmoid regions)."""

    def _build_loss(self):
        return nnUNetTrainerDiceLoss._build_loss(self)


class CELossMixin:
    """Cross-entropy only (nnU-Net's ``RobustCrossEntropyLoss``); label maps, not regions."""

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise InvalidInput(f"{type(self).__name__} trains softmax classes; this dataset defines regions (e.g. "
                             f"confidence levels). Use a Dice or Dice + BCE trainer for region datasets.")
        return nnUNetTrainerCELoss._build_loss(self)


class WeightedCELossMixin(CELossMixin):
    """Cross-entropy with one weight per class (the setting ``class_weights``, ``radconf_train --ce_weights``; None =
    the weights a resumed run recorded, else the reciprocal training-set frequency)."""

    radconf_settings = ("class_weights",)
    class_weights = None

    def _build_loss(self):
        loss = super()._build_loss()
        inner = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
        inner.weight = torch.as_tensor(self._resolve_class_weights(), dtype=torch.float32, device=self.device)
        return loss

    def _resolve_class_weights(self) -> np.ndarray:
        """Explicit weights, else those a resumed run recorded, else reciprocal frequencies; written to
        ``class_weights.json``."""
        from radconf.io.files import atomic_write_json

        num_classes = self.label_manager.num_segmentation_heads
        path = Path(self.output_folder) / CLASS_WEIGHTS_FILE
        source = "given"
        weights = self.class_weights
        if weights is None and path.is_file():
            weights, source = json.loads(path.read_text())["weights"], f"recorded in {path.name}"
        if weights is None:
            from radconf.losses import reciprocal_frequency_weights
            from radconf.scale.ranks import rank_zero_value
            from radconf.training import training_label_counts

            # on rank 0, sent to every rank of a multi-GPU run
            counts, keys = rank_zero_value(lambda: training_label_counts(self, num_classes))
            weights, source = reciprocal_frequency_weights(counts), f"reciprocal frequency over {len(keys)} cases"
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (num_classes,) or (weights < 0).any() or weights.sum() <= 0:
            raise InvalidInput(f"Class weights must be {num_classes} non-negative numbers (background first, labels "
                             f"{list(self.dataset_json['labels'])}) with a positive sum; got {weights.tolist()}.")
        if self.local_rank == 0:
            atomic_write_json(path, {"weights": weights.tolist(), "labels": list(self.dataset_json["labels"]),
                                     "source": source})
        self.print_to_log_file(f"Class weights ({source}): " + ", ".join(f"{w:.4g}" for w in weights))
        return weights


class DiceLossTrainer(DiceLossMixin, nnUNetTrainer):
    """nnU-Net's trainer with the soft Dice loss only."""


class CELossTrainer(CELossMixin, nnUNetTrainer):
    """nnU-Net's trainer with the cross-entropy loss only."""


class WeightedCELossTrainer(WeightedCELossMixin, nnUNetTrainer):
    """nnU-Net's trainer with class-weighted cross-entropy only."""


# Without data augmentation: CPU budgets (the phantom benchmark); use the above on real data.
DiceLossTrainerNoDA = no_augmentation(DiceLossTrainer)
CELossTrainerNoDA = no_augmentation(CELossTrainer)
WeightedCELossTrainerNoDA = no_augmentation(WeightedCELossTrainer)
