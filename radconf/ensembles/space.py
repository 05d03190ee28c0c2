"""Weighted ensembles of segmentation models: a common probability space, streaming accumulation, decoding.

Members are mixed in one *output space* that every member converts its probabilities into:

- ``softmax``: C class probabilities (label maps; decoded by argmax, as nnU-Net does);
- ``regions``: nnU-Net region channels (sigmoid; decoded by nnU-Net's label manager: threshold 0.5 and
  ``regions_class_order``);
- ``cumulative``: confidence (ordinal) models, P(level >= c) for c = 1..K. A cumulative (sigmoid) member is made
  monotone (running minimum over c) and a softmax-on-levels member is summed into tails, so both kinds mix; the
  mixture of monotone members is monotone and decodes by counting the channels above 0.5 (``radconf.ordinal``).

``WeightedAccumulator`` adds one member at a time (weight x probabilities, plus the weighted second moment of the
foreground probability for the disagreement map), so an ensemble of any size holds two arrays of one case, never
every member's map. Members must agree on the output space, the structure names and the image grid.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from radconf.confidence.ordinal import (
    cumulative_from_softmax,
    cumulative_labels,
    monotone,
    ordinal_levels,
)
from radconf.errors import InvalidInput
from radconf.raw.entry import RadconfEntry

SPACES = ("softmax", "regions", "cumulative")


@dataclass(frozen=True)
class OutputSpace:
    """The space members are mixed in, and the labels of the decoded ensemble."""

    kind: str
    labels: tuple[tuple[str, object], ...]  # dataset.json labels of the ensemble output, in order
    regions_class_order: tuple[int, ...] = ()

    @property
    def structures(self) -> list[str]:
        """Names of the structures whose IoU/Dice the weights are fitted on (background excluded)."""
        return [name for name, _ in self.labels if name != "background"]

    @property
    def decoding(self) -> str:
        """``argmax`` (softmax) or ``threshold`` (each channel > 0.5)."""
        return "argmax" if self.kind == "softmax" else "threshold"

    @property
    def num_channels(self) -> int:
        return len(self.labels) if self.kind == "softmax" else len(self.labels) - 1


def member_space(dataset_json: Mapping) -> tuple[OutputSpace, str]:
    """The output space of a member and how its exported probabilities map into it.

    Returns:
        The space, and the member's export kind: ``softmax``, ``regions``, ``cumulative`` (K sigmoid channels) or
        ``level_softmax`` (K + 1 softmax classes of an ordinal model).
    """
    labels = dataset_json["labels"]
    if RadconfEntry.of(dataset_json).ordinal:
        k = ordinal_levels(dataset_json)
        space = OutputSpace("cumulative", tuple(cumulative_labels(k).items()))
        regions = any(isinstance(v, (list, tuple)) for v in labels.values())
        return space, "cumulative" if regions else "level_softmax"
    if any(isinstance(v, (list, tuple)) and len(v) > 1 for v in labels.values()):  # nnU-Net's rule for regions
        order = tuple(int(i) for i in dataset_json.get("regions_class_order", ()))
        frozen = tuple((name, tuple(v) if isinstance(v, (list, tuple)) else v) for name, v in labels.items())
        return OutputSpace("regions", frozen, order), "regions"
    ids = sorted(int(v) for v in labels.values())
    if ids != list(range(len(ids))):
        raise InvalidInput(f"Labels {dict(labels)} are not consecutive 0..{len(ids) - 1}; nnU-Net requires that.")
    return OutputSpace("softmax", tuple(sorted(labels.items(), key=lambda item: int(item[1])))), "softmax"


def common_space(dataset_jsons: Sequence[Mapping], names: Sequence[str]) -> tuple[OutputSpace, list[str]]:
    """The shared output space of all members and each member's export kind.

    Raises:
        ValueError: the members predict different structures, kinds of output or file types (naming them).
    """
    spaces = [member_space(d) for d in dataset_jsons]
    first, first_json = spaces[0][0], dataset_jsons[0]
    for name, (space, _), dataset_json in zip(names, spaces, dataset_jsons):
        if space != first:
            raise InvalidInput(f"Ensemble members must predict the same structures: {names[0]} gives "
                             f"{first.kind} {dict(first.labels)} but {name} gives {space.kind} {dict(space.labels)}. "
                             f"Combine only models trained on the same labels.")
        if dataset_json["file_ending"] != first_json["file_ending"]:
            raise InvalidInput(f"Ensemble members write different file types: {names[0]} "
                             f"{first_json['file_ending']}, {name} {dataset_json['file_ending']}.")
    return first, [kind for _, kind in spaces]


def to_space(probabilities: np.ndarray, export_kind: str, space: OutputSpace) -> np.ndarray:
    """A member's exported probabilities (channels first) as float32 in ``space``."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if export_kind == "cumulative":
        probabilities = monotone(probabilities)
    elif export_kind == "level_softmax":
        probabilities = cumulative_from_softmax(probabilities).astype(np.float32)
    if probabilities.shape[0] != space.num_channels:
        raise InvalidInput(f"Probabilities with {probabilities.shape[0]} channels cannot be {space.kind} outputs with "
                         f"{space.num_channels} channels (labels {dict(space.labels)}).")
    return probabilities


def foreground_probability(probabilities: np.ndarray, space: OutputSpace) -> np.ndarray:
    """P(any structure): 1 - P(background) (softmax), P(level >= 1) (cumulative), the largest region (regions)."""
    if space.kind == "softmax":
        return 1.0 - probabilities[0]
    if space.kind == "cumulative":
        return probabilities[0]
    return probabilities.max(0)


def decode(probabilities: np.ndarray, space: OutputSpace) -> np.ndarray:
    """Label map (uint8/uint16) of mixed probabilities in ``space``."""
    dtype = np.uint8 if len(space.labels) < 256 else np.uint16
    if space.kind == "softmax":
        return probabilities.argmax(0).astype(dtype)
    if space.kind == "cumulative":
        return (probabilities > 0.5).sum(0).astype(dtype)
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    labels = {name: list(value) if isinstance(value, tuple) else value for name, value in space.labels}
    manager = LabelManager(labels, regions_class_order=list(space.regions_class_order))
    return manager.convert_probabilities_to_segmentation(probabilities).astype(dtype)


def reference_targets(labels: np.ndarray, space: OutputSpace) -> np.ndarray:
    """The reference in the form the weight search compares with: class ids (softmax) or (C, ...) bool regions."""
    labels = np.asarray(labels)
    if space.kind == "softmax":
        return labels
    if space.kind == "cumulative":
        return np.stack([labels >= c for c in range(1, space.num_channels + 1)])
    regions = [value for name, value in space.labels if name != "background"]
    return np.stack([np.isin(labels, value if isinstance(value, tuple) else (value,)) for value in regions])


class WeightedAccumulator:
    """Running weighted sum of members' probabilities, and of the foreground probability's second moment."""

    def __init__(self, space: OutputSpace, track_disagreement: bool = False):
        self.space = space
        self.track_disagreement = track_disagreement
        self.total: np.ndarray | None = None
        self.foreground: np.ndarray | None = None  # float64: the variance is a difference of close numbers
        self.foreground_sq: np.ndarray | None = None
        self.weight = 0.0
        self.members = 0

    def add(self, probabilities: np.ndarray, weight: float) -> None:
        """Adds one member (already in the output space); ``probabilities`` may be freed afterwards."""
        if weight < 0:
            raise InvalidInput(f"Ensemble weights must be >= 0, got {weight}.")
        if self.total is None:
            self.total = np.zeros(probabilities.shape, np.float32)
            if self.track_disagreement:
                self.foreground = np.zeros(probabilities.shape[1:], np.float64)
                self.foreground_sq = np.zeros(probabilities.shape[1:], np.float64)
        elif probabilities.shape != self.total.shape:
            raise InvalidInput(f"Member {self.members + 1} predicts shape {probabilities.shape[1:]} but the first member "
                             f"{self.total.shape[1:]}: members must give probabilities on the same image grid.")
        self.total += np.float32(weight) * probabilities
        if self.track_disagreement:
            foreground = foreground_probability(probabilities, self.space).astype(np.float64)
            self.foreground += weight * foreground
            self.foreground_sq += weight * foreground ** 2
        self.weight += weight
        self.members += 1

    def mean(self) -> np.ndarray:
        """The weighted mean probabilities (weights normalised by their sum)."""
        if self.total is None or self.weight <= 0:
            raise InvalidInput("No ensemble member with a positive weight was added.")
        return self.total / np.float32(self.weight)

    def disagreement(self) -> np.ndarray:
        """Weighted standard deviation over members of the foreground probability (0 = all members agree)."""
        if not self.track_disagreement:
            raise InvalidInput("Disagreement was not tracked; create the accumulator with track_disagreement=True.")
        if self.weight <= 0:
            raise InvalidInput("No ensemble member with a positive weight was added.")
        variance = self.foreground_sq / self.weight - (self.foreground / self.weight) ** 2
        return np.sqrt(np.clip(variance, 0.0, None)).astype(np.float32)
