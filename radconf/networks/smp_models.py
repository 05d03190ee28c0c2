"""2D networks of segmentation-models-pytorch (ResNet34-FPN, DeepLabv3+) inside nnU-Net's patch-based pipeline.

A ResNet34 encoder downsamples five times (stride 32), so its input size must be a multiple of 32. nnU-Net plans
the patch size from the dataset's fingerprint and need not meet that; :class:`StridePadded` pads each input to the
next multiple with zeros (0 is the mean of nnU-Net's z-scored CT intensities; the padded border adds context, not
tissue), runs the network and crops the logits back. The plans' patch size, nnU-Net's sliding window and its
predictor stay as they are. Nothing is downloaded: the encoders start from random weights (``encoder_weights=None``);
:func:`load_encoder_weights` loads an ImageNet ResNet34 checkpoint a user has on disk.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from radconf.errors import InvalidInput, MissingInput

ENCODER_STRIDE = 32
ARCHITECTURES = ("FPN", "DeepLabV3Plus")


class StridePadded(nn.Module):
    """``model`` on inputs zero-padded (at the end of each spatial axis) to a multiple of ``stride``; the logits are
    cropped back to the input's size."""

    def __init__(self, model: nn.Module, stride: int = ENCODER_STRIDE) -> None:
        super().__init__()
        self.model, self.stride = model, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        pad = [(-n) % self.stride for n in size]
        if any(pad):
            flat = [p for amount in reversed(pad) for p in (0, amount)]  # F.pad: last axis first
            x = F.pad(x, flat)
        logits = self.model(x)
        return logits[(..., *[slice(0, n) for n in size])]


def _smp():
    try:
        import segmentation_models_pytorch
    except ImportError as error:
        raise InvalidInput(f"The 2D ResNet34-FPN and DeepLabv3+ trainers need segmentation-models-pytorch "
                           f"({error}): pip install segmentation-models-pytorch") from None
    return segmentation_models_pytorch


def build_smp_network(architecture: str, in_channels: int, classes: int, encoder: str = "resnet34") -> StridePadded:
    """``smp.FPN``/``smp.DeepLabV3Plus`` with a random ``encoder`` (nothing is downloaded), wrapped in
    :class:`StridePadded`."""
    if architecture not in ARCHITECTURES:
        raise InvalidInput(f"Unknown architecture {architecture!r}; one of {', '.join(ARCHITECTURES)}.")
    model = getattr(_smp(), architecture)(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                                          classes=classes)
    return StridePadded(model)


def load_encoder_weights(network: StridePadded, path: str | Path) -> list[str]:
    """Loads an ImageNet ResNet34 state dict (e.g. torchvision's ``resnet34`` weights file) into the network's
    encoder; the classifier (``fc.``) is left out. A first convolution with another number of input channels (e.g. one
    CT channel, not RGB) gets the mean over the checkpoint's RGB filters, repeated. Returns the keys loaded.

    Raises:
        MissingInput: no such file.
        InvalidInput: keys or shapes that do not fit the encoder (named).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"Encoder weights {path} not found.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    encoder = network.model.encoder
    own = encoder.state_dict()
    weights = {k: v for k, v in state.items() if not k.startswith("fc.")}
    first = weights.get("conv1.weight")
    if first is not None and first.ndim == 4 and first.shape[1] != own["conv1.weight"].shape[1]:
        weights["conv1.weight"] = first.mean(1, keepdim=True).repeat(1, own["conv1.weight"].shape[1], 1, 1)
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        raise InvalidInput(f"{path} does not fit the {type(encoder).__name__} encoder: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}, other shapes {wrong[:5]}. Pass a ResNet34 state dict (e.g. "
                           f"torchvision's resnet34 weights file).")
    encoder.load_state_dict(weights)
    return sorted(weights)
