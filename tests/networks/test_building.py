"""The trainers' ``build_network_architecture`` from nnU-Net configurations (nnU-Net's ``get_network_from_plans``
path, as training and ``radconf.inference.load_predictor`` call it), weights from a plain U-Net checkpoint, Monte
Carlo dropout on the smp networks, and the refusals."""
from __future__ import annotations

import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from radconf.trainers.networks import AttentionUNetTrainer, DeepLabV3PlusTrainer, ResNet34FPNTrainer

from radconf.errors import InvalidInput, MissingInput
from radconf.networks.attention import GatedUNetDecoder, with_attention_gates
from radconf.networks.smp_models import StridePadded, load_encoder_weights

ARCHITECTURES = "dynamic_network_architectures.architectures.unet."


def _configuration(dimensions: int, network: str = "PlainConvUNet") -> ConfigurationManager:
    """An nnU-Net configuration as the planners write it: 3 stages, 4-8-16 features."""
    conv, norm = f"torch.nn.modules.conv.Conv{dimensions}d", f"torch.nn.modules.instancenorm.InstanceNorm{dimensions}d"
    blocks = "n_conv_per_stage" if network == "PlainConvUNet" else "n_blocks_per_stage"
    kwargs = {"n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": conv,
              "kernel_sizes": [[3] * dimensions] * 3, "strides": [[1] * dimensions] + [[2] * dimensions] * 2,
              blocks: [2, 2, 2], "n_conv_per_stage_decoder": [1, 1], "conv_bias": True, "norm_op": norm,
              "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
              "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    return ConfigurationManager({"patch_size": [16] * dimensions, "architecture": {
        "network_class_name": ARCHITECTURES + network, "arch_kwargs": kwargs,
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}})


def _build(trainer: type, configuration: ConfigurationManager, inputs: int, outputs: int, deep_supervision: bool):
    plans = PlansManager({"configurations": {"c": configuration.configuration}})
    return trainer.build_network_architecture(plans, configuration, inputs, outputs, deep_supervision)


@pytest.mark.parametrize("dimensions", [2, 3])
@pytest.mark.parametrize("network", ["PlainConvUNet", "ResidualEncoderUNet"])
def test_attention_trainer_gates_the_planned_unet(dimensions, network):
    torch.manual_seed(0)
    gated = _build(AttentionUNetTrainer, _configuration(dimensions, network), 2, 3, True)
    assert type(gated).__name__ == network and isinstance(gated.decoder, GatedUNetDecoder)
    assert [g.skip_conv.in_channels for g in gated.decoder.gates] == [8, 4]  # skips from the bottleneck up
    outputs = gated(torch.randn(1, 2, *[16] * dimensions))
    assert [tuple(o.shape[2:]) for o in outputs] == [(16,) * dimensions, (8,) * dimensions]
    single = _build(AttentionUNetTrainer, _configuration(dimensions, network), 2, 3, False)
    assert single(torch.randn(1, 2, *[16] * dimensions)).shape == (1, 3, *[16] * dimensions)
    assert with_attention_gates(gated) is gated and len(gated.decoder.gates) == 2  # a second call changes nothing


def test_plain_unet_weights_initialise_the_attention_unet():
    from radconf.nnunet_compat.checkpoints import transfer_pretrained_weights

    torch.manual_seed(1)
    plain = _build(nnUNetTrainer, _configuration(3), 1, 3, True)  # nnU-Net's own network
    gated = _build(AttentionUNetTrainer, _configuration(3), 1, 3, True)
    gates = {k: v.clone() for k, v in gated.state_dict().items() if k.startswith("decoder.gates.")}
    assert gates
    transferred = transfer_pretrained_weights(gated, plain.state_dict(), "plain.pth")
    state = gated.state_dict()
    assert not any(k.startswith("decoder.gates.") for k in transferred)
    assert all(torch.equal(state[k], plain.state_dict()[k]) for k in transferred)
    assert all(torch.equal(state[k], v) for k, v in gates.items())  # the gates keep their initialisation


@pytest.mark.parametrize("trainer", [ResNet34FPNTrainer, DeepLabV3PlusTrainer])
def test_smp_trainers_build_2d_and_refuse_3d(trainer):
    network = _build(trainer, _configuration(2), 3, 4, True)  # deep supervision asked: one output all the same
    assert isinstance(network, StridePadded)
    assert network.model.encoder.conv1.in_channels == 3
    assert network.eval()(torch.randn(1, 3, 40, 24)).shape == (1, 4, 40, 24)
    with pytest.raises(InvalidInput, match=rf"^{trainer.__name__} is a 2D network: .*\(-c 2d\), not a 3D one"):
        _build(trainer, _configuration(3), 3, 4, False)


@pytest.mark.parametrize("trainer, expected", [(ResNet34FPNTrainer, [("model.decoder.dropout", 0.2)]),
                                               (DeepLabV3PlusTrainer, [("model.decoder.aspp.0.project.3", 0.5)])])
def test_monte_carlo_dropout_samples_the_smp_decoders(trainer, expected):
    from radconf.uncertainty.dropout import dropout_modules, has_dropout, in_decoder, mc_dropout

    torch.manual_seed(2)
    network = _build(trainer, _configuration(2), 1, 2, False).eval()
    assert [(name, module.p) for name, module in dropout_modules(network)] == expected
    assert has_dropout(network) and all(in_decoder(name) for name, _ in expected)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(network(x), network(x))  # eval: deterministic
        with mc_dropout(network):
            first, second = network(x), network(x)
    assert not torch.equal(first, second)
    assert not any(module.training for module in network.modules())


def test_refusals_name_the_input(tmp_path):
    from dynamic_network_architectures.architectures.unet import ResidualUNet

    residual = ResidualUNet(1, 3, (4, 8, 16), torch.nn.Conv2d, 3, (1, 2, 2), 1, 2, 1)
    with pytest.raises(InvalidInput, match="ResidualUNet with decoder UNetResDecoder.*PlainConvUNet"):
        with_attention_gates(residual)
    network = _build(ResNet34FPNTrainer, _configuration(2), 1, 2, False)
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(InvalidInput, match="notes.pth cannot be read as a state dict"):
        load_encoder_weights(network, tmp_path / "notes.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(InvalidInput, match="list.pth holds no state dict of tensors"):
        load_encoder_weights(network, tmp_path / "list.pth")
    with pytest.raises(InvalidInput, match="ResidualUNet has no segmentation-models-pytorch encoder"):
        load_encoder_weights(residual, tmp_path / "list.pth")
    with pytest.raises(MissingInput, match="absent.pth not found"):
        load_encoder_weights(network, tmp_path / "absent.pth")
