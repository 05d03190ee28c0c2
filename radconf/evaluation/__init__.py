"""Evaluation of radiotherapy contours: overlap, surface distances in mm, confidence maps, statistics.

Public API (arrays in numpy (z, y, x) order, spacing in the same order: ``image.GetSpacing()[::-1]``)::

    from radconf.evaluation import evaluate_folders, compute_metrics
    result = evaluate_folders(reference_dir=..., prediction_dir=..., output_dir=...)
    metrics = compute_metrics(reference_mask, prediction_mask, spacing_mm=(2.5, 1.0, 1.0))

Modules: :mod:`.masks` (mask-pair checks, bounding boxes), :mod:`.surface` (surfel distances, the expensive step,
and its cheap metrics), :mod:`.boundary` (MONAI-style boundary-voxel variant), :mod:`.binary` (overlap and volumes),
:mod:`.metrics` (all of one structure), :mod:`.continuous` (continuous Dice & co.), :mod:`.levels` (confidence-level
maps), :mod:`.per_case` (one case of a folder), :mod:`.folder` (folders), :mod:`.result` (what a folder evaluation
returns), :mod:`.summary`, :mod:`.report`, :mod:`.plots`, :mod:`.statistics` and :mod:`.compare` (paired tests with
BKY/BH correction). Images and tables are read and written by :mod:`radconf.io`. Dependencies point one way:
folder -> per_case -> metrics -> surface -> masks, and folder -> report -> result. Conventions are documented in
``documentation/evaluation.md``.
"""
from __future__ import annotations

from radconf.evaluation.binary import OverlapCounts, binary_metrics
from radconf.evaluation.compare import ComparisonResult, compare_methods
from radconf.evaluation.continuous import (
    ContinuousCounts,
    continuous_metrics,
    enlarged_reference_box,
)
from radconf.evaluation.folder import evaluate_folders
from radconf.evaluation.levels import LevelMapEvaluation, evaluate_level_maps
from radconf.evaluation.metrics import (
    StructureMetrics,
    compute_metrics,
    metric_names,
    surface_dice_key,
)
from radconf.evaluation.result import EvaluationResult, EvaluationWarning
from radconf.evaluation.statistics import (
    benjamini_hochberg,
    paired_tests,
    two_stage_bky,
)
from radconf.evaluation.surface import (
    HD_CONVENTIONS,
    SurfaceDistances,
    average_surface_distances,
    average_symmetric_surface_distance,
    compute_surface_distances,
    hausdorff_max,
    mean_surface_distance,
    robust_hausdorff,
    surface_dice,
)

__all__ = [
    "HD_CONVENTIONS",
    "ComparisonResult",
    "ContinuousCounts",
    "EvaluationResult",
    "EvaluationWarning",
    "LevelMapEvaluation",
    "OverlapCounts",
    "StructureMetrics",
    "SurfaceDistances",
    "average_surface_distances",
    "average_symmetric_surface_distance",
    "benjamini_hochberg",
    "binary_metrics",
    "compare_methods",
    "compute_metrics",
    "compute_surface_distances",
    "continuous_metrics",
    "enlarged_reference_box",
    "evaluate_folders",
    "evaluate_level_maps",
    "hausdorff_max",
    "mean_surface_distance",
    "metric_names",
    "paired_tests",
    "robust_hausdorff",
    "surface_dice",
    "surface_dice_key",
    "two_stage_bky",
]
