"""Exact margins and morphology in mm on anisotropic grids.

``expand(mask, spacing, margin)`` is the set of voxel centres ``p`` with a mask voxel centre ``q`` such that the
displacement ``d = p - q`` (mm, per array axis) satisfies ``g(d)^2 = sum_i (d_i / a_i(sign d_i))^2 <= 1``, where
``a_i(+)`` and ``a_i(-)`` are the margins towards increasing and decreasing index of axis ``i``: a ball, an ellipsoid
or a union of eight ellipsoid octants. Centres exactly on the boundary count as inside (relative tolerance 1e-6 on
``g^2``). A zero margin in a direction allows no displacement that way.

Two exact methods, both box by box: each cluster of the mask (occupied 8 x 8 x 8 blocks, 26-connected) on its
bounding box grown by the margin (GTVs are small in big CTs):

- symmetric margins: the Euclidean distance transform (``edt``) with spacing ``s_i / a_i``, thresholded at 1;
- asymmetric margins: ``g^2`` is a sum of one convex 1D function per axis, so the minimum over the mask of
  ``g(p - q)^2`` is three 1D min-convolutions, one per axis, each over the offsets the margin reaches (no
  approximation on the grid).

``contract`` is the dual: a voxel stays when every voxel centre within the mirrored margin lies in the mask, so
``contract(m) == ~expand(~m, mirrored)``. Voxels outside the array are unknown and never erode the mask (the mask is
taken to continue beyond the image border). ``opening`` erodes then dilates; ``closing`` dilates then erodes.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from radconf.contours.boxes import cluster_boxes
from radconf.contours.checks import RELATIVE_TOLERANCE, as_mask, check_length, check_spacing, check_threads
from radconf.contours.margins import Margin, SemiAxes, as_margin, is_symmetric, reach_voxels, semi_axes

_LIMIT = 1.0 + RELATIVE_TOLERANCE


def grow(mask: np.ndarray, spacing: Sequence[float], axes: SemiAxes, threads: int = 1) -> np.ndarray:
    """Exact dilation of a checked bool mask by the margin ``axes`` (mm per array axis, towards decreasing and
    increasing index); computed box by box (:func:`radconf.contours.boxes.cluster_boxes`). A new array."""
    if all(minus == 0 and plus == 0 for minus, plus in axes):
        return mask.copy()
    before, after = reach_voxels(axes, spacing)
    result = np.zeros(mask.shape, dtype=bool)
    for _, outer in cluster_boxes(mask, before, after):
        result[outer] |= grow_box(mask[outer], spacing, axes, threads)
    return result


def grow_box(crop: np.ndarray, spacing: Sequence[float], axes: SemiAxes, threads: int = 1) -> np.ndarray:
    """Exact dilation of the mask voxels of ``crop`` within ``crop`` (the whole array, no further boxes)."""
    if not crop.any():
        return np.zeros(crop.shape, dtype=bool)
    if is_symmetric(axes) and all(minus > 0 for minus, _ in axes):
        return _ellipsoid(crop, spacing, axes, threads)
    return _octants(crop, spacing, axes)


def _ellipsoid(crop: np.ndarray, spacing: Sequence[float], axes: SemiAxes, threads: int) -> np.ndarray:
    """Dilation by an ellipsoid: squared EDT with spacing s_i / a_i, at most 1."""
    import edt

    anisotropy = tuple(float(s) / minus for s, (minus, _) in zip(spacing, axes))
    squared = edt.edtsq(np.ascontiguousarray(~crop), anisotropy=anisotropy, black_border=False, parallel=threads)
    return squared <= _LIMIT


def _octants(crop: np.ndarray, spacing: Sequence[float], axes: SemiAxes) -> np.ndarray:
    """Dilation by a union of ellipsoid octants: separable min-convolution of g^2, one axis at a time."""
    cost = np.where(crop, np.float32(0), np.float32(np.inf))  # float32: g^2 <= 3 terms, rounding far below 1e-6
    for axis, (s, (minus, plus)) in enumerate(zip(spacing, axes)):
        cost = _min_convolve(cost, axis, float(s), minus, plus)
    return cost <= _LIMIT


def _min_convolve(cost: np.ndarray, axis: int, step: float, minus: float, plus: float) -> np.ndarray:
    """``min_k cost[p - k] + (k * step / a(sign k))^2`` along ``axis`` over the offsets with a term <= 1."""
    result = cost.copy()
    moved = np.moveaxis(cost, axis, 0)
    target = np.moveaxis(result, axis, 0)
    n = moved.shape[0]
    for semi_axis, sign in ((plus, 1), (minus, -1)):
        if semi_axis <= 0:
            continue
        for k in range(1, n):
            term = np.float32((k * step / semi_axis) ** 2)
            if term > _LIMIT:
                break
            if sign > 0:  # grown towards increasing index: p = q + k
                np.minimum(target[k:], moved[:-k] + term, out=target[k:])
            else:
                np.minimum(target[:-k], moved[k:] + term, out=target[:-k])
    return result


def warn_if_larger_than_image(axes: SemiAxes, spacing: Sequence[float], shape: Sequence[int],
                              margin: Margin) -> None:
    """One warning when a margin exceeds the image's extent along its axis (the result is clipped to the image)."""
    extent = [n * float(s) for n, s in zip(shape, spacing)]
    if any(max(pair) > size for pair, size in zip(axes, extent)):
        warnings.warn(f"margin {margin.describe()} is larger than the image ({' x '.join(f'{e:g}' for e in extent)} "
                      "mm, z x y x x): the result is clipped to the image.", stacklevel=3)


def _checked(mask, spacing, margin, direction, threads):
    mask = as_mask(mask)
    spacing = check_spacing(spacing)
    margin = as_margin(margin)
    return mask, spacing, margin, semi_axes(margin, direction), check_threads(threads)


def expand(mask, spacing: Sequence[float], margin: Margin | float, *, direction=None,
           threads: int | None = None) -> np.ndarray:
    """Grows a mask by a margin in mm, exactly (every voxel centre within the margin of a mask voxel centre).

    Args:
        mask: 3D bool (or 0/1 integer) array in (z, y, x) order; not modified.
        spacing: voxel spacing (z, y, x) in mm.
        margin: a :class:`Margin` or a radial margin in mm.
        direction: SimpleITK's direction matrix (9 numbers, row-major, or 3x3); ``None`` = identity. Maps the
            patient directions of ``margin`` onto the array axes; it must be axis-aligned (flips allowed).
        threads: threads of the distance transform (``None``: every core this process may use).

    Returns:
        A new bool array, clipped to the image (a warning when a margin exceeds the image extent).

    Raises:
        InvalidInput: a bad mask, spacing, margin, direction or thread count.
    """
    mask, spacing, margin, axes, threads = _checked(mask, spacing, margin, direction, threads)
    warn_if_larger_than_image(axes, spacing, mask.shape, margin)
    return grow(mask, spacing, axes, threads)


def shrink(mask: np.ndarray, spacing: Sequence[float], axes: SemiAxes, threads: int = 1) -> np.ndarray:
    """Exact erosion of a checked bool mask: voxels whose margin ``axes`` neighbourhood lies in the mask (voxels
    outside the array count as mask); computed box by box, each inner box from its outer box."""
    if all(minus == 0 and plus == 0 for minus, plus in axes):
        return mask.copy()
    before, after = reach_voxels(axes, spacing)
    mirrored = tuple((plus, minus) for minus, plus in axes)
    result = np.zeros(mask.shape, dtype=bool)
    for inner, outer in cluster_boxes(mask, before, after):
        crop = mask[outer]
        kept = crop & ~grow_box(~crop, spacing, mirrored, threads)  # type: ignore[arg-type]
        result[inner] = kept[tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))]
    return result


def contract(mask, spacing: Sequence[float], margin: Margin | float, *, direction=None,
             threads: int | None = None) -> np.ndarray:
    """Shrinks a mask by a margin in mm, exactly: a voxel stays when every voxel centre within ``margin`` of it (in
    the margin's directions) is in the mask; voxels outside the array never erode it.

    Args:
        mask: 3D bool (or 0/1 integer) array in (z, y, x) order; not modified.
        spacing: voxel spacing (z, y, x) in mm.
        margin: a :class:`Margin` or a radial margin in mm (``superior=5``: the superior border moves 5 mm down).
        direction: SimpleITK's direction matrix (see :func:`expand`).
        threads: threads of the distance transform (``None``: every core this process may use).

    Returns:
        A new bool array, a subset of the mask; ``contract(m, s, x) == ~expand(~m, s, x.reflected())``.

    Raises:
        InvalidInput: a bad mask, spacing, margin, direction or thread count.
    """
    mask, spacing, _, axes, threads = _checked(mask, spacing, margin, direction, threads)
    return shrink(mask, spacing, axes, threads)


def _ball(radius_mm: float) -> Margin:
    return Margin(radial=check_length(radius_mm, "radius_mm"))


def dilate(mask, spacing: Sequence[float], radius_mm: float, *, threads: int | None = None) -> np.ndarray:
    """Dilation by the ball of ``radius_mm``: voxel centres within ``radius_mm`` (Euclidean, anisotropic spacing)
    of a mask voxel centre. See :func:`expand`."""
    return expand(mask, spacing, _ball(radius_mm), threads=threads)


def erode(mask, spacing: Sequence[float], radius_mm: float, *, threads: int | None = None) -> np.ndarray:
    """Erosion by the ball of ``radius_mm``, the dual of :func:`dilate`: ``erode(m) == ~dilate(~m)``. See
    :func:`contract`."""
    return contract(mask, spacing, _ball(radius_mm), threads=threads)


def opening(mask, spacing: Sequence[float], radius_mm: float, *, threads: int | None = None) -> np.ndarray:
    """Erosion then dilation by the ball of ``radius_mm``: removes parts thinner than the ball; a subset of the
    mask."""
    margin = _ball(radius_mm)
    mask, spacing, _, axes, threads = _checked(mask, spacing, margin, None, threads)
    return grow(shrink(mask, spacing, axes, threads), spacing, axes, threads)


def closing(mask, spacing: Sequence[float], radius_mm: float, *, threads: int | None = None) -> np.ndarray:
    """Dilation then erosion by the ball of ``radius_mm``: fills gaps narrower than the ball; a superset of the
    mask (the dilation is clipped to the image, and the image border never erodes)."""
    margin = _ball(radius_mm)
    mask, spacing, _, axes, threads = _checked(mask, spacing, margin, None, threads)
    warn_if_larger_than_image(axes, spacing, mask.shape, margin)
    return shrink(grow(mask, spacing, axes, threads), spacing, axes, threads)
