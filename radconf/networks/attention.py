"""Additive attention gates (Oktay et al. 2018, Attention U-Net) on the skip connections of nnU-Net's U-Nets.

For a skip ``x`` (C_x channels) and the gating signal ``g`` (the decoder's upsampled features at the same
resolution, C_g channels): ``q = ReLU(W_x x + W_g g + b)``, ``alpha = sigmoid(psi q + b_psi)`` (one channel, values in
[0, 1]), and the gated skip is ``x * alpha``. W_x, W_g and psi are 1x1(x1) convolutions with C_x // 2 intermediate
channels. :func:`with_attention_gates` puts one gate before every concatenation of the decoder of a network nnU-Net
built from its plans (PlainConvUNet or ResidualEncoderUNet): encoder, stages, strides, normalisation and deep
supervision stay exactly nnU-Net's, and the plain network's parameter names are kept (the gates add ``decoder.gates``).
"""
from __future__ import annotations

import torch
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from torch import nn

from radconf.errors import InvalidInput


class AttentionGate(nn.Module):
    """``x * sigmoid(psi(ReLU(W_x x + W_g g)))`` for skip ``x`` and gating signal ``g`` of the same spatial size."""

    def __init__(self, skip_channels: int, gate_channels: int, dimensions: int) -> None:
        super().__init__()
        conv = nn.Conv3d if dimensions == 3 else nn.Conv2d
        inter = max(1, skip_channels // 2)
        self.skip_conv = conv(skip_channels, inter, 1, bias=False)
        self.gate_conv = conv(gate_channels, inter, 1, bias=True)
        self.psi = conv(inter, 1, 1, bias=True)
        self.last_attention: torch.Tensor | None = None  # the last alpha, detached (for inspection)

    def attention(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """alpha in [0, 1], one channel."""
        return torch.sigmoid(self.psi(torch.relu(self.skip_conv(x) + self.gate_conv(g))))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        alpha = self.attention(x, g)
        self.last_attention = alpha.detach()
        return x * alpha


class GatedUNetDecoder(UNetDecoder):
    """nnU-Net's U-Net decoder with ``gates[s]`` applied to the skip of stage ``s`` before the concatenation."""

    gates: nn.ModuleList

    def forward(self, skips):
        lres_input = skips[-1]
        seg_outputs = []
        for s in range(len(self.stages)):
            x = self.transpconvs[s](lres_input)
            x = torch.cat((x, self.gates[s](skips[-(s + 2)], x)), 1)
            x = self.stages[s](x)
            if self.deep_supervision:
                seg_outputs.append(self.seg_layers[s](x))
            elif s == len(self.stages) - 1:
                seg_outputs.append(self.seg_layers[-1](x))
            lres_input = x
        seg_outputs = seg_outputs[::-1]
        return seg_outputs if self.deep_supervision else seg_outputs[0]


#: parameter-name prefix of the gates; a plain U-Net checkpoint lacks them (they keep their initialisation)
GATES_PREFIX = "decoder.gates."


def with_attention_gates(network: nn.Module) -> nn.Module:
    """``network`` (built by nnU-Net from the plans, with ``encoder`` and a ``UNetDecoder`` ``decoder``) with an
    attention gate on every skip connection; returned for chaining (the network is changed in place).

    The network's ``pretrained_optional_prefixes`` gains ``decoder.gates.``, so ``-pretrained_weights`` of a plain
    U-Net trained with the same plans initialises everything but the gates.

    Raises:
        InvalidInput: the network's decoder is not nnU-Net's ``UNetDecoder`` (e.g. plans naming ``ResidualUNet``).
    """
    decoder = getattr(network, "decoder", None)
    if isinstance(decoder, GatedUNetDecoder):
        return network
    if not isinstance(decoder, UNetDecoder):
        raise InvalidInput(f"Attention gates need nnU-Net's UNetDecoder, but the plans build a {type(network).__name__}"
                           f" with decoder {type(decoder).__name__}: train AttentionUNetTrainer with plans whose "
                           f"network is PlainConvUNet or ResidualEncoderUNet (e.g. -p nnUNetPlans).")
    encoder = decoder.encoder
    dimensions = 3 if encoder.conv_op is nn.Conv3d else 2
    channels = encoder.output_channels
    gates = nn.ModuleList(AttentionGate(channels[-(s + 2)], channels[-(s + 2)], dimensions)
                          for s in range(len(decoder.stages)))
    decoder.__class__ = GatedUNetDecoder
    reference = next(decoder.parameters())
    decoder.gates = gates.to(device=reference.device, dtype=reference.dtype)
    network.pretrained_optional_prefixes = (*getattr(network, "pretrained_optional_prefixes", ()), GATES_PREFIX)
    return network
