"""Geometric primitives on a physical (mm) grid, vectorised with open (broadcasting) coordinate arrays."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Grid:
    """Physical coordinates of voxel centres, in mm, relative to the volume centre; numpy (z, y, x) order."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        z, y, x = np.ogrid[: self.shape[0], : self.shape[1], : self.shape[2]]
        centre = [(n - 1) / 2 for n in self.shape]
        return ((z - centre[0]) * self.spacing[0], (y - centre[1]) * self.spacing[1], (x - centre[2]) * self.spacing[2])

    @property
    def extent_mm(self) -> np.ndarray:
        return np.array(self.shape) * np.array(self.spacing)


def ellipsoid(grid: Grid, centre: tuple[float, float, float], radii: tuple[float, float, float]) -> np.ndarray:
    """Boolean mask of an axis-aligned ellipsoid; centre and radii in mm, (z, y, x)."""
    z, y, x = grid.coords
    return ((z - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + \
        ((x - centre[2]) / radii[2]) ** 2 <= 1.0


def elliptic_cylinder(grid: Grid, centre_yx: tuple[float, float], radii_yx: tuple[float, float],
                      z_range: tuple[float, float] = (-np.inf, np.inf)) -> np.ndarray:
    """Boolean mask of a cylinder along z with an elliptic cross-section."""
    z, y, x = grid.coords
    inside = ((y - centre_yx[0]) / radii_yx[0]) ** 2 + ((x - centre_yx[1]) / radii_yx[1]) ** 2 <= 1.0
    return inside & (z >= z_range[0]) & (z <= z_range[1])


def lobulated_blob(grid: Grid, centre: tuple[float, float, float], radii: tuple[float, float, float],
                   rng: np.random.Generator, n_lobes: int = 5, lobe_amplitude: float = 0.3) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to a lumpy tumour surface, continuous below voxel size.

    The surface is an ellipsoid whose radius is modulated by smooth von Mises bumps in random directions;
    ``(r - modulation) * mean(radii)`` approximates the distance along the ray from the centre.
    """
    z, y, x = grid.coords
    dz, dy, dx = (z - centre[0]) / radii[0], (y - centre[1]) / radii[1], (x - centre[2]) / radii[2]
    r = np.sqrt(dz ** 2 + dy ** 2 + dx ** 2)
    safe = np.maximum(r, 1e-6)
    modulation = np.ones_like(r)
    for _ in range(n_lobes):
        u = rng.normal(size=3)
        u /= np.linalg.norm(u)
        cosine = (dz * u[0] + dy * u[1] + dx * u[2]) / safe
        modulation = modulation + rng.uniform(-0.6, 1.0) * lobe_amplitude * np.exp(3.0 * (cosine - 1.0))
    return ((r - modulation) * float(np.mean(radii))).astype(np.float32)


def smooth_field(shape: tuple[int, ...], spacing: tuple[float, float, float], correlation_mm: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed white noise with unit standard deviation and the given correlation length."""
    noise = rng.standard_normal(shape).astype(np.float32)
    sigma = [max(correlation_mm / s, 0.5) for s in spacing]
    field = ndimage.gaussian_filter(noise, sigma=sigma, mode="reflect")
    std = float(field.std())
    return field / std if std > 0 else field


def bounding_box(mask: np.ndarray, margin: tuple[int, ...]) -> tuple[slice, ...]:
    """Slices of the mask's bounding box enlarged by ``margin`` voxels per axis (clipped to the array)."""
    nonzero = np.nonzero(mask)
    if len(nonzero[0]) == 0:
        return tuple(slice(0, n) for n in mask.shape)
    return tuple(slice(max(int(idx.min()) - m, 0), min(int(idx.max()) + m + 1, n))
                 for idx, m, n in zip(nonzero, margin, mask.shape))
