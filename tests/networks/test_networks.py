"""The papers' networks: attention gates by hand, the stride padding, and each trainer trained a step and predicting
a case through radconf's predictor (nnU-Net's sliding window) on the tiny phantom's cpu-preset plans."""
from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch
from torch import nn

from radconf.errors import InvalidInput
from radconf.networks.attention import AttentionGate, GatedUNetDecoder, with_attention_gates
from radconf.networks.smp_models import StridePadded, build_smp_network, load_encoder_weights


@pytest.mark.parametrize("dimensions", [2, 3])
def test_gate_is_the_hand_computed_sigmoid_times_the_skip(dimensions):
    torch.manual_seed(0)
    gate = AttentionGate(skip_channels=2, gate_channels=3, dimensions=dimensions)  # 1 intermediate channel
    with torch.no_grad():
        gate.skip_conv.weight.copy_(torch.tensor([1.0, -2.0]).view(1, 2, *[1] * dimensions))
        gate.gate_conv.weight.copy_(torch.tensor([0.5, 0.0, 1.0]).view(1, 3, *[1] * dimensions))
        gate.gate_conv.bias.fill_(0.25)
        gate.psi.weight.fill_(2.0)
        gate.psi.bias.fill_(-1.0)
    shape = (1, 4, 5) if dimensions == 2 else (1, 4, 5, 3)
    x, g = torch.randn(shape[0], 2, *shape[1:]), torch.randn(shape[0], 3, *shape[1:])
    q = np.maximum(x[:, 0].numpy() - 2 * x[:, 1].numpy() + 0.5 * g[:, 0].numpy() + g[:, 2].numpy() + 0.25, 0)
    alpha = 1 / (1 + np.exp(-(2 * q - 1)))
    out = gate(x, g)
    assert np.allclose(gate.last_attention[:, 0].numpy(), alpha, atol=1e-6)
    assert ((alpha >= 0) & (alpha <= 1)).all() and alpha.min() < 0.5 < alpha.max()
    assert np.allclose(out.detach().numpy(), x.numpy() * alpha[:, None], atol=1e-6)


def _plain_unet(dimensions: int, deep_supervision: bool):
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    conv = nn.Conv3d if dimensions == 3 else nn.Conv2d
    norm = nn.InstanceNorm3d if dimensions == 3 else nn.InstanceNorm2d
    return PlainConvUNet(1, 3, (4, 8, 16), conv, 3, (1, 2, 2), 2, 3, 2, conv_bias=True, norm_op=norm,
                         nonlin=nn.LeakyReLU, deep_supervision=deep_supervision)


@pytest.mark.parametrize("dimensions", [2, 3])
@pytest.mark.parametrize("deep_supervision", [True, False])
def test_gated_decoder_keeps_the_plain_outputs_and_encoder(dimensions, deep_supervision):
    torch.manual_seed(1)
    plain = _plain_unet(dimensions, deep_supervision)
    keys = set(plain.state_dict())
    encoder = {k: v.clone() for k, v in plain.encoder.state_dict().items()}
    x = torch.randn(2, 1, *[16] * dimensions)
    expected = plain(x)
    gated = with_attention_gates(plain)
    assert isinstance(gated.decoder, GatedUNetDecoder) and len(gated.decoder.gates) == 2
    assert keys <= set(gated.state_dict()) and all(k.startswith("decoder.gates.") for k in
                                                   set(gated.state_dict()) - keys)
    assert all(torch.equal(v, gated.encoder.state_dict()[k]) for k, v in encoder.items())
    out = gated(x)
    if deep_supervision:
        assert [o.shape for o in out] == [e.shape for e in expected]
    else:
        assert out.shape == expected.shape and not torch.allclose(out, expected)  # the gates act
    out[0].sum().backward() if deep_supervision else out.sum().backward()
    assert all(p.grad is not None for p in gated.decoder.gates.parameters())


@pytest.fixture(scope="module")
def smp_networks() -> dict[str, StridePadded]:
    torch.manual_seed(3)
    return {architecture: build_smp_network(architecture, 2, 3).eval() for architecture in ("FPN", "DeepLabV3Plus")}


@pytest.mark.parametrize("size", [(40, 56), (33, 47), (64, 32)])
def test_stride_padding_returns_logits_of_the_input_size(size, smp_networks):
    identity = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        identity.weight.fill_(1.0)
    x = torch.randn(2, 1, *size)
    assert torch.equal(StridePadded(identity)(x), x)  # exactly the input inside, after the crop
    seen = []
    recorder = StridePadded(nn.Identity())
    recorder.model.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    recorder(x)
    padded = seen[0]
    assert tuple(padded.shape[2:]) == tuple(-(-n // 32) * 32 for n in size)  # the next multiple of 32 on each axis
    assert torch.equal(padded[:, :, :size[0], :size[1]], x)  # padded at the end of each axis, with zeros
    assert not padded[:, :, size[0]:].any() and not padded[:, :, :, size[1]:].any()
    with torch.no_grad():
        for network in smp_networks.values():
            assert network(torch.randn(1, 2, *size)).shape == (1, 3, *size)


def test_missing_library_and_encoder_weights(tmp_path, monkeypatch):
    import torchvision

    network = build_smp_network("FPN", 1, 2)
    state = torchvision.models.resnet34().state_dict()  # random ImageNet-layout weights, nothing downloaded
    torch.save(state, tmp_path / "resnet34.pth")
    loaded = load_encoder_weights(network, tmp_path / "resnet34.pth")
    assert "layer4.2.bn2.weight" in loaded and not any(k.startswith("fc.") for k in loaded)
    assert torch.equal(network.model.encoder.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.allclose(network.model.encoder.conv1.weight, state["conv1.weight"].mean(1, keepdim=True))
    torch.save({"conv1.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(InvalidInput, match="does not fit the ResNetEncoder encoder"):
        load_encoder_weights(network, tmp_path / "other.pth")

    real_import = builtins.__import__

    def no_smp(name, *args, **kwargs):
        if name.startswith("segmentation_models_pytorch"):
            raise ImportError("No module named 'segmentation_models_pytorch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_smp)
    with pytest.raises(InvalidInput, match="pip install segmentation-models-pytorch"):
        build_smp_network("FPN", 1, 2)


@pytest.mark.parametrize("deep_supervision", [True, False])
def test_open_gates_give_exactly_nnunets_decoder(deep_supervision):
    """Gates fixed at alpha = 1 reproduce the plain decoder's outputs: GatedUNetDecoder.forward is nnU-Net's
    UNetDecoder.forward with the gate inserted, and fails here if the library's decoder changes."""
    torch.manual_seed(2)
    plain = _plain_unet(3, deep_supervision).eval()
    x = torch.randn(1, 1, 16, 16, 16)
    with torch.no_grad():
        expected = plain(x)
        gated = with_attention_gates(plain)
        for gate in gated.decoder.gates:
            gate.psi.weight.zero_()
            gate.psi.bias.fill_(100.0)  # sigmoid(100) == 1.0 in float32
        out = gated(x)
    pairs = zip(out, expected) if deep_supervision else [(out, expected)]
    assert all(torch.equal(o, e) for o, e in pairs)
