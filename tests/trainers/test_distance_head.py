"""The distance-map head's pieces on tiny tensors: target transform, network outputs, loss, weights round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from radconf.trainers.distance_head import (
    DistanceHeadNetwork,
    DistanceTargetTransform,
    SegmentationWithDistanceLoss,
)
from torch import nn

from radconf.anatomy.distance import certified_distance, normalise_distance


def _unet(deep_supervision: bool = True) -> PlainConvUNet:
    torch.manual_seed(0)
    return PlainConvUNet(input_channels=1, n_stages=3, features_per_stage=(4, 8, 8), conv_op=nn.Conv3d,
                         kernel_sizes=3, strides=(1, 2, 2), n_conv_per_stage=1, num_classes=3,
                         n_conv_per_stage_decoder=1, conv_bias=True, norm_op=nn.InstanceNorm3d,
                         norm_op_kwargs={"eps": 1e-5, "affine": True}, nonlin=nn.LeakyReLU,
                         deep_supervision=deep_supervision)


def test_target_transform_appends_certified_normalised_distances():
    labels = torch.zeros((1, 6, 8, 8), dtype=torch.int16)
    labels[0, 2:4, 1:3, 1:3] = 1
    labels[0, 1:3, 5:7, 4:7] = 2
    low_res = labels[:, ::2, ::2, ::2].clone()
    spacing = (3.0, 1.0, 1.0)
    out = DistanceTargetTransform([1, 2], spacing, signed=False, scale_mm=20.0)(
        image=torch.zeros((1, 6, 8, 8)), segmentation=[labels, low_res])["segmentation"]
    full = out[0]
    assert full.dtype == torch.float32 and full.shape == (5, 6, 8, 8)
    assert torch.equal(full[0], labels[0].float()) and torch.equal(out[1], low_res)  # lower resolutions untouched
    for k, label in enumerate((1, 2)):
        distance, valid = certified_distance(labels[0].numpy() == label, spacing)
        np.testing.assert_array_equal(full[3 + k].numpy().astype(bool), valid)
        expected = normalise_distance(np.where(valid, distance, 0), 20.0)
        np.testing.assert_allclose(full[1 + k].numpy(), expected, rtol=1e-6)
    assert full[1][labels[0] == 1].abs().max() == 0  # 0 inside the structure


def test_network_outputs_segmentation_and_keeps_distance_aside():
    network = DistanceHeadNetwork(_unet(), num_distance_channels=2, n_conv_per_stage=1)
    x = torch.randn(2, 1, 8, 16, 16)
    network.train()
    output = network(x)
    assert isinstance(output, list) and output[0].shape == (2, 3, 8, 16, 16)  # segmentation as nnU-Net's
    assert network.last_distance.shape == (2, 2, 8, 16, 16)
    network.eval()
    network.decoder.deep_supervision = False  # inference: the head is not computed
    with torch.no_grad():
        assert network(x).shape == (2, 3, 8, 16, 16) and network.last_distance is None
        network.output_mode = "distance"
        distance = network(x)
    assert distance.shape == (2, 3, 8, 16, 16) and distance[:, 0].abs().max() == 0


def test_state_dict_keeps_nnunet_names_and_loads_plain_weights():
    plain = _unet()
    network = DistanceHeadNetwork(_unet(), num_distance_channels=2, n_conv_per_stage=1)
    ours = network.state_dict()
    assert set(plain.state_dict()) <= set(ours)
    assert {k.split(".")[0] for k in set(ours) - set(plain.state_dict())} == {"distance_decoder"}
    missing, unexpected = network.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("distance_decoder.") for k in missing)
    # round trip: a saved network's weights rebuild the same outputs
    clone = DistanceHeadNetwork(_unet(), num_distance_channels=2, n_conv_per_stage=1)
    for p in clone.parameters():
        nn.init.normal_(p)
    clone.load_state_dict(network.state_dict())
    x = torch.randn(1, 1, 8, 16, 16)
    network.eval(), clone.eval()
    with torch.no_grad():
        assert torch.allclose(network(x)[0], clone(x)[0]) and torch.allclose(network.last_distance, clone.last_distance)


def test_loss_adds_weighted_masked_mse_of_the_activated_head():
    prediction = torch.tensor([[[0.0, 2.0, -1.0, 0.5]]])  # raw head output, (b=1, T=1, 4)
    target = torch.tensor([[[0.5, 0.6, 0.0, 0.9], [1.0, 1.0, 0.0, 1.0]]])  # distance, valid
    segmentation = lambda output, t: torch.tensor(0.25)  # noqa: E731
    loss = SegmentationWithDistanceLoss(segmentation, 0.5, prediction=lambda: prediction, target=lambda: target,
                                        signed=False)
    s = torch.sigmoid(prediction[0, 0])
    mse = ((s[0] - 0.5) ** 2 + (s[1] - 0.6) ** 2 + (s[3] - 0.9) ** 2) / 3
    assert loss(None, None).item() == pytest.approx(0.25 + 0.5 * mse.item(), rel=1e-6)
    signed = SegmentationWithDistanceLoss(segmentation, 1.0, prediction=lambda: prediction, target=lambda: target,
                                          signed=True)
    t = torch.tanh(prediction[0, 0])
    expected = 0.25 + ((t[0] - 0.5) ** 2 + (t[1] - 0.6) ** 2 + (t[3] - 0.9) ** 2).item() / 3
    assert signed(None, None).item() == pytest.approx(expected, rel=1e-6)
    idle = SegmentationWithDistanceLoss(segmentation, 1.0, prediction=lambda: None, target=lambda: target,
                                        signed=False)
    assert idle(None, None).item() == 0.25  # no head output (e.g. inference): segmentation loss only
