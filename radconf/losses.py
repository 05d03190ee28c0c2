"""Segmentation and regression losses of the anatomy-guided multi-task model.

The Dice variants are drop-in ``dice_class`` replacements for nnU-Net's ``MemoryEfficientSoftDiceLoss`` (same
constructor, same ``forward(x, y, loss_mask)``), so nnU-Net's ``DC_and_CE_loss`` and deep supervision wrap them
unchanged; ``swap_dice`` puts one into a loss nnU-Net built.

- ``BoundaryWeightedDiceLoss``: L1 = -2 sum w p q / (sum w p + sum w q) with w = 0.8 on the reference structure's
  boundary voxels (those whose 3x3(x3) neighbourhood holds both the structure and something else) and 0.2 elsewhere.
- ``SqrtDiceLoss``: the sensitivity-oriented L2 = -2 sum sqrt(p + eps) q / (sum sqrt(p + eps) + sum q), which gives
  missed foreground voxels large gradients.
- ``masked_mse``: the distance head's MSE over the voxels whose target is known.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from radconf.errors import InvalidInput


class _WeightedSoftDice(nn.Module):
    """Soft Dice sum_i w_i f(p_i) q_i over per-voxel weights; subclasses choose f and w. Returns -mean(Dice)."""

    def __init__(self, apply_nonlin: Callable | None = None, batch_dice: bool = False, do_bg: bool = True,
                 smooth: float = 1.0, ddp: bool = True):
        super().__init__()
        self.apply_nonlin = apply_nonlin
        self.batch_dice = batch_dice
        self.do_bg = do_bg
        self.smooth = smooth
        self.ddp = ddp

    def prediction_term(self, probabilities: torch.Tensor) -> torch.Tensor:
        return probabilities

    def voxel_weights(self, reference: torch.Tensor) -> torch.Tensor | None:
        """Weights (b, c, ...) from the one-hot reference, or None for uniform weights."""
        return None

    def forward(self, x: torch.Tensor, y: torch.Tensor, loss_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.apply_nonlin is not None:
            x = self.apply_nonlin(x)
        axes = tuple(range(2, x.ndim))
        with torch.no_grad():
            if x.ndim != y.ndim:
                y = y.view((y.shape[0], 1, *y.shape[1:]))
            if x.shape == y.shape:
                reference = y.to(torch.float32)
            else:
                reference = torch.zeros(x.shape, device=x.device, dtype=torch.float32).scatter_(1, y.long(), 1)
            weights = self.voxel_weights(reference)
            if loss_mask is not None:
                weights = loss_mask.float() if weights is None else weights * loss_mask
            if not self.do_bg:
                reference = reference[:, 1:]
                weights = weights[:, 1:] if weights is not None and weights.shape[1] > 1 else weights
        if not self.do_bg:
            x = x[:, 1:]
        predicted = self.prediction_term(x.float())
        if weights is None:
            intersect, sum_pred, sum_ref = ((predicted * reference).sum(axes), predicted.sum(axes),
                                            reference.sum(axes))
        else:
            intersect = (weights * predicted * reference).sum(axes)
            sum_pred = (weights * predicted).sum(axes)
            sum_ref = (weights * reference).sum(axes)
        if self.batch_dice:
            if self.ddp and torch.distributed.is_available() and torch.distributed.is_initialized():
                from nnunetv2.utilities.ddp_allgather import AllGatherGrad

                intersect, sum_pred, sum_ref = (AllGatherGrad.apply(t).sum(0) for t in (intersect, sum_pred, sum_ref))
            intersect, sum_pred, sum_ref = intersect.sum(0), sum_pred.sum(0), sum_ref.sum(0)
        dice = (2 * intersect + self.smooth) / (sum_pred + sum_ref + self.smooth).clamp_min(1e-8)
        return -dice.mean()


def boundary_voxels(reference: torch.Tensor) -> torch.Tensor:
    """Per channel of a binary (one-hot or region) (b, c, ...) tensor: voxels whose 3x3(x3) neighbourhood is not all
    one value.

    One average pool over the neighbours inside the patch (the patch edge is not a boundary): the mean of 0/1 values
    lies strictly between 0 and 1 exactly when both occur (its smallest non-zero distance from 0 or 1 is 1/27).
    """
    pool = nn.functional.avg_pool3d if reference.ndim == 5 else nn.functional.avg_pool2d
    mean = pool(reference, 3, stride=1, padding=1, count_include_pad=False)
    return (mean > 1e-3) & (mean < 1 - 1e-3)


class BoundaryWeightedDiceLoss(_WeightedSoftDice):
    """Soft Dice with w = ``boundary_weight`` on each structure's boundary voxels and ``other_weight`` elsewhere."""

    boundary_weight = 0.8
    other_weight = 0.2

    def voxel_weights(self, reference: torch.Tensor) -> torch.Tensor:
        boundary = boundary_voxels(reference)
        return torch.where(boundary, self.boundary_weight, self.other_weight).to(reference.dtype)


class SqrtDiceLoss(_WeightedSoftDice):
    """Sensitivity-oriented Dice: p replaced by sqrt(p + eps) (gradient ~ (p + eps)^-1/2 on missed foreground)."""

    eps = 1e-4

    def prediction_term(self, probabilities: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(probabilities + self.eps)


def swap_dice(loss: nn.Module, dice_class: type[nn.Module]) -> nn.Module:
    """Replaces the Dice term of a loss built by nnU-Net (optionally inside ``DeepSupervisionWrapper``) by
    ``dice_class`` with the same settings; returns the loss."""
    inner = getattr(loss, "loss", loss)
    if not hasattr(inner, "dc"):
        raise TypeError(f"{type(inner).__name__} has no Dice term (.dc) to replace.")
    old = inner.dc
    old = getattr(old, "_orig_mod", old)  # torch.compile'd
    inner.dc = dice_class(apply_nonlin=old.apply_nonlin, batch_dice=old.batch_dice, do_bg=old.do_bg,
                          smooth=old.smooth, ddp=old.ddp)
    return loss


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of (prediction - target)^2 over voxels where ``valid`` is non-zero (0 if there are none)."""
    valid = valid.to(prediction.dtype)
    squared = (prediction - target.to(prediction.dtype)) ** 2 * valid
    return squared.sum() / valid.sum().clamp_min(1.0)


def reciprocal_frequency_weights(counts: np.ndarray) -> np.ndarray:
    """Reciprocal-frequency weights per class (or level), normalised to sum 1 (the confidence levels' w_c,
    the class weights of the weighted cross-entropy); absent classes get 0.

    Args:
        counts: voxel count of each class 0..C-1 (levels 0..K) in the training data.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size < 2 or (counts < 0).any() or counts.sum() == 0:
        raise InvalidInput(f"Voxel counts must be a non-empty, non-negative vector with a positive sum, got {counts}.")
    inverse = np.zeros_like(counts)
    present = counts > 0
    inverse[present] = counts.sum() / counts[present]
    return inverse / inverse.sum()
