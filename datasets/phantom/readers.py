"""Simulated readers contouring the GTV several times (raw material for multi-reader label fusion).

A reader's contour is the level set ``sdf(v) < bias_reader + noise_trial(v)`` of the true GTV's signed distance
(mm, negative inside): ``bias_reader`` is the reader's systematic tendency to contour generously (> 0) or tightly
(< 0), fixed for the whole dataset; ``noise_trial`` is a smooth random boundary displacement drawn anew for every
trial. Some trials are missing, as in clinical multi-reader studies; every reader keeps at least one trial.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from radconf.datasets.phantom.shapes import bounding_box, smooth_field


@dataclass(frozen=True)
class ReaderModel:
    """Parameters of the simulated readers.

    Attributes:
        n_readers: number of readers.
        n_trials: repeated contouring sessions per reader.
        bias_sd_mm: spread of the readers' systematic margins (drawn once per dataset).
        trial_noise_sd_mm: amplitude of each trial's smooth boundary displacement.
        trial_noise_correlation_mm: spatial correlation length of that displacement.
        missing_trial_probability: chance that a trial is absent.
    """

    n_readers: int = 4
    n_trials: int = 3
    bias_sd_mm: float = 1.0
    trial_noise_sd_mm: float = 1.0
    trial_noise_correlation_mm: float = 8.0
    missing_trial_probability: float = 0.15


def reader_biases(model: ReaderModel, dataset_seed: int) -> np.ndarray:
    """Each reader's systematic margin in mm; depends only on the dataset seed, so it is the same in every case."""
    return np.random.default_rng([dataset_seed, 999_999]).normal(0.0, model.bias_sd_mm, size=model.n_readers)


def reader_names(model: ReaderModel) -> list[str]:
    return [f"reader{r + 1}" for r in range(model.n_readers)]


def simulate_readers(gtv_sdf_mm: np.ndarray, spacing: tuple[float, float, float], model: ReaderModel,
                     dataset_seed: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draws every available (reader, trial) GTV contour of one case.

    Args:
        gtv_sdf_mm: signed distance to the true GTV (mm, negative inside), numpy (z, y, x).
        spacing: voxel spacing (z, y, x) in mm.
        model: reader parameters.
        dataset_seed: seed of the dataset (fixes the readers' biases across cases).
        rng: the case's random generator (trial noise, missing trials).

    Returns:
        ``{"reader<r>_trial<t>": uint8 mask}`` for the trials that exist, in reader/trial order.
    """
    biases = reader_biases(model, dataset_seed)
    reach = float(np.max(np.abs(biases))) + 5.0 * model.trial_noise_sd_mm + 2.0
    margin = tuple(int(np.ceil(reach / s)) + 1 for s in spacing)
    box = bounding_box(gtv_sdf_mm <= reach, margin)
    sdf = gtv_sdf_mm[box]
    masks: dict[str, np.ndarray] = {}
    for reader, bias in zip(reader_names(model), biases):
        present = rng.random(model.n_trials) >= model.missing_trial_probability
        if not present.any():
            present[rng.integers(model.n_trials)] = True
        for trial in range(model.n_trials):
            noise = model.trial_noise_sd_mm * smooth_field(sdf.shape, spacing, model.trial_noise_correlation_mm, rng)
            if not present[trial]:
                continue  # drawn anyway so that the remaining trials do not depend on which ones are missing
            full = np.zeros(gtv_sdf_mm.shape, np.uint8)
            full[box] = sdf < bias + noise
            masks[f"{reader}_trial{trial + 1}"] = full
    return masks
