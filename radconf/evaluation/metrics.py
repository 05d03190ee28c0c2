"""All metrics of one structure: :class:`StructureMetrics` and its function twin :func:`compute_metrics`.

The union bounding box is found once; the overlap counts and the surface distances (one feature transform per mask,
on that box) are computed once; every number is derived from them. Arrays are in numpy axis order ((z, y, x) for
SimpleITK arrays, i.e. ``sitk.GetArrayFromImage``) and the spacing is given in the same order
(``image.GetSpacing()[::-1]``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from radconf.errors import InvalidInput
from radconf.evaluation.binary import OverlapCounts
from radconf.evaluation.boundary import compute_voxel_boundary_distances
from radconf.evaluation.masks import union_bounding_box, validate_mask_pair
from radconf.evaluation.surface import (
    HD_CONVENTIONS,
    SurfaceDistances,
    compute_surface_distances,
)

#: Overlap and volume metrics, in column order.
OVERLAP_METRICS = (
    "dice",
    "iou",
    "sensitivity",
    "specificity",
    "fpr",
    "precision",
    "volume_ref_cm3",
    "volume_pred_cm3",
    "volume_diff_cm3",
)
#: Distance metrics (mm), in column order; surface Dice columns come first (one per tolerance).
DISTANCE_METRICS = ("hd95_mm", "hd_max_mm", "assd_mm", "msd_mm", "asd_ref_to_pred_mm", "asd_pred_to_ref_mm")
#: Metrics where larger is worse (used to pick the worst case); every other ratio metric: smaller is worse.
LOWER_IS_BETTER = frozenset(DISTANCE_METRICS) | {"fpr"}
#: Metrics without a better/worse direction.
UNDIRECTED = frozenset({"volume_ref_cm3", "volume_pred_cm3", "volume_diff_cm3"})


def surface_dice_key(tolerance_mm: float) -> str:
    """Column name of the surface Dice at a tolerance, e.g. ``surface_dice_2.0mm``."""
    return f"surface_dice_{float(tolerance_mm)}mm"


def metric_names(tolerances_mm: Sequence[float] = (2.0, 3.0), surface: bool = True) -> list[str]:
    """Names of the metrics :func:`compute_metrics` returns, in column order."""
    names = list(OVERLAP_METRICS)
    if surface:
        names += [surface_dice_key(t) for t in tolerances_mm] + list(DISTANCE_METRICS)
    return names


def _check_tolerances(tolerances_mm: Sequence[float]) -> tuple[float, ...]:
    tolerances = tuple(float(t) for t in tolerances_mm)
    if not all(math.isfinite(t) and t >= 0 for t in tolerances):
        raise InvalidInput(f"Surface Dice tolerances must be finite and >= 0 mm, got {tuple(tolerances_mm)}.")
    return tolerances


class StructureMetrics:
    """Overlap, volume and surface metrics of one structure, computed from one crop and one distance pass.

    Example::

        m = StructureMetrics(ref == 1, pred == 1, spacing_mm=(2.5, 0.98, 0.98))
        m.overlap.dice, m.surface.hausdorff(95), m.as_dict()["surface_dice_2.0mm"]

    Attributes:
        overlap: :class:`~radconf.evaluation.binary.OverlapCounts` of the pair.
        surface: :class:`~radconf.evaluation.surface.SurfaceDistances`, or None when ``surface=False``.
        tolerances_mm: surface Dice tolerances.
        hd_percentile: percentile of the robust Hausdorff distance (95 -> ``hd95_mm``).
        hd95_convention: see :data:`~radconf.evaluation.surface.HD_CONVENTIONS` and ``documentation/evaluation.md``.
    """

    def __init__(
        self,
        reference: np.ndarray,
        prediction: np.ndarray,
        spacing_mm: Sequence[float],
        tolerances_mm: Sequence[float] = (2.0, 3.0),
        *,
        hd_percentile: float = 95.0,
        hd95_convention: str = "surface-distance",
        surface: bool = True,
        num_threads: int = 2,
    ) -> None:
        """Computes the expensive intermediates once.

        Args:
            reference: reference mask (bool), numpy axis order.
            prediction: predicted mask, same shape.
            spacing_mm: spacing in the arrays' axis order (mm).
            tolerances_mm: surface Dice tolerances (mm).
            hd_percentile: percentile for ``hd95_mm``.
            hd95_convention: ``"surface-distance"`` (default), ``"pooled"``, ``"unweighted"`` or ``"voxel"``.
            surface: False skips all surface metrics (overlap and volumes only).
            num_threads: threads for the two feature transforms (1 or 2).

        Raises:
            ValueError: for invalid masks, spacing, tolerances or convention.
        """
        if hd95_convention not in HD_CONVENTIONS:
            raise InvalidInput(f"Unknown hd95_convention {hd95_convention!r}; choose one of {HD_CONVENTIONS}.")
        ref, pred, spacing = validate_mask_pair(reference, prediction, spacing_mm)
        self.tolerances_mm = _check_tolerances(tolerances_mm)
        self.hd_percentile = float(hd_percentile)
        self.hd95_convention = hd95_convention
        self.spacing_mm = spacing
        box = union_bounding_box(ref, pred)
        self.overlap = OverlapCounts.from_masks(ref, pred, spacing, box=box)
        self.surface: SurfaceDistances | None = None
        self._voxel_hd: float | None = None
        if surface:
            self.surface = compute_surface_distances(ref, pred, spacing, num_threads=num_threads, box=box)
            if hd95_convention == "voxel":
                self._voxel_hd = compute_voxel_boundary_distances(ref, pred, spacing).hausdorff(self.hd_percentile)

    @property
    def hd95(self) -> float:
        """Robust Hausdorff distance (mm) at ``hd_percentile`` under ``hd95_convention``."""
        if self.surface is None:
            raise InvalidInput("Surface metrics were not computed; create StructureMetrics with surface=True.")
        if self._voxel_hd is not None:
            return self._voxel_hd
        return self.surface.hausdorff(self.hd_percentile, self.hd95_convention)

    def as_dict(self) -> dict[str, float]:
        """Every metric by its column name (see :func:`metric_names`)."""
        out = self.overlap.as_dict()
        if self.surface is None:
            return out
        for tolerance in self.tolerances_mm:
            out[surface_dice_key(tolerance)] = self.surface.surface_dice(tolerance)
        asd_ref, asd_pred = self.surface.average_distances()
        out.update(
            {
                "hd95_mm": self.hd95,
                "hd_max_mm": self.surface.hausdorff_max(),
                "assd_mm": self.surface.assd(),
                "msd_mm": self.surface.msd(),
                "asd_ref_to_pred_mm": asd_ref,
                "asd_pred_to_ref_mm": asd_pred,
            }
        )
        return out


def compute_metrics(
    reference_mask: np.ndarray,
    prediction_mask: np.ndarray,
    spacing_mm: Sequence[float] = (1.0, 1.0, 1.0),
    tolerances_mm: Sequence[float] = (2.0, 3.0),
    *,
    hd_percentile: float = 95.0,
    hd95_convention: str = "surface-distance",
    surface: bool = True,
    num_threads: int = 2,
) -> dict[str, float]:
    """All metrics of one structure as a dict (function twin of :class:`StructureMetrics`).

    Args:
        reference_mask: reference mask (bool), numpy axis order: (z, y, x) for ``sitk.GetArrayFromImage`` arrays.
        prediction_mask: predicted mask, same shape.
        spacing_mm: spacing (mm) in the same axis order, e.g. ``(sz, sy, sx) = image.GetSpacing()[::-1]``.
        tolerances_mm: surface Dice tolerances (mm); one ``surface_dice_{t}mm`` key each.
        hd_percentile: percentile for ``hd95_mm``.
        hd95_convention: ``"surface-distance"`` (default: max of the two directed, surfel-area weighted
            95th percentiles), ``"pooled"``, ``"unweighted"`` or ``"voxel"`` (MONAI's boundary voxels).
        surface: False skips the surface metrics.
        num_threads: threads for the two feature transforms (1 or 2).

    Returns:
        ``{dice, iou, sensitivity, specificity, fpr, precision, volume_ref_cm3, volume_pred_cm3, volume_diff_cm3,
        surface_dice_{t}mm..., hd95_mm, hd_max_mm, assd_mm, msd_mm, asd_ref_to_pred_mm, asd_pred_to_ref_mm}``.
        Empty masks: both empty -> overlap ratios and all surface metrics NaN; one empty -> Dice/IoU/surface Dice 0,
        distances inf (see ``documentation/evaluation.md``).

    Raises:
        ValueError: for invalid masks, spacing, tolerances or convention.
    """
    return StructureMetrics(
        reference_mask,
        prediction_mask,
        spacing_mm,
        tolerances_mm,
        hd_percentile=hd_percentile,
        hd95_convention=hd95_convention,
        surface=surface,
        num_threads=num_threads,
    ).as_dict()
