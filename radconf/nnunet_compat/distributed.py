"""nnU-Net's trainer in a ``torch.distributed`` process group on a device other than CUDA.

nnU-Net 2.8's DDP is CUDA's: when a process group exists, ``nnUNetTrainer.__init__`` moves rank r onto ``cuda:r``
(and builds a CUDA grad scaler), and ``initialize`` wraps the network in ``DistributedDataParallel(network,
device_ids=[rank])``, which a CPU module refuses. radconf's CPU runs of its rank logic (the gloo backend, tests and
machines without GPUs) keep the device asked for: the trainer's device and grad scaler are set back after
construction, and the DDP wrapper is built without device ids while ``initialize`` runs. On CUDA nothing changes.
Everything else nnU-Net does under DDP (per-rank batch size and oversampling, gathered losses and pseudo-Dice,
rank-0 logging and checkpoints, validation split over ranks) works on gloo as it is.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


def _trainer_module():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    return sys.modules[nnUNetTrainer.__module__]


@contextmanager
def initialised_on(trainer, device) -> Iterator[None]:
    """Around ``trainer.initialize()``: in a process group on a non-CUDA ``device``, the trainer stays on ``device``
    and its network is wrapped by DDP without device ids; otherwise (no group, or CUDA) nothing is changed."""
    if not getattr(trainer, "is_ddp", False) or device.type == "cuda":
        yield
        return
    trainer.device = device
    trainer.grad_scaler = None  # nnU-Net builds a CUDA grad scaler for the cuda:r it chose; AMP is CUDA-only there
    module = _trainer_module()
    wrapper = module.DDP

    def without_device_ids(network, device_ids=None, **kwargs):
        return wrapper(network, **kwargs)

    module.DDP = without_device_ids
    try:
        yield
    finally:
        module.DDP = wrapper
