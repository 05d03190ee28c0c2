"""Dropout and DropBlock in nnU-Net's networks, and Monte Carlo dropout at inference.

nnU-Net plans every network with ``dropout_op: None``. Its architectures (``PlainConvUNet``, ``ResidualEncoderUNet``)
build ``dropout_op(**dropout_op_kwargs)`` into each convolution block (``ConvDropoutNormReLU``) of the encoder and the
decoder when the plans' ``arch_kwargs`` name one; :func:`arch_kwargs_with_dropout` writes them. That block lists the
dropout between convolution and normalisation in its ``all_modules`` sequence, which moves the normalisation's
parameters there (``all_modules.1.weight`` becomes ``all_modules.2.weight``): plain checkpoints would not load.
:func:`dropout_after_nonlinearity` moves the dropout to the end of the sequence (conv, norm, nonlinearity, dropout,
the usual order); dropout modules hold no parameters, so the network then has the state_dict keys of the plain one.

:class:`DropBlock` (Ghiasi et al. 2018) drops contiguous cubes instead of single activations; seed 004 keeps it on at
inference and draws Monte Carlo samples. :func:`mc_dropout` switches the dropout modules, and only those, to training
mode: normalisation layers keep their running statistics and stay in eval mode.
"""
from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.dropout import _DropoutNd

from radconf.errors import InvalidInput
from radconf.io.dataset_json import read_json_file
from radconf.io.files import atomic_write_json
from radconf.nnunet_compat.checkpoints import unwrap_network

DROPOUT_FILE = "dropout.json"
WHERE = ("encoder", "decoder", "both")
_MAX_POOL = {2: F.max_pool2d, 3: F.max_pool3d}


def block_mask(seeds: torch.Tensor, block_size: int) -> torch.Tensor:
    """The keep mask of DropBlock: 0 in the ``block_size`` cube around every seed, 1 elsewhere.

    Args:
        seeds: (N, C, *spatial) tensor, 1 at the block centres, 0 elsewhere (2 or 3 spatial axes).
        block_size: edge length of a block in voxels (an even block reaches one voxel further after the centre
            than before it).

    Returns:
        A float tensor shaped like ``seeds``.
    """
    seeds = seeds.float()
    if block_size > 1:
        spatial = seeds.shape[2:]
        pooled = _MAX_POOL[len(spatial)](seeds, kernel_size=block_size, stride=1, padding=block_size // 2)
        seeds = pooled[(..., *(slice(0, size) for size in spatial))]
    return 1.0 - seeds


class DropBlock(nn.Module):
    """DropBlock for 2D (N, C, H, W) and 3D (N, C, D, H, W) feature maps; identity in eval mode.

    In training mode each channel of each sample gets its own mask: block centres are drawn with probability
    ``gamma`` on the positions where a whole block fits the map, expanded to ``block_size`` cubes, and the kept
    activations are scaled by (mask size / kept count), so the expected output equals the input. ``gamma`` makes
    the expected dropped share about ``p``: p / block_size**d * prod(feat) / prod(feat - block_size + 1), with the
    block cut to the map along axes shorter than the block (one centre there, the block spans the axis).
    ``block_size`` 1 is element-wise dropout.

    Attributes:
        p: share of activations to drop, in [0, 1) (changed in place by :func:`configure_dropout`).
        block_size: edge length of a block in voxels, >= 1.
    """

    def __init__(self, p: float = 0.1, block_size: int = 3) -> None:
        super().__init__()
        self.p = p
        self.block_size = block_size

    def extra_repr(self) -> str:
        return f"p={self.p}, block_size={self.block_size}"

    def _blocks(self, spatial: Sequence[int]) -> list[int]:
        return [min(int(self.block_size), size) for size in spatial]

    def gamma(self, spatial: Sequence[int]) -> float:
        """The probability of a block centre on a map of the given spatial shape (at most ``p``)."""
        blocks = self._blocks(spatial)
        valid = math.prod(size - block + 1 for size, block in zip(spatial, blocks))
        return float(self.p) * math.prod(spatial) / (math.prod(blocks) * valid)

    def sample_mask(self, x: torch.Tensor) -> torch.Tensor:
        """A keep mask shaped like ``x`` (1 kept, 0 dropped), drawn with torch's global generator."""
        spatial = x.shape[2:]
        if len(spatial) not in _MAX_POOL:
            raise ValueError(f"DropBlock works on 4D (N, C, H, W) or 5D (N, C, D, H, W) tensors, got {x.dim()}D.")
        size = int(self.block_size)
        starts = [(size - 1) // 2 if n >= size else (n - 1) // 2 for n in spatial]
        region = tuple(slice(s, s + n - b + 1) for s, n, b in zip(starts, spatial, self._blocks(spatial)))
        seeds = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        centres = seeds[(..., *region)]
        seeds[(..., *region)] = (torch.rand(centres.shape, device=x.device) < self.gamma(spatial)).float()
        return block_mask(seeds, size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or float(self.p) <= 0:
            return x
        mask = self.sample_mask(x)
        scale = mask.numel() / mask.sum().clamp(min=1.0)
        return x * (mask * scale).to(x.dtype)


@dataclass(frozen=True)
class DropoutSettings:
    """How a network drops activations.

    Attributes:
        rate: share of activations dropped, in [0, 1); 0 switches dropout off.
        where: ``encoder``, ``decoder`` or ``both``; the dropout modules elsewhere get p = 0.
        block_size: 0 = element-wise dropout (``torch.nn.Dropout``), >= 1 = DropBlock with blocks of this size
            in voxels.
    """

    rate: float
    where: str
    block_size: int

    def check(self) -> DropoutSettings:
        """Checks the values.

        Returns:
            The settings with ``rate`` as float and ``block_size`` as int.

        Raises:
            InvalidInput: rate outside [0, 1), an unknown ``where``, a negative or fractional block size.
        """
        rate, block = self.rate, self.block_size
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise InvalidInput(f"Dropout rate (--dropout) must be a number in [0, 1), got {rate!r}.")
        if self.where not in WHERE:
            raise InvalidInput(f"Dropout place (--dropout_in) must be one of {', '.join(WHERE)}, got {self.where!r}.")
        if isinstance(block, bool) or not isinstance(block, numbers.Integral) or block < 0:
            raise InvalidInput(f"DropBlock size (--dropblock_size) must be a whole number >= 0 (0 = element-wise "
                               f"dropout), got {block!r}.")
        return DropoutSettings(float(rate), self.where, int(block))

    def as_json(self) -> dict[str, Any]:
        """The settings as written to ``dropout.json``."""
        return {"rate": float(self.rate), "where": self.where, "block_size": int(self.block_size)}

    @classmethod
    def from_json(cls, data: Any, where: str | Path = DROPOUT_FILE) -> DropoutSettings:
        """Settings read from JSON (``as_json``'s layout), checked.

        Args:
            data: the parsed JSON.
            where: the file it came from, for the messages.

        Raises:
            InvalidInput: not an object with ``rate``, ``where`` and ``block_size``, or a value out of range.
        """
        keys = ("rate", "where", "block_size")
        if not isinstance(data, Mapping) or any(key not in data for key in keys):
            raise InvalidInput(f"{where} does not hold dropout settings (an object with {', '.join(keys)}); copy the "
                               f"fold folder again or retrain it.")
        try:
            return cls(data["rate"], data["where"], data["block_size"]).check()
        except InvalidInput as error:
            raise InvalidInput(f"{where}: {error}") from None


def _dropout_class(settings: DropoutSettings) -> type[nn.Module]:
    return DropBlock if settings.block_size >= 1 else nn.Dropout


_IMPORT_PATHS = {nn.Dropout: "torch.nn.Dropout", DropBlock: f"{__name__}.DropBlock"}


def arch_kwargs_with_dropout(arch_kwargs: Mapping[str, Any], req_import: Sequence[str],
                             settings: DropoutSettings) -> dict[str, Any]:
    """A copy of nnU-Net's ``network_arch_init_kwargs`` that puts dropout after every convolution block.

    Args:
        arch_kwargs: the plans' ``architecture.arch_kwargs`` (not modified).
        req_import: the plans' ``architecture._kw_requires_import``: when it lists ``dropout_op``, nnU-Net's
            ``get_network_from_plans`` resolves the import path with ``pydoc.locate``; else the class is passed.
        settings: the dropout to insert.

    Returns:
        The new keyword arguments (``dropout_op``, ``dropout_op_kwargs`` set). Pass the network built from them to
        :func:`dropout_after_nonlinearity` to keep the plain network's state_dict keys.

    Raises:
        InvalidInput: settings out of range.
    """
    settings = settings.check()
    kwargs = copy.deepcopy(dict(arch_kwargs))
    op = _dropout_class(settings)
    kwargs["dropout_op"] = _IMPORT_PATHS[op] if "dropout_op" in req_import else op
    kwargs["dropout_op_kwargs"] = {"p": settings.rate}
    if op is DropBlock:
        kwargs["dropout_op_kwargs"]["block_size"] = settings.block_size
    return kwargs


def dropout_after_nonlinearity(network: nn.Module) -> nn.Module:
    """Dropout at the end of every nnU-Net convolution block (conv, norm, nonlinearity, dropout), in place, so the
    state_dict keys are those of the network built without dropout (:mod:`radconf.nnunet_compat.sampling`)."""
    from radconf.nnunet_compat.sampling import dropout_after_nonlinearity as move

    return move(network, (_DropoutNd, DropBlock))


def dropout_modules(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every ``nn.Dropout*`` and :class:`DropBlock` module of ``network`` (DDP / torch.compile unwrapped), with its
    qualified name."""
    return [(name, module) for name, module in unwrap_network(network).named_modules()
            if isinstance(module, (_DropoutNd, DropBlock))]


def in_decoder(name: str) -> bool:
    """Whether a module's qualified name lies in a decoder: a component ``decoder`` or ``*_decoder``."""
    return any(part == "decoder" or part.endswith("_decoder") for part in name.split("."))


def configure_dropout(network: nn.Module, settings: DropoutSettings) -> None:
    """Sets ``p`` (and the DropBlock ``block_size``) of every dropout module; those outside ``settings.where`` get 0.

    DropBlock modules with ``block_size`` 0 get blocks of 1 voxel (element-wise dropout).

    Raises:
        InvalidInput: settings out of range, a rate > 0 for a network without dropout modules, or blocks asked of
            a network built with element-wise dropout.
    """
    settings = settings.check()
    modules = dropout_modules(network)
    if settings.rate > 0 and not modules:
        raise InvalidInput(f"The network has no dropout modules, so dropout rate {settings.rate:g} cannot take "
                           f"effect: build it with a dropout trainer (DropoutTrainer, DropBlockTrainer).")
    if settings.block_size >= 1 and any(not isinstance(module, DropBlock) for _, module in modules):
        raise InvalidInput(f"The network was built with element-wise dropout (torch.nn.Dropout), which has no "
                           f"blocks: DropBlock size {settings.block_size} needs a network built with DropBlock "
                           f"(DropBlockTrainer), or use block size 0.")
    for name, module in modules:
        inside = settings.where == "both" or (settings.where == "decoder") == in_decoder(name)
        module.p = settings.rate if inside else 0.0
        if isinstance(module, DropBlock):
            module.block_size = max(settings.block_size, 1)


def has_dropout(network: nn.Module) -> bool:
    """Whether ``network`` has a dropout module with p > 0."""
    return any(float(module.p) > 0 for _, module in dropout_modules(network))


@contextmanager
def mc_dropout(network: nn.Module) -> Iterator[nn.Module]:
    """``network`` in eval mode with only its dropout modules sampling (Monte Carlo dropout); all eval on exit.

    Raises:
        InvalidInput: the network has no dropout with p > 0 (every sample would be the same).
    """
    if not has_dropout(network):
        raise InvalidInput("The model has no dropout with p > 0 (trained without dropout or DropBlock), so Monte "
                           "Carlo dropout samples would all be the same: use test-time augmentation "
                           "(--uncertainty tta) or fold/ensemble sampling (--uncertainty folds / --uncertainty "
                           "ensemble), or train with DropoutTrainer / DropBlockTrainer.")
    network.eval()
    for _, module in dropout_modules(network):
        module.train()
    try:
        yield network
    finally:
        network.eval()


def read_dropout_settings(fold_folder: str | Path) -> DropoutSettings | None:
    """The dropout settings a fold trained with (``<fold_folder>/dropout.json``); None when the file is absent.

    Raises:
        InvalidInput: the file is not valid JSON or does not hold dropout settings.
    """
    path = Path(fold_folder) / DROPOUT_FILE
    if not path.is_file():
        return None
    return DropoutSettings.from_json(read_json_file(path, fix="or copy the fold folder again"), where=path)


def write_dropout_settings(fold_folder: str | Path, settings: DropoutSettings) -> Path:
    """Writes ``<fold_folder>/dropout.json`` atomically; returns its path.

    Raises:
        InvalidInput: settings out of range.
    """
    return atomic_write_json(Path(fold_folder) / DROPOUT_FILE, settings.check().as_json())
