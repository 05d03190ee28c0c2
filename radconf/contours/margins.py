"""Margins in patient directions and their mapping onto the array axes through the image direction.

Patient directions are DICOM's LPS: +x = patient left, +y = posterior, +z = superior. A SimpleITK direction matrix
``D`` (row-major) maps image index axis ``c`` (x, y, z index order) to the physical direction ``D[:, c]``; array axis
``a`` of ``GetArrayFromImage`` (z, y, x order) is image index axis ``2 - a``. With the identity, array axis 0
increasing is superior, axis 1 posterior, axis 2 patient left.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from radconf.contours.checks import RELATIVE_TOLERANCE, check_length
from radconf.errors import InvalidInput

AXIS_TOLERANCE = 1e-4
"""A direction cosine within 1e-4 of 0 or +-1 counts as exactly that (DICOM headers round their cosines)."""

SemiAxes = tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
"""Per array axis (z, y, x): the margin in mm towards decreasing and towards increasing index."""

# patient axis (0 = x, 1 = y, 2 = z) -> (name of the negative direction, name of the positive direction)
_PATIENT_DIRECTIONS = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))


@dataclass(frozen=True)
class Margin:
    """A margin in mm; a direction left ``None`` takes ``radial``.

    Directions are in patient LPS coordinates: +x = left, +y = posterior, +z = superior. With all six directions
    equal the structuring element is a ball; with per-axis values an ellipsoid; with different values in the two
    senses of an axis the union of eight ellipsoid octants.

    Raises:
        InvalidInput: a negative, infinite or non-numeric value.
    """

    radial: float = 0.0
    superior: float | None = None
    inferior: float | None = None
    anterior: float | None = None
    posterior: float | None = None
    left: float | None = None
    right: float | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is not None or field.name == "radial":
                object.__setattr__(self, field.name, check_length(value, f"Margin.{field.name}"))

    def value(self, name: str) -> float:
        """The margin (mm) in direction ``name`` (``radial`` where it is not given)."""
        given = getattr(self, name)
        return self.radial if given is None else given

    def reflected(self) -> Margin:
        """The margin with each direction swapped for its opposite (the structuring element mirrored)."""
        return Margin(radial=self.radial, superior=self.inferior, inferior=self.superior, anterior=self.posterior,
                      posterior=self.anterior, left=self.right, right=self.left)

    def describe(self) -> str:
        """A short text: ``10 mm`` or ``sup 30, inf 30, ant 10, post 10, left 10, right 10 mm``."""
        values = [self.value(n) for n in ("superior", "inferior", "anterior", "posterior", "left", "right")]
        if len(set(values)) == 1:
            return f"{values[0]:g} mm"
        names = ("sup", "inf", "ant", "post", "left", "right")
        return ", ".join(f"{n} {v:g}" for n, v in zip(names, values)) + " mm"


def as_margin(margin: Margin | float, name: str = "margin") -> Margin:
    """A :class:`Margin` (a number is a radial margin in mm)."""
    if isinstance(margin, Margin):
        return margin
    if isinstance(margin, bool):
        raise InvalidInput(f"{name} must be a Margin or a number of mm, got {margin!r}.")
    return Margin(radial=check_length(margin, name))


def array_axes(direction: Sequence[float] | np.ndarray | None = None) -> tuple[tuple[int, int], ...]:
    """Per array axis (z, y, x): ``(patient axis, sign)``, patient axis 0 = x, 1 = y, 2 = z, sign +1 when increasing
    the array index moves in the positive patient direction.

    Args:
        direction: SimpleITK's direction (row-major 9-tuple or 3x3); ``None`` = identity.

    Raises:
        InvalidInput: not 9 finite numbers, or not axis-aligned (an oblique or singular direction).
    """
    if direction is None:
        return ((2, 1), (1, 1), (0, 1))
    try:
        matrix = np.asarray(direction, dtype=float).reshape(3, 3)
    except (TypeError, ValueError):
        raise InvalidInput(f"direction must be SimpleITK's 3x3 direction matrix (9 numbers, row-major), got "
                           f"{direction!r}.") from None
    if not np.isfinite(matrix).all():
        raise InvalidInput(f"direction {tuple(matrix.ravel())} holds non-finite numbers; pass image.GetDirection().")
    result = []
    for array_axis in range(3):
        column = matrix[:, 2 - array_axis]
        patient_axis = int(np.argmax(np.abs(column)))
        others = np.delete(column, patient_axis)
        if abs(abs(column[patient_axis]) - 1) > AXIS_TOLERANCE or np.abs(others).max() > AXIS_TOLERANCE:
            raise InvalidInput(f"direction {tuple(round(v, 6) for v in matrix.ravel())} is oblique: directional "
                               "margins need an axis-aligned image; resample it onto an axis-aligned grid first.")
        result.append((patient_axis, 1 if column[patient_axis] > 0 else -1))
    if sorted(axis for axis, _ in result) != [0, 1, 2]:
        raise InvalidInput(f"direction {tuple(matrix.ravel())} maps two image axes onto one patient axis; pass "
                           "image.GetDirection().")
    return tuple(result)


def semi_axes(margin: Margin, direction: Sequence[float] | np.ndarray | None = None) -> SemiAxes:
    """Per array axis (z, y, x): the margin (mm) towards decreasing and towards increasing index."""
    result = []
    for patient_axis, sign in array_axes(direction):
        negative, positive = (margin.value(n) for n in _PATIENT_DIRECTIONS[patient_axis])
        result.append((negative, positive) if sign > 0 else (positive, negative))
    return tuple(result)  # type: ignore[return-value]


def is_symmetric(axes: SemiAxes) -> bool:
    """True when every axis has the same margin in both senses."""
    return all(minus == plus for minus, plus in axes)


def reach_voxels(axes: SemiAxes, spacing: Sequence[float], factor: float = 1.0) -> tuple[list[int], list[int]]:
    """Voxels a margin (times ``factor``) reaches towards decreasing and increasing index, per axis."""
    slack = 1 + RELATIVE_TOLERANCE  # a superset of the voxels the tolerance of the inclusion test admits
    before = [math.floor(factor * minus / s * slack) for (minus, _), s in zip(axes, spacing)]
    after = [math.floor(factor * plus / s * slack) for (_, plus), s in zip(axes, spacing)]
    return before, after
