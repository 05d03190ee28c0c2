"""The one place radconf works around nnU-Net 2.8.1: a few re-implemented lines and one scoped substitution.

``nnUNetTrainer.load_checkpoint`` accepts a path (then loads it with ``weights_only=False``) or, per its signature,
a dict - but the dict branch is broken in 2.8.1 (``checkpoint`` is never assigned). radconf loads checkpoints with
``weights_only=True`` and restores the trainer state here, attribute for attribute as nnU-Net does.
``tests/cli/test_end_to_end.py`` checks that the result equals nnU-Net's own path-based restore, so a change in
nnU-Net fails loudly.

``nnUNetTrainer.get_dataloaders``/``perform_actual_validation`` build ``nnUNetDataLoader``/``nnUNetPredictor`` by
their module-global names; :func:`substitute_in_trainer_module` swaps one for a subclass during one such call.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager


def restore_trainer_state(trainer, checkpoint: dict) -> None:
    """Restores network, optimizer, grad scaler, epoch, logger and best EMA from a loaded checkpoint dict."""
    if not trainer.was_initialized:
        trainer.initialize()
    network = trainer.network.module if trainer.is_ddp else trainer.network
    network = getattr(network, "_orig_mod", network)
    own_keys = network.state_dict().keys()
    state = {(k[7:] if k not in own_keys and k.startswith("module.") else k): v
             for k, v in checkpoint["network_weights"].items()}
    trainer.my_init_kwargs = checkpoint["init_args"]
    trainer.current_epoch = checkpoint["current_epoch"]
    trainer.logger.load_checkpoint(checkpoint["logging"])
    trainer._best_ema = checkpoint["_best_ema"]
    trainer.inference_allowed_mirroring_axes = checkpoint.get("inference_allowed_mirroring_axes",
                                                              trainer.inference_allowed_mirroring_axes)
    network.load_state_dict(state)
    trainer.optimizer.load_state_dict(checkpoint["optimizer_state"])
    if trainer.grad_scaler is not None and checkpoint["grad_scaler_state"] is not None:
        trainer.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])


@contextmanager
def substitute_in_trainer_module(name: str, replacement):
    """Rebinds a global of nnU-Net's trainer module for the duration of one call, then restores it.

    Substituting ``nnUNetDataLoader``/``nnUNetPredictor`` while ``get_dataloaders``/``perform_actual_validation`` run
    replaces ~60 and ~150 copied lines. The trainer calls them from its main thread; the loader/predictor threads and
    the spawned export workers never look these names up. ``tests/trainers/test_slice_context.py`` fails if nnU-Net
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
