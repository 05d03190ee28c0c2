"""What radconf reads from nnU-Net's training objects: the settings of its Dice + CE loss and the case keys of a batch.

- :func:`dice_ce_settings`: ``nnUNetTrainer._build_loss`` returns ``DC_and_CE_loss`` (``.dc`` a
  ``MemoryEfficientSoftDiceLoss`` with ``batch_dice``/``do_bg``/``smooth``/``ddp``, possibly ``torch.compile``'d;
  ``.ignore_label``, ``.weight_ce``, ``.weight_dice``), wrapped in ``DeepSupervisionWrapper`` (``.loss``,
  ``.weight_factors``) with deep supervision;
- :func:`batch_case_keys`: ``nnUNetDataLoader.generate_train_batch`` returns ``{'data', 'target', 'keys'}``, the keys
  being the case identifiers of the batch's samples in order.

``tests/nnunet_compat/test_loss_settings.py`` fails if nnU-Net changes either.
"""
from __future__ import annotations

from typing import Any


def dice_ce_settings(loss) -> tuple[dict[str, Any], tuple[float, ...] | None]:
    """The settings of nnU-Net's softmax Dice + CE loss and its deep-supervision weights (None without).

    Raises:
        TypeError: a loss that is not nnU-Net's ``DC_and_CE_loss`` (e.g. the regions' Dice + BCE).
    """
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    wrapped = isinstance(loss, DeepSupervisionWrapper)
    inner = loss.loss if wrapped else loss
    if not isinstance(inner, DC_and_CE_loss):
        raise TypeError(f"expected nnU-Net's DC_and_CE_loss, got {type(inner).__name__}")
    dice = getattr(inner.dc, "_orig_mod", inner.dc)  # torch.compile'd
    settings = {"batch_dice": bool(dice.batch_dice), "do_bg": bool(dice.do_bg), "smooth": float(dice.smooth),
                "ddp": bool(getattr(dice, "ddp", False)), "ignore_label": inner.ignore_label,
                "weight_ce": float(inner.weight_ce), "weight_dice": float(inner.weight_dice)}
    return settings, (tuple(loss.weight_factors) if wrapped else None)


def deep_supervised(loss, weights: tuple[float, ...] | None):
    """``loss`` inside nnU-Net's ``DeepSupervisionWrapper`` with ``weights`` (as it was), or as it is for None."""
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

    return loss if weights is None else DeepSupervisionWrapper(loss, weights)


def batch_case_keys(batch: dict) -> list[str]:
    """The case identifier of each sample of a batch from nnU-Net's data loader, in sample order."""
    return [str(key) for key in batch["keys"]]
