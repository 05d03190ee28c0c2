"""The one place radconf re-implements a few lines of nnU-Net, because nnU-Net 2.8.1 cannot do them safely.

``nnUNetTrainer.load_checkpoint`` accepts a path (then loads it with ``weights_only=False``) or, per its signature,
a dict - but the dict branch is broken in 2.8.1 (``checkpoint`` is never assigned). radconf loads checkpoints with
``weights_only=True`` and restores the trainer state here, attribute for attribute as nnU-Net does.
``tests/cli/test_end_to_end.py`` checks that the result equals nnU-Net's own path-based restore, so a change in
nnU-Net fails loudly.
"""
from __future__ import annotations


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
