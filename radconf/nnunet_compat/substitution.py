"""A scoped substitution of a global of nnU-Net's trainer module (its data loader or predictor class)."""
from __future__ import annotations

import sys
from contextlib import contextmanager


@contextmanager
def substitute_in_trainer_module(name: str, replacement):
    """Rebinds a global of nnU-Net's trainer module for the duration of one call, then restores it.

    Substituting ``nnUNetDataLoader``/``nnUNetPredictor`` while ``get_dataloaders``/``perform_actual_validation`` run
    replaces ~60 and ~150 copied lines. The trainer calls them from its main thread; the loader/predictor threads and
    the spawned export workers never look these names up. ``tests/nnunet_compat/`` fails if nnU-Net
    stops using the names.
    """
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    module = sys.modules[nnUNetTrainer.__module__]
    original = getattr(module, name)  # AttributeError here means nnU-Net renamed it: update the caller
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)
