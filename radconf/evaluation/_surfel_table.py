"""Surfel (surface element) lookup data for the neighbour-code surface definition.

The surface of a binary mask is described on the grid of voxel *corners*: every corner looks at its 2x2x2
neighbourhood of voxels, which gives an 8-bit neighbour code (0..255). Codes 0 (all outside) and 255 (all inside)
carry no surface; every other code carries one to four marching-cubes triangles whose area vectors (normal
times area, in units of one voxel face) are tabulated below.

Provenance and licence: the triangle area vectors are the data of ``_NEIGHBOUR_CODE_TO_NORMALS`` in DeepMind's
``surface-distance`` (``surface_distance/lookup_tables.py``, Copyright 2018 Google Inc., Apache License 2.0,
https://github.com/google-deepmind/surface-distance). radconf re-encodes that data so that its surface areas are
identical to ``surface-distance`` (a requirement of radconf's evaluation: surface Dice, average surface distances
and the robust Hausdorff distance must equal ``surface-distance`` to 1e-6); radconf never imports the package at
run time.

Encoding: the area of a code depends only on the absolute values of the components of its area vectors, and code
``c`` carries the same vectors (up to sign) as its complement ``255 - c``. So only codes 0..127 are stored, one string
per code, each triangle as three digits ``|n_0| |n_1| |n_2|`` in units of 1/8 (``"111"`` = (0.125, 0.125, 0.125)).
``"-"`` means no surface (codes 0 and 255).
"""
from __future__ import annotations

import numpy as np

# fmt: off
_HALF_TABLE = (
    # codes 0-7
    "-", "111", "111", "220220", "111", "202202", "111111", "400222111",
    # codes 8-15
    "111", "111111", "202202", "400222111", "220220", "400222111", "400222111", "400400",
    # codes 16-23
    "111", "022022", "111111", "040222111", "111111", "004222111", "111111111", "111222222111",
    # codes 24-31
    "111111", "022022111", "202202111", "111333022202", "111220220", "333022111220", "400111222111", "400111222",
    # codes 32-39
    "111", "111111", "022022", "040111222", "111111", "111202202", "022022111", "333022111202",
    # codes 40-47
    "111111", "111111111", "004222111", "222222111111", "111220220", "400222111111", "022333111220", "400222111",
    # codes 48-55
    "220220", "040222111", "040111222", "040040", "220220111", "333202111220", "111040222111", "040222111",
    # codes 56-63
    "111220220", "040222111111", "333220111202", "040222111", "220220220220", "220220111", "111220220", "220220",
    # codes 64-71
    "111", "111111", "111111", "111220220", "022022", "004222111", "022022111", "333022111220",
    # codes 72-79
    "111111", "111111111", "111202202", "400222111111", "040222111", "222222111111", "202333022111", "400222111",
    # codes 80-87
    "202202", "004222111", "111202202", "202333220111", "004222111", "004004", "111111222004", "111222004",
    # codes 88-95
    "202202111", "004222111111", "202202202202", "111202202", "202333220111", "004222111", "111202202", "202202",
    # codes 96-103
    "111111", "111111111", "111022022", "040111222111", "022022111", "004222111111", "022022022022", "022022111",
    # codes 104-111
    "111111111", "111111111111", "004222111111", "111111111", "040222111111", "111111111", "022022111", "111111",
    # codes 112-119
    "400222111", "222111222111", "333022111202", "040222111", "333220022111", "111222004", "111022022", "022022",
    # codes 120-127
    "400222111111", "111111111", "202202111", "111111", "220220111", "111111", "111111", "111",
)
# fmt: on

_UNIT = 0.125


def _area_vectors_half() -> np.ndarray:
    """Returns the absolute triangle area vectors of codes 0..127 as a (128, 4, 3) array (zero-padded)."""
    vectors = np.zeros((128, 4, 3), dtype=np.float64)
    for code, text in enumerate(_HALF_TABLE):
        if text == "-":
            continue
        for k in range(len(text) // 3):
            vectors[code, k] = [int(ch) * _UNIT for ch in text[3 * k : 3 * k + 3]]
    return vectors


_AREA_VECTORS_HALF = _area_vectors_half()


def surfel_area_table_3d(spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """Surface area (mm^2) carried by each of the 256 neighbour codes for a given voxel spacing.

    An area vector ``(n_0, n_1, n_2)`` in voxel units scales to ``(n_0 s_1 s_2, n_1 s_0 s_2, n_2 s_0 s_1)`` mm^2 under
    the spacing ``(s_0, s_1, s_2)``; the area of a code is the sum of the norms of its scaled vectors.

    Args:
        spacing_mm: voxel spacing in the same axis order as the arrays (numpy (z, y, x) order for radconf).

    Returns:
        float64 array of shape (256,) indexed by neighbour code.
    """
    s0, s1, s2 = (float(s) for s in spacing_mm)
    v = _AREA_VECTORS_HALF
    scaled = np.stack([v[..., 0] * s1 * s2, v[..., 1] * s0 * s2, v[..., 2] * s0 * s1], axis=-1)
    half = np.sqrt((scaled * scaled).sum(axis=-1)).sum(axis=-1)
    return np.concatenate([half, half[::-1]])


def contour_length_table_2d(spacing_mm: tuple[float, float]) -> np.ndarray:
    """Contour length (mm) carried by each of the 16 neighbour codes of a 2D mask (2x2 neighbourhoods).

    Code bits are (top-left, top-right, bottom-left, bottom-right) = (8, 4, 2, 1); axis 0 runs downwards.
    One corner in (or out): a diagonal segment of half the pixel diagonal; two adjacent corners: a straight
    segment of one spacing; two opposite corners: two diagonal segments.

    Args:
        spacing_mm: pixel spacing (axis 0, axis 1).

    Returns:
        float64 array of shape (16,) indexed by neighbour code.
    """
    vertical, horizontal = (float(s) for s in spacing_mm)
    diag = 0.5 * float(np.sqrt(vertical**2 + horizontal**2))
    table = np.zeros(16, dtype=np.float64)
    for code in (0b0001, 0b0010, 0b0100, 0b1000, 0b0111, 0b1011, 0b1101, 0b1110):
        table[code] = diag
    table[0b0011] = table[0b1100] = horizontal
    table[0b0101] = table[0b1010] = vertical
    table[0b0110] = table[0b1001] = 2 * diag
    return table
