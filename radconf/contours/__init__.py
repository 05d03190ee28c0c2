"""Contour operations in millimetres on anisotropic grids: pure functions on numpy masks and voxel spacing.

Arrays are in SimpleITK's ``GetArrayFromImage`` order (z, y, x) and ``spacing`` is (z, y, x) in mm (SimpleITK's
``GetSpacing()`` reversed). Masks are bool arrays (0/1 integer arrays are accepted); results are new bool arrays and
inputs are never modified. Margins and morphology are exact: a voxel is in a margin when its centre lies within the
margin of a mask voxel centre. See ``documentation/contours.md``.
"""
from __future__ import annotations

from radconf.contours.checks import Spacing
from radconf.contours.components import connected_components, largest_component, remove_small_components
from radconf.contours.geodesic import expand_within, geodesic_reach_factor
from radconf.contours.holes import fill_holes
from radconf.contours.levels import apply_to_levels, per_label
from radconf.contours.margins import Margin
from radconf.contours.morphology import closing, contract, dilate, erode, expand, opening

__all__ = [
    "Margin",
    "Spacing",
    "apply_to_levels",
    "closing",
    "connected_components",
    "contract",
    "dilate",
    "erode",
    "expand",
    "expand_within",
    "fill_holes",
    "geodesic_reach_factor",
    "largest_component",
    "opening",
    "per_label",
    "remove_small_components",
]
