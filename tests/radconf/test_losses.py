"""Dice variants and the masked MSE on tiny tensors, by hand and against nnU-Net's own soft Dice."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

from radconf.losses import (
    BoundaryWeightedDiceLoss,
    SqrtDiceLoss,
    boundary_voxels,
    masked_mse,
    swap_dice,
)


def _one_hot_row(labels: list[int], classes: int = 2) -> torch.Tensor:
    """(1, classes, 1, n) one-hot of a 1 x n label row."""
    y = torch.tensor(labels)[None, None, None]
    return torch.zeros((1, classes, 1, len(labels))).scatter_(1, y, 1)


def test_boundary_voxels_by_hand():
    # 2D 1 x 6 row: structure at columns 2-3; with a 3x3 window voxels 1..4 see both values
    reference = _one_hot_row([0, 0, 1, 1, 0, 0])
    boundary = boundary_voxels(reference)
    assert boundary[0, 1, 0].tolist() == [False, True, True, True, True, False]
    assert torch.equal(boundary[0, 0], boundary[0, 1])  # background's boundary is the same set


def test_boundary_weighted_dice_by_hand():
    labels = [0, 0, 1, 1, 0, 0]
    p = torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0, 0.0])
    x = torch.stack([1 - p, p])[None, :, None]  # probabilities (no nonlinearity)
    loss = BoundaryWeightedDiceLoss(apply_nonlin=None, batch_dice=False, do_bg=False, smooth=0.0, ddp=False)
    w = torch.tensor([0.2, 0.8, 0.8, 0.8, 0.8, 0.2])
    q = torch.tensor(labels, dtype=torch.float32)
    expected = -2 * (w * p * q).sum() / ((w * p).sum() + (w * q).sum())
    assert loss(x, torch.tensor(labels)[None, None, None]).item() == pytest.approx(expected.item(), rel=1e-6)
    # 2 * 0.8 * 1.5 / (0.8 * 2 + 0.8 * 2) = 0.75
    assert expected.item() == pytest.approx(-0.75)


def test_uniform_weights_equal_nnunet_soft_dice():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5, 6, 7)
    target = torch.randint(0, 3, (2, 1, 5, 6, 7))
    uniform = type("Uniform", (BoundaryWeightedDiceLoss,), {"boundary_weight": 0.5, "other_weight": 0.5})
    for batch_dice in (False, True):
        kwargs = dict(apply_nonlin=softmax_helper_dim1, batch_dice=batch_dice, do_bg=False, smooth=1e-5, ddp=False)
        ours = uniform(**kwargs)(logits, target)
        nnunet = MemoryEfficientSoftDiceLoss(**kwargs)(logits, target)
        # the weights scale numerator and denominator alike; only the smoothing term sees the factor 0.5
        assert ours.item() == pytest.approx(nnunet.item(), abs=1e-5)


def test_sqrt_dice_by_hand_and_binary_limit():
    p = torch.tensor([0.04, 0.25, 0.81, 0.0])
    q = torch.tensor([0.0, 1.0, 1.0, 0.0])
    x = torch.stack([1 - p, p])[None, :, None]
    loss = SqrtDiceLoss(apply_nonlin=None, batch_dice=False, do_bg=False, smooth=0.0, ddp=False)
    loss.eps = 0.0
    expected = -2 * (0.5 + 0.9) / ((0.2 + 0.5 + 0.9 + 0.0) + 2.0)
    assert loss(x, q.long()[None, None, None]).item() == pytest.approx(expected, rel=1e-6)
    # on binary predictions sqrt(p) = p: plain soft Dice
    binary = torch.tensor([0.0, 1.0, 1.0, 1.0])
    xb = torch.stack([1 - binary, binary])[None, :, None]
    nnunet = MemoryEfficientSoftDiceLoss(apply_nonlin=None, batch_dice=False, do_bg=False, smooth=0.0, ddp=False)
    target = q.long()[None, None, None]
    assert loss(xb, target).item() == pytest.approx(nnunet(xb, target).item(), rel=1e-6)


def test_sqrt_dice_gradient_favours_missed_foreground():
    # d/dp of the loss at a missed foreground voxel (small p) is larger than at a confident one: sensitivity
    p = torch.tensor([0.05, 0.9], requires_grad=True)
    x = torch.stack([1 - p, p])[None, :, None]
    target = torch.tensor([1, 1])[None, None, None]
    SqrtDiceLoss(apply_nonlin=None, do_bg=False, smooth=0.0, ddp=False)(x, target).backward()
    assert p.grad[0] < p.grad[1] < 0  # both pull p up, the missed voxel much harder


def test_swap_dice_keeps_settings_and_cross_entropy():
    base = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                          weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    wrapped = DeepSupervisionWrapper(base, [1.0, 0.5])
    ce = base.ce
    swap_dice(wrapped, SqrtDiceLoss)
    assert isinstance(base.dc, SqrtDiceLoss) and base.ce is ce
    assert base.dc.batch_dice is True and base.dc.do_bg is False and base.dc.smooth == 1e-5
    with pytest.raises(TypeError, match="no Dice term"):
        swap_dice(torch.nn.MSELoss(), SqrtDiceLoss)


def test_masked_mse_by_hand():
    prediction = torch.tensor([0.0, 0.5, 1.0, 0.2])
    target = torch.tensor([0.0, 1.0, 0.0, 0.2])
    valid = torch.tensor([1.0, 1.0, 0.0, 1.0])
    assert masked_mse(prediction, target, valid).item() == pytest.approx(0.25 / 3)
    assert masked_mse(prediction, target, torch.zeros(4)).item() == 0.0
    assert not math.isnan(masked_mse(prediction, target, torch.zeros(4)).item())


def test_boundary_voxels_equal_dilation_minus_erosion_in_3d_and_2d():
    from scipy import ndimage

    generator = torch.Generator().manual_seed(3)
    low = torch.randint(0, 4, (2, 1, 4, 6, 7), generator=generator).float()
    labels = torch.nn.functional.interpolate(low, size=(9, 14, 17), mode="nearest").long()
    reference = torch.zeros(2, 4, 9, 14, 17).scatter_(1, labels, 1)
    for tensor in (reference, reference[:, :, 4]):  # 3D and a 2D slice
        array = tensor.numpy()
        size = (1, 1) + (3,) * (array.ndim - 2)
        # neighbours outside the patch do not count: 'nearest' repeats the edge, which changes neither max nor min
        expected = ndimage.maximum_filter(array, size, mode="nearest") != ndimage.minimum_filter(
            array, size, mode="nearest")
        assert expected.any() and not expected.all()
        assert np.array_equal(boundary_voxels(tensor).numpy(), expected)
