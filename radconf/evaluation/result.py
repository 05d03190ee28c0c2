"""What a folder evaluation returns: :class:`EvaluationResult`, :class:`EvaluationWarning` and the names of the
continuous (confidence-level) metrics.

Kept apart from :mod:`.folder` (which computes a result) and :mod:`.report` (which writes one), so that both depend
on this module and never on each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from radconf.evaluation.summary import Summary

#: per-case metrics of the continuous (confidence-level) evaluation
CONTINUOUS_METRICS = (
    "continuous_dice",
    "continuous_accuracy",
    "continuous_sensitivity",
    "continuous_specificity",
    "mean_level_dice",
)


class EvaluationWarning(UserWarning):
    """Something the user should know about an evaluation that does not stop it (missing or extra cases)."""


@dataclass
class EvaluationResult:
    """What :func:`~radconf.evaluation.folder.evaluate_folders` computed.

    Attributes:
        rows: one dict per case x structure (keys ``case``, ``structure``, ``label`` and every metric column).
        summary: ``{structure: {metric: {mean, sd, median, min, max, n, n_nan, n_inf, worst_case, worst_value}}}``.
        mean_dice: mean over structures of the per-structure mean Dice.
        cases: evaluated case ids.
        missing_cases: reference cases without a prediction (only with ``allow_missing``).
        extra_predictions: prediction cases without a reference (not evaluated).
        metrics: metric column names in order.
        settings: the settings used (recorded in summary.json).
        continuous_rows: confidence-level mode only: one dict per case with the continuous metrics.
        calibration: confidence-level mode only: pooled calibration table (one dict per predicted level).
        joint_counts: confidence-level mode only: pooled (K+1)x(K+1) counts ``[predicted level, reference level]``.
        files: output files written (name -> path), empty without ``output_dir``.
    """

    rows: list[dict[str, Any]]
    summary: Summary
    mean_dice: float
    cases: list[str]
    missing_cases: list[str]
    extra_predictions: list[str]
    metrics: list[str]
    settings: dict[str, Any]
    continuous_rows: list[dict[str, Any]] = field(default_factory=list)
    calibration: list[dict[str, float]] = field(default_factory=list)
    joint_counts: np.ndarray | None = None
    files: dict[str, Path] = field(default_factory=dict)
