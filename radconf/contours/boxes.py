"""Boxes: the part of an array an operation needs (GTVs are small in big CTs).

``cluster_boxes`` splits a mask into clusters of occupied 8 x 8 x 8 blocks (26-connected on the block grid), so
that scattered structures (a GTV, a few nodes, specks) each get their own box instead of one box around all of them.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BLOCK = 8  # 8 bools along x are one 64-bit word (occupied_blocks)
MAX_BOXES = 64  # more clusters (e.g. thousands of specks): one box, as Python's loop would cost more than it saves
Box = tuple[slice, ...]


def bounding_box(mask: np.ndarray) -> tuple[tuple[int, int], ...] | None:
    """Per axis ``(first, last + 1)`` of the True voxels; ``None`` for an empty mask."""
    if mask.size == 0:
        return None
    hits = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if hits.size == 0:
        return None
    first, last = int(hits[0]), int(hits[-1]) + 1
    if mask.ndim == 1:
        return ((first, last),)
    rest = bounding_box(mask[first:last].any(axis=0))
    return ((first, last), *rest) if rest is not None else None


def grown_box(box: Sequence[tuple[int, int]], before: Sequence[int], after: Sequence[int],
              shape: Sequence[int]) -> Box:
    """Slices of ``box`` grown by ``before``/``after`` voxels per axis, clipped to an array of ``shape``."""
    return tuple(slice(max(0, lo - b), min(n, hi + a)) for (lo, hi), b, a, n in zip(box, before, after, shape))


def pasted(part: np.ndarray, where: Box, shape: Sequence[int]) -> np.ndarray:
    """A zero array of ``shape`` (``part``'s dtype) with ``part`` written at ``where``."""
    full = np.zeros(tuple(shape), dtype=part.dtype)
    full[where] = part
    return full


def _volume(box: Box) -> int:
    return math.prod(s.stop - s.start for s in box)


def occupied_blocks(mask: np.ndarray) -> np.ndarray:
    """Per :data:`BLOCK`-cubed block of a 3D bool array (the last blocks partial): any voxel True."""
    z, y, x = (-(-n // BLOCK) * BLOCK for n in mask.shape)
    padded = np.zeros((z, y, x), dtype=bool)
    padded[: mask.shape[0], : mask.shape[1], : mask.shape[2]] = mask
    rows = padded.view(np.uint64).reshape(z, y, x // BLOCK) != 0  # 8 bools of a row in one 64-bit word
    return rows.reshape(z // BLOCK, BLOCK, -1).any(axis=1).reshape(z // BLOCK, y // BLOCK, BLOCK, -1).any(axis=2)


def cluster_boxes(mask: np.ndarray, before: Sequence[int], after: Sequence[int]) -> list[tuple[Box, Box]]:
    """``(inner, outer)`` boxes covering a mask: every True voxel lies in an inner box, and each outer box is its inner
    box grown by ``before``/``after`` voxels (clipped). One box around the whole mask when the clusters' outer boxes
    would hold more voxels than it or there are more than :data:`MAX_BOXES` clusters; no boxes for an empty mask."""
    import cc3d
    from scipy import ndimage

    box = bounding_box(mask)
    if box is None:
        return []
    whole = tuple((lo, hi) for lo, hi in box)
    single = [(tuple(slice(lo, hi) for lo, hi in whole), grown_box(whole, before, after, mask.shape))]
    occupied = occupied_blocks(mask[tuple(slice(lo, hi) for lo, hi in whole)])
    labels = cc3d.connected_components(np.ascontiguousarray(occupied), connectivity=26)
    if not 1 < labels.max() <= MAX_BOXES:
        return single
    boxes = []
    for blocks in ndimage.find_objects(labels):
        inner = tuple((lo + s.start * BLOCK, min(hi, lo + s.stop * BLOCK)) for s, (lo, hi) in zip(blocks, whole))
        boxes.append((tuple(slice(a, b) for a, b in inner), grown_box(inner, before, after, mask.shape)))
    if sum(_volume(outer) for _, outer in boxes) >= _volume(single[0][1]):
        return single
    return boxes
