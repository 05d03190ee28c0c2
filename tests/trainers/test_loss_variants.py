"""The ensemble pool's loss variants on tiny tensors: nnU-Net's own losses, class weights by hand, recorded weights."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss
from nnunetv2.utilities.label_handling.label_handling import LabelManager
from radconf.trainers.loss_variants import (
    CLASS_WEIGHTS_FILE,
    CELossMixin,
    DiceLossMixin,
    WeightedCELossMixin,
)

LABELS = {"background": 0, "bladder": 1, "gtv": 2}


class _Stub:
    """What the loss hooks read from an nnU-Net trainer."""

    def __init__(self, output_folder, labels=LABELS, regions_class_order=None, deep_supervision=False, weights=None):
        self.label_manager = LabelManager(labels, regions_class_order=regions_class_order)
        self.dataset_json = {"labels": labels}
        self.configuration_manager = SimpleNamespace(batch_dice=False)
        self.enable_deep_supervision = deep_supervision
        self.is_ddp = False
        self.device = torch.device("cpu")
        self.output_folder = str(output_folder)
        self.local_rank = 0
        self.class_weights = weights
        self.logged: list[str] = []

    def _get_deep_supervision_scales(self):
        return [[1, 1, 1], [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]]

    def print_to_log_file(self, *args, **kwargs):
        self.logged.append(" ".join(map(str, args)))


class _Dice(DiceLossMixin, _Stub):
    pass


class _CE(CELossMixin, _Stub):
    pass


class _WeightedCE(WeightedCELossMixin, _Stub):
    pass


def _batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 5, 6)
    target = torch.randint(0, 3, (2, 1, 4, 5, 6)).float()
    return logits, target


def test_dice_and_ce_only_are_nnunets_losses(tmp_path):
    logits, target = _batch()
    dice = _Dice(tmp_path)._build_loss()
    assert isinstance(dice, MemoryEfficientSoftDiceLoss) and not dice.do_bg
    ce = _CE(tmp_path)._build_loss()
    assert isinstance(ce, RobustCrossEntropyLoss)
    expected = torch.nn.functional.cross_entropy(logits, target[:, 0].long())
    assert torch.isclose(ce(logits, target), expected)
    wrapped = _CE(tmp_path, deep_supervision=True)._build_loss()
    assert isinstance(wrapped, DeepSupervisionWrapper)
    with pytest.raises(ValueError, match="defines regions"):
        _CE(tmp_path, labels={"background": 0, "a": [1, 2], "b": [2]}, regions_class_order=[1, 2])._build_loss()


def test_weighted_ce_by_hand_and_recorded(tmp_path):
    # two voxels, classes 1 and 2 (weights 0.3 and 0.6): loss = (0.3 * ce_1 + 0.6 * ce_2) / (0.3 + 0.6)
    logits = torch.tensor([[[0.0, 1.0], [2.0, 0.0], [0.0, 3.0]]]).reshape(1, 3, 2)
    target = torch.tensor([[[1.0, 2.0]]])
    trainer = _WeightedCE(tmp_path, weights=[0.1, 0.3, 0.6])
    loss = trainer._build_loss()
    log_p = torch.log_softmax(logits, 1)[0]
    expected = -(0.3 * log_p[1, 0] + 0.6 * log_p[2, 1]) / 0.9
    assert torch.isclose(loss(logits, target), expected)
    record = json.loads((tmp_path / CLASS_WEIGHTS_FILE).read_text())
    assert record["weights"] == [0.1, 0.3, 0.6] and record["source"] == "given"

    resumed = _WeightedCE(tmp_path)  # --c without --ce_weights: the recorded weights, not recomputed frequencies
    np.testing.assert_allclose(resumed._resolve_class_weights(), [0.1, 0.3, 0.6])
    assert "recorded" in resumed.logged[-1]


def test_weighted_ce_rejects_wrong_weights(tmp_path):
    with pytest.raises(ValueError, match="3 non-negative numbers"):
        _WeightedCE(tmp_path, weights=[1.0, 2.0])._build_loss()
    with pytest.raises(ValueError, match="3 non-negative numbers"):
        _WeightedCE(tmp_path, weights=[1.0, -1.0, 2.0])._build_loss()
