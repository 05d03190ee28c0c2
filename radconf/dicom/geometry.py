"""The ONE coordinate convention of radconf's DICOM code: a CT series' voxel grid in patient coordinates.

DICOM (PS3.3 C.7.6.2.1.1) places the centre of pixel (row ``j``, column ``i``) of a slice at::

    P = S + X * dc * i + Y * dr * j

with ``S`` the slice's ImagePositionPatient, ``X``/``Y`` the row/column direction cosines (ImageOrientationPatient
[0:3] / [3:6]), ``dc = PixelSpacing[1]`` (between columns) and ``dr = PixelSpacing[0]`` (between rows). Slices are
ordered by ``S . n`` with ``n = X x Y`` (the slice normal), ascending; never by file name or InstanceNumber.

Continuous voxel indices here are ``(i, j, k)`` = (column, row, slice), with voxel centres at integers and voxel
edges at half-integers. numpy arrays are ``(k, j, i)``; the SimpleITK/NIfTI image has spacing ``(dc, dr, dz)``,
origin = first slice's position and direction columns ``(X, Y, n)``, so voxel ``k`` of the image is slice ``k`` of
the series. Slice positions need not be uniform: ``dz`` is the mean step, and contours are matched to the slices
by their actual positions (:meth:`SeriesGeometry.slice_of`).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

SLICE_MATCH_TOLERANCE_FRACTION = 0.25  # a contour belongs to slice k if |position - slice k| <= 0.25 x local spacing
SLICE_MATCH_TOLERANCE_MIN_MM = 0.01  # ... and at least 0.01 mm (single-slice series)


@dataclass(frozen=True)
class SeriesGeometry:
    """Voxel grid of a CT series (or of an image written as one).

    Attributes:
        rows: pixels per column (DICOM Rows, numpy axis 1).
        columns: pixels per row (DICOM Columns, numpy axis 2).
        row_direction: X, direction of increasing column index i (ImageOrientationPatient[0:3]).
        column_direction: Y, direction of increasing row index j (ImageOrientationPatient[3:6]).
        pixel_spacing: DICOM PixelSpacing order: (between rows dr, between columns dc), mm.
        positions: (n_slices, 3) ImagePositionPatient of every slice, sorted along the normal.
    """

    rows: int
    columns: int
    row_direction: tuple[float, float, float]
    column_direction: tuple[float, float, float]
    pixel_spacing: tuple[float, float]
    positions: np.ndarray

    def __post_init__(self) -> None:
        positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        order = np.argsort(positions @ self.normal, kind="stable")
        positions = positions[order]
        positions.setflags(write=False)
        object.__setattr__(self, "positions", positions)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SeriesGeometry):
            return NotImplemented
        return (self.shape == other.shape and np.allclose(self.direction, other.direction, atol=1e-6)
                and np.allclose(self.pixel_spacing, other.pixel_spacing, rtol=1e-6)
                and np.allclose(self.positions, other.positions, atol=1e-4))

    __hash__ = None  # type: ignore[assignment]

    @cached_property
    def normal(self) -> np.ndarray:
        normal = np.cross(np.asarray(self.row_direction, float), np.asarray(self.column_direction, float))
        normal.setflags(write=False)
        return normal

    @property
    def n_slices(self) -> int:
        return int(self.positions.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """numpy shape (slices, rows, columns)."""
        return self.n_slices, int(self.rows), int(self.columns)

    @cached_property
    def slice_positions(self) -> np.ndarray:
        """Position of each slice along the normal, mm (ascending)."""
        positions = self.positions @ self.normal
        positions.setflags(write=False)
        return positions

    @property
    def slice_spacing(self) -> float:
        """Mean distance between neighbouring slices (1.0 for a single slice)."""
        s = self.slice_positions
        return float((s[-1] - s[0]) / (len(s) - 1)) if len(s) > 1 else 1.0

    @property
    def spacing(self) -> tuple[float, float, float]:
        """SimpleITK spacing (dc, dr, dz)."""
        return float(self.pixel_spacing[1]), float(self.pixel_spacing[0]), self.slice_spacing

    @property
    def direction(self) -> np.ndarray:
        """3 x 3 matrix with columns X, Y, n."""
        return np.stack([np.asarray(self.row_direction, float), np.asarray(self.column_direction, float),
                         self.normal], axis=1)

    @property
    def voxel_volume_mm3(self) -> float:
        return float(np.prod(self.spacing))

    def max_slice_deviation_mm(self) -> float:
        """Largest distance of a slice from the uniform grid the NIfTI image assumes (0 for uniform slices)."""
        s = self.slice_positions
        if len(s) < 2:
            return 0.0
        uniform = s[0] + np.arange(len(s)) * self.slice_spacing
        return float(np.max(np.abs(s - uniform)))

    def in_plane_index(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) patient points -> (N, 2) continuous (i, j) = (column, row) indices, relative to the first slice."""
        d = np.asarray(points, np.float64).reshape(-1, 3) - self.positions[0]
        x = d @ np.asarray(self.row_direction, float) / float(self.pixel_spacing[1])
        y = d @ np.asarray(self.column_direction, float) / float(self.pixel_spacing[0])
        return np.stack([x, y], axis=1)

    def along_normal(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) patient points -> position along the slice normal, mm (comparable with slice_positions)."""
        return np.asarray(points, np.float64).reshape(-1, 3) @ self.normal

    def slice_tolerance(self, k: int) -> float:
        """Half-width of the band (mm) around slice k in which a contour is taken to lie on it."""
        s = self.slice_positions
        if len(s) < 2:
            return max(SLICE_MATCH_TOLERANCE_MIN_MM, SLICE_MATCH_TOLERANCE_FRACTION * float(self.pixel_spacing[0]))
        steps = np.diff(s)
        local = min(steps[max(k - 1, 0)], steps[min(k, len(steps) - 1)])
        return max(SLICE_MATCH_TOLERANCE_MIN_MM, SLICE_MATCH_TOLERANCE_FRACTION * float(local))

    def slice_of(self, position_mm: float) -> int | None:
        """Index of the slice whose position matches ``position_mm`` (within :meth:`slice_tolerance`), else None."""
        s = self.slice_positions
        k = int(np.clip(np.searchsorted(s, position_mm), 0, len(s) - 1))
        candidates = [c for c in (k - 1, k) if 0 <= c < len(s)]
        best = min(candidates, key=lambda c: abs(s[c] - position_mm))
        return best if abs(s[best] - position_mm) <= self.slice_tolerance(best) else None

    def index_to_patient(self, ij: np.ndarray, k: int) -> np.ndarray:
        """(N, 2) continuous (column, row) indices on slice k -> (N, 3) patient points."""
        ij = np.asarray(ij, np.float64).reshape(-1, 2)
        x = np.asarray(self.row_direction, float) * float(self.pixel_spacing[1])
        y = np.asarray(self.column_direction, float) * float(self.pixel_spacing[0])
        return self.positions[k] + ij[:, :1] * x + ij[:, 1:2] * y

    def to_image(self, array: np.ndarray):
        """numpy (slices, rows, columns) array -> SimpleITK image with this geometry."""
        import SimpleITK as sitk

        if tuple(array.shape) != self.shape:
            raise ValueError(f"array shape {array.shape} is not the series' {self.shape}")
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(tuple(float(v) for v in self.positions[0]))
        image.SetDirection(tuple(float(v) for v in self.direction.ravel()))
        return image

    @classmethod
    def from_image(cls, image) -> SeriesGeometry:
        """Geometry of a 3D SimpleITK image (uniform slices): the series it would be written as."""
        size = image.GetSize()
        direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
        spacing = image.GetSpacing()
        origin = np.asarray(image.GetOrigin(), float)
        if np.dot(np.cross(direction[:, 0], direction[:, 1]), direction[:, 2]) < 0:
            raise ValueError("the image's direction matrix is left-handed; a DICOM series needs slices along "
                             "X x Y (flip the third axis first)")
        positions = origin + np.arange(size[2])[:, None] * spacing[2] * direction[:, 2]
        return cls(int(size[1]), int(size[0]), tuple(direction[:, 0]), tuple(direction[:, 1]),
                   (float(spacing[1]), float(spacing[0])), positions)

    def describe(self) -> str:
        dc, dr, dz = self.spacing
        return f"{self.columns} x {self.rows} x {self.n_slices} voxels of {dc:.3g} x {dr:.3g} x {dz:.3g} mm"
