"""Anatomy channels: encoding, the round trip through nnU-Net's augmentation, and the predictor's input."""
from __future__ import annotations

import pytest
import torch
from batchgeneratorsv2.transforms.intensity.gaussian_noise import GaussianNoiseTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform
from radconf.trainers.anatomy_channels import (
    AnatomyChannelsTrainer,
    AnatomyPredictor,
    with_anatomy_channels,
)
from radconf.trainers.anatomy_guided import AnatomyGuidedMultiTaskTrainer

from radconf.anatomy.channels import AnatomyChannels, anatomy_of, encode_anatomy

from .conftest import Recorder

# three channels: CT at 0, a mask at 1, a second image (e.g. MR) at 2, a mask at 3
ANATOMY = AnatomyChannels(channels={1: "bladder", 3: "rectum"}, encoding="binary")


def _sample():
    torch.manual_seed(0)
    image = torch.randn(4, 6, 10, 10)
    image[1] = 0.0
    image[1, 2:4, 3:7, 3:7] = 0.97  # spline-resampled mask: not exactly 1
    image[3] = 0.0
    image[3, 1:5, 1:3, 5:9] = 1.02
    segmentation = torch.zeros((1, 6, 10, 10), dtype=torch.int16)
    segmentation[0, 2:4, 2:5, 2:5] = 1
    return image, segmentation


def test_encode_binarises_and_fills_with_ct_by_hand():
    image = torch.tensor([[-1.0, 0.5, 2.0, 3.0], [0.2, 0.6, 1.3, 0.49]])  # CT, mask
    anatomy = AnatomyChannels(channels={1: "bladder"})
    assert encode_anatomy(image, anatomy)[1].tolist() == [0.0, 1.0, 1.0, 0.0]
    assert encode_anatomy(image, anatomy)[0].tolist() == image[0].tolist()
    ct = AnatomyChannels(channels={1: "bladder"}, encoding="ct")
    assert encode_anatomy(image, ct)[1].tolist() == [0.0, 0.5, 2.0, 0.0]
    batch = torch.stack([image, image])
    assert torch.equal(encode_anatomy(batch, ct, channel_dim=1)[1], encode_anatomy(image, ct))


def test_round_trip_keeps_channel_order_and_segmentation():
    image, segmentation = _sample()
    pipeline = with_anatomy_channels(ComposeTransforms([RemoveLabelTansform(-1, 0)]), ANATOMY, 4)
    out = pipeline(image=image.clone(), segmentation=segmentation.clone())
    assert out["image"].shape == (4, 6, 10, 10) and out["image"].dtype == torch.float32
    assert torch.equal(out["image"][0], image[0]) and torch.equal(out["image"][2], image[2])
    assert torch.equal(out["image"][1], (image[1] > 0.5).float())
    assert torch.equal(out["image"][3], (image[3] > 0.5).float())
    assert torch.equal(out["segmentation"], segmentation)


def test_intensity_augmentation_never_touches_the_masks():
    image, segmentation = _sample()
    noise = GaussianNoiseTransform(noise_variance=(0.5, 0.5), p_per_channel=1, synchronize_channels=False)
    plain = ComposeTransforms([noise, RemoveLabelTansform(-1, 0)])
    noisy = plain(image=image.clone(), segmentation=segmentation.clone())["image"]
    assert not torch.isin(noisy[1], torch.tensor([0.0, 1.0])).all()  # without radconf the mask gets noise
    guarded = with_anatomy_channels(ComposeTransforms([noise, RemoveLabelTansform(-1, 0)]), ANATOMY, 4)
    out = guarded(image=image.clone(), segmentation=segmentation.clone())["image"]
    assert torch.equal(out[1], (image[1] > 0.5).float()) and torch.equal(out[3], (image[3] > 0.5).float())
    assert not torch.equal(out[0], image[0])  # the CT channel is still augmented


def test_spatial_augmentation_moves_masks_like_labels():
    image, segmentation = _sample()
    spatial = SpatialTransform((6, 10, 10), patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0,
                               p_rotation=1.0, rotation=(0.4, 0.4), p_scaling=1.0, scaling=(1.3, 1.3),
                               p_synchronize_scaling_across_axes=1, bg_style_seg_sampling=False,
                               border_mode_seg="constant", padding_value_seg=-1)
    torch.manual_seed(1)
    transformed = ComposeTransforms([spatial, RemoveLabelTansform(-1, 0)])(image=image.clone(),
                                                                           segmentation=segmentation.clone())
    plain = transformed["image"]
    assert not torch.isin(plain[1], torch.tensor([0.0, 0.97])).all()  # image interpolation blurs the mask
    torch.manual_seed(1)
    out = with_anatomy_channels(ComposeTransforms([spatial, RemoveLabelTansform(-1, 0)]), ANATOMY, 4)(
        image=image.clone(), segmentation=segmentation.clone())
    assert torch.isin(out["image"][1], torch.tensor([0.0, 1.0])).all() and out["image"][1].sum() > 0
    assert torch.isin(out["image"][3], torch.tensor([0.0, 1.0])).all() and out["image"][3].sum() > 0
    # the mask moved with the same deformation as the labels: it is exactly the transformed image's bright region
    # (the blurred mask above half its value, same seed = same deformation), and the labels moved as without radconf
    assert out["segmentation"].shape == (1, 6, 10, 10)
    assert torch.equal(out["image"][1], (plain[1] > 0.97 / 2).float())
    assert torch.equal(out["image"][3], (plain[3] > 1.02 / 2).float())
    assert torch.equal(out["segmentation"], transformed["segmentation"]) and torch.equal(out["image"][0], plain[0])
    # the bladder mask overlapped the label before (8 voxels); it still does after the deformation, the rectum not
    moved_label = out["segmentation"][0] == 1
    assert int(((image[1] > 0.5) & (segmentation[0] == 1)).sum()) == 8
    assert (out["image"][1].bool() & moved_label).sum() > 0 and not (out["image"][3].bool() & moved_label).any()


@pytest.mark.parametrize("encoding", ["binary", "ct"])
def test_predictor_feeds_the_encoded_masks(encoding):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    anatomy = AnatomyChannels(channels={1: "bladder"}, encoding=encoding)
    dataset_json = {"labels": {"background": 0, "ctv": 1}, "channel_names": {"0": "CT", "1": "noNorm"},
                    "radconf": {"anatomy": anatomy.to_json()}}
    plans = PlansManager({"configurations": {"3d": {"patch_size": [4, 8, 8], "architecture": {}}}})
    network = Recorder(torch.nn.Conv3d(2, 2, 1))
    predictor = AnatomyPredictor(use_gaussian=False, use_mirroring=False, perform_everything_on_device=False,
                                 device=torch.device("cpu"), allow_tqdm=False)
    predictor.manual_initialization(network, plans, plans.get_configuration("3d"), None, dataset_json,
                                    "AnatomyChannelsTrainer", None)
    volume = torch.randn(2, 4, 8, 8)
    volume[1] = torch.rand(4, 8, 8)
    predictor.predict_sliding_window_return_logits(volume)
    seen = network.inputs[0][0]
    mask = (volume[1] > 0.5).float()
    assert torch.equal(seen[1], mask if encoding == "binary" else mask * volume[0])
    assert torch.equal(seen[0], volume[0])


def test_declaration_checks_and_trainer_hooks():
    dataset_json = {"channel_names": {"0": "CT", "1": "CT"}, "radconf": {"anatomy": ANATOMY.to_json()}}
    with pytest.raises(ValueError, match="not among the dataset's channels"):
        anatomy_of(dataset_json)
    dataset_json["channel_names"].update({"2": "MR", "3": "noNorm"})
    with pytest.raises(ValueError, match="noNorm"):
        anatomy_of(dataset_json)
    dataset_json["channel_names"]["1"] = "noNorm"
    assert anatomy_of(dataset_json).names == ["bladder", "rectum"]
    with pytest.raises(ValueError, match="encoding"):
        AnatomyChannels(channels={1: "a"}, encoding="hu")
    for trainer in (AnatomyChannelsTrainer, AnatomyGuidedMultiTaskTrainer):  # signatures: test_trainer_signatures.py
        assert trainer.predictor_class is AnatomyPredictor
    # the nnUNetPredictor global these predictors replace in validation: tests/nnunet_compat/test_tripwires.py
