"""Streaming statistics of prediction samples: memory independent of the number of samples.

A sample is one set of probabilities of a case in an ensemble output space (``radconf.ensembles.space``): C softmax
classes, nnU-Net region channels, or K cumulative confidence channels P(level >= c). ``SampleAccumulator`` adds one
sample at a time, with a weight (1 for Monte Carlo and test-time samples, the ensemble weight for members), and keeps

- the weighted sum of every channel (the mean, computed as the ensemble path computes it, so that both decode alike)
  and the weighted (population) variance, by West's weighted update of Welford's algorithm (float32 stays accurate:
  no difference of large squares);
- the weighted sum of the samples' entropies (expected entropy, the aleatoric part);
- per structure and voxel, the weight of the samples whose segmentation includes the voxel (the 95 % bounds and the
  contour-quality score need nothing else);
- each sample's structure volumes (the volume interval).

Definitions (METHODS.md section 8), entropies in nats:

- predictive entropy H[mean p]; expected entropy (1/W) sum_i w_i H[p_i]; mutual information = H[mean p] - expected
  entropy (>= 0; clipped at 0 against float rounding). Softmax: categorical entropy over the classes. Cumulative
  (confidence) channels: the categorical entropy of the level distribution P(level = c) = P(>= c) - P(>= c + 1).
  Regions (independent sigmoids): the sum of the channels' binary entropies.
- 95 % bounds of a structure: inner = voxels included by >= 97.5 % of the sample weight, outer = by >= 2.5 %.
- contour-quality score: the Dice of each sample's segmentation S_i with the segmentation M of the mean
  probabilities, pooled over samples: sum_i w_i 2|S_i & M| / sum_i w_i (|S_i| + |M|). That is seed 004's mean Dice
  with each sample weighted by its |S_i| + |M|, equal to it when the samples' volumes are equal, and exact from the
  per-voxel inclusion weights alone, since sum_i w_i |S_i & M| = sum over M of the inclusion weight. A structure no
  sample and not the mean predicts scores 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radconf.ensembles.space import OutputSpace, decode
from radconf.errors import InvalidInput

INNER_SHARE = 0.975
OUTER_SHARE = 0.025
_EPS = 1e-12


def structure_names(space: OutputSpace) -> list[str]:
    """The structures of ``space`` in channel order: labels (softmax), regions, ``level>=c`` (confidence)."""
    return space.structures


def structure_masks(probabilities: np.ndarray, space: OutputSpace) -> np.ndarray:
    """(S, ...) bool masks of one set of probabilities, decoded as the prediction is (argmax, nnU-Net's region
    decoding, monotone level counting)."""
    labels = decode(probabilities, space)
    if space.kind == "softmax":
        ids = [int(value) for name, value in space.labels if name != "background"]
        return np.stack([labels == i for i in ids])
    if space.kind == "cumulative":
        return np.stack([labels >= c for c in range(1, space.num_channels + 1)])
    regions = [value if isinstance(value, tuple) else (value,) for name, value in space.labels if name != "background"]
    return np.stack([np.isin(labels, region) for region in regions])


def structure_channels(array: np.ndarray, space: OutputSpace) -> np.ndarray:
    """The channels of ``array`` (C, ...) that belong to the structures: softmax drops the background."""
    return array[1:] if space.kind == "softmax" else array


def entropy(probabilities: np.ndarray, space: OutputSpace) -> np.ndarray:
    """Per-voxel entropy in nats of one set of probabilities in ``space`` (see the module docstring)."""
    p = np.asarray(probabilities, dtype=np.float32)
    if space.kind == "cumulative":  # P(level = c) for c = 0..K from the tails P(level >= c)
        ones = np.ones((1, *p.shape[1:]), np.float32)
        tails = np.concatenate([ones, p, np.zeros_like(ones)])
        p = np.clip(tails[:-1] - tails[1:], 0.0, 1.0)
    if space.kind == "regions":
        q = np.clip(p, _EPS, 1 - _EPS)
        return -(q * np.log(q) + (1 - q) * np.log1p(-q)).sum(0).astype(np.float32)
    return -(p * np.log(np.clip(p, _EPS, None))).sum(0).astype(np.float32)


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, shares: tuple[float, ...]) -> list[float]:
    """Quantiles of ``values`` with ``weights``: linear between the sorted values placed at their cumulative weight
    midpoints (with equal weights, numpy's ``percentile(..., method="hazen")``)."""
    values, weights = np.asarray(values, dtype=float), np.asarray(weights, dtype=float)
    order = np.argsort(values, kind="stable")
    values, weights = values[order], weights[order]
    positions = (np.cumsum(weights) - weights / 2) / weights.sum()
    return [float(np.interp(share, positions, values)) for share in shares]


@dataclass(frozen=True)
class StructureSummary:
    """What one structure's samples say about one case (volumes in cm^3)."""

    name: str
    quality: float
    volume_mean: float
    volume_low: float
    volume_high: float
    volume_of_mean: float
    volume_inner: float
    volume_outer: float
    mean_variance_outer: float
    mean_mutual_information_outer: float

    def as_row(self) -> dict:
        return {"structure": self.name, "quality": self.quality, "volume_cm3_mean": self.volume_mean,
                "volume_cm3_low95": self.volume_low, "volume_cm3_high95": self.volume_high,
                "volume_cm3_of_mean": self.volume_of_mean, "volume_cm3_inner95": self.volume_inner,
                "volume_cm3_outer95": self.volume_outer, "mean_variance_outer95": self.mean_variance_outer,
                "mean_mutual_information_outer95": self.mean_mutual_information_outer}


class SampleAccumulator:
    """Adds the samples of one case one at a time; every statistic of the module docstring from the running sums."""

    def __init__(self, space: OutputSpace, voxel_volume_mm3: float = 1.0):
        self.space = space
        self.voxel_volume_cm3 = float(voxel_volume_mm3) / 1000.0
        self.weight = 0.0
        self.samples = 0
        self._total: np.ndarray | None = None
        self._mean: np.ndarray | None = None  # Welford's running mean (for the variance)
        self._m2: np.ndarray | None = None
        self._entropy: np.ndarray | None = None
        self._inclusion: np.ndarray | None = None
        self.sample_weights: list[float] = []
        self.sample_volumes: list[np.ndarray] = []  # per sample: (S,) voxel counts

    def add(self, probabilities: np.ndarray, weight: float = 1.0) -> None:
        """Adds one sample (channels first, in the output space); it may be freed afterwards."""
        p = np.asarray(probabilities, dtype=np.float32)
        if not (np.isfinite(weight) and weight > 0):
            raise InvalidInput(f"A sample weight must be a finite number > 0, got {weight}.")
        if p.shape[0] != self.space.num_channels:
            raise InvalidInput(f"A sample with {p.shape[0]} channels does not fit the {self.space.kind} output space "
                               f"with {self.space.num_channels} channels.")
        if self._mean is None:
            self._total = np.zeros(p.shape, np.float32)
            self._mean = np.zeros(p.shape, np.float32)
            self._m2 = np.zeros(p.shape, np.float32)
            self._entropy = np.zeros(p.shape[1:], np.float32)
            self._inclusion = np.zeros((len(self.space.structures), *p.shape[1:]), np.float32)
        elif p.shape != self._mean.shape:
            raise InvalidInput(f"Sample {self.samples + 1} has shape {p.shape[1:]}, the first {self._mean.shape[1:]}: "
                               f"samples must be on the same image grid.")
        w = np.float32(weight)
        self.weight += float(weight)
        self._total += w * p
        delta = p - self._mean
        self._mean += (w / np.float32(self.weight)) * delta
        self._m2 += w * delta * (p - self._mean)
        self._entropy += w * entropy(p, self.space)
        masks = structure_masks(p, self.space)
        self._inclusion += w * masks
        self.sample_weights.append(float(weight))
        self.sample_volumes.append(masks.reshape(len(masks), -1).sum(1))
        self.samples += 1

    def _require(self, minimum: int = 1) -> None:
        if self.samples < minimum:
            raise InvalidInput(f"{self.samples} sample(s) were added; at least {minimum} are needed.")

    def mean(self) -> np.ndarray:
        """Weighted mean probabilities (the prediction)."""
        self._require()
        return self._total / np.float32(self.weight)

    def variance(self) -> np.ndarray:
        """Weighted population variance of every channel over the samples."""
        self._require()
        return np.clip(self._m2 / np.float32(self.weight), 0.0, None)

    def predictive_entropy(self) -> np.ndarray:
        return entropy(self.mean(), self.space)

    def expected_entropy(self) -> np.ndarray:
        self._require()
        return self._entropy / np.float32(self.weight)

    def mutual_information(self) -> np.ndarray:
        return np.clip(self.predictive_entropy() - self.expected_entropy(), 0.0, None)

    def inclusion_share(self) -> np.ndarray:
        """(S, ...) share of the sample weight whose segmentation includes each voxel."""
        self._require()
        return self._inclusion / np.float32(self.weight)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(S, ...) inner (>= 97.5 % of the samples) and outer (>= 2.5 %) 95 % bounds."""
        share = self.inclusion_share()
        tolerance = 1e-6  # float sums of weights: a voxel in 39 of 40 samples is at exactly 0.975
        return share >= INNER_SHARE - tolerance, share >= OUTER_SHARE - tolerance

    def quality(self, mean_masks: np.ndarray | None = None) -> np.ndarray:
        """(S,) contour-quality score: the pooled sample-vs-mean Dice of the module docstring (``mean_masks``: the
        structure masks of the mean, when already decoded)."""
        self._require()
        if mean_masks is None:
            mean_masks = structure_masks(self.mean(), self.space)
        s = len(mean_masks)
        included = (self._inclusion * mean_masks).reshape(s, -1).sum(1, dtype=np.float64)
        weights = np.asarray(self.sample_weights)
        sample_total = (np.stack(self.sample_volumes) * weights[:, None]).sum(0)
        mean_total = self.weight * mean_masks.reshape(s, -1).sum(1)
        denominator = sample_total + mean_total
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, 2 * included / np.maximum(denominator, _EPS), 1.0)

    def summaries(self) -> list[StructureSummary]:
        """Per structure: quality, volumes (mean, 95 % interval over samples, of the mean, of the bounds) and the mean
        variance and mutual information inside the outer bound."""
        self._require()
        cm3 = self.voxel_volume_cm3
        volumes = np.stack(self.sample_volumes).astype(float) * cm3
        weights = np.asarray(self.sample_weights)
        mean_masks = structure_masks(self.mean(), self.space)
        inner, outer = self.bounds()
        variance = structure_channels(self.variance(), self.space)
        information = self.mutual_information()
        rows = []
        for index, (name, score) in enumerate(zip(self.space.structures, self.quality(mean_masks))):
            low, high = weighted_quantiles(volumes[:, index], weights, (0.025, 0.975))
            region = outer[index]
            rows.append(StructureSummary(
                name=name, quality=float(score), volume_mean=float(np.average(volumes[:, index], weights=weights)),
                volume_low=low, volume_high=high, volume_of_mean=float(mean_masks[index].sum() * cm3),
                volume_inner=float(inner[index].sum() * cm3), volume_outer=float(region.sum() * cm3),
                mean_variance_outer=float(variance[index][region].mean()) if region.any() else 0.0,
                mean_mutual_information_outer=float(information[region].mean()) if region.any() else 0.0))
        return rows
