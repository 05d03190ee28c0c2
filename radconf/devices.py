"""Torch devices and thread settings.

``make_device`` only checks and names a device; it may run any number of times in one process (an ensemble loads one
predictor per member, a two-stage prediction two). Thread settings are process-wide and torch accepts
``set_num_interop_threads`` once, before any parallel work: ``configure_threads`` applies them once per process and
is called by the entry points (``radconf_train``, ``radconf_predict``), as nnU-Net's own entry points do.
"""
from __future__ import annotations

import multiprocessing
import os

from radconf.errors import InvalidInput

DEVICES = ("cpu", "cuda", "mps")
_configured: list[str] = []  # the device the threads were configured for, once per process


def default_device() -> str:
    """``cuda`` when available, else ``cpu`` (nnU-Net's default of cuda fails on a laptop)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def make_device(name: str | None):
    """The ``torch.device`` for ``-device NAME`` (None = cuda when available, else cpu); changes no settings.

    Raises:
        InvalidInput: an unknown device, cuda without a CUDA GPU, or mps without Apple's GPU backend.
    """
    import torch

    name = name or default_device()
    if name not in DEVICES:
        raise InvalidInput(f"-device must be cpu, cuda or mps, got {name!r}.")
    if name == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("-device cuda was requested but torch sees no CUDA GPU; use -device cpu, or install a CUDA "
                           "build of torch.")
    if name == "mps" and not torch.backends.mps.is_available():
        raise InvalidInput("-device mps was requested but torch sees no Apple GPU (mps); use -device cpu.")
    return torch.device(name)


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else multiprocessing.cpu_count()


def configure_threads(name: str | None, processes: int = 1) -> None:
    """nnU-Net's thread settings for a device, applied once per process (later calls change nothing).

    CPU: torch uses every core this process may run on (its CPU affinity, e.g. under ``taskset``), or its share of
    them when ``processes`` processes of one run share the machine (the ranks of a CPU process group). CUDA: one
    intra-op and one inter-op thread (the GPU does the work; more threads only contend with the data-loading workers).
    """
    import torch

    if _configured:
        return
    name = name or default_device()
    if name == "cpu":
        torch.set_num_threads(max(1, usable_cores() // max(1, processes)))
    elif name == "cuda":
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
    _configured.append(name)
