"""Exact contours of voxel masks: loops along voxel edges, the inverse of
:func:`radconf.dicom.polygons.rasterise_slice`.

Conventions (index space, see :mod:`radconf.dicom.polygons` and :mod:`radconf.dicom.geometry`): a slice is a
``(rows, columns)`` boolean array indexed ``[j, i]``; a traced contour is an ``(N, 2)`` float array of ``(i, j)`` =
(column, row) indices on voxel CORNERS (half-integers), implicitly closed (the first vertex is not repeated).

* The loops follow the boundary of the union of the foreground pixel squares; only corners are kept (collinear
  vertices removed), so there are no zero-length edges and every edge is axis-aligned.
* Orientation: the foreground is on the LEFT of each edge in the (i, j) plane, i.e. outer loops have POSITIVE
  shoelace area ``0.5 * sum(i_k * j_{k+1} - i_{k+1} * j_k)`` and hole loops NEGATIVE (outer loops run
  counter-clockwise with the j axis pointing up, clockwise as an image is shown with rows downwards).
* Pinch points (two foreground pixels touching only at a corner): foreground is 4-connected, so the two pixels get
  separate loops (or, inside one object, the loop passes the corner twice). Background is then 8-connected: two
  hole pixels touching at a corner are ONE hole loop that touches itself at that corner.
* Guarantee: ``rasterise_slice([c.points for c in trace_slice(m)], *m.shape)`` equals ``m`` for any mask (every
  voxel edge between foreground and background is used exactly once, and none lies on a voxel centre).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radconf.errors import InvalidInput

__all__ = ["TracedContour", "trace_slice", "trace_volume"]

# Direction codes: 0 = +i, 1 = +j, 2 = -i, 3 = -j; (d + 1) % 4 is a left turn (foreground side).
_STEP = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class TracedContour:
    """One closed loop along voxel edges.

    Attributes:
        points: (N, 2) float64 (i, j) = (column, row) voxel-corner indices (half-integers), N >= 4, read-only.
        is_hole: True for a loop around background enclosed by foreground (negative shoelace area).
    """

    points: np.ndarray
    is_hole: bool

    @property
    def signed_area(self) -> float:
        """Shoelace area in voxels: the voxel count enclosed, positive for outer loops, negative for holes."""
        i, j = self.points[:, 0], self.points[:, 1]
        return 0.5 * float(np.dot(i, np.roll(j, -1)) - np.dot(np.roll(i, -1), j))


def _boundary_edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Directed unit edges (foreground on the left): start corner (cx, cy) as (E, 2) ints and direction codes (E,).

    Corner (cx, cy) is the point (i, j) = (cx - 0.5, cy - 0.5).
    """
    rows, columns = mask.shape
    padded = np.zeros((rows + 2, columns + 2), dtype=bool)
    padded[1:-1, 1:-1] = mask
    upper, lower = padded[:-1, 1:-1], padded[1:, 1:-1]  # (rows + 1, columns): across the line y = cy - 0.5
    left, right = padded[1:-1, :-1], padded[1:-1, 1:]  # (rows, columns + 1): across the line x = cx - 0.5
    parts = []
    cy, i = np.nonzero(lower & ~upper)  # top edge of a foreground pixel: +i from (i, cy)
    parts.append((i, cy, 0))
    cy, i = np.nonzero(upper & ~lower)  # bottom edge: -i from (i + 1, cy)
    parts.append((i + 1, cy, 2))
    j, cx = np.nonzero(left & ~right)  # right edge of a foreground pixel: +j from (cx, j)
    parts.append((cx, j, 1))
    j, cx = np.nonzero(right & ~left)  # left edge: -j from (cx, j + 1)
    parts.append((cx, j + 1, 3))
    start = np.concatenate([np.stack([x, y], axis=1) for x, y, _ in parts]).astype(np.int64)
    direction = np.concatenate([np.full(len(x), d, dtype=np.int64) for x, _, d in parts])
    return start.reshape(-1, 2), direction


def _successors(start: np.ndarray, direction: np.ndarray, width: int) -> np.ndarray:
    """Next edge of every edge: the one leaving its end corner, turning left if possible, else straight, else right.

    Preferring the left turn keeps the foreground 4-connected at pinch corners (where two edges leave a corner).
    """
    key = start[:, 1] * width + start[:, 0]
    outgoing = np.full((int(key.max()) + 2) * 4, -1, dtype=np.int64)
    outgoing[key * 4 + direction] = np.arange(len(key))
    end = start + _STEP[direction]
    end_key = end[:, 1] * width + end[:, 0]
    successor = outgoing[end_key * 4 + (direction + 1) % 4]
    for turn in (0, 3):  # straight on, then right
        missing = successor < 0
        successor[missing] = outgoing[end_key[missing] * 4 + (direction[missing] + turn) % 4]
    return successor


def _cycles(successor: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Edges in loop order and the index in that order where each loop begins (successor is a permutation)."""
    following = successor.tolist()
    seen = bytearray(len(following))
    order: list[int] = []
    begins: list[int] = []
    for first in range(len(following)):
        if seen[first]:
            continue
        begins.append(len(order))
        edge = first
        while not seen[edge]:
            seen[edge] = 1
            order.append(edge)
            edge = following[edge]
    return np.asarray(order, dtype=np.int64), begins


def trace_slice(mask: np.ndarray) -> list[TracedContour]:
    """Loops along the voxel edges of a slice's foreground (outer loops and holes).

    Args:
        mask: 2D (rows, columns) array; non-zero voxels are foreground.

    Returns:
        One :class:`TracedContour` per loop (empty for an empty mask), in a deterministic order (by the first
        boundary edge met scanning rows top to bottom). Outer loops have positive, holes negative shoelace area.

    Raises:
        InvalidInput: the mask is not 2D.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InvalidInput(f"trace_slice needs a 2D (rows, columns) mask, got shape {mask.shape}; pass one slice")
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        return []
    rows_any, columns_any = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    r0, c0 = int(rows_any[0]), int(columns_any[0])
    crop = mask[r0:int(rows_any[-1]) + 1, c0:int(columns_any[-1]) + 1]
    start, direction = _boundary_edges(crop)
    successor = _successors(start, direction, crop.shape[1] + 1)
    order, begins = _cycles(successor)
    predecessor = np.empty_like(successor)
    predecessor[successor] = np.arange(len(successor))
    corner = direction[order] != direction[predecessor[order]]
    loop_of = np.repeat(np.arange(len(begins)), np.diff(np.append(begins, len(order))))
    kept = order[corner]
    points = start[kept].astype(np.float64) + np.array([c0 - 0.5, r0 - 0.5])
    sizes = np.bincount(loop_of[corner], minlength=len(begins))
    firsts = np.cumsum(sizes) - sizes
    following = np.arange(1, len(points) + 1)
    following[firsts + sizes - 1] = firsts  # the last corner of a loop joins its first
    cross = points[:, 0] * points[following, 1] - points[following, 0] * points[:, 1]
    holes = np.add.reduceat(cross, firsts) < 0
    points.setflags(write=False)
    contours = [TracedContour(points[a:a + n], bool(h)) for a, n, h in zip(firsts.tolist(), sizes.tolist(), holes)]
    return contours


def trace_volume(mask3d: np.ndarray) -> dict[int, list[TracedContour]]:
    """Loops of every slice of a (slices, rows, columns) mask that has foreground.

    Args:
        mask3d: 3D (k, j, i) array; non-zero voxels are foreground.

    Returns:
        ``{k: trace_slice(mask3d[k])}`` for the slices k (ascending) with at least one foreground voxel.

    Raises:
        InvalidInput: the mask is not 3D.
    """
    mask3d = np.asarray(mask3d)
    if mask3d.ndim != 3:
        raise InvalidInput(f"trace_volume needs a 3D (slices, rows, columns) mask, got shape {mask3d.shape}")
    occupied = np.nonzero(mask3d.reshape(mask3d.shape[0], -1).any(axis=1))[0] if mask3d.size else []
    return {int(k): trace_slice(mask3d[k]) for k in occupied}
