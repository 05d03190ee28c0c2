"""Tripwires: the Dice + CE loss nnU-Net's trainer builds, and the case keys its data loader returns with a batch."""
from __future__ import annotations

import numpy as np
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from radconf.nnunet_compat.losses import batch_case_keys, deep_supervised, dice_ce_settings


def test_settings_of_nnunet_dice_ce_loss():
    inner = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {}, weight_ce=1,
                           weight_dice=1, ignore_label=7, dice_class=MemoryEfficientSoftDiceLoss)
    settings, weights = dice_ce_settings(DeepSupervisionWrapper(inner, (0.5, 0.5, 0.0)))
    assert settings == {"batch_dice": True, "do_bg": False, "smooth": 1e-5, "ddp": False, "ignore_label": 7,
                        "weight_ce": 1.0, "weight_dice": 1.0}
    assert weights == (0.5, 0.5, 0.0)
    assert dice_ce_settings(inner)[1] is None
    rewrapped = deep_supervised(inner, weights)
    assert isinstance(rewrapped, DeepSupervisionWrapper) and rewrapped.weight_factors == weights


def test_data_loader_returns_the_case_keys_in_sample_order(tmp_path):
    """nnU-Net's real loader on a numpy dataset: batch["keys"] names the case whose voxels each sample holds."""
    import pickle

    from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
    from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetNumpy
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    for index, case in enumerate(("a", "b", "c")):
        np.save(tmp_path / f"{case}.npy", np.full((1, 4, 4, 4), float(index), dtype=np.float32))
        np.save(tmp_path / f"{case}_seg.npy", np.zeros((1, 4, 4, 4), dtype=np.int8))
        with open(tmp_path / f"{case}.pkl", "wb") as handle:
            pickle.dump({"class_locations": {1: np.zeros((0, 4), dtype=int)}, "spacing": [1, 1, 1]}, handle)
    dataset = nnUNetDatasetNumpy(str(tmp_path), ["a", "b", "c"])
    loader = nnUNetDataLoader(dataset, 3, (4, 4, 4), (4, 4, 4), LabelManager({"background": 0, "x": 1}, None),
                              oversample_foreground_percent=0.0)
    for _ in range(3):
        batch = loader.generate_train_batch()
        keys = batch_case_keys(batch)
        assert len(keys) == 3
        for sample, key in zip(batch["data"], keys):
            assert float(sample.mean()) == float("abc".index(key))
