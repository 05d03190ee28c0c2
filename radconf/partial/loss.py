"""The marginal (label-set) Dice + cross-entropy loss for partially labelled cases (seed 003; Fidon et al.).

For a case whose annotation misses the structures M, a voxel labelled background may be background or any structure
of M, so its target is the set {background} U M:

- cross-entropy: -log(p_0 + sum_{m in M} p_m) on voxels labelled background, -log p_l on voxels labelled l;
- soft Dice: the background class (when it is in the Dice, ``do_bg``) uses the merged probability
  p_0 + sum_{m in M} p_m, and the classes of M are skipped for that case (with batch Dice: that case's terms are left
  out of the class's sums; a class no case of the batch has is left out of the mean).

With M empty for every case this is nnU-Net's ``DC_and_CE_loss`` (softmax, ``MemoryEfficientSoftDiceLoss``): the same
numbers, the same smoothing, the same ignore-label handling. Which classes each case of the batch has is given per
call as a ``(batch, classes)`` boolean tensor (:meth:`MarginalDiceCELoss.presence`), built from the case keys that
travel with the batch.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class MarginalDiceCELoss(nn.Module):
    """``weight_ce`` x marginal CE + ``weight_dice`` x marginal soft Dice (negative), on logits ``(b, c, ...)`` and
    integer targets ``(b, 1, ...)``.

    Args:
        batch_dice: sum the Dice terms over the batch (nnU-Net's ``batch_dice`` of the configuration).
        do_bg: include the background class in the Dice (nnU-Net: False for softmax).
        smooth: Dice smoothing (nnU-Net: 1e-5).
        ignore_label: voxels with this target value take no part (nnU-Net's ignore label), or None.
        ddp: gather the batch-Dice sums across ranks under ``torch.distributed``.
    """

    def __init__(self, batch_dice: bool = False, do_bg: bool = False, smooth: float = 1e-5,
                 ignore_label: int | None = None, weight_ce: float = 1.0, weight_dice: float = 1.0,
                 ddp: bool = False):
        super().__init__()
        self.batch_dice, self.do_bg, self.smooth, self.ddp = batch_dice, do_bg, smooth, ddp
        self.ignore_label, self.weight_ce, self.weight_dice = ignore_label, weight_ce, weight_dice
        self.present: torch.Tensor | None = None

    @contextmanager
    def presence(self, present: torch.Tensor | None):
        """The classes each case of the next calls has: ``(b, c)`` bool (column 0, background, always True); None:
        every case complete."""
        previous, self.present = self.present, present
        try:
            yield self
        finally:
            self.present = previous

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if target.ndim == logits.ndim - 1:
            target = target[:, None]
        present = self._present(logits)
        missing = ~present
        missing[:, 0] = False
        valid = None if self.ignore_label is None else target != self.ignore_label
        labels = target.long() if valid is None else torch.where(valid, target, 0).long()
        log_p = torch.log_softmax(logits, 1)
        merged_log_bg = self._merged_log_background(log_p, missing)
        loss = logits.new_zeros(())
        if self.weight_ce != 0 and (valid is None or valid.any()):
            loss = loss + self.weight_ce * self._cross_entropy(log_p, merged_log_bg, labels, valid)
        if self.weight_dice != 0:
            loss = loss + self.weight_dice * self._dice(log_p, merged_log_bg, labels, valid, present)
        return loss

    def _present(self, logits: torch.Tensor) -> torch.Tensor:
        shape = logits.shape[:2]
        if self.present is None:
            return torch.ones(shape, dtype=torch.bool, device=logits.device)
        present = self.present.to(device=logits.device, dtype=torch.bool)
        if tuple(present.shape) != tuple(shape):
            raise ValueError(f"presence mask of shape {tuple(present.shape)} for logits of shape {tuple(logits.shape)}")
        return present.clone()

    @staticmethod
    def _merged_log_background(log_p: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
        """log(p_0 + sum_{m in M_b} p_m) per voxel, ``(b, 1, ...)``."""
        members = missing.clone()
        members[:, 0] = True
        shape = (*members.shape, *([1] * (log_p.ndim - 2)))
        masked = log_p.masked_fill(~members.view(shape), float("-inf"))
        return torch.logsumexp(masked, 1, keepdim=True)

    @staticmethod
    def _cross_entropy(log_p, merged_log_bg, labels, valid) -> torch.Tensor:
        log_likelihood = torch.where(labels == 0, merged_log_bg, log_p.gather(1, labels))
        if valid is None:
            return -log_likelihood.mean()
        return -(log_likelihood * valid).sum() / valid.sum()

    def _dice(self, log_p, merged_log_bg, labels, valid, present) -> torch.Tensor:
        probabilities = log_p.exp()
        probabilities = torch.cat([merged_log_bg.exp(), probabilities[:, 1:]], 1)
        with torch.no_grad():
            reference = torch.zeros_like(probabilities).scatter_(1, labels, 1)
        weight = present.to(probabilities.dtype)
        if not self.do_bg:
            probabilities, reference, weight = probabilities[:, 1:], reference[:, 1:], weight[:, 1:]
        if valid is not None:
            probabilities, reference = probabilities * valid, reference * valid
        axes = tuple(range(2, probabilities.ndim))
        intersect = (probabilities * reference).sum(axes) * weight
        sum_pred = probabilities.sum(axes) * weight
        sum_ref = reference.sum(axes) * weight
        if self.batch_dice:
            if self.ddp and torch.distributed.is_available() and torch.distributed.is_initialized():
                from nnunetv2.utilities.ddp_allgather import AllGatherGrad

                intersect, sum_pred, sum_ref, weight = (AllGatherGrad.apply(t).sum(0)
                                                        for t in (intersect, sum_pred, sum_ref, weight))
            intersect, sum_pred, sum_ref = intersect.sum(0), sum_pred.sum(0), sum_ref.sum(0)
            weight = (weight.sum(0) > 0).to(intersect.dtype)
        dice = (2 * intersect + self.smooth) / (sum_pred + sum_ref + self.smooth).clamp_min(1e-8)
        return -(dice * weight).sum() / weight.sum().clamp_min(1.0)


def marginal_loss_like(loss: nn.Module) -> nn.Module:
    """nnU-Net's softmax Dice + CE loss (optionally inside ``DeepSupervisionWrapper``) rebuilt as
    :class:`MarginalDiceCELoss` with the same settings and deep-supervision weights.

    Raises:
        TypeError: a loss that is not nnU-Net's ``DC_and_CE_loss`` (e.g. regions' Dice + BCE).
    """
    from radconf.nnunet_compat.losses import deep_supervised, dice_ce_settings

    settings, weights = dice_ce_settings(loss)
    return deep_supervised(MarginalDiceCELoss(**settings), weights)


def inner_marginal(loss: nn.Module) -> MarginalDiceCELoss:
    """The :class:`MarginalDiceCELoss` of a (deep-supervised) loss."""
    inner = getattr(loss, "loss", loss)
    if not isinstance(inner, MarginalDiceCELoss):
        raise TypeError(f"{type(inner).__name__} is not the marginal loss")
    return inner
