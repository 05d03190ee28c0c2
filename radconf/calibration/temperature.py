"""Temperature scaling of a model's probabilities, fitted on its validation predictions (``radconf_calibrate``).

nnU-Net exports probabilities, not logits, but scaling them is exact all the same: a softmax model's logits are
``log p`` up to a constant per voxel, so ``p_T = softmax(log p / T)`` (one ``T``, or ``T_c`` per class); a sigmoid
channel (nnU-Net regions, a confidence model's ``P(level >= c)``) has logit ``log(p / (1 - p))``, so
``p_T = sigmoid(logit(p) / T)``. Probabilities are clipped to ``[1e-7, 1]`` (sigmoid: ``1 - 1e-7``). One T keeps
the argmax (and every 0.5 threshold) of each voxel; the segmentation does not change, only how sure it says it is.

The temperature minimises the voxel negative log-likelihood on validation cases only (cross-validation folds, never
fold ``all``, or a separate validation split), and is written to ``<model folder>/temperature.json``.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput

TEMPERATURE_FILE = "temperature.json"
SOFTMAX_KINDS = ("softmax", "level_softmax")
SIGMOID_KINDS = ("regions", "cumulative")
EPSILON = 1e-7
LOG_BOUNDS = (math.log(0.05), math.log(20.0))
BOX_PADDING = 8
ECE_BINS = 15
_RECORD_KEYS = ("model", "trainer", "plans", "configuration", "dataset", "labels", "kind", "per_structure",
                "temperatures")


@dataclass(frozen=True)
class TemperatureScaling:
    """A fitted temperature scaling: the model's export kind and one temperature (or one per channel)."""

    kind: str
    temperatures: tuple[float, ...]
    per_structure: bool = False

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """The scaled probabilities (float32, channels first) of the model's exported ``probabilities``."""
        return apply_temperature(probabilities, self.kind, self.temperatures)


@dataclass
class VoxelSample:
    """The fitted voxels: ``probabilities`` (n, C) float32; ``targets`` class ids (n,) or (sigmoid) (n, C) bool."""

    probabilities: np.ndarray
    targets: np.ndarray


def _check_kind(kind: str) -> str:
    if kind not in SOFTMAX_KINDS + SIGMOID_KINDS:
        raise InvalidInput(f"Probability kind {kind!r} is not one of {', '.join(SOFTMAX_KINDS + SIGMOID_KINDS)} "
                           f"(radconf.ensembles.space.member_space gives a model's kind).")
    return kind


def _temperature_vector(temperatures: float | Sequence[float], channels: int) -> np.ndarray:
    values = np.atleast_1d(np.asarray(temperatures, dtype=np.float64))
    if values.ndim != 1 or not np.isfinite(values).all() or (values <= 0).any():
        raise InvalidInput(f"Temperatures {values.tolist()} must be finite numbers greater than 0.")
    if values.size not in (1, channels):
        raise InvalidInput(f"{values.size} temperatures do not fit probabilities with {channels} channels; give one "
                           f"temperature, or one per channel.")
    return values


def apply_temperature(probabilities: np.ndarray, kind: str, temperatures: float | Sequence[float]) -> np.ndarray:
    """Temperature-scaled probabilities.

    Args:
        probabilities: channels first, (C, ...), as nnU-Net exports them.
        kind: ``softmax``/``level_softmax`` (classes summing to 1) or ``regions``/``cumulative`` (sigmoid channels).
        temperatures: one temperature, or one per channel (``T_c`` divides channel c's logit).

    Returns:
        float32 array of the same shape (softmax kinds: each voxel sums to 1). ``T = 1`` gives back the (clipped)
        input; one temperature keeps every voxel's argmax and 0.5 thresholds.

    Raises:
        InvalidInput: an unknown kind, a non-positive or non-finite temperature, a count that fits no channel.
    """
    _check_kind(kind)
    p = np.asarray(probabilities)
    if p.ndim < 2:
        raise InvalidInput(f"Probabilities of shape {p.shape} are not channels first (C, ...).")
    scale = (1.0 / _temperature_vector(temperatures, p.shape[0])).astype(np.float32)
    scale = scale.reshape((-1,) + (1,) * (p.ndim - 1))
    z = np.clip(p.astype(np.float32), EPSILON, 1.0 if kind in SOFTMAX_KINDS else 1.0 - EPSILON)
    if kind in SOFTMAX_KINDS:
        np.log(z, out=z)
        z *= scale
        z -= z.max(axis=0, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=0, keepdims=True)
        return z
    from scipy.special import expit, logit

    return expit(logit(z) * scale).astype(np.float32)


# ------------------------------------------------------------------------------------------------ fitting
def _case_arrays(probabilities, reference, kind: str, number: int) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(probabilities), np.asarray(reference)
    if p.ndim < 2 or not np.isfinite(p).all():
        raise InvalidInput(f"Case {number + 1}: probabilities must be finite, channels first; got shape {p.shape}.")
    softmax = kind in SOFTMAX_KINDS
    if y.shape != (p.shape[1:] if softmax else p.shape) or (softmax and y.size and (
            y.dtype.kind not in "iub" or y.min() < 0 or y.max() >= len(p))):
        raise InvalidInput(f"Case {number + 1}: the reference must be " + (
            f"a label map of shape {p.shape[1:]} with ids 0..{len(p) - 1}" if softmax else
            f"bool targets of shape {p.shape}") + f", got {y.dtype} {y.shape}.")
    return p, y.astype(np.int64 if softmax else bool)


def check_sampling(kind: str, max_voxels: int, seed: int) -> None:
    _check_kind(kind)
    for name, value, low in (("max_voxels", max_voxels, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInput(f"{name} {value!r} must be a whole number, {low} or more.")


def _padded_box(mask: np.ndarray, padding: int) -> tuple[slice, ...] | None:
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return None
        box.append(slice(max(0, hits[0] - padding), min(mask.shape[axis], hits[-1] + 1 + padding)))
    return tuple(box)


def _case_voxels(p: np.ndarray, y: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Flat indices: the padded box of (reference or p >= 0.5 of a structure), plus as many voxels outside it."""
    if kind in SOFTMAX_KINDS:
        foreground = (p[1:] >= 0.5).any(axis=0) | (y > 0)
    else:
        foreground = (p >= 0.5).any(axis=0) | y.any(axis=0)
    box = _padded_box(foreground, BOX_PADDING)
    if box is None:
        return np.empty(0, np.int64)
    inside = np.zeros(foreground.shape, bool)
    inside[box] = True
    box_voxels, rest = np.flatnonzero(inside), np.flatnonzero(~inside)
    count = min(box_voxels.size, rest.size)
    sample = np.sort(rest[rng.choice(rest.size, size=count, replace=False)]) if count else rest[:0]
    return np.concatenate([box_voxels, sample])


def sample_voxels(cases: Iterable[tuple[np.ndarray, np.ndarray]], kind: str, max_voxels: int = 2_000_000,
                  seed: int = 0) -> VoxelSample:
    """The voxels of :func:`fit_temperature` (its docstring says which); at most ``max_voxels`` held at a time."""
    check_sampling(kind, max_voxels, seed)
    rng = np.random.default_rng(seed)
    keys, rows, targets = np.empty(0), [], []
    for number, (probabilities, reference) in enumerate(cases):
        p, y = _case_arrays(probabilities, reference, kind, number)
        index = _case_voxels(p, y, kind, rng)
        case_keys = rng.random(index.size)  # a uniform key per voxel: the smallest max_voxels keys are kept
        if index.size > max_voxels:
            keep = np.sort(np.argpartition(case_keys, max_voxels - 1)[:max_voxels])
            index, case_keys = index[keep], case_keys[keep]
        keys = np.concatenate([keys, case_keys])
        rows.append(p.reshape(len(p), -1)[:, index].T.astype(np.float32))
        targets.append(y.reshape(-1)[index] if kind in SOFTMAX_KINDS else y.reshape(len(y), -1)[:, index].T)
        if len(rows) > 1:
            rows, targets = [np.concatenate(rows)], [np.concatenate(targets)]
        if keys.size > max_voxels:
            keep = np.sort(np.argpartition(keys, max_voxels - 1)[:max_voxels])
            keys, rows, targets = keys[keep], [rows[0][keep]], [targets[0][keep]]
    if not rows or keys.size == 0:
        raise InvalidInput("No voxels to fit a temperature on: no case has a structure in its reference or its "
                           "probabilities; give validation cases that show the structures.")
    return VoxelSample(rows[0], targets[0])


def _logits(sample: VoxelSample, kind: str) -> np.ndarray:
    p = sample.probabilities.astype(np.float64)
    if kind in SOFTMAX_KINDS:
        return np.log(np.clip(p, EPSILON, 1.0))
    p = np.clip(p, EPSILON, 1.0 - EPSILON)
    return np.log(p) - np.log1p(-p)


def _softmax_nll(log_t: np.ndarray, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean NLL of softmax(z / T) and its gradient over log T (one value, or one per class)."""
    from scipy.special import logsumexp

    s = z * np.exp(-np.asarray(log_t, dtype=np.float64))
    lse = logsumexp(s, axis=1)
    rows = np.arange(len(y))
    q = np.exp(s - lse[:, None])
    q[rows, y] -= 1.0
    gradient = -(q * s).mean(axis=0)  # d NLL / d s_c = q_c - [y = c]; d s_c / d log T_c = -s_c
    return float(np.mean(lse - s[rows, y])), gradient if np.ndim(log_t) else np.array(gradient.sum())


def _sigmoid_nll(log_t: float, z: np.ndarray, y: np.ndarray) -> float:
    s = z * math.exp(-log_t)
    return float(np.mean(np.logaddexp(0.0, s) - y * s))


def _fit_log_t(nll) -> float:
    from scipy.optimize import minimize_scalar

    return float(minimize_scalar(nll, bounds=LOG_BOUNDS, method="bounded", options={"xatol": 1e-5}).x)


def fit_sample(sample: VoxelSample, kind: str, per_structure: bool = False) -> np.ndarray:
    """The temperatures minimising the NLL of ``sample`` (see :func:`fit_temperature`)."""
    z, y = _logits(sample, _check_kind(kind)), sample.targets
    if kind in SOFTMAX_KINDS:
        single = _fit_log_t(lambda log_t: _softmax_nll(log_t, z, y)[0])
        if not per_structure:
            return np.array([math.exp(single)])
        from scipy.optimize import minimize

        result = minimize(_softmax_nll, np.full(z.shape[1], single), args=(z, y), jac=True, method="L-BFGS-B",
                          bounds=[LOG_BOUNDS] * z.shape[1])
        return np.exp(result.x)
    y = y.astype(np.float64)
    if not per_structure:
        return np.array([math.exp(_fit_log_t(lambda log_t: _sigmoid_nll(log_t, z, y)))])
    return np.array([math.exp(_fit_log_t(lambda log_t, c=c: _sigmoid_nll(log_t, z[:, c], y[:, c])))
                     for c in range(z.shape[1])])


def fit_temperature(cases: Iterable[tuple[np.ndarray, np.ndarray]], kind: str, per_structure: bool = False,
                    max_voxels: int = 2_000_000, seed: int = 0) -> np.ndarray:
    """Fits temperature scaling by minimising the voxel negative log-likelihood over ``log T``.

    Voxels: of each case, every voxel of the bounding box of (reference structure OR p >= 0.5 of any structure),
    padded by 8 voxels on each side, plus an equally large uniform random sample of the voxels outside that box (all
    of them when fewer); a case without any structure adds none. Over all cases at most ``max_voxels`` are kept, a
    uniform random subset (each voxel draws a uniform key, the smallest keys stay), so memory stays bounded. Both
    draws come from one generator seeded with ``seed``: the same cases in the same order give the same voxels.

    One temperature: bounded 1-D search on ``log T`` in ``[log 0.05, log 20]``. Per structure: softmax kinds fit one
    ``T_c`` per class (background included) jointly with L-BFGS-B, started from the single temperature; sigmoid
    kinds fit each channel on its own (its own 1-D search).

    Args:
        cases: ``(probabilities, reference)`` pairs: probabilities channels first (C, ...); the reference a label
            map of class ids (softmax kinds, shape ``(...)``) or the channels' bool targets (sigmoid kinds, C, ...).
        kind: ``softmax``, ``level_softmax``, ``regions`` or ``cumulative``.
        per_structure: one temperature per channel instead of one for all.
        max_voxels: the cap on the voxels fitted.
        seed: seed of the voxel sampling.

    Returns:
        The temperatures, shape (1,) or (C,).

    Raises:
        InvalidInput: an unknown kind, a reference that does not fit its probabilities, no voxels at all.
    """
    return fit_sample(sample_voxels(cases, kind, max_voxels, seed), kind, per_structure)


def _ece(confidence: np.ndarray, outcome: np.ndarray) -> float:
    """Expected calibration error over 15 equal-width bins of ``confidence``."""
    index = np.minimum((confidence * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    gaps = np.bincount(index, weights=outcome - confidence, minlength=ECE_BINS)
    return float(np.abs(gaps).sum() / max(confidence.size, 1))


def sample_scores(sample: VoxelSample, kind: str, temperatures: Sequence[float]) -> tuple[float, float]:
    """NLL and ECE of the scaled sample. ECE: softmax kinds, the top class's probability against being right;
    sigmoid kinds, every channel's probability against its target."""
    z, y = _logits(sample, kind), sample.targets
    log_t = np.log(np.broadcast_to(np.asarray(temperatures, np.float64), (z.shape[1],)))
    q = apply_temperature(sample.probabilities.T, kind, temperatures).astype(np.float64)
    if kind in SOFTMAX_KINDS:
        return _softmax_nll(log_t, z, y)[0], _ece(q.max(axis=0), (q.argmax(axis=0) == y).astype(np.float64))
    nll = float(np.mean([_sigmoid_nll(log_t[c], z[:, c], y[:, c].astype(np.float64)) for c in range(z.shape[1])]))
    return nll, _ece(q.ravel(), y.T.ravel().astype(np.float64))


# ------------------------------------------------------------------------------------------------ temperature.json
def default_temperature_path(model_files) -> Path:
    """``<model folder>/temperature.json`` of a :class:`radconf.models.ModelFiles`."""
    return Path(model_files.folder) / TEMPERATURE_FILE


def channel_names(dataset_json: dict, kind: str) -> list[str]:
    """The names of a model's exported channels: classes by id (softmax kinds), structures in order (sigmoid)."""
    labels = dataset_json["labels"]
    if kind in SOFTMAX_KINDS:
        return [name for name, _ in sorted(labels.items(), key=lambda item: int(item[1]))]
    return [name for name in labels if name != "background"]


def scaling_of(record, path: Path, channels: int | None, fix: str) -> TemperatureScaling:
    """The scaling a record describes, its temperatures checked (count against ``channels`` when known)."""
    missing = [key for key in _RECORD_KEYS if not isinstance(record, dict) or key not in record]
    if missing:
        raise InvalidInput(f"{path} is not a temperature file of radconf_calibrate (no {', '.join(missing)}); {fix}.")
    values, kind, per_structure = record["temperatures"], record["kind"], record["per_structure"]
    if kind not in SOFTMAX_KINDS + SIGMOID_KINDS or not isinstance(per_structure, bool):
        raise InvalidInput(f"{path}: kind {kind!r} / per_structure {per_structure!r} are not radconf_calibrate's; "
                           f"{fix}.")
    numbers = isinstance(values, list) and values and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numbers or not all(math.isfinite(v) and v > 0 for v in values):
        raise InvalidInput(f"{path}: temperatures {values!r} must be a list of finite numbers greater than 0; {fix}.")
    expected = 1 if not per_structure else len(values) if channels is None else channels
    if len(values) != expected:
        raise InvalidInput(f"{path} holds {len(values)} temperature(s) but this model needs {expected} "
                           f"({'one per channel' if per_structure else 'one, per_structure is false'}); {fix}.")
    return TemperatureScaling(kind, tuple(float(v) for v in values), per_structure)


def write_temperature(path: str | Path, record: dict) -> Path:
    """Writes a ``temperature.json`` record atomically (checked first: :func:`read_temperature`'s rules)."""
    path = Path(path)
    scaling_of(record, path, None, "this record cannot be written")
    from radconf.io.files import atomic_write_json

    return atomic_write_json(path, record)


def read_temperature(path: str | Path, model) -> TemperatureScaling:
    """The temperature scaling of ``model`` (a :class:`radconf.models.ModelFiles`) in ``path``.

    Raises:
        MissingInput: no such file.
        InvalidInput: corrupt JSON, a file of another model (dataset, trainer, plans, configuration or labels
            differ), temperatures that are not finite and > 0, or a count that does not fit the model's channels.
    """
    from radconf.ensembles.folders import export_channels
    from radconf.ensembles.space import member_space
    from radconf.io.dataset_json import read_json_file

    path, spec = Path(path), model.spec
    fix = (f"fit it again with radconf_calibrate -d {spec.dataset} -tr {spec.trainer} -p {spec.plans} -c "
           f"{spec.configuration}, or give this model's own {TEMPERATURE_FILE}")
    record = read_json_file(path, fix=fix)
    scaling_of(record, path, None, fix)
    ours = {"dataset": model.folder.parent.name, "trainer": spec.trainer, "plans": spec.plans,
            "configuration": spec.configuration, "labels": model.dataset_json["labels"]}
    differing = [key for key in ours if record[key] != ours[key] and (key != "dataset" or not _same_dataset(
        record[key], ours[key]))]
    if differing:
        raise InvalidInput(f"{path} was fitted for model {record['model']}, not {model_name(spec)} (its "
                           f"{', '.join(differing)} differ); {fix}.")
    space, kind = member_space(model.dataset_json)
    if record["kind"] != kind:
        raise InvalidInput(f"{path} scales {record['kind']} probabilities but {model_name(spec)} exports {kind}; "
                           f"{fix}.")
    return scaling_of(record, path, export_channels(kind, space), fix)


def _same_dataset(theirs, ours: str) -> bool:
    from radconf.raw.checks import dataset_id_of

    try:
        return dataset_id_of(theirs) == dataset_id_of(ours)
    except InvalidInput:
        return False


def model_name(spec) -> str:
    return f"{spec.dataset}:{spec.trainer}:{spec.plans}:{spec.configuration}"
