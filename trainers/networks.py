"""The papers' networks as nnU-Net trainers: each overrides only how the network is built.

* ``AttentionUNetTrainer`` (2D and 3D): nnU-Net's planned U-Net with additive attention gates on the skip
  connections (seed 000; :mod:`radconf.networks.attention`), deep supervision kept.
* ``ResNet34FPNTrainer`` (seed 002) and ``DeepLabV3PlusTrainer`` (seed 004's comparison), 2d configurations only:
  segmentation-models-pytorch networks with a randomly initialised ResNet34 encoder, input channels and classes from
  the plans, inputs padded to the encoder's stride inside the network (:mod:`radconf.networks.smp_models`); deep
  supervision is switched off (one output, nnU-Net's loss and loaders then make one target).

Monte Carlo dropout: smp's FPN decoder carries a ``Dropout2d(0.2)`` and DeepLabv3+'s ASPP projection a
``Dropout(0.5)``, active in training only (nnU-Net's validation and prediction stay deterministic).
``radconf.uncertainty.dropout`` finds every ``torch.nn`` dropout module by type, so ``radconf_predict --uncertainty
mc_dropout`` samples them with no change (both lie in the decoder). The attention U-Net has no dropout of its own;
``class T(DropoutMixin, AttentionUNetTrainer)`` adds nnU-Net-style dropout to it.

Trainer signatures, plans, loss, data loading, checkpoints (``weights_only``) and prediction stay nnU-Net's.
"""
from __future__ import annotations

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from radconf.trainers.no_augmentation import no_augmentation

from radconf.errors import InvalidInput


class AttentionUNetTrainer(nnUNetTrainer):
    """nnU-Net's U-Net from the plans with additive attention gates on every skip connection (Attention U-Net)."""

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        from radconf.networks.attention import with_attention_gates

        return with_attention_gates(super().build_network_architecture(
            plans_manager, configuration_manager, num_input_channels, num_output_channels, enable_deep_supervision))


class SMPNetworkMixin:
    """A 2D segmentation-models-pytorch network (``architecture``) instead of nnU-Net's U-Net; no deep supervision."""

    architecture = ""
    radconf_dimensions = (2,)  # configurations this trainer can train: 2d

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.enable_deep_supervision = False

    def set_deep_supervision_enabled(self, enabled: bool):
        """The network has one output: nothing to switch."""

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        from radconf.networks.smp_models import build_smp_network

        dimensions = len(configuration_manager.patch_size)
        if dimensions not in cls.radconf_dimensions:
            raise InvalidInput(f"{cls.__name__} is a 2D network: train it on a 2d configuration (-c 2d), not a "
                               f"{dimensions}D one.")
        return build_smp_network(cls.architecture, num_input_channels, num_output_channels)


class ResNet34FPNTrainer(SMPNetworkMixin, nnUNetTrainer):
    """2D ResNet34 encoder with a feature-pyramid (FPN) decoder (seed 002), from segmentation-models-pytorch."""

    architecture = "FPN"


class DeepLabV3PlusTrainer(SMPNetworkMixin, nnUNetTrainer):
    """2D DeepLabv3+ with a ResNet34 encoder (seed 004's comparison), from segmentation-models-pytorch."""

    architecture = "DeepLabV3Plus"


# Without data augmentation: CPU budgets (the phantom benchmark, tests)
AttentionUNetTrainerNoDA = no_augmentation(AttentionUNetTrainer)
ResNet34FPNTrainerNoDA = no_augmentation(ResNet34FPNTrainer)
DeepLabV3PlusTrainerNoDA = no_augmentation(DeepLabV3PlusTrainer)
