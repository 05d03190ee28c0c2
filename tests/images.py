"""Small images written for tests: an array in NIfTI with a chosen spacing, origin and direction, and read back."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_image(path: Path, array: np.ndarray, *, spacing_xyz: Sequence[float], origin: Sequence[float],
                direction: Sequence[float], dtype=None) -> Path:
    """``array`` ((z, y, x), cast to ``dtype`` when given) written to ``path`` with this geometry (SimpleITK's
    (x, y, z) spacing and origin, row-major direction); parent folders created."""
    image = sitk.GetImageFromArray(np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype))
    image.SetSpacing(tuple(float(s) for s in spacing_xyz))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(d) for d in direction))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def read_image(path: Path) -> np.ndarray:
    """The voxel array of an image file, (z, y, x)."""
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
