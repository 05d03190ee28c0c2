"""Segmentation-loss variants of seed 004 (METHODS.md section 4), each a small nnU-Net trainer.

``BoundaryDiceMixin`` / ``SqrtDiceMixin`` replace the Dice term of nnU-Net's Dice + CE loss (every deep-supervision
level) by radconf's boundary-weighted Dice (0.8 on boundary voxels, 0.2 elsewhere) or the sensitivity-oriented
sqrt-Dice; cross-entropy, deep supervision and everything else stay nnU-Net's.
"""
from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from radconf.losses import BoundaryWeightedDiceLoss, SqrtDiceLoss, swap_dice


class BoundaryDiceMixin:
    def _build_loss(self):
        return swap_dice(super()._build_loss(), BoundaryWeightedDiceLoss)


class SqrtDiceMixin:
    def _build_loss(self):
        return swap_dice(super()._build_loss(), SqrtDiceLoss)


class BoundaryDiceTrainer(BoundaryDiceMixin, nnUNetTrainer):
    """nnU-Net's trainer with the boundary-weighted Dice (w = 0.8 boundary / 0.2 elsewhere) + CE."""


class SqrtDiceTrainer(SqrtDiceMixin, nnUNetTrainer):
    """nnU-Net's trainer with the sensitivity-oriented sqrt-Dice + CE."""
