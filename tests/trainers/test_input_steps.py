"""Inference-side input steps compose: a trainer with anatomy channels and slice context predicts with both."""
from __future__ import annotations

import pytest
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from radconf.trainers.anatomy_channels import (
    AnatomyChannelsMixin,
    AnatomyChannelsTrainer,
    AnatomyPredictor,
)
from radconf.trainers.input_steps import combine_predictors, input_predictors
from radconf.trainers.slice_context import (
    SliceContextMixin,
    SliceContextPredictor,
    nnUNetTrainerSliceContext5,
)

from radconf.anatomy.channels import AnatomyChannels
from radconf.errors import InvalidInput

from .conftest import Recorder


class AnatomySlices3(AnatomyChannelsMixin, SliceContextMixin, nnUNetTrainer):
    context_slices = 3


class SlicesAnatomy3(SliceContextMixin, AnatomyChannelsMixin, nnUNetTrainer):  # the other mixin order
    context_slices = 3


def test_single_mixin_trainers_keep_their_predictor():
    assert AnatomyChannelsTrainer.predictor_class is AnatomyPredictor
    assert nnUNetTrainerSliceContext5.predictor_class is SliceContextPredictor
    assert combine_predictors(()) is nnUNetPredictor


def test_both_mixin_orders_compose_anatomy_before_stacking():
    for trainer in (AnatomySlices3, SlicesAnatomy3):
        assert input_predictors(trainer) == (AnatomyPredictor, SliceContextPredictor)
        predictor = trainer.predictor_class
        assert issubclass(predictor, AnatomyPredictor) and issubclass(predictor, SliceContextPredictor)
        assert predictor.context_slices == 3
    assert AnatomySlices3.predictor_class is SlicesAnatomy3.predictor_class  # one composed class per combination


@pytest.mark.parametrize("trainer", [AnatomySlices3, SlicesAnatomy3])
def test_combined_predictor_thresholds_the_masks_then_stacks_the_slices(trainer):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    anatomy = AnatomyChannels(channels={1: "bladder"}, encoding="ct")
    dataset_json = {"labels": {"background": 0, "ctv": 1}, "channel_names": {"0": "CT", "1": "noNorm"},
                    "radconf": {"anatomy": anatomy.to_json()}}
    plans = PlansManager({"configurations": {"2d": {"patch_size": [1, 2], "architecture": {}}}})
    network = Recorder(torch.nn.Conv2d(2 * 3, 2, 1))
    predictor = trainer.predictor_class(use_gaussian=False, use_mirroring=False, perform_everything_on_device=False,
                                        device=torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(network, plans, plans.get_configuration("2d"), None, dataset_json,
                                    trainer.__name__, None)
    # 3 slices of 1 x 2 voxels; CT = 10 * slice + x + 1, the mask channel soft (spline-resampled) around 0.5
    ct = torch.tensor([[[1.0, 2.0]], [[11.0, 12.0]], [[21.0, 22.0]]])
    mask = torch.tensor([[[0.2, 0.7]], [[0.97, 0.4]], [[0.6, 0.51]]])
    predictor.predict_sliding_window_return_logits(torch.stack([ct, mask]))

    # "ct" encoding: mask > 0.5 filled with the CT value -> [[0, 2]], [[11, 0]], [[21, 22]]
    encoded = [torch.tensor([[0.0, 2.0]]), torch.tensor([[11.0, 0.0]]), torch.tensor([[21.0, 22.0]])]
    neighbours = {0: (0, 0, 1), 1: (0, 1, 2), 2: (1, 2, 2)}  # edge replication at both ends
    assert len(network.inputs) == 3
    for z, seen in enumerate(network.inputs):
        expected = torch.stack([ct[k] for k in neighbours[z]] + [encoded[k] for k in neighbours[z]])[None]
        assert torch.equal(seen, expected), z


def test_combined_trainer_validates_with_the_combined_predictor():
    # the final validation substitutes nnU-Net's predictor by predictor_class once (one InputStepsMixin in the MRO)
    defining = [k for k in AnatomySlices3.__mro__ if "perform_actual_validation" in vars(k)]
    assert defining[0].__name__ == "InputStepsMixin" and defining[1] is nnUNetTrainer
    assert "nnUNetPredictor" in nnUNetTrainer.perform_actual_validation.__code__.co_names


def test_training_both_is_refused_until_the_augmentation_composes_too():
    with pytest.raises(InvalidInput, match="AnatomySlices3: training anatomy channels together with slice context"):
        AnatomySlices3({"configurations": {"2d": {"patch_size": [8, 8]}}}, "2d", 0, {}, torch.device("cpu"))
