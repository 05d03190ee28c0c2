"""Hole filling: background regions that do not reach the array border become foreground.

``connectivity`` is the connectivity of the background: with 6 (the default, as ``scipy.ndimage.binary_fill_holes``
and SimpleITK's ``BinaryFillhole(fullyConnected=False)``) a pocket that touches the outside only through an edge or
a corner is a hole; with 26 (``fullyConnected=True``) it is not. ``per_slice`` fills each 2D slice along ``axis`` on
its own, as treatment planning systems fill contours drawn slice by slice; the in-plane connectivity is the 3D one
restricted to the slice: 6 -> 4 (edge neighbours), 18 and 26 -> 8 (edges and corners).
"""
from __future__ import annotations

import numpy as np

from radconf.contours.boxes import bounding_box, grown_box
from radconf.contours.checks import as_mask, check_connectivity
from radconf.errors import InvalidInput


def _holes(background: np.ndarray, connectivity: int) -> np.ndarray:
    """The background voxels (2D or 3D) whose component touches no face of the array."""
    import cc3d

    labels = cc3d.connected_components(background, connectivity=connectivity)
    border = np.unique(np.concatenate([labels.take(index, axis=axis).ravel() for axis in range(labels.ndim)
                                       for index in (0, -1)]))
    border = border[border > 0]
    if border.size <= 4:  # usually the outside is one component: comparisons are cheaper than a lookup table
        holes = labels > 0
        for label in border:
            holes &= labels != label
        return holes
    outside = np.zeros(int(labels.max()) + 1, dtype=bool)
    outside[border] = True
    outside[0] = True
    return ~outside[labels]


def fill_holes(mask, *, per_slice: bool = False, axis: int = 0, connectivity: int = 6) -> np.ndarray:
    """Fills the holes of a mask, in 3D or slice by slice.

    Args:
        mask: 3D bool (or 0/1 integer) array; not modified.
        per_slice: fill each 2D slice along ``axis`` on its own (a hole in one slice is filled even when it opens
            into a neighbouring slice).
        axis: the slice axis for ``per_slice`` (0 = axial slices of a (z, y, x) array).
        connectivity: background connectivity, 6, 18 or 26 (``per_slice``: 6 -> 4, 18/26 -> 8 in the plane).

    Returns:
        A new bool array: the mask plus its holes.

    Raises:
        InvalidInput: a bad mask, axis or connectivity.
    """
    mask = as_mask(mask)
    connectivity = check_connectivity(connectivity)
    if isinstance(axis, bool) or axis not in (0, 1, 2):
        raise InvalidInput(f"axis must be 0, 1 or 2 (the slice axis of a (z, y, x) array), got {axis!r}.")
    result = mask.copy()
    box = bounding_box(mask)
    if box is None:
        return result
    where = grown_box(box, (1, 1, 1), (1, 1, 1), mask.shape)  # one background layer around the box, where it fits
    crop = result[where]  # a view: holes are written into result
    if not per_slice:
        crop |= _holes(np.ascontiguousarray(~crop), connectivity)
        return result
    planar = 4 if connectivity == 6 else 8
    slices = np.moveaxis(crop, axis, 0)
    for index in range(slices.shape[0]):
        plane = slices[index]
        if plane.any():
            plane |= _holes(np.ascontiguousarray(~plane), planar)
    return result
