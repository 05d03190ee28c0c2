"""Stochastic and single passes through nnU-Net's predictor, for uncertainty samples.

nnU-Net's ``predict_sliding_window_return_logits`` calls ``network.eval()`` before every sliding window, which would
switch Monte Carlo dropout off again. ``dropout_kept_on`` shadows ``train`` on the given dropout modules for the
duration of the call, so ``eval()`` leaves them sampling while every other module (normalisation included) is in eval
mode. ``single_fold`` runs the predictor with one fold's weights instead of the average of its folds.
``dropout_after_nonlinearity`` keeps the plain network's state_dict layout when nnU-Net's blocks get a dropout.
Both are guarded by tests/nnunet_compat/test_tripwires.py.
"""
from __future__ import annotations

import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from torch import nn

from radconf.nnunet_compat.checkpoints import unwrap_network


def _always_training(module, mode: bool = True):
    module.training = True
    return module


@contextmanager
def dropout_kept_on(network, modules: Sequence) -> Iterator[None]:
    """``network`` in eval mode except ``modules``, which stay in training mode through nnU-Net's ``eval()`` calls."""
    network.eval()
    for module in modules:
        module.train = types.MethodType(_always_training, module)
        module.training = True
    try:
        yield
    finally:
        for module in modules:
            vars(module).pop("train", None)
        network.eval()


@contextmanager
def single_fold(predictor, fold_index: int) -> Iterator[None]:
    """The predictor with the weights of fold ``fold_index`` of its folds only (nnU-Net averages them all)."""
    parameters = predictor.list_of_parameters
    predictor.list_of_parameters = [parameters[fold_index]]
    try:
        yield
    finally:
        predictor.list_of_parameters = parameters


@contextmanager
def mirroring(predictor, enabled: bool) -> Iterator[None]:
    """nnU-Net's test-time mirroring on or off for the duration."""
    before = predictor.use_mirroring
    predictor.use_mirroring = enabled
    try:
        yield
    finally:
        predictor.use_mirroring = before


def allowed_mirroring_axes(predictor) -> tuple[int, ...]:
    """The spatial axes (0-based) the model's checkpoint allows mirroring along; () when it records none (nnU-Net then
    does not mirror, e.g. a model trained without augmentation)."""
    axes = predictor.allowed_mirroring_axes
    return () if axes is None else tuple(int(a) for a in axes)


def mirror_combinations(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of ``axes``, the identity first: the flips nnU-Net's test-time mirroring averages."""
    import itertools

    axes = tuple(axes)
    return [c for size in range(len(axes) + 1) for c in itertools.combinations(axes, size)]


def dropout_after_nonlinearity(network, dropout_types: tuple[type, ...]):
    """Moves the dropout of every nnU-Net convolution block to the end of its ``all_modules`` sequence, in place.

    nnU-Net's ``ConvDropoutNormReLU`` puts ``dropout_op`` between the convolution and the norm, which shifts the norm's
    state_dict keys (``all_modules.1`` -> ``all_modules.2``) so plain checkpoints would no longer load; after the move
    the order is conv, norm, nonlinearity, dropout.

    A block (``ConvDropoutNormReLU``) runs ``all_modules``; its ``conv``, ``dropout``, ``norm`` and ``nonlin``
    attributes stay. Afterwards the state_dict keys are those of the network built without dropout.

    Returns:
        ``network``.
    """
    blocks = [module for module in unwrap_network(network).modules()
              if isinstance(getattr(module, "dropout", None), dropout_types)
              and isinstance(getattr(module, "all_modules", None), nn.Sequential)]
    for block in blocks:
        others = [module for module in block.all_modules if module is not block.dropout]
        if len(others) < len(block.all_modules):
            block.all_modules = nn.Sequential(*others, block.dropout)
    return network
