"""Crop boxes: a voxel box of a full image, with the full image's grid, and the crop/paste pair built on it.

A :class:`CropBox` holds the start (inclusive) and stop (exclusive) voxel index per numpy array axis (z, y, x) of the
full image, the full image's array shape, and its spacing, origin and direction in SimpleITK's (x, y, z) order (as
:class:`radconf.io.images.Geometry`). :func:`crop` cuts the box out of an image keeping every voxel's world position
(the crop's origin is the world position of the box's first voxel; spacing and direction are the full image's);
:func:`paste` puts a crop back into the full grid, background elsewhere, after checking that the crop lies on the
box's grid. ``paste(crop(image, box), box)`` equals ``image`` inside the box.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from radconf.errors import InvalidInput
from radconf.io.images import Geometry, geometry_difference, read_label_image


@dataclass(frozen=True)
class CropBox:
    """A box of voxels of a full image and that image's grid.

    Attributes:
        start: first voxel index per array axis (z, y, x), inclusive.
        stop: last voxel index + 1 per array axis, exclusive.
        shape: the full image's array shape (z, y, x).
        spacing, origin, direction: the full image's grid, SimpleITK (x, y, z) order.
    """

    start: tuple[int, ...]
    stop: tuple[int, ...]
    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.shape)
        if not (len(self.start) == len(self.stop) == len(self.spacing) == len(self.origin) == n
                and len(self.direction) == n * n):
            raise InvalidInput(f"Crop box with {len(self.start)}/{len(self.stop)} index axes for a {n}D image "
                               f"(spacing {self.spacing}, direction {self.direction}); every field needs {n} axes.")
        if not all(0 <= a < b <= s for a, b, s in zip(self.start, self.stop, self.shape)):
            raise InvalidInput(f"Crop box {self.start}..{self.stop} is empty or outside the image of shape "
                               f"{self.shape}; each axis needs 0 <= start < stop <= size.")

    @classmethod
    def of(cls, geometry: Geometry, start: Sequence[int], stop: Sequence[int]) -> CropBox:
        """The box ``start``..``stop`` (array axes) of an image with ``geometry``."""
        return cls(tuple(int(v) for v in start), tuple(int(v) for v in stop), tuple(reversed(geometry.size)),
                   geometry.spacing, geometry.origin, geometry.direction)

    @classmethod
    def whole(cls, geometry: Geometry) -> CropBox:
        """The box covering the whole image."""
        shape = tuple(reversed(geometry.size))
        return cls.of(geometry, (0,) * len(shape), shape)

    @property
    def crop_shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop))

    @property
    def is_whole(self) -> bool:
        return self.start == (0,) * len(self.shape) and self.stop == self.shape

    @property
    def slices(self) -> tuple[slice, ...]:
        """Numpy slices of the box in the full array."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    @property
    def full_geometry(self) -> Geometry:
        return Geometry(tuple(reversed(self.shape)), self.spacing, self.origin, self.direction)

    @property
    def crop_geometry(self) -> Geometry:
        """The crop's grid: the world position of the box's first voxel as origin, the full image's spacing and
        direction."""
        n = len(self.shape)
        index_xyz = np.array(list(reversed(self.start)), float)
        matrix = np.array(self.direction, float).reshape(n, n)
        origin = np.array(self.origin, float) + matrix @ (index_xyz * np.array(self.spacing, float))
        return Geometry(tuple(reversed(self.crop_shape)), self.spacing, tuple(float(v) for v in origin),
                        self.direction)

    def to_json(self) -> dict[str, Any]:
        return {"start": list(self.start), "stop": list(self.stop), "shape": list(self.shape),
                "spacing": list(self.spacing), "origin": list(self.origin), "direction": list(self.direction)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str = "crop box") -> CropBox:
        """The box written by :meth:`to_json`.

        Raises:
            InvalidInput: a missing or ill-typed field, naming ``where``.
        """
        keys = ("start", "stop", "shape", "spacing", "origin", "direction")
        try:
            ints = [tuple(_integers(data[k])) for k in keys[:3]]
            floats = [tuple(float(v) for v in data[k]) for k in keys[3:]]
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidInput(f"{where}: a crop box needs {', '.join(keys)} as lists of numbers ({error}); rewrite "
                               f"it with radconf_crop_dataset.") from None
        return cls(*ints, *floats)


def _integers(values: Iterable[Any]) -> list[int]:
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not an integer")
        out.append(value)
    return out


def margin_voxels(margin_mm: float, spacing: Sequence[float]) -> tuple[int, ...]:
    """The margin in voxels per axis: ``margin_mm / spacing`` rounded up (a voxel's worth of rounding noise
    ignored, so 20 mm at 4 mm is 5 voxels)."""
    if not math.isfinite(margin_mm) or margin_mm < 0:
        raise InvalidInput(f"Crop margin {margin_mm} mm must be a finite number >= 0 (--margin).")
    return tuple(max(0, math.ceil(margin_mm / float(s) - 1e-9)) for s in spacing)


def box_around(label_array: np.ndarray, labels: Iterable[int], margin_mm: float,
               spacing: Sequence[float]) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The bounding box of the voxels carrying any of ``labels``, grown by ``margin_mm`` and clipped to the image.

    Args:
        label_array: the label map (numpy array axes, e.g. z, y, x).
        labels: the label ids to box.
        margin_mm: the margin in mm on every side (``margin_mm / spacing`` voxels per axis, rounded up).
        spacing: the voxel spacing in mm in the array's axis order (``Geometry.spacing_zyx``).

    Returns:
        ``(start, stop)`` voxel indices per array axis (stop exclusive), or None when no voxel carries any of
        ``labels``.

    Raises:
        InvalidInput: ``spacing`` does not have one value per array axis, or the margin is negative or not finite.
    """
    if len(spacing) != label_array.ndim:
        raise InvalidInput(f"Spacing {tuple(spacing)} has {len(spacing)} values for a {label_array.ndim}D label map; "
                           f"give one per array axis.")
    grow = margin_voxels(margin_mm, spacing)
    found = np.nonzero(np.isin(label_array, np.asarray(list(labels), dtype=np.int64)))
    if not found[0].size:
        return None
    start = tuple(max(0, int(axis.min()) - g) for axis, g in zip(found, grow))
    stop = tuple(min(size, int(axis.max()) + 1 + g) for axis, g, size in zip(found, grow, label_array.shape))
    return start, stop


def box_of_label_map(path: Any, labels: Iterable[int], margin_mm: float, geometry: Geometry | None = None,
                     largest_component: bool = False) -> CropBox | None:
    """:func:`box_around` of a label map file (a reference or a localiser's prediction), as a :class:`CropBox`.

    Args:
        path: the label map.
        labels: the label ids to box.
        margin_mm: the margin in mm on every side.
        geometry: the grid of the image the map belongs to; the map must lie on it (None: the map's own grid).
        largest_component: box only the largest 26-connected component of each label (a localiser's stray
            detections far from the structure do not stretch the box).

    Returns:
        The box on ``geometry``, or None when the map holds none of ``labels``.

    Raises:
        InvalidInput: an unreadable or non-integer map, or a map off the image's grid, naming the file.
    """
    array, found = read_label_image(path)
    if geometry is not None:
        difference = geometry_difference(geometry, found)
        if difference:
            raise InvalidInput(f"{path} is not on the grid of its image ({difference}); the label map must share the "
                               f"image's voxel grid.")
    if largest_component:
        from radconf.contours.components import largest_component as largest

        kept = np.zeros(array.shape, bool)
        for label in labels:
            kept |= largest(array == label)
        array, labels = kept.astype(np.uint8), [1]
    box = box_around(array, labels, margin_mm, found.spacing_zyx)
    return None if box is None else CropBox.of(geometry or found, *box)


def _check_on_grid(geometry: Geometry, expected: Geometry, what: str) -> None:
    difference = geometry_difference(expected, geometry)
    if difference:
        raise InvalidInput(f"{what} does not lie on the crop box's grid: {difference}; it must be the box's crop "
                           f"(the same case, cropped by radconf.cropping.crop).")


def crop(image: Any, box: CropBox) -> Any:
    """The box cut out of a SimpleITK image, every voxel at its world position (pixel type kept).

    Raises:
        InvalidInput: the image is not on the box's full grid.
    """
    import SimpleITK as sitk

    _check_on_grid(Geometry.of(image), box.full_geometry, "The image to crop")
    return sitk.RegionOfInterest(image, [int(v) for v in reversed(box.crop_shape)],
                                 [int(v) for v in reversed(box.start)])


def paste(crop_image: Any, box: CropBox, background: float = 0) -> Any:
    """A crop (SimpleITK image or numpy array of the box's shape) put back into the full grid: the full-size image
    with the full geometry, the crop inside the box, ``background`` elsewhere (the crop's voxel type).

    Raises:
        InvalidInput: an image not on the box's crop grid, or an array of another shape than the box.
    """
    import SimpleITK as sitk

    if isinstance(crop_image, np.ndarray):
        array = crop_image
        if array.shape != box.crop_shape:
            raise InvalidInput(f"The crop to paste has shape {array.shape}, the box {box.start}..{box.stop} has "
                               f"{box.crop_shape}; paste the prediction of that crop.")
    else:
        _check_on_grid(Geometry.of(crop_image), box.crop_geometry, "The crop to paste")
        array = sitk.GetArrayViewFromImage(crop_image)
    full = np.full(box.shape, background, dtype=array.dtype)
    full[box.slices] = array
    return box.full_geometry.apply_to(sitk.GetImageFromArray(full))
