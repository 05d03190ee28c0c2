"""The synthetic cases of ``benchmark_dicom_rt.py``: CT grids, analytic structures, their truth masks, the files.

:func:`make_geometry` is the uniform axial grid (the field of view and z extent of 512 x 512 x 150 at any size, origin
off the grid), :func:`make_nonuniform_geometry` the same in-plane grid on slices that are NOT uniform. The structures
(:func:`structures`, :func:`reader_structures`) are functions of t = z / half the z extent giving each slice's
contours as :class:`Ellipse` s; :func:`build_case` turns them into the stored polygons and the truth (the voxel
centres inside the polygons, even-odd), :func:`write_case` into a CT series and RTSTRUCT files, and
:func:`compare` / :func:`agreement` measure a tool's masks against the truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

PIXEL_MM, SLICE_MM, FULL_SIZE, FULL_SLICES = 0.977, 2.5, 512, 150
VERTEX_SPACING_MM = 1.0
ROUNDING_MM = 1e-6  # the RTSTRUCT writer keeps 6 decimals


@dataclass(frozen=True)
class Ellipse:
    """One contour: the ellipse ((u / a)^2 + (v / b)^2 <= 1) in the axial plane, (u, v) rotated by ``angle``, mm."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float = 0.0

    @property
    def n_vertices(self) -> int:
        a, b = self.a, self.b
        perimeter = np.pi * (3 * (a + b) - np.sqrt((3 * a + b) * (a + 3 * b)))
        return max(32, int(np.ceil(perimeter / VERTEX_SPACING_MM)))

    def vertices(self) -> np.ndarray:
        """(N, 2) x, y on the ellipse (phase 0.37 rad), rounded as stored."""
        theta = 0.37 + 2 * np.pi * np.arange(self.n_vertices) / self.n_vertices
        u, v = self.a * np.cos(theta), self.b * np.sin(theta)
        c, s = np.cos(self.angle), np.sin(self.angle)
        return np.round(np.stack([self.cx + u * c - v * s, self.cy + u * s + v * c], axis=1), 6)

    def f(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.angle), np.sin(self.angle)
        u, v = (x - self.cx) * c + (y - self.cy) * s, -(x - self.cx) * s + (y - self.cy) * c
        return (u / self.a) ** 2 + (v / self.b) ** 2

    def half_extent(self) -> tuple[float, float]:
        c, s = np.cos(self.angle), np.sin(self.angle)
        return float(np.hypot(self.a * c, self.b * s)), float(np.hypot(self.a * s, self.b * c))


def _cylinder(cx, cy, a, b, t_lo, t_hi, angle=0.0):
    return lambda t: [Ellipse(cx, cy, a, b, angle)] if t_lo <= t <= t_hi else []


def _ellipsoid(cx, cy, a, b, t0, tz, angle=0.0):
    def contours(t):
        s = 1.0 - ((t - t0) / tz) ** 2
        return [Ellipse(cx, cy, a * np.sqrt(s), b * np.sqrt(s), angle)] if s > 1e-4 else []
    return contours


def _union(*parts):
    return lambda t: [e for part in parts for e in part(t)]


def _cone(cx, cy, a0, a1, t_lo, t_hi):
    def contours(t):
        a = a0 + (a1 - a0) * (t - t_lo) / (t_hi - t_lo)
        return [Ellipse(cx, cy, a, 0.7 * a)] if t_lo <= t <= t_hi else []
    return contours


def structures(w: float, h: float) -> dict[str, object]:
    """The 10 structures: name -> t -> contours, for a field of view of half-width ``w`` mm, t = z / ``h``.

    All lie inside Body and are disjoint from one another (checked by :func:`build_case`), so that an imported label
    map gives every mask back (Body = every label)."""
    ring = (0.0, 0.3 * w)
    return {
        "Body": _cylinder(0.0, 0.0, 0.68 * w, 0.46 * w, -0.9, 0.9),
        "Liver": _ellipsoid(-0.3 * w, -0.12 * w, 0.2 * w, 0.15 * w, 0.1, 0.35, angle=0.2),
        "Kidney_L": _cylinder(0.32 * w, 0.15 * w, 0.08 * w, 0.045 * w, -0.5, 0.1, angle=np.pi / 6),
        "Marker": _ellipsoid(-0.05 * w, 0.05 * w, 3.0, 3.0, 1.1 / h, 3.0 / h),
        "Rectum": _union(_cylinder(*ring, 0.07 * w, 0.06 * w, -0.65, 0.05), _cylinder(*ring, 0.035 * w, 0.03 * w,
                                                                                       -0.65, 0.05)),
        "Lumen": _cylinder(*ring, 0.015 * w, 0.012 * w, -0.6, 0.0),
        "Bladder": _union(_ellipsoid(0.25 * w, -0.2 * w, 0.12 * w, 0.09 * w, -0.25, 0.35),
                          _ellipsoid(0.25 * w, -0.2 * w, 0.05 * w, 0.04 * w, -0.25, 0.15)),
        "Lungs": _union(_ellipsoid(-0.34 * w, -0.05 * w, 0.17 * w, 0.28 * w, 0.68, 0.2),
                        _ellipsoid(0.34 * w, -0.05 * w, 0.17 * w, 0.28 * w, 0.68, 0.2)),
        "SpinalCord": _cylinder(0.0, 0.4 * w, 0.025 * w, 0.025 * w, -0.85, 0.85),
        "Prostate": _cone(-0.25 * w, 0.25 * w, 0.03 * w, 0.08 * w, -0.8, -0.3),
    }


def reader_structures(w: float, n_readers: int, seed: int = 0) -> dict[str, object]:
    """One GTV-like ellipsoid per reader (seeded shifts of ~2 mm and scalings of ~5 %)."""
    rng = np.random.default_rng(seed)
    out = {}
    for r in range(1, n_readers + 1):
        dx, dy = rng.normal(0.0, 2.0, 2)
        sa, sb, sz = 1.0 + rng.normal(0.0, 0.05, 3)
        out[f"reader{r}"] = _ellipsoid(0.05 * w + dx, -0.1 * w + dy, 0.1 * w * sa, 0.08 * w * sb, 0.0, 0.25 * sz)
    return out


def make_geometry(size: int, slices: int):
    """The benchmark's axial grid (the field of view and z extent of 512 x 512 x 150 at any size).

    Args:
        size: rows = columns; pixels are 0.977 mm x 512 / size.
        slices: number of slices, 2.5 mm x 150 / slices apart.

    Returns:
        The :class:`radconf.dicom.geometry.SeriesGeometry`, origin off the grid (not a multiple of the spacing).
    """
    from radconf.dicom.geometry import SeriesGeometry

    pixel = round(PIXEL_MM * FULL_SIZE / size, 6)
    dz = round(SLICE_MM * FULL_SLICES / slices, 6)
    origin = np.array([-(size - 1) / 2 * pixel + 0.2137, -(size - 1) / 2 * pixel - 0.3141, -(slices - 1) / 2 * dz
                       + 0.7])
    positions = np.round(origin + np.arange(slices)[:, None] * np.array([0.0, 0.0, dz]), 4)
    return SeriesGeometry(size, size, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (pixel, pixel), positions)


FINE_SLAB = (0.1, 0.4)  # non-uniform case: the fine steps start at 10 % of the steps and are 40 % of them


def nonuniform_steps(slices: int) -> np.ndarray:
    """Steps of the non-uniform case: 3.0 mm x 150 / ``slices``, and 2.0 mm x 150 / ``slices`` in a slab of
    :data:`FINE_SLAB` steps (fewer fine steps than coarse ones, so the median is the coarse step and no step exceeds
    1.5 x the median: :func:`radconf.dicom.series.check_series` accepts the series)."""
    n = slices - 1
    start, count = round(FINE_SLAB[0] * n), round(FINE_SLAB[1] * n)
    steps = np.full(n, 3.0 * FULL_SLICES / slices)
    steps[start:start + count] = 2.0 * FULL_SLICES / slices
    return np.round(steps, 6)


def make_nonuniform_geometry(size: int, slices: int):
    """The in-plane grid of :func:`make_geometry` with the slice positions of :func:`nonuniform_steps` (centred, off
    the grid by 0.7 mm)."""
    from radconf.dicom.geometry import SeriesGeometry

    base = make_geometry(size, slices)
    z = np.concatenate([[0.0], np.cumsum(nonuniform_steps(slices))])
    positions = np.round(np.column_stack([np.repeat(base.positions[:1, :2], slices, axis=0), z - z[-1] / 2 + 0.7]), 4)
    return SeriesGeometry(size, size, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), base.pixel_spacing, positions)


def _contour_truth(ellipse: Ellipse, vertices: np.ndarray, geometry, mask: np.ndarray) -> int:
    """XORs the centres inside the stored polygon into the slice ``mask``; returns how many of them differ from
    the analytic ellipse (f <= 1)."""
    from matplotlib.path import Path as PolygonPath

    (x0, y0, _), (dy, dx) = geometry.positions[0], geometry.pixel_spacing
    (hx, hy), axes = ellipse.half_extent(), ((ellipse.cx, x0, dx, geometry.columns),
                                             (ellipse.cy, y0, dy, geometry.rows))
    (i0, i_hi), (j0, j_hi) = ((max(0, int(np.floor((c - h - o) / d)) - 1), min(n, int(np.ceil((c + h - o) / d)) + 2))
                              for (c, o, d, n), h in zip(axes, (hx, hy)))
    if i0 >= i_hi or j0 >= j_hi:
        return 0
    x, y = np.meshgrid(x0 + np.arange(i0, i_hi) * dx, y0 + np.arange(j0, j_hi) * dy)
    f = ellipse.f(x, y)
    margin = 10 * ROUNDING_MM / min(ellipse.a, ellipse.b)
    inside = f <= np.cos(np.pi / len(vertices)) ** 2 - margin
    band = (f > np.cos(np.pi / len(vertices)) ** 2 - margin) & (f <= 1 + margin)
    if band.any():
        inside[band] = PolygonPath(vertices).contains_points(np.stack([x[band], y[band]], axis=1))
    mask[j0:j_hi, i0:i_hi] ^= inside
    return int(np.count_nonzero(inside != (f <= 1.0)))


@dataclass
class Case:
    geometry: object
    contours: dict  # name -> [(k, (N, 3) patient points)]
    truth: dict  # name -> bool (slices, rows, columns)
    polygon_vs_analytic: dict  # name -> centres where the polygon and the analytic ellipse disagree


def build_case(geometry, shapes: dict) -> Case:
    """Polygons and truth masks of analytic structures on a grid.

    Args:
        geometry: the CT grid (:func:`make_geometry`).
        shapes: name -> (t -> contours as :class:`Ellipse` s), t = z / half the z extent (:func:`structures`).

    Returns:
        The :class:`Case`: per name the contours (slice k, (N, 3) mm points as stored), the truth mask (centres
        inside the slice's polygons, even-odd) and the centres where polygon and analytic ellipse disagree.
    """
    h = (geometry.slice_positions[-1] - geometry.slice_positions[0]) / 2
    case = Case(geometry, {}, {}, {})
    for name, shape in shapes.items():
        mask, contours, differ = np.zeros(geometry.shape, bool), [], 0
        for k, z in enumerate(geometry.slice_positions):
            for ellipse in shape(z / h):
                xy = ellipse.vertices()
                contours.append((k, np.column_stack([xy, np.full(len(xy), geometry.positions[k][2])])))
                differ += _contour_truth(ellipse, xy, geometry, mask[k])
        case.contours[name], case.truth[name], case.polygon_vs_analytic[name] = contours, mask, differ
    return case


def check_nested(case: Case, outer: str = "Body") -> None:
    """Every structure but ``outer`` inside it and disjoint from the others (so a label map keeps every mask)."""
    inner = [n for n in case.truth if n != outer]
    total = sum(case.truth[n].astype(np.int16) for n in inner) if inner else 0
    if inner and (np.any(total > 1) or np.any((total > 0) & ~case.truth[outer])):
        raise RuntimeError("benchmark design: the structures overlap or leave the body; fix structures()")


def field_half_widths(geometry) -> tuple[float, float]:
    """(w, h) of :func:`structures`: half the field of view's width and half the z extent, mm."""
    return (geometry.columns * geometry.pixel_spacing[1] / 2,
            (geometry.slice_positions[-1] - geometry.slice_positions[0]) / 2)


def structure_case(geometry, names: list[str] | None = None) -> Case:
    """:func:`build_case` of the :func:`structures` ``names`` (default all 10) on ``geometry``, checked by
    :func:`check_nested` (Body must be one of them)."""
    shapes = structures(*field_half_widths(geometry))
    case = build_case(geometry, {n: shapes[n] for n in (names or shapes)})
    check_nested(case)
    return case


def readers_case(geometry, n_readers: int) -> Case:
    """:func:`build_case` of :func:`reader_structures` (``n_readers`` GTVs) on ``geometry``."""
    return build_case(geometry, reader_structures(field_half_widths(geometry)[0], n_readers))


def write_case(folder: Path, case: Case, sets: dict | None = None, hu: np.ndarray | None = None
               ) -> tuple[Path, list[Path]]:
    """CT (folder/CT, ``hu`` or :func:`case_hu`) and one RTSTRUCT per entry of ``sets`` (label -> {ROI name: key
    of ``case.contours``}; default one "Clinical" set of every structure); returns (CT folder, RTSTRUCT files)."""
    from radconf.dicom.ct_writer import write_ct_series
    from radconf.dicom.identity import PatientStudy, new_uid
    from radconf.dicom.rtstruct_writer import RoiContours, build_rtstruct, write_dataset

    patient = PatientStudy("BENCH-0001", "Benchmark^Phantom", new_uid(), study_date="20240101")
    sets = {"Clinical": {n: n for n in case.truth}} if sets is None else sets
    hu = case_hu(case) if hu is None else hu
    reference = write_ct_series(hu, case.geometry, folder / "CT", patient, series_description="benchmark CT")
    files = []
    for label, names in sets.items():
        rois = [RoiContours(n, name, (40 * n % 256, 255 - 25 * n, 90), case.contours[key], "ORGAN", "MANUAL")
                for n, (name, key) in enumerate(names.items(), start=1)]
        files.append(write_dataset(build_rtstruct(reference, rois, label=label), folder / f"RTSTRUCT_{label}.dcm"))
    return folder / "CT", files


def case_hu(case: Case) -> np.ndarray:
    """The CT of a case: air (-1000 HU), Lungs -800, Body 0 and the other structures 20 + 10 x their index."""
    hu = np.full(case.geometry.shape, -1000, np.int16)
    for n, (name, mask) in enumerate(case.truth.items()):
        hu[mask] = -800 if name == "Lungs" else (0 if name == "Body" else 20 + 10 * n)
    return hu


def label_map(case: Case) -> tuple[np.ndarray, dict]:
    """The truth masks painted as one label map (value i for the i-th structure, later ones over earlier ones) and
    each value's mask by structure name (Body first: its mask is Body minus the others)."""
    labels = np.zeros(case.geometry.shape, np.uint8)
    for value, name in enumerate(case.truth, start=1):
        labels[case.truth[name]] = value
    return labels, {name: labels == value for value, name in enumerate(case.truth, start=1)}


def case_summary(case: Case) -> dict:
    """Per structure: truth voxels, contours, vertices and the centres where polygon and analytic ellipse differ."""
    return {n: {"truth_voxels": int(m.sum()), "contours": len(case.contours[n]),
                "vertices": int(sum(len(p) for _, p in case.contours[n])),
                "polygon_vs_analytic_centres": case.polygon_vs_analytic[n]} for n, m in case.truth.items()}


def steps_summary(geometry) -> dict:
    """A (non-uniform) grid: its description, the distinct slice steps, their median and the largest distance of a
    slice from the uniform grid of the mean step, mm."""
    steps = np.diff(geometry.slice_positions)
    return {"grid": geometry.describe(), "steps_mm": sorted({round(float(d), 4) for d in steps}),
            "median_step_mm": round(float(np.median(steps)), 4), "max_deviation_mm": geometry.max_slice_deviation_mm()}


def compare(mask: np.ndarray, truth: np.ndarray) -> dict:
    """A mask against the truth.

    Args:
        mask: any array (non-zero = inside); truth: the same shape.

    Returns:
        ``voxels``, ``truth_voxels``, ``dice`` (1.0 when both are empty) and ``differing`` (voxels that differ).
    """
    mask, truth = np.asarray(mask) > 0, np.asarray(truth) > 0
    both = int(np.count_nonzero(mask & truth))
    size = int(mask.sum()) + int(truth.sum())
    return {"voxels": int(mask.sum()), "truth_voxels": int(truth.sum()), "dice": 1.0 if size == 0 else 2 * both / size,
            "differing": int(np.count_nonzero(mask != truth))}


def agreement(masks: dict, truth: dict) -> dict:
    """:func:`compare` of each key of ``truth``; plus ``total_differing`` and ``exact`` (no voxel differs)."""
    rois = {key: compare(masks[key], truth[key]) for key in truth}
    total = sum(r["differing"] for r in rois.values())
    return {"rois": rois, "total_differing": total, "exact": total == 0}

