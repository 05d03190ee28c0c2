"""Training on several GPUs (``radconf_train ... -num_gpus N``): nnU-Net's DDP, one process per GPU, with radconf's
trainers, and what keeps radconf's additions to training rank-safe.

:func:`train_distributed` checks the whole start in the launching process (arguments, plans, data, checkpoints, the
GPUs present, the batch size), then spawns one process per GPU; each joins the process group and runs radconf's
:func:`radconf.training.train`. nnU-Net splits the plans' batch over the ranks, gathers losses and pseudo-Dice,
writes logs and checkpoints on rank 0 and splits the final validation over the ranks. radconf adds:

* values computed from the training data (confidence-level weights, class weights) are computed on rank 0 and
  broadcast (:func:`radconf.scale.ranks.rank_zero_value`), so every rank trains with the same loss;
* files radconf writes next to nnU-Net's (training settings, weights, validation extras) are written by rank 0;
* with ``--seed S`` rank r seeds ``S + r``: the same seed on every rank would draw the same patches on each; the
  initial weights are rank 0's on every rank (DDP broadcasts them);
* at the end of training the ranks compare a digest of their weights
  (:func:`radconf.scale.ranks.check_weights_agree`) and rank 0 logs that they are identical, or warns that they
  are not.

On CPU (``device="cpu"``) the same runs use the gloo backend, one process per rank: how the rank logic is tested on
machines without GPUs (see :mod:`radconf.nnunet_compat.distributed`).
"""
from __future__ import annotations

import os
import socket
from dataclasses import fields
from pathlib import Path

from radconf.errors import CommandFailed, InvalidInput, RadconfError


def check_gpus(num_gpus: int, device: str, available: int) -> None:
    """Refuses a multi-GPU start that cannot run, before anything is read or spawned.

    Args:
        num_gpus: processes asked for (``-num_gpus``).
        device: ``cuda`` (NCCL, one GPU per process) or ``cpu`` (gloo).
        available: CUDA GPUs present.

    Raises:
        InvalidInput: fewer than 1 process, another device, more GPUs than present.
    """
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 1:
        raise InvalidInput(f"-num_gpus must be an integer of at least 1, got {num_gpus!r}.")
    if device not in ("cuda", "cpu"):
        raise InvalidInput(f"-num_gpus {num_gpus} trains with nnU-Net's DDP on CUDA GPUs; -device {device} cannot.")
    if device == "cuda" and num_gpus > available:
        raise InvalidInput(f"-num_gpus {num_gpus} asks for more GPUs than torch sees ({available}); pass -num_gpus "
                           f"{max(available, 1)} or run where {num_gpus} GPUs are visible (CUDA_VISIBLE_DEVICES).")


def check_batch(batch_size: int, num_gpus: int) -> None:
    """Refuses a plans' batch smaller than the number of ranks (nnU-Net gives every rank at least one sample).

    Raises:
        InvalidInput: naming both numbers and the fix.
    """
    if batch_size < num_gpus:
        raise InvalidInput(f"The plans' batch size {batch_size} is smaller than -num_gpus {num_gpus}: nnU-Net splits "
                           f"each batch over the GPUs, at least one sample each. Pass -num_gpus {batch_size}, or "
                           f"plan with a batch size of at least {num_gpus}.")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("localhost", 0))
        return int(probe.getsockname()[1])


def _rendezvous():
    """MASTER_ADDR/MASTER_PORT for a group on this machine (a port of the user's is kept); restored after."""
    from radconf.paths import environment_variables

    return environment_variables({"MASTER_ADDR": os.environ.get("MASTER_ADDR") or "localhost",
                                  "MASTER_PORT": os.environ.get("MASTER_PORT") or str(_free_port())})


def train_distributed(dataset: str | int, configuration: str, fold: int | str, *, num_gpus: int,
                      trainer: str = "nnUNetTrainer", plans: str = "nnUNetPlans", device: str = "cuda",
                      continue_training: bool = False, only_validation: bool = False, options=None) -> Path:
    """:func:`radconf.training.train` on ``num_gpus`` ranks (nnU-Net's DDP); the arguments are ``train``'s.

    ``device="cuda"``: NCCL, rank r on GPU r. ``device="cpu"``: gloo, ``num_gpus`` CPU processes (each with its share
    of the cores), for the rank logic on machines without GPUs. ``num_gpus=1`` is a plain ``train``.

    Raises:
        InvalidInput, MissingInput, OutputExists: as ``train``, checked before any process starts; and the
            refusals of :func:`check_gpus` and :func:`check_batch`.
        CommandFailed: a rank failed for another reason (its traceback is printed by that rank).
    """
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from radconf.training import TrainingOptions, check_start, train

    check_gpus(num_gpus, device, torch.cuda.device_count() if device == "cuda" else 0)
    options = options or TrainingOptions()
    arguments = dict(trainer=trainer, plans=plans, device=device, continue_training=continue_training,
                     only_validation=only_validation, options=options)
    start = check_start(dataset, configuration, fold, trainer, plans, device, continue_training, only_validation,
                        options)
    check_batch(PlansManager(start.data.plans).get_configuration(configuration).batch_size, num_gpus)
    if num_gpus == 1:
        return train(dataset, configuration, fold, **arguments)
    # the ranks get the options as plain values (their settings are a read-only mapping, which does not pickle)
    arguments["options"] = {**{f.name: getattr(options, f.name) for f in fields(options)},
                            "settings": dict(options.settings)}
    context = torch.multiprocessing.get_context("spawn")
    errors = context.SimpleQueue()
    with _rendezvous():
        try:
            torch.multiprocessing.spawn(_rank_main, args=(num_gpus, errors, (dataset, configuration, fold), arguments),
                                        nprocs=num_gpus, join=True)
        except torch.multiprocessing.ProcessRaisedException as failed:
            if not errors.empty():
                kind, message = errors.get()
                raise kind(message) from None
            raise CommandFailed(f"A training rank failed: {str(failed).strip().splitlines()[-1]}") from None
    return start.data.folder


def _rank_main(rank_id: int, ranks: int, errors, positional: tuple, arguments: dict) -> None:
    """One rank: joins the group (NCCL on ``cuda:rank``, else gloo), runs ``train``, leaves the group."""
    import torch
    import torch.distributed as dist

    from radconf.devices import configure_threads
    from radconf.training import TrainingOptions, train

    cuda = arguments["device"] == "cuda"
    if cuda:
        torch.cuda.set_device(rank_id)
    configure_threads(arguments["device"], processes=ranks)  # on CPU, each rank its share of the cores
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank_id, world_size=ranks)
    try:
        train(*positional, **{**arguments, "options": TrainingOptions(**arguments["options"])})
    except RadconfError as error:
        errors.put((type(error), str(error)))
        raise
    finally:
        dist.destroy_process_group()
