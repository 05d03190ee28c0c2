"""Exact rasterisation of planar contours onto one slice's voxel grid (index space).

Conventions (shared with :mod:`radconf.dicom.tracing`; see :mod:`radconf.dicom.geometry`):

* A slice is a ``(rows, columns)`` boolean array indexed ``[j, i]``.
* A polygon is an ``(N, 2)`` float array of continuous ``(i, j)`` = (column, row) indices, voxel centres at integers
  and voxel edges at half-integers; it is implicitly closed (the last vertex joins the first; do not repeat it,
  a repeated vertex only adds a zero-length edge, which is harmless).
* Voxel ``(j, i)`` is inside iff its CENTRE ``(i, j)`` is inside under the EVEN-ODD rule over ALL polygons of the
  slice together: an inner contour makes a hole, a contour inside a hole an island, two overlapping contours XOR.
* Centres exactly on an edge (half-open scanline rule): an edge ``(x0, y0)-(x1, y1)`` crosses row ``j`` iff
  ``min(y0, y1) <= j < max(y0, y1)`` (horizontal edges never do); a centre ``x`` is inside between two successive
  crossings ``x_a <= x < x_b``. So a centre on a left or top edge is inside and one on a right or bottom edge is
  outside, and polygons that tile the plane (share edges) cover every centre exactly once.

Parts of polygons outside the slice are clipped (not an error); :func:`vertices_outside` counts the vertices beyond
the image edges so that callers can warn.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radconf.errors import InvalidInput

__all__ = ["MAX_INDEX", "rasterise_fractions", "rasterise_slice", "vertices_outside"]

MAX_INDEX = 1e9  # |i| or |j| beyond this is a broken contour or geometry, not something to clip


def _check_values(points: np.ndarray, name: str, limit: float = MAX_INDEX) -> None:
    if not np.all(np.isfinite(points)):
        raise InvalidInput(f"{name} has non-finite (NaN or infinite) vertices; remove them")
    if points.size and np.max(np.abs(points)) > limit:
        raise InvalidInput(f"{name} has vertices over {MAX_INDEX:g} voxels away from the image; check the "
                           "contour's coordinates and the image geometry")


def _as_polygon(polygon: np.ndarray, number: int, check_values: bool = True) -> np.ndarray:
    """One polygon as an (N, 2) float64 array (with finite, plausible values if check_values), else InvalidInput."""
    points = np.asarray(polygon, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise InvalidInput(f"polygon {number} has shape {points.shape}; give an (N, 2) array of (column, row) "
                           "indices")
    if check_values:
        _check_values(points, f"polygon {number}")
    return points


def _check_size(rows: int, columns: int) -> tuple[int, int]:
    if int(rows) != rows or int(columns) != columns or rows < 0 or columns < 0:
        raise InvalidInput(f"slice size {rows} x {columns} is not two non-negative integers; give rows and columns")
    return int(rows), int(columns)


def _edges(polygons: Sequence[np.ndarray], limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Non-horizontal edges of all polygons as (x0, y0, x1, y1) with y0 < y1 (orientation removed)."""
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
        raise InvalidInput("rasterise got one (N, 2) array; pass a sequence of polygons, e.g. [polygon]")
    arrays = [_as_polygon(polygon, number, check_values=False) for number, polygon in enumerate(polygons)]
    arrays = [a for a in arrays if len(a) >= 2]
    if not arrays:
        empty = np.zeros(0)
        return empty, empty, empty, empty
    a = np.concatenate(arrays)
    _check_values(a, "a polygon", limit)
    sizes = np.array([len(p) for p in arrays])
    following = np.arange(1, len(a) + 1)
    following[np.cumsum(sizes) - 1] = np.cumsum(sizes) - sizes  # the last vertex joins the first
    b = a[following]
    keep = a[:, 1] != b[:, 1]
    a, b = a[keep], b[keep]
    # The same segment must give the same crossing whichever way it runs (shared edges of two contours cancel).
    swap = a[:, 1] > b[:, 1]
    lower = np.where(swap[:, None], b, a)
    upper = np.where(swap[:, None], a, b)
    return lower[:, 0], lower[:, 1], upper[:, 0], upper[:, 1]


def _parity_counts(polygons: Sequence[np.ndarray], rows: int, columns: int, limit: float) -> np.ndarray:
    """(rows, columns + 1) counts of crossings whose first centre at or right of them is column i (clipped)."""
    x0, y0, x1, y1 = _edges(polygons, limit)
    first = np.clip(np.ceil(y0), 0, rows).astype(np.int64)  # first row j >= y0
    stop = np.clip(np.ceil(y1), 0, rows).astype(np.int64)  # rows j < y1 end here
    count = np.maximum(stop - first, 0)
    total = int(count.sum())
    if total == 0:
        return np.zeros((rows, columns + 1), dtype=np.int64)
    edge = np.repeat(np.arange(len(count)), count)
    offsets = np.cumsum(count) - count
    j = first[edge] + (np.arange(total) - offsets[edge])
    slope = (x1 - x0) / (y1 - y0)
    x = x0[edge] + (j - y0[edge]) * slope[edge]
    column = np.clip(np.ceil(x), 0, columns).astype(np.int64)  # centres i >= x are past this crossing
    flat = np.bincount(j * (columns + 1) + column, minlength=rows * (columns + 1))
    return flat.reshape(rows, columns + 1)


def rasterise_slice(polygons: Sequence[np.ndarray], rows: int, columns: int) -> np.ndarray:
    """Voxels of one slice whose centres lie inside the polygons (even-odd rule over all of them).

    Args:
        polygons: the slice's contours, each an (N, 2) array of continuous (column i, row j) indices, implicitly
            closed. Parts outside the slice are clipped.
        rows: number of rows of the slice (numpy axis 0).
        columns: number of columns of the slice (numpy axis 1).

    Returns:
        Boolean array (rows, columns): True where the voxel centre is inside (half-open rule of the module doc).

    Raises:
        InvalidInput: a polygon is not an (N, 2) array of finite numbers within :data:`MAX_INDEX` voxels, or the
            size is not two integers >= 0.
    """
    rows, columns = _check_size(rows, columns)
    return _fill(polygons, rows, columns, MAX_INDEX)


def _fill(polygons: Sequence[np.ndarray], rows: int, columns: int, limit: float) -> np.ndarray:
    counts = _parity_counts(polygons, rows, columns, limit)
    return (np.cumsum(counts[:, :columns], axis=1) & 1).astype(bool)


def rasterise_fractions(polygons: Sequence[np.ndarray], rows: int, columns: int,
                        supersampling: int = 4) -> np.ndarray:
    """Partial-volume mask: fraction of each voxel's s x s sub-voxel sample points inside the polygons.

    The sample points of voxel (j, i) are at ``(i + (a + 0.5) / s - 0.5, j + (b + 0.5) / s - 0.5)`` for
    ``a, b = 0 .. s - 1``; each is classified exactly as :func:`rasterise_slice` classifies voxel centres.

    Args:
        polygons: the slice's contours, as for :func:`rasterise_slice`.
        rows: number of rows of the slice.
        columns: number of columns of the slice.
        supersampling: s, sample points per voxel along each axis (>= 1; 1 gives the plain mask as 0/1).

    Returns:
        float32 array (rows, columns) of fractions in [0, 1], multiples of 1 / s**2.

    Raises:
        InvalidInput: bad polygons or size (see :func:`rasterise_slice`), or supersampling is not an integer >= 1.
    """
    rows, columns = _check_size(rows, columns)
    if isinstance(supersampling, bool) or int(supersampling) != supersampling or supersampling < 1:
        raise InvalidInput(f"supersampling {supersampling!r} is not an integer >= 1; give e.g. 4")
    s = int(supersampling)
    if isinstance(polygons, np.ndarray) and polygons.ndim == 2:
        raise InvalidInput("rasterise got one (N, 2) array; pass a sequence of polygons, e.g. [polygon]")
    # Fine index f of coarse coordinate c: sample f = s * i + a sits at c = (f + 0.5) / s - 0.5.
    fine = [(_as_polygon(p, n) + 0.5) * s - 0.5 for n, p in enumerate(polygons)]
    inside = _fill(fine, rows * s, columns * s, (MAX_INDEX + 1.0) * s)
    hits = inside.reshape(rows, s, columns, s).sum(axis=(1, 3), dtype=np.int64)
    return (hits / float(s * s)).astype(np.float32)


def vertices_outside(polygon: np.ndarray, rows: int, columns: int) -> int:
    """Number of a polygon's vertices beyond the image edges (where rasterisation clips it).

    Args:
        polygon: (N, 2) array of continuous (column i, row j) indices.
        rows: number of rows of the slice.
        columns: number of columns of the slice.

    Returns:
        How many vertices have ``i < -0.5`` or ``i > columns - 0.5`` or ``j < -0.5`` or ``j > rows - 0.5``.

    Raises:
        InvalidInput: the polygon is not an (N, 2) array of finite numbers, or the size is not two integers >= 0.
    """
    rows, columns = _check_size(rows, columns)
    points = _as_polygon(polygon, 0)
    i, j = points[:, 0], points[:, 1]
    outside = (i < -0.5) | (i > columns - 0.5) | (j < -0.5) | (j > rows - 0.5)
    return int(np.count_nonzero(outside))
