"""Barrier-aware margins: growth through tissue along paths that go around barriers, never through them.

``expand_within`` keeps the voxels of :func:`radconf.contours.expand` (the exact margin) that a barrier-free path
of length at most ``T`` (in margin units: 1 = the margin) reaches from the mask. Path lengths are measured on the
voxel grid: a path is a chain of steps, each costing its exact length in the margin's gauge
``g(d) = sqrt(sum_i (d_i / a_i(sign d_i))^2)`` (an anisotropic or asymmetric margin scales the grid per axis, as
for the ellipsoid). The steps are the offsets with no common divisor whose components reach, in each octant of
the margin, ``neighbourhood`` voxels along the finest axis of the scaled grid (spacing ``s_i / a_i``) and
``max(1, round(neighbourhood * finest / scaled_i))`` along the others (the largest over the octants): 26 steps for
``neighbourhood=1``; for ``2`` (the default) 98 on a near-isotropic grid and 66 (1 x 2 x 2) for a radial margin on
0.98 x 0.98 x 2.5 mm CT voxels. A step is allowed only when every voxel of the block it spans is passable (not a
barrier, inside ``body``, or in the mask), so a path never slips between two barrier voxels that touch at an edge
or a corner. Distances are found by repeated relaxation over all steps (Bellman-Ford, float32), which ends when no
length up to ``T`` changes; it is exact for this grid metric.

``T`` is the largest grid-path length, without barriers, from a voxel to any voxel centre of its own margin (the
margin's lattice ball), returned by :func:`geodesic_reach_factor`. Hence:

- without barriers (and without ``body``) the result equals :func:`expand` exactly;
- a voxel is reached only through a passable path of length <= ``T`` times the margin: barriers are never crossed,
  and around a barrier the margin reaches at most ``(T - 1)`` times the margin farther than the true geodesic;
- in free space every voxel centre within the margin is reached by a grid path no longer than ``T`` times the
  margin, so a voxel whose straight segment to the mask stays clear of barriers (with the grid path's blocks) is
  reached as by :func:`expand`. A path bent around a barrier passes through voxel centres and can be longer than
  the true geodesic by about a voxel per corner (tests/contours/test_geodesic.py: 14.6 mm on the grid for a 13.0 mm
  path around the end of a wall), so such voxels near the limit of the margin may be left out.

``T`` for a 10 mm radial margin with ``neighbourhood`` 1, 2 (default), 3: 1 mm voxels 1.120, 1.035, 1.004;
0.98 x 0.98 x 2.5 mm 1.200, 1.088, 1.053; for asymmetric margins it is larger (sup 12, inf 7, ant 10, post 5,
left/right 7 mm on CT voxels: 1.253, 1.162, 1.103). Run time grows with the number of steps.

``body``, when given, is a barrier too (a margin does not leave the body and come back); the result is cut to it and
never inside ``barriers``. Everything runs box by box: each cluster of the mask on its bounding box grown by ``T``
times the margin.
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from functools import reduce

import numpy as np

from radconf.contours.boxes import cluster_boxes
from radconf.contours.checks import as_mask, as_same_shape, check_spacing, check_threads
from radconf.contours.margins import Margin, SemiAxes, as_margin, reach_voxels, semi_axes
from radconf.contours.morphology import expand, grow_box, warn_if_larger_than_image
from radconf.errors import InvalidInput

NEIGHBOURHOODS = (1, 2, 3)
COMPARISON_TOLERANCE = 1e-5  # float32 path sums in different orders


def step_extents(spacing: Sequence[float], axes: SemiAxes, neighbourhood: int) -> tuple[int, int, int]:
    """Largest step per axis: in each octant of the margin, ``neighbourhood`` voxels along the finest axis of the
    margin-scaled grid (spacing ``s_i / a_i``) and ``max(1, round(neighbourhood * finest / scaled_i))`` along the
    others; the largest over the octants."""
    extents = [1, 1, 1]
    for sides in itertools.product((0, 1), repeat=3):
        scaled = [float(s) / pair[side] if pair[side] > 0 else math.inf for s, pair, side in zip(spacing, axes, sides)]
        finest = min(scaled)
        if math.isfinite(finest):
            extents = [max(e, round(neighbourhood * finest / v) if math.isfinite(v) else 1)
                       for e, v in zip(extents, scaled)]
    return tuple(extents)  # type: ignore[return-value]


def steps(extents: Sequence[int]) -> list[tuple[int, int, int]]:
    """Grid steps: nonzero offsets with ``|o_i| <= extents[i]`` and no common divisor (26 for (1, 1, 1), 98 for
    (2, 2, 2), 66 for (1, 2, 2))."""
    spans = [range(-e, e + 1) for e in extents]
    return [o for o in itertools.product(*spans) if any(o) and reduce(math.gcd, map(abs, o)) == 1]


def step_cost(offset: Sequence[int], spacing: Sequence[float], axes: SemiAxes) -> float:
    """Length of one step in the margin's gauge (inf when it moves in a direction with a zero margin)."""
    total = 0.0
    for k, s, (minus, plus) in zip(offset, spacing, axes):
        if k:
            semi_axis = plus if k > 0 else minus
            if semi_axis <= 0:
                return math.inf
            total += (k * float(s) / semi_axis) ** 2
    return math.sqrt(total)


def _allowed(passable: np.ndarray, extents: set[tuple[int, int, int]]) -> dict[tuple[int, int, int], np.ndarray]:
    """Per block extent ``b``: True at ``q`` where every voxel of ``q + [0..b]`` is passable."""
    allowed = {}
    for extent in extents:
        block = passable
        for axis, b in enumerate(extent):
            if b:
                n = block.shape[axis]
                parts = [block[(slice(None),) * axis + (slice(j, n - b + j),)] for j in range(b + 1)]
                block = np.logical_and.reduce(parts)
        allowed[extent] = block
    return allowed


def grid_distance(sources: np.ndarray, passable: np.ndarray, spacing: Sequence[float], axes: SemiAxes,
                  neighbourhood: int = 2, limit: float = math.inf) -> np.ndarray:
    """Shortest grid-path length (margin units, float32) from ``sources`` through ``passable`` voxels, for the
    lengths up to ``limit`` (inf: unreachable or farther).

    Exact for the grid metric of this module (steps of :func:`step_extents`, each block passable), up to float32
    rounding (relative 1e-6).
    """
    moves = []
    for offset in steps(step_extents(spacing, axes, neighbourhood)):
        cost = step_cost(offset, spacing, axes)
        fits = all(abs(k) < n for k, n in zip(offset, sources.shape))
        if fits and math.isfinite(cost) and cost <= limit:
            moves.append((offset, np.float32(cost)))
    distance = np.where(sources, np.float32(0), np.float32(np.inf))
    if not moves:
        return distance
    allowed = _allowed(passable | sources, {tuple(abs(k) for k in o) for o, _ in moves})
    shape = distance.shape
    buffer = np.empty(shape, np.float32)
    while True:
        before = distance.copy()
        for offset, cost in moves:
            target = tuple(slice(max(k, 0), n + min(k, 0)) for k, n in zip(offset, shape))
            source = tuple(slice(max(-k, 0), n - max(k, 0)) for k, n in zip(offset, shape))
            candidate = buffer[tuple(slice(0, t.stop - t.start) for t in target)]
            np.add(distance[source], cost, out=candidate)
            np.minimum(distance[target], candidate, out=distance[target],
                       where=allowed[tuple(abs(k) for k in offset)])
        np.copyto(distance, np.float32(np.inf), where=distance > limit)  # farther lengths need not propagate
        if np.array_equal(before, distance):
            return distance


@functools.lru_cache(maxsize=64)
def _reach_factor(spacing: tuple[float, ...], axes: SemiAxes, neighbourhood: int) -> float:
    """T: the largest barrier-free grid distance from a voxel to the voxel centres of its margin (at least 1).

    Computed one octant at a time: the margin of that octant towards increasing index only (a zero margin towards
    decreasing index rules out steps with a component that way), on the octant's box; cached.
    """
    octants = {tuple((0.0, pair[side]) for pair, side in zip(axes, sides)) for sides in itertools.product((0, 1),
                                                                                                         repeat=3)}
    largest = 1.0
    for octant in octants:
        _, after = reach_voxels(octant, spacing)
        shape = tuple(a + 1 for a in after)
        origin = np.zeros(shape, dtype=bool)
        origin[0, 0, 0] = True
        inside = grow_box(origin, spacing, octant)
        if inside.sum() > 1:
            distance = grid_distance(origin, np.ones(shape, dtype=bool), spacing, octant, neighbourhood)
            largest = max(largest, float(distance[inside].max()))
    return largest


def _check_neighbourhood(neighbourhood: int) -> int:
    if isinstance(neighbourhood, bool) or neighbourhood not in NEIGHBOURHOODS:
        raise InvalidInput(f"neighbourhood must be 1, 2 or 3 (the longest step in voxels of the finest axis), got "
                           f"{neighbourhood!r}.")
    return int(neighbourhood)


def geodesic_reach_factor(spacing: Sequence[float], margin: Margin | float, *, direction=None,
                          neighbourhood: int = 2) -> float:
    """``T`` of :func:`expand_within` for this spacing and margin: without barriers every voxel centre within the
    margin is reached by a grid path no longer than ``T`` times the margin, and around a barrier the margin reaches
    along paths up to ``T`` times itself (``T >= 1``).

    Raises:
        InvalidInput: a bad spacing, margin, direction or neighbourhood.
    """
    spacing = check_spacing(spacing)
    axes = semi_axes(as_margin(margin), direction)
    return _reach_factor(spacing, axes, _check_neighbourhood(neighbourhood))


def expand_within(mask, spacing: Sequence[float], margin: Margin | float, *, barriers=None, body=None,
                  direction=None, neighbourhood: int = 2, keep_input: bool = False,
                  threads: int | None = None) -> np.ndarray:
    """Grows a mask by a margin through tissue, around ``barriers`` instead of through them.

    Args:
        mask: 3D bool (or 0/1 integer) array in (z, y, x) order; not modified.
        spacing: voxel spacing (z, y, x) in mm.
        margin: a :class:`Margin` or a radial margin in mm (anisotropic margins scale the grid per axis).
        barriers: bool array of the mask's shape that the margin may not enter or cross (e.g. bone, air).
        body: bool array of the mask's shape; the result is cut to it and paths may not leave it.
        direction: SimpleITK's direction matrix (see :func:`radconf.contours.expand`).
        neighbourhood: longest step in voxels of the finest axis, 1 (26 steps), 2 or 3 (more steps: paths
            closer to straight lines, slower); see :func:`geodesic_reach_factor`.
        keep_input: add the mask itself to the result, even where it lies in a barrier or outside ``body``.
        threads: threads of the distance transform (``None``: every core this process may use).

    Returns:
        A new bool array: within :func:`expand`'s result, outside barriers, inside ``body`` (plus the mask with
        ``keep_input``). Equal to :func:`expand` without barriers and body.

    Raises:
        InvalidInput: a bad mask, spacing, margin, direction, neighbourhood, or barriers/body of another shape.
    """
    mask = as_mask(mask)
    spacing = check_spacing(spacing)
    margin = as_margin(margin)
    axes = semi_axes(margin, direction)
    neighbourhood = _check_neighbourhood(neighbourhood)
    blocked = None if barriers is None else as_same_shape(barriers, mask, "barriers")
    inside = None if body is None else as_same_shape(body, mask, "body")
    threads = check_threads(threads)
    if blocked is None and inside is None:
        result = expand(mask, spacing, margin, direction=direction, threads=threads)
        return result | mask if keep_input else result
    warn_if_larger_than_image(axes, spacing, mask.shape, margin)
    factor = _reach_factor(spacing, axes, neighbourhood)
    before, after = reach_voxels(axes, spacing, factor)
    result = np.zeros(mask.shape, dtype=bool)
    for _, outer in cluster_boxes(mask, [b + 1 for b in before], [a + 1 for a in after]):
        passable = np.ones(result[outer].shape, dtype=bool)
        if blocked is not None:
            passable &= ~blocked[outer]
        if inside is not None:
            passable &= inside[outer]
        result[outer] |= _reached(mask[outer], passable, spacing, axes, neighbourhood, factor, threads)
    if keep_input:
        result |= mask
    return result


def _reached(sources: np.ndarray, passable: np.ndarray, spacing: Sequence[float], axes: SemiAxes,
             neighbourhood: int, factor: float, threads: int) -> np.ndarray:
    """Within one box: the exact margin, where a passable grid path of length <= ``factor`` reaches."""
    reached = grow_box(sources, spacing, axes, threads)
    if not passable.all():
        limit = factor * (1 + COMPARISON_TOLERANCE)
        reached &= grid_distance(sources, passable, spacing, axes, neighbourhood, limit) <= limit
    return reached & passable
