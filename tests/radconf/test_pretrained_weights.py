from __future__ import annotations

import pytest
import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet

from radconf.training import load_pretrained_weights, safe_load_checkpoint


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
