"""Ordinal confidence levels as cumulative targets: encoding, monotone decoding, level weights, label views.

A level map holds integers 0..K. Its cumulative encoding has K channels, channel c (c = 1..K) = [level >= c], so
the channels are nested regions and nnU-Net's region-based training (sigmoid per channel) learns them. Decoding
forces the channel probabilities to be non-increasing in c (running minimum) and counts the channels above the
threshold, so a voxel at level L is also above every lower level: thresholded masks are nested by construction.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from radconf.errors import InvalidInput
from radconf.raw.entry import RADCONF_KEY, RadconfEntry


def ordinal_levels(dataset_json: Mapping, source: str = "dataset.json") -> int:
    """K of an ordinal dataset (``"radconf": {"ordinal": true, "levels": K}`` as written by radconf_fuse_readers).

    Raises:
        ValueError: the dataset is not marked ordinal, or its labels are not ``0..K`` / the cumulative regions.
    """
    info = RadconfEntry.of(dataset_json, source)
    if not info.ordinal:
        raise InvalidInput(f"{source} is not an ordinal confidence-level dataset (no '\"{RADCONF_KEY}\": {{\"ordinal\": "
                         f"true, \"levels\": K}}'). Create one with radconf_fuse_readers, or train a plain nnU-Net "
                         f"trainer on it.")
    k = int(info.levels)
    labels = dataset_json["labels"]
    if labels not in (level_labels(k), cumulative_labels(k)):
        raise InvalidInput(f"{source} says K = {k} but its labels are {dict(labels)}; expected "
                         f"{level_labels(k)} (or radconf's cumulative region form).")
    return k


def level_labels(k: int) -> dict:
    """Plain integer labels of a K-level map: ``background`` = 0, ``level_c`` = c."""
    return {"background": 0, **{f"level_{c}": c for c in range(1, k + 1)}}


def cumulative_labels(k: int) -> dict:
    """nnU-Net region labels of the cumulative encoding: ``level>=c`` = [c, ..., K]."""
    return {"background": 0, **{f"level>={c}": list(range(c, k + 1)) for c in range(1, k + 1)}}


def cumulative_dataset_json(dataset_json: Mapping) -> dict:
    """Copy of an ordinal dataset.json whose labels are the cumulative regions (idempotent)."""
    k = ordinal_levels(dataset_json)
    converted = dict(dataset_json)
    converted["labels"] = cumulative_labels(k)
    converted["regions_class_order"] = list(range(1, k + 1))
    return converted


def level_dataset_json(dataset_json: Mapping) -> dict:
    """Copy of an ordinal dataset.json with plain level labels 0..K (idempotent)."""
    k = ordinal_levels(dataset_json)
    converted = {key: value for key, value in dataset_json.items() if key != "regions_class_order"}
    converted["labels"] = level_labels(k)
    return converted


def encode_cumulative(levels: np.ndarray, k: int) -> np.ndarray:
    """(K, *shape) bool array, channel c - 1 = ``levels >= c``."""
    levels = np.asarray(levels)
    return np.stack([levels >= c for c in range(1, k + 1)])


def monotone(probabilities):
    """Running minimum over the channel axis (axis 0): p_1 >= p_2 >= ... >= p_K. numpy or torch."""
    if isinstance(probabilities, torch.Tensor):
        return torch.cummin(probabilities, dim=0).values
    return np.minimum.accumulate(np.asarray(probabilities), axis=0)


def decode_cumulative(probabilities, threshold: float = 0.5):
    """Level map (uint8 numpy / uint8 torch) from cumulative probabilities of shape (K, *shape)."""
    return count_levels(monotone(probabilities), threshold)


def count_levels(monotone_probabilities, threshold: float = 0.5):
    """Level map from probabilities that are already non-increasing over channels (see :func:`monotone`)."""
    above = monotone_probabilities > threshold
    if isinstance(above, torch.Tensor):
        return above.sum(0, dtype=torch.uint8)
    return above.sum(0, dtype=np.uint8)


def cumulative_from_softmax(probabilities: np.ndarray) -> np.ndarray:
    """P(level >= c) for c = 1..K from per-level probabilities of shape (K + 1, *shape)."""
    tail = np.cumsum(np.asarray(probabilities)[::-1], axis=0)[::-1]
    return np.clip(tail[1:], 0.0, 1.0)


class LevelWeightedBCE(torch.nn.Module):
    """BCE over the cumulative channels, each voxel weighted by the weight of its reference level.

    ``loss = sum_v w[level(v)] * mean_c BCE(x_vc, y_vc) / sum_v w[level(v)]``, the weighted mean that
    ``torch.nn.CrossEntropyLoss(weight=w)`` uses, with level(v) = number of positive target channels.
    """

    def __init__(self, weights: np.ndarray | torch.Tensor):
        super().__init__()
        self.register_buffer("weights", torch.as_tensor(np.asarray(weights), dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.float()
        per_voxel = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target,
                                                                         reduction="none").mean(1)
        voxel_weights = self.weights.to(logits.device)[target.sum(1).round().long()]
        return (per_voxel * voxel_weights).sum() / voxel_weights.sum().clamp_min(1e-8)
