"""The marginal Dice + CE loss by hand on tiny tensors, and against nnU-Net's own DC_and_CE_loss."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from radconf.partial.loss import MarginalDiceCELoss, inner_marginal, marginal_loss_like


def nnunet_loss(batch_dice: bool, ignore_label=None) -> DC_and_CE_loss:
    return DC_and_CE_loss({"batch_dice": batch_dice, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                          weight_ce=1, weight_dice=1, ignore_label=ignore_label,
                          dice_class=MemoryEfficientSoftDiceLoss)


@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("ignore", [None, 4])
def test_complete_cases_equal_nnunet_dice_ce(batch_dice, ignore):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 5, 6, 7, generator=generator)
    target = torch.randint(0, 5 if ignore else 4, (3, 1, 5, 6, 7), generator=generator)
    expected = nnunet_loss(batch_dice, ignore)(logits, target)
    marginal = marginal_loss_like(nnunet_loss(batch_dice, ignore))
    assert isinstance(marginal, MarginalDiceCELoss) and marginal.batch_dice == batch_dice
    assert torch.allclose(marginal(logits, target), expected, atol=1e-6)
    with marginal.presence(torch.ones(3, 4, dtype=torch.bool)):
        assert torch.allclose(marginal(logits, target), expected, atol=1e-6)


def test_cross_entropy_by_hand():
    """Two voxels labelled background, one labelled 1; class 2 missing: -log(p0 + p2) on the background voxels."""
    logits = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 0.0, 0.5], [2.0, -1.0, 0.0]]])  # (1, 3 classes, 3 voxels)
    target = torch.tensor([[[0, 0, 1]]])
    loss = MarginalDiceCELoss(weight_dice=0)
    p = torch.softmax(logits, 1)[0]
    with loss.presence(torch.tensor([[True, True, False]])):
        value = loss(logits, target)
    expected = -(math.log(p[0, 0] + p[2, 0]) + math.log(p[0, 1] + p[2, 1]) + math.log(p[1, 2])) / 3
    assert value.item() == pytest.approx(expected, rel=1e-6)
    plain = -(math.log(p[0, 0]) + math.log(p[0, 1]) + math.log(p[1, 2])) / 3
    assert loss(logits, target).item() == pytest.approx(plain, rel=1e-6)


def test_missing_structure_mass_costs_nothing_on_background():
    """Moving probability from background to the missing class on background voxels leaves the loss unchanged; moving
    it to a present class does not."""
    target = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    target[0, 0, :2, :2] = 1
    present = torch.tensor([[True, True, False]])
    base = torch.full((1, 3, 4, 4), -30.0)  # exp(-30): no mass that a shift could move between other classes
    base[0, 0] = 4.0
    base[0, 1, :2, :2] = 8.0
    shifted_missing, shifted_present = base.clone(), base.clone()
    shifted_missing[0, 2, 2:, 2:] = 4.0  # half the background mass of those voxels to the missing class 2
    shifted_present[0, 1, 2:, 2:] = 4.0  # ... to class 1, which the case has
    loss = MarginalDiceCELoss()
    with loss.presence(present):
        reference = loss(base, target).item()
        assert loss(shifted_missing, target).item() == pytest.approx(reference, abs=1e-6)
        assert loss(shifted_present, target).item() > reference + 0.05
    assert loss(shifted_missing, target).item() > reference + 0.05  # as complete labels: class 2 was a mistake


def test_dice_skips_missing_class_per_case_and_in_the_batch():
    """Without batch Dice the Dice term averages the (case, class) pairs a case has; with batch Dice a class only
    counts over the cases that have it, and a class no case has is left out of the mean."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 6, 6, generator=generator)
    target = torch.randint(0, 3, (2, 1, 6, 6), generator=generator)
    target[1][target[1] == 2] = 0  # case 1 misses class 2: its class-2 voxels were labelled background
    present = torch.tensor([[True, True, True], [True, True, False]])
    p = torch.softmax(logits, 1)

    def dice(case_rows, cls):
        ref = torch.cat([(target[b, 0] == cls).float().ravel() for b in case_rows])
        pred = torch.cat([p[b, cls].ravel() for b in case_rows])
        return (2 * (pred * ref).sum() + 1e-5) / (pred.sum() + ref.sum() + 1e-5)

    for batch_dice, expected in [(False, -(dice([0], 1) + dice([0], 2) + dice([1], 1)) / 3),
                                 (True, -(dice([0, 1], 1) + dice([0], 2)) / 2)]:
        loss = MarginalDiceCELoss(batch_dice=batch_dice, weight_ce=0)
        with loss.presence(present):
            assert loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)
    only_missing = torch.tensor([[True, True, False], [True, True, False]])
    loss = MarginalDiceCELoss(batch_dice=True, weight_ce=0)
    with loss.presence(only_missing):
        assert loss(logits, target).item() == pytest.approx(-dice([0, 1], 1).item(), rel=1e-5)


def test_background_dice_uses_merged_probability():
    logits = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    target = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    target[0, 0, 0] = 1
    p = torch.softmax(logits, 1)[0]
    merged = p[0] + p[2]
    ref0, ref1 = (target[0, 0] == 0).float(), (target[0, 0] == 1).float()
    d0 = (2 * (merged * ref0).sum() + 1e-5) / (merged.sum() + ref0.sum() + 1e-5)
    d1 = (2 * (p[1] * ref1).sum() + 1e-5) / (p[1].sum() + ref1.sum() + 1e-5)
    loss = MarginalDiceCELoss(do_bg=True, weight_ce=0)
    with loss.presence(torch.tensor([[True, True, False]])):
        assert loss(logits, target).item() == pytest.approx(-(d0 + d1).item() / 2, rel=1e-5)


def test_deep_supervision_weights_kept_and_presence_reaches_every_scale():
    wrapped = DeepSupervisionWrapper(nnunet_loss(False), (0.6, 0.4, 0.0))
    marginal = marginal_loss_like(wrapped)
    assert isinstance(marginal, DeepSupervisionWrapper) and marginal.weight_factors == (0.6, 0.4, 0.0)
    generator = torch.Generator().manual_seed(1)
    outputs = [torch.randn(2, 3, 8, 8, generator=generator), torch.randn(2, 3, 4, 4, generator=generator),
               torch.randn(2, 3, 2, 2, generator=generator)]
    targets = [torch.randint(0, 3, (2, 1, s, s), generator=generator) for s in (8, 4, 2)]
    assert torch.allclose(marginal(outputs, targets), wrapped(outputs, targets), atol=1e-6)
    present = torch.tensor([[True, False, True], [True, True, True]])
    single = MarginalDiceCELoss()
    with single.presence(present):
        expected = 0.6 * single(outputs[0], targets[0]) + 0.4 * single(outputs[1], targets[1])
    with inner_marginal(marginal).presence(present):
        assert torch.allclose(marginal(outputs, targets), expected)
    assert inner_marginal(marginal).present is None  # reset after the call


def test_gradients_flow_and_half_precision_logits():
    logits = torch.randn(2, 3, 4, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 1, 4, 4, 4))
    loss = MarginalDiceCELoss(batch_dice=True)
    with loss.presence(torch.tensor([[True, True, False], [True, True, True]])):
        value = loss(logits.half(), target)
    value.backward()
    assert value.dtype == torch.float32 and np.isfinite(value.item()) and logits.grad.abs().sum() > 0


def test_presence_shape_checked_and_regions_refused():
    loss = MarginalDiceCELoss()
    with loss.presence(torch.ones(3, 3, dtype=torch.bool)), pytest.raises(ValueError, match="presence mask"):
        loss(torch.randn(2, 3, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.long))
    from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss
    with pytest.raises(TypeError, match="DC_and_CE_loss"):
        marginal_loss_like(DC_and_BCE_loss({}, {"batch_dice": False, "do_bg": True, "smooth": 1e-5, "ddp": False}))
