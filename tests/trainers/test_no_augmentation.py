"""The ``...NoDA`` twins built by ``no_augmentation``: names, modules, registry lookup, pickling, augmentation off."""
from __future__ import annotations

import importlib
import pickle

import pytest
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoDA import (
    nnUNetTrainerNoDA,
)
from radconf.trainers.no_augmentation import no_augmentation

from radconf.registry import find_class, radconf_classes

TWINS = {  # twin -> (module, trainer it is built from)
    "AnatomyChannelsTrainerNoDA": ("anatomy_channels", "AnatomyChannelsTrainer"),
    "AnatomyGuidedMultiTaskTrainerNoDA": ("anatomy_guided", "AnatomyGuidedMultiTaskTrainer"),
    "ConfidenceTrainerNoDA": ("confidence", "ConfidenceTrainer"),
    "ConfidenceTrainerUnweightedNoDA": ("confidence", "ConfidenceTrainerUnweighted"),
    "ConfidenceSoftmaxTrainerNoDA": ("confidence", "ConfidenceSoftmaxTrainer"),
    "ConfidenceTrainer2p5DNoDA": ("confidence", "ConfidenceTrainer2p5D"),
    "DistanceMapTrainerNoDA": ("distance_head", "DistanceMapTrainer"),
    "DiceLossTrainerNoDA": ("loss_variants", "DiceLossTrainer"),
    "CELossTrainerNoDA": ("loss_variants", "CELossTrainer"),
    "PartialLabelTrainerNoDA": ("partial_labels", "PartialLabelTrainer"),
    "PartialLabelAnatomyChannelsTrainerNoDA": ("partial_labels", "PartialLabelAnatomyChannelsTrainer"),
    "HardNegativeTrainerNoDA": ("hard_negatives", "HardNegativeTrainer"),
    "DropoutTrainerNoDA": ("dropout", "DropoutTrainer"),
    "DropBlockTrainerNoDA": ("dropout", "DropBlockTrainer"),
    "ConfidenceDropoutTrainerNoDA": ("dropout", "ConfidenceDropoutTrainer"),
    "WeightedCELossTrainerNoDA": ("loss_variants", "WeightedCELossTrainer"),
    "AttentionUNetTrainerNoDA": ("networks", "AttentionUNetTrainer"),
    "ResNet34FPNTrainerNoDA": ("networks", "ResNet34FPNTrainer"),
    "DeepLabV3PlusTrainerNoDA": ("networks", "DeepLabV3PlusTrainer"),
}


@pytest.mark.parametrize("name", sorted(TWINS))
def test_twin_is_a_named_module_level_trainer_without_augmentation(name):
    module_name, base_name = TWINS[name]
    module = importlib.import_module(f"radconf.trainers.{module_name}")
    twin, base = getattr(module, name), getattr(module, base_name)
    assert (twin.__name__, twin.__qualname__, twin.__module__) == (name, name, module.__name__)
    assert find_class(name, "trainer") is twin and radconf_classes("trainer")[name] is twin
    assert pickle.loads(pickle.dumps(twin)) is twin  # found again by module and name, like a checkpoint's trainer_name
    assert twin.__mro__[1] is base and issubclass(twin, nnUNetTrainerNoDA)
    # radconf's hooks run first, then nnU-Net's no-augmentation transforms, not nnUNetTrainer's
    nnunet_hook = next(k for k in twin.__mro__ if "get_training_transforms" in vars(k)
                       and k.__module__.startswith("nnunetv2."))
    assert nnunet_hook is nnUNetTrainerNoDA
    assert twin.configure_rotation_dummyDA_mirroring_and_inital_patch_size is \
        nnUNetTrainerNoDA.configure_rotation_dummyDA_mirroring_and_inital_patch_size
    assert getattr(twin, "predictor_class", None) is getattr(base, "predictor_class", None)


def test_every_radconf_noda_trainer_is_a_twin():
    names = {n for n in radconf_classes("trainer") if n.endswith("NoDA")}
    assert names == set(TWINS)


def test_a_twin_of_a_twin_is_refused():
    class Plain(nnUNetTrainer):
        pass

    twin = no_augmentation(Plain)
    assert (twin.__name__, twin.__qualname__) == ("PlainNoDA", Plain.__qualname__ + "NoDA")
    with pytest.raises(TypeError, match="already derives from nnUNetTrainerNoDA"):
        no_augmentation(twin)
