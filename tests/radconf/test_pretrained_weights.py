from __future__ import annotations

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet

from radconf.nnunet_compat.checkpoints import safe_load_checkpoint
from radconf.training import load_pretrained_weights


def _net(outputs: int, features: int = 4) -> PlainConvUNet:
    return PlainConvUNet(1, 3, [features, 2 * features, 4 * features], torch.nn.Conv3d, 3, [1, 2, 2], [1, 1, 1],
                         outputs, [1, 1], True, torch.nn.InstanceNorm3d, {"affine": True}, None, None,
                         torch.nn.LeakyReLU, {"inplace": True})


def test_transfers_everything_but_the_segmentation_layers(tmp_path):
    torch.manual_seed(0)
    binary = _net(outputs=2)
    path = tmp_path / "binary.pth"
    torch.save({"network_weights": binary.state_dict(), "trainer_name": "nnUNetTrainer"}, path)
    levels = _net(outputs=5)  # e.g. fine-tuning a binary model to five outputs
    before = {k: v.clone() for k, v in levels.state_dict().items()}
    transferred = load_pretrained_weights(levels, path)
    after = levels.state_dict()
    assert transferred and all(".seg_layers." not in k for k in transferred)
    for key, value in after.items():
        if ".seg_layers." in key:
            assert torch.equal(value, before[key]), key
        else:
            assert torch.equal(value, binary.state_dict()[key]), key


def test_incompatible_architecture_is_refused(tmp_path):
    path = tmp_path / "wide.pth"
    torch.save({"network_weights": _net(outputs=2, features=8).state_dict()}, path)
    with pytest.raises(ValueError, match="do not fit this network"):
        load_pretrained_weights(_net(outputs=2, features=4), path)


def test_unsafe_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"network_weights": {}, "payload": _Payload()}, path)
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        safe_load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        safe_load_checkpoint(tmp_path / "missing.pth")


class _Payload:
    """An arbitrary object: unpickling it would import and run code from the test module."""


def test_plain_checkpoint_initialises_a_distance_head_network(tmp_path):
    from radconf.trainers.distance_head import DistanceHeadNetwork

    torch.manual_seed(0)
    plain = _net(outputs=3)
    path = tmp_path / "plain.pth"
    torch.save({"network_weights": plain.state_dict()}, path)
    torch.manual_seed(1)
    multi_task = DistanceHeadNetwork(_net(outputs=3), num_distance_channels=2, n_conv_per_stage=1)
    head_before = {k: v.clone() for k, v in multi_task.state_dict().items() if k.startswith("distance_decoder.")
                   and not k.startswith("distance_decoder.encoder.")}
    load_pretrained_weights(multi_task, path)
    after = multi_task.state_dict()
    for key, value in plain.state_dict().items():
        if ".seg_layers." not in key:
            assert torch.equal(after[key], value), key
    # the head's own layers keep their initialisation; the encoder it shares is the pretrained one under every name
    for key, value in head_before.items():
        assert torch.equal(after[key], value), key
    for key, value in after.items():
        if key.startswith("distance_decoder.encoder."):
            assert torch.equal(value, plain.state_dict()[key[len("distance_decoder."):]]), key
