"""Multi-reader label fusion: n binary masks of one structure -> ordinal confidence levels 0..K.

Quantisation rule, for ``c`` = number of masks that include a voxel and ``n`` = number of masks of the case::

    level = 0                                   if c == 0
    level = K                                   if c == n
    level = 1 + floor((K - 1) * c / n)          otherwise  (always in 1..K-1)

so level 0 means no reader drew the voxel, level K means every available mask did, and levels 1..K-1 split the
agreement fraction ``c / n`` into K - 1 equal bins (half of the masks -> the middle level for odd K). The rule is
monotone in ``c`` and valid for every ``n >= 1``: with one mask the map is {0, K}, i.e. a binary segmentation.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from radconf.errors import InvalidInput

DEFAULT_LEVELS = 5


def level_lookup(n_masks: int, k: int = DEFAULT_LEVELS) -> np.ndarray:
    """Table ``level[c]`` for c = 0..n_masks (uint8).

    Raises:
        ValueError: n_masks < 1, or k outside 2..255 (k = 1 leaves no level for partial agreement).
    """
    if n_masks < 1:
        raise InvalidInput(f"Fusion needs at least one mask, got {n_masks}.")
    if not 2 <= k <= 255:
        raise InvalidInput(f"The highest confidence level K must be in 2..255, got {k}.")
    counts = np.arange(n_masks + 1)
    levels = 1 + ((k - 1) * counts) // n_masks
    levels[0] = 0
    levels[n_masks] = k
    return levels.astype(np.uint8)


def count_masks(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Voxel-wise number of masks that include each voxel (uint8 for n < 256, else uint16), accumulated in place."""
    if not masks:
        raise InvalidInput("Fusion needs at least one mask, got none.")
    shape = masks[0].shape
    counts = np.zeros(shape, np.uint8 if len(masks) < 256 else np.uint16)
    for index, mask in enumerate(masks):
        if mask.shape != shape:
            raise InvalidInput(f"Mask {index} has shape {mask.shape}, mask 0 has {shape}; all masks must share a grid.")
        binary = mask.view(np.uint8) if mask.dtype == bool else (mask != 0)
        np.add(counts, binary, out=counts, casting="unsafe")
    return counts


@dataclass(frozen=True)
class Fusion:
    """Result of fusing one case's masks."""

    levels: np.ndarray  # uint8, 0..k
    counts: np.ndarray  # number of masks per voxel
    n_masks: int
    k: int

    @property
    def majority(self) -> np.ndarray:
        """Consensus: voxels included by strictly more than half of the masks."""
        return self.counts > self.n_masks // 2  # c > n/2 for integer c

    def at_level(self, level: int) -> np.ndarray:
        """Binary mask ``levels >= level`` (nested by construction)."""
        return self.levels >= level


def fuse_masks(masks: Sequence[np.ndarray], k: int = DEFAULT_LEVELS) -> Fusion:
    """Fuses binary masks of one structure into confidence levels 0..k (rule in the module docstring).

    Args:
        masks: binary arrays of identical shape (bool or 0/1 integers).
        k: highest confidence level.

    Returns:
        Levels, counts and the number of masks.
    """
    counts = count_masks(masks)
    return Fusion(levels=level_lookup(len(masks), k)[counts], counts=counts, n_masks=len(masks), k=k)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary masks; NaN when both are empty."""
    a, b = a.astype(bool, copy=False), b.astype(bool, copy=False)
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else float("nan")


@dataclass(frozen=True)
class Agreement:
    """Pairwise Dice between masks of different readers (inter) and between trials of one reader (intra)."""

    inter_reader: list[tuple[str, str, float]]
    intra_reader: list[tuple[str, str, float]]

    @property
    def mean_inter(self) -> float:
        return float(np.nanmean([d for *_, d in self.inter_reader])) if self.inter_reader else float("nan")

    @property
    def mean_intra(self) -> float:
        return float(np.nanmean([d for *_, d in self.intra_reader])) if self.intra_reader else float("nan")


def reader_of(mask_name: str) -> str:
    """Reader of a mask named ``<reader>_<trial>`` (the part before the last underscore)."""
    return mask_name.rsplit("_", 1)[0] if "_" in mask_name else mask_name


def agreement(masks: Mapping[str, np.ndarray]) -> Agreement:
    """Pairwise Dice over all mask pairs, split by whether the two masks come from the same reader."""
    inter, intra = [], []
    for (name_a, a), (name_b, b) in combinations(sorted(masks.items()), 2):
        (intra if reader_of(name_a) == reader_of(name_b) else inter).append((name_a, name_b, dice(a, b)))
    return Agreement(inter_reader=inter, intra_reader=intra)


def staple(masks: Sequence[np.ndarray], threshold: float = 0.5) -> np.ndarray:
    """SimpleITK's STAPLE consensus (probability > threshold) of binary masks."""
    import SimpleITK as sitk

    images = [sitk.GetImageFromArray(np.asarray(m, dtype=np.uint8)) for m in masks]
    probability = sitk.GetArrayFromImage(sitk.STAPLE(images, 1.0))
    return probability > threshold
