"""Rank-safety of what radconf adds to training, for nnU-Net's DDP (:mod:`radconf.scale.distributed`).

Outside a process group every function is the single-process answer (rank 0 of 1, ``compute()`` itself, True), so
trainers call them unconditionally.
"""
from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _group():
    """``torch.distributed`` when a process group is initialised, else None."""
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def rank() -> int:
    """This process's rank (0 outside a process group)."""
    dist = _group()
    return dist.get_rank() if dist else 0


def world_size() -> int:
    """Processes in the group (1 outside a process group)."""
    dist = _group()
    return dist.get_world_size() if dist else 1


def is_rank_zero() -> bool:
    return rank() == 0


def rank_zero_value(compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0, sent to every rank (outside a process group: just ``compute()``).

    An exception raised by ``compute`` on rank 0 is raised on every rank (no rank waits for a value that never
    comes).
    """
    dist = _group()
    if dist is None:
        return compute()
    box: list = [None]
    if dist.get_rank() == 0:
        try:
            box = [("value", compute())]
        except Exception as error:  # noqa: BLE001 - sent to the other ranks, raised everywhere below
            box = [("error", error)]
    dist.broadcast_object_list(box, src=0)
    kind, payload = box[0]
    if kind == "error":
        raise payload
    return payload


def weights_digest(network) -> str:
    """SHA-256 of a network's parameters and buffers, bit for bit, in ``state_dict`` order."""
    digest = hashlib.sha256()
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def check_weights_agree(trainer) -> bool:
    """Compares the ranks' network weights; rank 0 logs the outcome (a warning if they differ). True outside a
    process group."""
    from radconf.nnunet_compat.checkpoints import unwrap_network

    dist = _group()
    if dist is None:
        return True
    digests: list = [None] * dist.get_world_size()
    dist.all_gather_object(digests, weights_digest(unwrap_network(trainer.network)))
    agree = len(set(digests)) == 1
    if agree:
        trainer.print_to_log_file(f"radconf: network weights identical on all {len(digests)} ranks (sha256 "
                                  f"{digests[0][:16]})")
    elif dist.get_rank() == 0:
        message = (f"radconf: network weights differ between the {len(digests)} ranks (sha256 "
                   f"{', '.join(d[:16] for d in digests)}); the checkpoint holds rank 0's")
        trainer.print_to_log_file(message)
        warnings.warn(message, stacklevel=2)
    return agree
