"""The anatomy-guided multi-task network (AG-MTN, seed 004): anatomy channels in, distance-map head out.

The four models of the paper's ablation, each trained with one ``radconf_train`` command:

=================================  ================================  ======================================
model                              trainer                           dataset
=================================  ================================  ======================================
plain 3D U-Net                     ``nnUNetTrainer``                 target only (e.g. CT -> CTV)
distance head only (MTN)           ``DistanceMapTrainer``            target only
anatomy only (AG-UNet)             ``AnatomyChannelsTrainer``        with anatomy channels
both (AG-MTN)                      ``AnatomyGuidedMultiTaskTrainer`` with anatomy channels
=================================  ================================  ======================================

``...NoDA`` variants skip data augmentation for CPU budgets; ``AnatomyGuidedMultiTaskTrainerBoundaryDice`` adds the
paper's boundary-weighted Dice.
"""
from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from radconf.trainers.anatomy_channels import AnatomyChannelsMixin
from radconf.trainers.dice_variants import BoundaryDiceMixin
from radconf.trainers.distance_head import DistanceHeadMixin
from radconf.trainers.no_augmentation import no_augmentation


class AnatomyGuidedMultiTaskTrainer(AnatomyChannelsMixin, DistanceHeadMixin, nnUNetTrainer):
    """Anatomy channels + distance-map head on nnU-Net's default trainer."""


AnatomyGuidedMultiTaskTrainerNoDA = no_augmentation(AnatomyGuidedMultiTaskTrainer)


class AnatomyGuidedMultiTaskTrainerBoundaryDice(AnatomyChannelsMixin, DistanceHeadMixin, BoundaryDiceMixin,
                                                nnUNetTrainer):
    """AG-MTN with the paper's boundary-weighted Dice in the segmentation loss.

    ``BoundaryDiceMixin`` comes after ``DistanceHeadMixin``: it swaps the Dice term of nnU-Net's loss, which the
    distance head then wraps (the other order would look for the Dice term in the wrapper).
    """
