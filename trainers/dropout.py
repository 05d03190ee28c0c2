"""Training with dropout or DropBlock (seed 004), for Monte Carlo dropout at inference.

``DropoutMixin`` adds dropout to any nnU-Net trainer: ``class T(DropoutMixin, AnatomyChannelsTrainer)``. The network
is nnU-Net's planned one with ``dropout_op`` set in its architecture keywords (``radconf.uncertainty.dropout``), so
nnU-Net's architectures build a dropout module into every convolution block of encoder and decoder (run after its
normalisation and nonlinearity); the plans stay as planned. The state_dict keys are the plain network's, so plain
checkpoints fine-tune it and vice versa. Dropout and
DropBlock only act in training mode: nnU-Net's validation and prediction stay deterministic, and
``radconf.uncertainty.dropout.mc_dropout`` switches them on for sampling.
"""
from __future__ import annotations

import copy

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager
from radconf.trainers.confidence import ConfidenceTrainer
from radconf.trainers.no_augmentation import no_augmentation

from radconf.errors import InvalidInput
from radconf.nnunet_compat.intensity import radconf_configuration_manager
from radconf.uncertainty.dropout import (
    DropoutSettings,
    arch_kwargs_with_dropout,
    configure_dropout,
    dropout_after_nonlinearity,
    read_dropout_settings,
    write_dropout_settings,
)

#: trainer setting -> field of DropoutSettings
_FIELDS = {"dropout_rate": "rate", "dropout_where": "where", "dropblock_size": "block_size"}


def _with_arch_kwargs(manager: ConfigurationManager, arch_kwargs: dict) -> ConfigurationManager:
    """A copy of ``manager`` (same class; radconf's CLAHE manager included) whose architecture takes ``arch_kwargs``."""
    configuration = copy.deepcopy(manager.configuration)
    configuration["architecture"]["arch_kwargs"] = arch_kwargs
    try:
        return type(manager)(configuration)
    except TypeError:  # a wrapper with another constructor: nnU-Net's manager, resolving radconf's preprocessor
        return radconf_configuration_manager(ConfigurationManager(configuration))


class DropoutMixin:
    """Dropout after every convolution block: ``class MyTrainer(DropoutMixin, SomeTrainer)``, e.g.
    ``class T(DropoutMixin, AnatomyChannelsTrainer)``.

    Class attributes (override in a subclass; the settings of the same names, ``radconf_train --dropout P
    --dropout_in {encoder,decoder,both} --dropblock_size V``, set them per run): ``dropout_rate``, ``dropout_where``
    and ``dropblock_size`` (0: element-wise ``torch.nn.Dropout``; >= 1: DropBlock of that size in voxels). The
    network's dropout modules are built from the class attributes (inference rebuilds the network from the class),
    the run's values are set into them and recorded in ``dropout.json``.
    """

    radconf_settings = ("dropout_rate", "dropout_where", "dropblock_size")
    dropout_rate = 0.1
    dropout_where = "both"
    dropblock_size = 0

    @classmethod
    def class_dropout_settings(cls) -> DropoutSettings:
        """The dropout the class builds into its network (its class attributes)."""
        return DropoutSettings(cls.dropout_rate, cls.dropout_where, cls.dropblock_size).check()

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        arch_kwargs = arch_kwargs_with_dropout(configuration_manager.network_arch_init_kwargs,
                                               configuration_manager.network_arch_init_kwargs_req_import,
                                               cls.class_dropout_settings())
        manager = _with_arch_kwargs(configuration_manager, arch_kwargs)
        network = super().build_network_architecture(plans_manager, manager, num_input_channels, num_output_channels,
                                                     enable_deep_supervision)
        return dropout_after_nonlinearity(network)

    def initialize(self):
        settings = self._record_dropout_settings()
        super().initialize()
        configure_dropout(self.network, settings)
        self.print_to_log_file(f"radconf dropout: {settings.as_json()}")

    def _record_dropout_settings(self) -> DropoutSettings:
        """The run's settings, checked, written to ``dropout.json``; a resumed run reuses what it recorded for each
        setting not given explicitly.

        Raises:
            InvalidInput: a value out of range, or DropBlock asked of a class that builds element-wise dropout.
        """
        values = {field: getattr(self, name) for name, field in _FIELDS.items()}
        recorded = read_dropout_settings(self.output_folder)
        if recorded is not None:
            values.update({field: getattr(recorded, field) for name, field in _FIELDS.items()
                           if name not in vars(self)})
        settings = DropoutSettings(**values).check()
        if settings.block_size >= 1 and self.class_dropout_settings().block_size == 0:
            raise InvalidInput(f"{type(self).__name__} builds element-wise dropout (torch.nn.Dropout) into its network,"
                               f" "
                               f"so --dropblock_size {settings.block_size} cannot take effect: train DropBlockTrainer "
                               f"(or a class with dropblock_size >= 1), or pass --dropblock_size 0.")
        for name, field in _FIELDS.items():
            setattr(self, name, getattr(settings, field))
        if self.local_rank == 0:
            write_dropout_settings(self.output_folder, settings)
        return settings


class DropoutTrainer(DropoutMixin, nnUNetTrainer):
    """nnU-Net's default trainer with element-wise dropout (p = 0.1) after every convolution block."""


class DropBlockTrainer(DropoutMixin, nnUNetTrainer):
    """nnU-Net's default trainer with DropBlock (3-voxel blocks, p = 0.1) after every convolution block."""

    dropblock_size = 3


class ConfidenceDropoutTrainer(DropoutMixin, ConfidenceTrainer):
    """ConfidenceTrainer (ordinal confidence levels) with element-wise dropout after every convolution block."""


# Without data augmentation: CPU budgets (the demo, the phantom benchmark, tests)
DropoutTrainerNoDA = no_augmentation(DropoutTrainer)
DropBlockTrainerNoDA = no_augmentation(DropBlockTrainer)
ConfidenceDropoutTrainerNoDA = no_augmentation(ConfidenceDropoutTrainer)

