"""Calibration of probability maps: how far a model's voxel probabilities are from the frequencies it is right.

- ``metrics``: :class:`ReliabilityHistogram` (fine bins filled case by case; ECE, adaptive ECE, MCE, Brier score,
  reliability tables), :func:`compute_calibration`, :func:`near_structure_box` (the region near a structure);
- ``folder``: :func:`evaluate_probabilities`, ``radconf_evaluate --probabilities``: a folder of ``CASE.npz`` against
  reference label maps and, optionally, several readers' masks;
- ``plots``: reliability diagrams.
"""
from __future__ import annotations

from radconf.calibration.folder import CalibrationResult, Structure, evaluate_probabilities
from radconf.calibration.metrics import (
    FINE_BINS,
    ReliabilityBin,
    ReliabilityHistogram,
    calibration_metrics,
    compute_calibration,
    near_structure_box,
)

__all__ = [
    "FINE_BINS",
    "CalibrationResult",
    "ReliabilityBin",
    "ReliabilityHistogram",
    "Structure",
    "calibration_metrics",
    "compute_calibration",
    "evaluate_probabilities",
    "near_structure_box",
]
