"""Image headers and label maps: ONE voxel-grid type and ONE comparison policy for every radconf check.

Every comparison of two grids (mask vs image in fusion and anatomy datasets, label vs image in raw datasets,
prediction vs reference in evaluation, members of an ensemble) goes through :func:`geometry_difference`:

- size: equal;
- spacing: within ``SPACING_RELATIVE_TOLERANCE`` of the reference spacing, per axis;
- origin: within ``ORIGIN_TOLERANCE_MM`` mm, per axis;
- direction cosines: within ``DIRECTION_TOLERANCE``.

Headers are read without decoding voxel data (SimpleITK's ``ReadImageInformation``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.io.integrity import RECOPY_HINT, check_complete, check_finite

SPACING_RELATIVE_TOLERANCE = 1e-4  # |spacing difference| <= 1e-4 * reference spacing, per axis
ORIGIN_TOLERANCE_MM = 1e-3  # |origin difference| <= 1e-3 mm, per axis
DIRECTION_TOLERANCE = 1e-4  # |direction cosine difference| <= 1e-4
SPATIAL_DIMENSIONS = (2, 3)  # nnU-Net reads one 2D or 3D file per channel and per label map
RESAMPLE_HINT = ("Resample the mask onto the image grid (nearest neighbour, e.g. SimpleITK's "
                 "Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor)) or export it with the image's "
                 "geometry.")


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of an image in SimpleITK terms (x, y, z order)."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image) -> Geometry:
        """Geometry of a ``sitk.Image`` or of an ``sitk.ImageFileReader`` after ``ReadImageInformation``."""
        return cls(tuple(int(s) for s in image.GetSize()), tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(s) for s in image.GetOrigin()), tuple(float(s) for s in image.GetDirection()))

    @property
    def spacing_zyx(self) -> tuple[float, ...]:
        """Spacing in numpy array axis order."""
        return tuple(reversed(self.spacing))

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def apply_to(self, image):
        """Copies spacing, origin and direction onto ``image`` (a ``sitk.Image`` of the same size) and returns it."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def _rounded(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(float(v), 6) for v in values)


def geometry_difference(reference: Geometry, other: Geometry) -> str | None:
    """Which property of ``other`` differs from ``reference`` beyond the tolerances, with both values; None if none."""
    if len(other.size) != len(reference.size):
        return f"{len(other.size)}D vs {len(reference.size)}D (size {other.size} vs {reference.size})"
    if other.size != reference.size:
        return f"size {other.size} vs {reference.size}"
    if len(other.spacing) != len(reference.spacing) or not np.all(
            np.abs(np.subtract(other.spacing, reference.spacing)) <= SPACING_RELATIVE_TOLERANCE
            * np.abs(reference.spacing)):
        return (f"spacing {_rounded(other.spacing)} vs {_rounded(reference.spacing)} "
                f"(tolerance {SPACING_RELATIVE_TOLERANCE:g} relative)")
    if not np.all(np.abs(np.subtract(other.origin, reference.origin)) <= ORIGIN_TOLERANCE_MM):
        return f"origin {_rounded(other.origin)} vs {_rounded(reference.origin)} (tolerance {ORIGIN_TOLERANCE_MM:g} mm)"
    if not np.all(np.abs(np.subtract(other.direction, reference.direction)) <= DIRECTION_TOLERANCE):
        return (f"direction {_rounded(other.direction)} vs {_rounded(reference.direction)} "
                f"(tolerance {DIRECTION_TOLERANCE:g})")
    return None


def read_header(path: Path):
    """``sitk.ImageFileReader`` with the header of ``path`` read (no voxel data).

    Raises:
        ValueError: SimpleITK cannot read the file, or a NIfTI file is truncated (:func:`check_complete`), naming it.
    """
    import SimpleITK as sitk

    if path.is_file() and path.stat().st_size == 0:
        raise InvalidInput(f"{path} is empty (0 bytes); {RECOPY_HINT}.")
    check_complete(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise InvalidInput(f"SimpleITK cannot read {path} ({_last_line(error)}); re-export the file in a format "
                         f"SimpleITK reads (e.g. NIfTI).") from None
    return reader


def check_image_file(path: str | os.PathLike) -> Geometry:
    """Checks that an image file is whole (:func:`check_complete`) and, for float voxel types, finite; returns its grid.

    Integer images (most CTs, all label maps) are checked from the header alone; float images are decoded once
    (SimpleITK reads NaN in a NIfTI file as 0 without a word, so this is the only place it can be seen).

    Raises:
        InvalidInput: unreadable, truncated, or NaN/infinite voxels, naming the file.
    """
    return Geometry.of(checked_header(Path(path)))


def checked_header(path: Path):
    """:func:`check_image_file`, returning the ``sitk.ImageFileReader`` with the header read (for callers that need
    more of the header than the grid, e.g. the components per voxel)."""
    import SimpleITK as sitk

    reader = read_header(path)
    if sitk.GetPixelIDValueAsString(reader.GetPixelID()).split()[-1] in ("float", "complex"):
        check_finite(_raw_voxels(path, reader), path)
    return reader


def check_volume_file(path: str | os.PathLike, what: str = "image") -> Geometry:
    """:func:`check_image_file` for a file nnU-Net reads as one channel or one label map: also 2D or 3D, and one
    value per voxel.

    Args:
        path: the file.
        what: what it is, for the message (``"image"``, ``"label map"``, ``"mask"``).

    Raises:
        InvalidInput: unreadable, truncated, NaN/infinite voxels, 4D, or several components per voxel, naming the file.
    """
    path = Path(path)
    reader = checked_header(path)
    geometry = Geometry.of(reader)
    if len(geometry.size) not in SPATIAL_DIMENSIONS:
        raise InvalidInput(f"{path} is a {len(geometry.size)}D {what} (size {geometry.size}); nnU-Net reads every image "
                           f"channel and every label map as one 2D or 3D file. Split it into one 3D file per channel or time point (CASE_0000, "
                           f"CASE_0001, ... each declared in channel_names), or keep only the volume you mean.")
    if reader.GetNumberOfComponents() != 1:
        raise InvalidInput(f"{path} has {reader.GetNumberOfComponents()} components per voxel (e.g. RGB); each {what} "
                           f"must hold one value per voxel: store every component as a file (channel) of its own.")
    return geometry


def _raw_voxels(path: Path, reader) -> np.ndarray:
    """The stored voxel values. SimpleITK's NIfTI reader turns NaN into 0, so NIfTI files are decoded with nibabel."""
    import SimpleITK as sitk

    if path.name.lower().endswith((".nii", ".nii.gz")):
        import nibabel

        return np.asarray(nibabel.load(str(path)).dataobj)
    return sitk.GetArrayFromImage(reader.Execute())


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def read_geometry(path: str | os.PathLike) -> Geometry:
    """The voxel grid of an image file, from its header alone."""
    return Geometry.of(read_header(Path(path)))


def geometry_mismatch(reference: str | os.PathLike, other: str | os.PathLike) -> str | None:
    """How ``other``'s grid differs from ``reference``'s (headers only), or None: :func:`geometry_difference`."""
    return geometry_difference(read_geometry(reference), read_geometry(other))


def check_same_geometry(reference: Geometry, prediction: Geometry, reference_path: Path, prediction_path: Path) -> None:
    """Raises InvalidInput naming both files if the prediction is not on the reference grid."""
    difference = geometry_difference(reference, prediction)
    if difference:
        raise InvalidInput(
            f"Geometry mismatch between prediction {prediction_path} and reference {reference_path}: {difference}. "
            "Predictions must be on the reference voxel grid: export them in the original image geometry (nnU-Net "
            "does) or resample them onto the reference before evaluating.")


def read_label_image(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Reads an integer label image with SimpleITK (any format it supports).

    Returns:
        ``(array in (z, y, x) order with a non-negative integer dtype, geometry)``.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: if it cannot be read, is not 2D/3D, has several components, or holds non-integer or negative
            values.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"Label image {path} does not exist.")
    check_image_file(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise InvalidInput(f"SimpleITK cannot read {path}: {str(err).strip().splitlines()[-1]}") from err
    if image.GetDimension() not in (2, 3):
        raise InvalidInput(
            f"{path} is a {image.GetDimension()}D image; label maps are 2D or 3D (one file per case)."
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidInput(
            f"{path} has {image.GetNumberOfComponentsPerPixel()} components per voxel; label images must be scalar "
            "integer label maps (one label id per voxel)."
        )
    geometry = Geometry.of(image)
    array = sitk.GetArrayFromImage(image)
    if not np.issubdtype(array.dtype, np.integer):
        fractional = array[array != np.round(array)]
        if fractional.size:
            shown = ", ".join(f"{v:g}" for v in np.unique(fractional)[:5].tolist())
            raise InvalidInput(
                f"{path} is not an integer label image: it holds non-integer label values ({shown}) (dtype "
                f"{array.dtype}); write label maps with integer labels (threshold or argmax probability maps first)."
            )
        array = array.astype(np.int32)
    if array.size and array.min() < 0:
        raise InvalidInput(f"{path} holds negative label values (min {array.min()}); label ids must be >= 0.")
    return array, geometry


def label_ids_present(array: np.ndarray) -> set[int]:
    """Set of label ids present in an integer label array (fast path via bincount)."""
    if array.size == 0:
        return set()
    top = int(array.max())
    if top <= 65535:
        flat = array.ravel() if array.dtype != np.uint64 else array.ravel().astype(np.int64)
        return {int(i) for i in np.flatnonzero(np.bincount(flat, minlength=top + 1))}
    return {int(i) for i in np.unique(array)}


def array_to_image(array: np.ndarray, spacing_zyx: tuple[float, ...], origin_xyz: tuple[float, ...] | None = None):
    """numpy (z, y, x) array -> SimpleITK image with spacing given in the same (z, y, x) order."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    if origin_xyz is not None:
        image.SetOrigin(tuple(float(o) for o in origin_xyz))
    return image
