"""``...NoDA`` twins: a radconf trainer without data augmentation, built from the trainer and ``nnUNetTrainerNoDA``.

CPU budgets (the demo, the phantom benchmarks, tests) converge only without augmentation. Instead of a hand-written
class per trainer, a trainer module assigns ``XNoDA = no_augmentation(X)`` at module level: the twin is an ordinary
class named ``XNoDA`` in that module, so nnU-Net's checkpoints (which store the trainer's ``__name__``), pickling
and radconf's registry (which collects the classes a module defines) find it like any other.
"""
from __future__ import annotations

from nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoDA import (
    nnUNetTrainerNoDA,
)

SUFFIX = "NoDA"


def no_augmentation(trainer: type) -> type:
    """``trainer`` with nnU-Net's ``nnUNetTrainerNoDA`` after it in the MRO: same method, no data augmentation.

    Args:
        trainer: a subclass of nnU-Net's ``nnUNetTrainer`` (radconf's mixins before nnU-Net's trainer in its MRO).

    Returns:
        The class ``<trainer name>NoDA``, defined in ``trainer``'s module; assign it to that name there.

    Raises:
        TypeError: ``trainer`` already skips augmentation.
    """
    if issubclass(trainer, nnUNetTrainerNoDA):
        raise TypeError(f"{trainer.__name__} already derives from nnUNetTrainerNoDA.")
    name = trainer.__name__ + SUFFIX
    qualname = trainer.__qualname__ + SUFFIX
    doc = f"``{trainer.__name__}`` without data augmentation (nnU-Net's ``nnUNetTrainerNoDA``; CPU budgets, tests)."
    return type(name, (trainer, nnUNetTrainerNoDA), {"__module__": trainer.__module__, "__qualname__": qualname,
                                                     "__doc__": doc})
