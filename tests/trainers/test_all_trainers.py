"""Every radconf trainer, discovered from ``radconf.trainers``, takes one training and one validation step.

Each trainer is built as ``radconf_train`` builds it (``build_trainer``: plans, fold 0, CPU) on the tiny phantom
dataset of its kind (``conftest.kind_of``), initialised by nnU-Net, and fed batches from its own data loaders and
transforms (single-threaded augmentation): one ``train_step`` must change the network's weights with a finite loss,
one ``validation_step`` must return nnU-Net's per-class counts for every foreground label or region.
"""
from __future__ import annotations

import math

import pytest
import torch
from radconf.trainers.dice_variants import BoundaryDiceMixin, SqrtDiceMixin

from radconf.losses import BoundaryWeightedDiceLoss, SqrtDiceLoss
from radconf.registry import radconf_classes

from .conftest import PLANS, configuration_of, kind_of

TRAINERS = radconf_classes("trainer")
CORE = {"AnatomyChannelsTrainer", "AnatomyGuidedMultiTaskTrainer", "BoundaryDiceTrainer", "CELossTrainer",
        "ConfidenceSoftmaxTrainer", "ConfidenceTrainer", "ConfidenceTrainer2p5D", "DiceLossTrainer",
        "DistanceMapTrainer", "SqrtDiceTrainer", "WeightedCELossTrainer", "nnUNetTrainerSliceContext5"}


def test_discovery_walks_every_trainer_module():
    assert TRAINERS, "no radconf trainer classes were discovered in radconf.trainers"
    assert CORE <= set(TRAINERS)
    modules = {cls.__module__ for cls in TRAINERS.values()}
    assert {f"radconf.trainers.{m}" for m in ("anatomy_channels", "anatomy_guided", "confidence", "dice_variants",
                                               "distance_head", "loss_variants", "slice_context")} <= modules


def _first_conv(network: torch.nn.Module) -> torch.nn.Module:
    return next(m for m in network.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)))


@pytest.mark.parametrize("name", sorted(TRAINERS) or ["(discovery found no trainers)"])
def test_trainer_takes_a_training_and_a_validation_step(name, trainer_dirs, trainer_datasets):
    from radconf.training import build_trainer

    assert name in TRAINERS, "no radconf trainer classes were discovered in radconf.trainers"
    cls = TRAINERS[name]
    kind, configuration = kind_of(cls), configuration_of(cls)
    assert configuration in trainer_datasets.configurations[kind]
    torch.manual_seed(0)
    trainer = build_trainer(trainer_datasets.ids[kind], configuration, 0, trainer=name, plans=PLANS, device="cpu")
    assert type(trainer) is cls
    trainer.initialize()
    loader_train, loader_val = trainer.get_dataloaders()
    try:
        channels = len(trainer.dataset_json["channel_names"]) * getattr(cls, "context_slices", 1)
        assert _first_conv(trainer.network).in_channels == channels
        for mixin, dice in ((BoundaryDiceMixin, BoundaryWeightedDiceLoss), (SqrtDiceMixin, SqrtDiceLoss)):
            if issubclass(cls, mixin):  # the Dice term was swapped, whatever wraps nnU-Net's loss
                assert any(isinstance(m, dice) for m in trainer.loss.modules()), name

        trainer.network.train()
        before = [p.detach().clone() for p in trainer.network.parameters()]
        loss = trainer.train_step(next(loader_train))["loss"]
        assert math.isfinite(float(loss)), name
        changed = sum(not torch.equal(b, p) for b, p in zip(before, trainer.network.parameters()))
        assert changed > len(before) // 2, f"{name}: the step changed {changed} of {len(before)} tensors"
        if hasattr(trainer.loss, "last_terms"):  # distance head: its MSE term entered the loss
            assert all(math.isfinite(t) for t in trainer.loss.last_terms), trainer.loss.last_terms

        trainer.network.eval()
        result = trainer.validation_step(next(loader_val))
        labels = trainer.label_manager
        expected = len(labels.foreground_regions) if labels.has_regions else len(labels.foreground_labels)
        assert math.isfinite(float(result["loss"]))
        for key in ("tp_hard", "fp_hard", "fn_hard"):
            assert len(result[key]) == expected, (name, key, result[key])
    finally:
        for loader in (loader_train, loader_val):
            if hasattr(loader, "_finish"):
                loader._finish()
