"""nnU-Net checkpoints: safe loading, trainer-state restore, the plain network under DDP/``torch.compile``.

``nnUNetTrainer.load_checkpoint`` accepts a path (then loads it with ``weights_only=False``) or, per its signature,
a dict - but the dict branch is broken in 2.8.1 (``checkpoint`` is never assigned). radconf loads checkpoints with
``weights_only=True`` and restores the trainer state here, attribute for attribute as nnU-Net does.
``tests/nnunet_compat/`` checks the attribute list against nnU-Net's ``save_checkpoint`` and the restore against
nnU-Net's own path-based one, so a change in nnU-Net fails loudly.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

from radconf.errors import InvalidInput, MissingInput


def _numpy_scalar_globals() -> list:
    """numpy's scalar reconstructor and dtype classes: plain data that nnU-Net's checkpoint logs contain."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    dtypes = [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")] if hasattr(np, "dtypes") else []
    return [scalar, np.dtype, *dtypes]


def safe_load_checkpoint(path: str | Path) -> dict:
    """Loads an nnU-Net checkpoint with ``weights_only=True`` (no arbitrary code runs from the file).

    nnU-Net's checkpoints hold tensors, plain containers and numpy scalars in their training log; only numpy's
    scalar and dtype reconstructors are allowed besides torch's defaults.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file needs more than that to load.
    """
    import torch

    if not Path(path).is_file():
        raise MissingInput(f"Checkpoint {path} does not exist.")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if "weights only load failed" in str(error).lower():  # a class torch will not rebuild without running code
            raise InvalidInput(f"{path} cannot be loaded safely (weights_only=True): {first_line}. It holds more "
                               f"than tensors and plain data; only load checkpoints from sources you trust.") from None
        raise InvalidInput(f"{path} is not a readable checkpoint ({first_line}): the file is corrupt or truncated. "
                           f"Copy it again, or retrain the fold.") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as error:  # torch's zip reader, a cut-off file
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InvalidInput(f"{path} is not a readable checkpoint ({first_line}): the file is corrupt or truncated. "
                           f"Copy it again, or retrain the fold.") from None


#: what nnU-Net 2.8's ``nnUNetTrainer.save_checkpoint`` writes (tests/nnunet_compat checks it against nnU-Net)
CHECKPOINT_KEYS = frozenset({"network_weights", "optimizer_state", "grad_scaler_state", "logging", "_best_ema",
                             "current_epoch", "init_args", "trainer_name", "inference_allowed_mirroring_axes"})


def restore_trainer_state(trainer, checkpoint: dict) -> None:
    """Restores network, optimizer, grad scaler, epoch, logger and best EMA from a loaded checkpoint dict."""
    if not trainer.was_initialized:
        trainer.initialize()
    network = unwrap_network(trainer.network)
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


def unwrap_network(network):
    """The plain module under nnU-Net's wrappers: DDP's ``.module`` and ``torch.compile``'s ``._orig_mod``."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(network, DistributedDataParallel):
        network = network.module
    return getattr(network, "_orig_mod", network)
