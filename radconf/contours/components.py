"""Connected components of a mask (``cc3d``), computed on the mask's bounding box.

Components are numbered 1..N in raster order of their first voxel (C order over (z, y, x)), as
``scipy.ndimage.label`` numbers them. Connectivity 6 = face neighbours, 18 = + edges, 26 = + corners.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from radconf.contours.boxes import bounding_box, pasted
from radconf.contours.checks import as_mask, check_connectivity, check_spacing
from radconf.errors import InvalidInput


def _labelled(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int, tuple[slice, ...] | None]:
    """Component labels of the mask's bounding box, their count, and where the box lies (None when empty)."""
    import cc3d

    box = bounding_box(mask)
    if box is None:
        return np.zeros((0, 0, 0), np.uint16), 0, None
    where = tuple(slice(lo, hi) for lo, hi in box)
    # padded by one voxel: cc3d 4.1 fails ("maximum length exception") on a box with two axes of length 1 that holds
    # two or more 26-connected components (a line of voxels with a gap); the padding changes no component
    padded = np.pad(mask[where], 1)
    labels, count = cc3d.connected_components(padded, connectivity=connectivity, return_N=True)
    return np.ascontiguousarray(labels[1:-1, 1:-1, 1:-1]), int(count), where


def connected_components(mask, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Labels of the connected components of a mask.

    Args:
        mask: 3D bool (or 0/1 integer) array; not modified.
        connectivity: 6, 18 or 26.

    Returns:
        ``(labels, count)``: unsigned integer labels (0 = background, 1..count in raster order of each component's
        first voxel; uint16 or uint32, the smallest type the count needs) and the number of components.

    Raises:
        InvalidInput: a bad mask or connectivity.
    """
    mask = as_mask(mask)
    connectivity = check_connectivity(connectivity)
    labels, count, where = _labelled(mask, connectivity)
    if where is None:
        return np.zeros(mask.shape, np.uint16), 0
    return pasted(labels, where, mask.shape), count


def _kept(mask: np.ndarray, connectivity: int, keep) -> np.ndarray:
    """The components whose voxel counts ``keep(sizes)`` accepts (a bool per component)."""
    labels, count, where = _labelled(mask, connectivity)
    if where is None:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    kept = np.flatnonzero(np.asarray(keep(sizes), dtype=bool)) + 1
    if kept.size == 1:  # one component (the largest): a comparison is cheaper than a lookup table
        return pasted(labels == kept[0], where, mask.shape)
    table = np.zeros(count + 1, dtype=bool)
    table[kept] = True
    return pasted(table[labels], where, mask.shape)


def largest_component(mask, connectivity: int = 26) -> np.ndarray:
    """The largest connected component (most voxels; of equal ones, the first in raster order).

    Args:
        mask: 3D bool (or 0/1 integer) array; not modified.
        connectivity: 6, 18 or 26.

    Returns:
        A new bool array (empty for an empty mask).

    Raises:
        InvalidInput: a bad mask or connectivity.
    """
    mask = as_mask(mask)
    connectivity = check_connectivity(connectivity)
    return _kept(mask, connectivity, lambda sizes: np.arange(sizes.size) == np.argmax(sizes))


def remove_small_components(mask, spacing: Sequence[float], *, min_volume_mm3: float | None = None,
                            min_voxels: int | None = None, connectivity: int = 26) -> np.ndarray:
    """Removes the components smaller than a volume or a voxel count (components at the threshold stay).

    Args:
        mask: 3D bool (or 0/1 integer) array; not modified.
        spacing: voxel spacing (z, y, x) in mm (a voxel's volume is their product).
        min_volume_mm3: smallest volume kept, in mm^3 (relative tolerance 1e-9: a component of exactly this volume
            stays despite rounding).
        min_voxels: smallest voxel count kept.
        connectivity: 6, 18 or 26.

    Returns:
        A new bool array.

    Raises:
        InvalidInput: both or neither threshold given, a negative threshold, a bad mask, spacing or connectivity.
    """
    mask = as_mask(mask)
    spacing = check_spacing(spacing)
    connectivity = check_connectivity(connectivity)
    if (min_volume_mm3 is None) == (min_voxels is None):
        raise InvalidInput("remove_small_components needs exactly one of min_volume_mm3 and min_voxels; got "
                           f"min_volume_mm3={min_volume_mm3!r}, min_voxels={min_voxels!r}.")
    if min_voxels is not None:
        if isinstance(min_voxels, bool) or not isinstance(min_voxels, (int, np.integer)) or min_voxels < 0:
            raise InvalidInput(f"min_voxels must be an integer >= 0, got {min_voxels!r}.")
        smallest = int(min_voxels)
    else:
        try:
            volume = float(min_volume_mm3)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidInput(f"min_volume_mm3 must be a number of mm^3, got {min_volume_mm3!r}.") from None
        if not math.isfinite(volume) or volume < 0:
            raise InvalidInput(f"min_volume_mm3 must be a finite number >= 0, got {min_volume_mm3!r}.")
        smallest = math.ceil(volume / math.prod(spacing) * (1 - 1e-9))
    return _kept(mask, connectivity, lambda sizes: sizes >= smallest)
