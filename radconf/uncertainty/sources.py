"""Where prediction samples come from: one interface for Monte Carlo dropout, test-time augmentation, the folds of a
model and the members of an ensemble.

A ``Runner`` is one loaded model (nnU-Net's predictor) that turns a preprocessed case into probabilities on the image
grid in the output space (temperature-scaled first when the model is calibrated). A sampler yields ``(probabilities,
weight)`` pairs for one case, one at a time, so that ``SampleAccumulator`` holds a fixed amount of memory:

- ``mc_dropout``: N passes with the dropout (or DropBlock) modules sampling and everything else in eval mode; pass i
  seeds torch with ``seed + i``, so a run repeats; no mirroring (a sample is one stochastic network per tile).
- ``tta``: one pass per flip of the allowed mirroring axes (the identity first), each flipped back; optionally
  ``tta_affine`` more passes on inputs rotated in the slice plane (uniform within +-5 degrees) and scaled (0.95 to
  1.05) about the image centre, in mm (the preprocessed spacing), the logits mapped back by the inverse transform
  (trilinear; sample k draws its transform from ``seed + k``).
- ``folds``: one pass per fold of the model (nnU-Net would average them).
- ``ensemble``: one pass per member, weighted by the ensemble weights.
- ``single``: one pass (folds averaged, mirroring as asked): a calibrated prediction without uncertainty.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from radconf.errors import InvalidInput

SOURCES = ("mc_dropout", "tta", "folds", "ensemble")


@dataclass(frozen=True)
class UncertaintyOptions:
    """How the samples of each case are drawn.

    Attributes:
        source: one of ``SOURCES``.
        samples: ``mc_dropout``: the number of passes (required, >= 2); ``tta``: at most this many flips (default
            all); ``folds``/``ensemble``: not used (one sample per fold/member).
        seed: ``mc_dropout``: pass i seeds torch with ``seed + i``.
        tta_axes: ``tta``: the spatial axes to mirror along (default: those the model's checkpoint allows).
        tta_affine: ``tta``: this many more samples on small random rotations and scalings of the input.
        save_maps: write the per-voxel maps (entropies, variances, bounds); the JSON and CSV are always written.
    """

    source: str
    samples: int | None = None
    seed: int = 0
    tta_axes: tuple[int, ...] | None = None
    tta_affine: int = 0
    save_maps: bool = True

    def check(self, num_models: int) -> None:
        """Refuses options that cannot give two or more samples, before anything runs."""
        if self.source not in SOURCES:
            raise InvalidInput(f"--uncertainty {self.source!r} is not one of {', '.join(SOURCES)}.")
        if self.samples is not None and (isinstance(self.samples, bool) or int(self.samples) != self.samples
                                         or self.samples < 2):
            raise InvalidInput(f"--mc_samples {self.samples!r}: give at least 2 samples (seed 004 draws 50).")
        if self.source == "mc_dropout" and self.samples is None:
            raise InvalidInput("--uncertainty mc_dropout needs --mc_samples N (N >= 2; seed 004 draws 50).")
        if self.source in ("folds", "ensemble") and self.samples is not None:
            raise InvalidInput(f"--mc_samples applies to mc_dropout and tta; --uncertainty {self.source} draws one "
                               f"sample per {'fold' if self.source == 'folds' else 'member'}.")
        if self.source == "ensemble" and num_models < 2:
            raise InvalidInput("--uncertainty ensemble needs at least two members (-m SPEC SPEC ... or --weights).")
        if self.source != "ensemble" and num_models > 1:
            raise InvalidInput(f"--uncertainty {self.source} samples one model; for several models use --uncertainty "
                               f"ensemble.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2 ** 32:
            raise InvalidInput(f"--seed {self.seed!r} must be a whole number in 0..2**32-1.")
        if self.tta_axes is not None and (self.source != "tta" or len(set(self.tta_axes)) != len(self.tta_axes)
                                          or any(a not in (0, 1, 2) for a in self.tta_axes)):
            raise InvalidInput(f"--tta_axes {list(self.tta_axes)}: distinct spatial axes among 0 1 2, with "
                               f"--uncertainty tta only.")
        if self.tta_affine and (self.source != "tta" or not isinstance(self.tta_affine, int) or self.tta_affine < 0):
            raise InvalidInput(f"--tta_affine {self.tta_affine!r}: a whole number of extra samples, with "
                               f"--uncertainty tta only.")


@dataclass
class Runner:
    """One loaded model: its predictor, how its exports map into the output space, its temperature scaling."""

    spec: str
    predictor: object
    export_kind: str
    space: object
    temperature: object = None  # radconf.calibration.temperature.TemperatureScaling
    plans_key: tuple = ()  # runners with the same (dataset, plans, configuration) share one preprocessing
    cache: dict = field(default_factory=dict)  # shared between runners: the preprocessed current case

    def preprocess(self, files: Sequence[str]) -> tuple[object, dict]:
        """nnU-Net's preprocessing of one case (torch tensor, properties), shared by runners of the same plans."""
        import torch

        from radconf.inference import preprocess_case

        key = (self.plans_key, tuple(files))
        if key not in self.cache:
            if any(k[1] != key[1] for k in self.cache):
                self.cache.clear()  # a new case: the previous one's data is freed
            data, properties = preprocess_case(self.predictor, files)
            self.cache[key] = (torch.from_numpy(data), properties)
        return self.cache[key]

    def probabilities(self, logits, properties: dict) -> np.ndarray:
        """Logits of a pass -> probabilities on the image grid in the output space (calibrated when asked)."""
        from radconf.ensembles.space import to_space
        from radconf.nnunet_compat.export import probabilities_on_image_grid

        probabilities = probabilities_on_image_grid(logits, self.predictor, properties)
        if self.temperature is not None:
            probabilities = self.temperature.apply(probabilities)
        return to_space(probabilities, self.export_kind, self.space)

    def logits(self, data):
        import torch

        from radconf.timing import network_logits

        with torch.no_grad():
            return network_logits(self.predictor, data)


def _seed_everything(seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def mc_dropout_samples(runner: Runner, files, count: int, seed: int) -> Iterator[tuple[np.ndarray, float]]:
    from radconf.nnunet_compat.sampling import dropout_kept_on, mirroring
    from radconf.uncertainty.dropout import dropout_modules

    data, properties = runner.preprocess(files)
    network = runner.predictor.network
    modules = [module for _, module in dropout_modules(network)]
    for index in range(count):
        _seed_everything(seed + index)
        with mirroring(runner.predictor, False), dropout_kept_on(network, modules):
            logits = runner.logits(data)
        yield runner.probabilities(logits, properties), 1.0


def tta_samples(runner: Runner, files, combinations: Sequence[tuple[int, ...]]) -> Iterator[tuple[np.ndarray, float]]:
    import torch

    from radconf.nnunet_compat.sampling import mirroring

    data, properties = runner.preprocess(files)
    for axes in combinations:
        flip = [a + 1 for a in axes]  # data and logits are (channels, spatial...)
        with mirroring(runner.predictor, False):
            flipped = torch.flip(data, flip) if flip else data
            logits = runner.logits(flipped)
        yield runner.probabilities(torch.flip(logits, flip) if flip else logits, properties), 1.0


MAX_DEGREES = 5.0
MAX_SCALE = 0.05


def affine_matrix(shape: Sequence[int], spacing: Sequence[float], degrees: float, scale: float) -> np.ndarray:
    """The 3 x 3 matrix, in ``torch.nn.functional.affine_grid``'s normalised coordinates (align_corners=True, axes in
    grid order x, y, z = last, middle, first array axis), of a rotation by ``degrees`` in the plane of the last two
    array axes and a scaling by ``scale``, both about the centre and in mm (so anisotropic voxels stay undistorted)."""
    angle = np.deg2rad(degrees)
    rotation = np.eye(3)
    rotation[1:, 1:] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    half_extent = np.array([(n - 1) * s / 2 if n > 1 else 1.0 for n, s in zip(shape, spacing)])
    physical = rotation / scale  # output mm -> input mm
    normalised = np.diag(1 / half_extent) @ physical @ np.diag(half_extent)  # array axis order
    return normalised[::-1, ::-1].copy()  # grid order


def _warp(volume, matrix: np.ndarray):
    """``volume`` (C, z, y, x) resampled at ``matrix`` x (output coordinates), trilinear, border values outside."""
    import torch
    import torch.nn.functional as F

    theta = torch.zeros(1, 3, 4, dtype=torch.float32)
    theta[0, :, :3] = torch.from_numpy(matrix.astype(np.float32))
    grid = F.affine_grid(theta, [1, volume.shape[0], *volume.shape[1:]], align_corners=True)
    return F.grid_sample(volume[None].float(), grid, mode="bilinear", padding_mode="border", align_corners=True)[0]


def affine_samples(runner: Runner, files, count: int, seed: int) -> Iterator[tuple[np.ndarray, float]]:
    from radconf.nnunet_compat.sampling import mirroring

    data, properties = runner.preprocess(files)
    spacing = list(runner.predictor.configuration_manager.spacing)
    spacing = [1.0] * (3 - len(spacing)) + spacing  # a 2D configuration: the slice axis is left alone
    for index in range(count):
        rng = np.random.default_rng(seed + index)
        degrees = rng.uniform(-MAX_DEGREES, MAX_DEGREES)
        scale = rng.uniform(1 - MAX_SCALE, 1 + MAX_SCALE)
        matrix = affine_matrix(data.shape[1:], spacing, degrees, scale)
        with mirroring(runner.predictor, False):
            logits = runner.logits(_warp(data, matrix))
        yield runner.probabilities(_warp(logits, np.linalg.inv(matrix)), properties), 1.0


def fold_samples(runner: Runner, files, use_mirroring: bool) -> Iterator[tuple[np.ndarray, float]]:
    from radconf.nnunet_compat.sampling import mirroring, single_fold

    data, properties = runner.preprocess(files)
    for index in range(len(runner.predictor.list_of_parameters)):
        with single_fold(runner.predictor, index), mirroring(runner.predictor, use_mirroring):
            logits = runner.logits(data)
        yield runner.probabilities(logits, properties), 1.0


def member_samples(runners: Sequence[Runner], weights: Sequence[float], files, use_mirroring: bool
                   ) -> Iterator[tuple[np.ndarray, float]]:
    from radconf.nnunet_compat.sampling import mirroring

    for runner, weight in zip(runners, weights):
        data, properties = runner.preprocess(files)
        with mirroring(runner.predictor, use_mirroring):
            logits = runner.logits(data)
        yield runner.probabilities(logits, properties), float(weight)


def case_properties(runner: Runner, files) -> dict:
    """nnU-Net's image properties of the case (for writing the segmentation with its reader/writer)."""
    return runner.preprocess(files)[1]
