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


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a state dict file (``weights_only``; a ``{"state_dict": ...}`` wrapper is unwrapped)."""
    if not path.is_file():
        raise MissingInput(f"Encoder weights {path} not found; check the path of the ResNet34 weights file.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # not a torch file, truncated, or pickled objects weights_only refuses
        raise InvalidInput(f"{path} cannot be read as a state dict ({type(error).__name__}): pass a ResNet34 state "
                           f"dict saved with torch.save (e.g. torchvision's resnet34 weights file).") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInput(f"{path} holds no state dict of tensors: pass a ResNet34 state dict (e.g. torchvision's "
                           f"resnet34 weights file).")
    return state


def load_encoder_weights(network: nn.Module, path: str | Path) -> list[str]:
    """Loads an ImageNet ResNet34 state dict (e.g. torchvision's ``resnet34`` weights file) into the encoder of a
    :func:`build_smp_network` network (also under DDP or ``torch.compile``); the classifier (``fc.``) is left out. A
    first convolution with another number of input channels (e.g. one CT channel, not RGB) gets the mean over the
    checkpoint's RGB filters, repeated.

    Returns:
        The encoder keys loaded, sorted.

    Raises:
        MissingInput: no such file.
        InvalidInput: not a state dict, keys or shapes that do not fit the encoder (named), or a network that has no
            segmentation-models-pytorch encoder.
    """
    from radconf.nnunet_compat.checkpoints import unwrap_network

    path = Path(path)
    encoder = getattr(getattr(unwrap_network(network), "model", None), "encoder", None)
    if not isinstance(encoder, nn.Module):
        raise InvalidInput(f"{type(network).__name__} has no segmentation-models-pytorch encoder to load {path} into: "
                           f"pass the network of ResNet34FPNTrainer / DeepLabV3PlusTrainer (build_smp_network).")
    own = encoder.state_dict()
    weights = {k: v for k, v in _read_state_dict(path).items() if not k.startswith("fc.")}
    first, target = weights.get("conv1.weight"), own.get("conv1.weight")
    if first is not None and target is not None and first.ndim == target.ndim and first.shape[1] != target.shape[1]:
        weights["conv1.weight"] = first.mean(1, keepdim=True).repeat(1, target.shape[1], 1, 1)
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        raise InvalidInput(f"{path} does not fit the {type(encoder).__name__} encoder: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}, other shapes {wrong[:5]}. Pass a ResNet34 state dict (e.g. "
                           f"torchvision's resnet34 weights file).")
    encoder.load_state_dict(weights)
    return sorted(weights)
