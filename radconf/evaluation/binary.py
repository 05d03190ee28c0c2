"""Voxel-overlap metrics of one structure: Dice (VDSC), IoU, sensitivity, specificity, FPR, precision, volumes.

Counts are taken on the union bounding box only (everything outside it is a true negative), so the cost does not
grow with the image size. Arrays are in numpy axis order ((z, y, x) for SimpleITK arrays); the spacing, given in the
same order, is only used for volumes (a voxel is ``prod(spacing)`` mm^3; 1 cm^3 = 1000 mm^3).

Empty masks (no silently wrong number):

    metric             both empty   ref empty   pred empty   formula
    dice, iou          NaN          0.0         0.0          2TP/(2TP+FP+FN), TP/(TP+FP+FN)
    sensitivity (TPR)  NaN          NaN         0.0          TP/(TP+FN)
    precision (PPV)    NaN          0.0         NaN          TP/(TP+FP)
    specificity, FPR   defined      defined     defined      TN/(TN+FP), FP/(FP+TN)
    volumes (cm^3)     0.0          0.0 / V     V / 0.0      voxel count * voxel volume / 1000

Specificity and FPR depend on the image size (TN counts every background voxel of the image); they are NaN only if
the reference fills the whole image.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from radconf.evaluation.masks import union_bounding_box, validate_mask_pair


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


@dataclass(frozen=True)
class OverlapCounts:
    """Confusion counts of a reference/prediction mask pair plus the voxel volume.

    Attributes:
        tp: voxels in both masks.
        fp: voxels in the prediction only.
        fn: voxels in the reference only.
        tn: voxels in neither (over the whole image).
        voxel_volume_mm3: volume of one voxel in mm^3.
    """

    tp: int
    fp: int
    fn: int
    tn: int
    voxel_volume_mm3: float

    @classmethod
    def from_masks(
        cls,
        reference: np.ndarray,
        prediction: np.ndarray,
        spacing_mm: Sequence[float],
        *,
        box: tuple[slice, ...] | None | str = "auto",
    ) -> OverlapCounts:
        """Counts TP/FP/FN/TN; ``box`` is the union bounding box if already known (None: both masks empty)."""
        ref, pred, spacing = validate_mask_pair(reference, prediction, spacing_mm)
        if isinstance(box, str):
            box = union_bounding_box(ref, pred)
        voxel_volume = float(np.prod(spacing))
        if box is None:
            return cls(0, 0, 0, int(ref.size), voxel_volume)
        ref_c, pred_c = ref[box], pred[box]
        tp = int(np.count_nonzero(ref_c & pred_c))
        n_ref, n_pred = int(np.count_nonzero(ref_c)), int(np.count_nonzero(pred_c))
        return cls(tp, n_pred - tp, n_ref - tp, int(ref.size) - n_ref - n_pred + tp, voxel_volume)

    @property
    def dice(self) -> float:
        """Volumetric Dice 2TP/(2TP+FP+FN); NaN if both masks are empty."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def iou(self) -> float:
        """Intersection over union (Jaccard) TP/(TP+FP+FN); NaN if both masks are empty."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def sensitivity(self) -> float:
        """True positive rate TP/(TP+FN); NaN for an empty reference."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        """True negative rate TN/(TN+FP) over the image; NaN if the image has no reference-negative voxel."""
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def fpr(self) -> float:
        """False positive rate FP/(FP+TN) = 1 - specificity."""
        return _ratio(self.fp, self.fp + self.tn)

    @property
    def precision(self) -> float:
        """Positive predictive value TP/(TP+FP); NaN for an empty prediction."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def volume_ref_cm3(self) -> float:
        """Reference volume in cm^3."""
        return (self.tp + self.fn) * self.voxel_volume_mm3 / 1000.0

    @property
    def volume_pred_cm3(self) -> float:
        """Prediction volume in cm^3."""
        return (self.tp + self.fp) * self.voxel_volume_mm3 / 1000.0

    @property
    def volume_diff_cm3(self) -> float:
        """Prediction minus reference volume in cm^3 (positive = over-segmentation)."""
        return (self.fp - self.fn) * self.voxel_volume_mm3 / 1000.0

    def as_dict(self) -> dict[str, float]:
        """All overlap metrics by their radconf column names."""
        return {
            "dice": self.dice,
            "iou": self.iou,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "fpr": self.fpr,
            "precision": self.precision,
            "volume_ref_cm3": self.volume_ref_cm3,
            "volume_pred_cm3": self.volume_pred_cm3,
            "volume_diff_cm3": self.volume_diff_cm3,
        }


def binary_metrics(
    reference: np.ndarray, prediction: np.ndarray, spacing_mm: Sequence[float] | None = None
) -> dict[str, float]:
    """Overlap metrics and volumes of one structure (function twin of :class:`OverlapCounts`).

    Args:
        reference: reference mask (bool), numpy axis order.
        prediction: predicted mask of the same shape.
        spacing_mm: spacing in the arrays' axis order (used for volumes only); None means 1 mm per axis.

    Returns:
        ``{"dice", "iou", "sensitivity", "specificity", "fpr", "precision", "volume_ref_cm3", "volume_pred_cm3",
        "volume_diff_cm3"}``.

    Raises:
        ValueError: if the masks or the spacing are invalid.
    """
    if spacing_mm is None:
        spacing_mm = (1.0,) * np.ndim(reference)
    return OverlapCounts.from_masks(reference, prediction, spacing_mm).as_dict()
