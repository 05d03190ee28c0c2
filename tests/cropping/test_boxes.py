"""Crop boxes by hand: margins in mm on anisotropic spacing, clipping, absent labels, crop -> paste with an
anisotropic, rotated grid, the JSON round trip and the refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cropping import CropBox, box_around, box_of_label_map, crop, margin_voxels, paste
from radconf.errors import InvalidInput
from radconf.io.images import Geometry

SPACING_XYZ = (0.7, 1.5, 3.0)
ORIGIN = (10.0, -20.0, 5.0)
ROTATED = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)  # 90 degrees about z


def _image(shape=(6, 8, 10)) -> sitk.Image:
    array = np.arange(np.prod(shape), dtype=np.int16).reshape(shape) + 1  # no voxel equals the background 0
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(ORIGIN)
    image.SetDirection(ROTATED)
    return image


def test_margin_in_mm_on_anisotropic_spacing():
    labels = np.zeros((6, 8, 10), np.uint8)
    labels[2:4, 3:5, 4:7] = 1
    # spacing (z, y, x) = (3, 1.5, 0.7) mm; 2 mm -> ceil(0.67, 1.33, 2.86) = (1, 2, 3) voxels
    assert margin_voxels(2.0, (3.0, 1.5, 0.7)) == (1, 2, 3)
    assert box_around(labels, [1], 2.0, (3.0, 1.5, 0.7)) == ((1, 1, 1), (5, 7, 10))
    # an exact multiple is not rounded up: 3 mm at 1.5 mm is 2 voxels
    assert margin_voxels(3.0, (1.5,)) == (2,)
    assert box_around(labels, [1], 0.0, (3.0, 1.5, 0.7)) == ((2, 3, 4), (4, 5, 7))


def test_box_is_clipped_at_the_image_edge_and_covers_every_label():
    labels = np.zeros((6, 8, 10), np.uint8)
    labels[0, 0, 0] = 1
    labels[5, 7, 9] = 3
    assert box_around(labels, [1], 4.0, (1.0, 1.0, 1.0)) == ((0, 0, 0), (5, 5, 5))
    assert box_around(labels, [3], 4.0, (1.0, 1.0, 1.0)) == ((1, 3, 5), (6, 8, 10))
    assert box_around(labels, [1, 3], 0.0, (1.0, 1.0, 1.0)) == ((0, 0, 0), (6, 8, 10))


def test_absent_labels_give_no_box():
    labels = np.zeros((4, 4, 4), np.uint8)
    labels[1, 1, 1] = 1
    assert box_around(labels, [2, 4], 10.0, (1.0, 1.0, 1.0)) is None
    assert box_around(np.zeros((4, 4, 4), np.uint8), [1], 0.0, (1.0, 1.0, 1.0)) is None


def test_margin_and_spacing_refusals():
    labels = np.ones((2, 2, 2), np.uint8)
    with pytest.raises(InvalidInput, match="--margin"):
        box_around(labels, [1], -1.0, (1.0, 1.0, 1.0))
    with pytest.raises(InvalidInput, match="one per array axis"):
        box_around(labels, [1], 1.0, (1.0, 1.0))


def test_crop_keeps_world_positions_and_paste_restores_the_box():
    image = _image()
    box = CropBox.of(Geometry.of(image), (1, 2, 3), (4, 6, 9))
    cropped = crop(image, box)
    assert cropped.GetSize() == (6, 4, 3)  # x, y, z
    assert cropped.GetSpacing() == SPACING_XYZ and cropped.GetDirection() == ROTATED
    # origin + D (index_xyz * spacing): index (3, 2, 1) -> (2.1, 3.0, 3.0) mm, rotated -> (-3.0, 2.1, 3.0)
    assert np.allclose(cropped.GetOrigin(), (7.0, -17.9, 8.0))
    for index in ((0, 0, 0), (5, 3, 2), (2, 1, 1)):
        full_index = tuple(i + s for i, s in zip(index, (3, 2, 1)))
        assert np.allclose(cropped.TransformIndexToPhysicalPoint(index),
                           image.TransformIndexToPhysicalPoint(full_index))
        assert cropped[index] == image[full_index]
    pasted = paste(cropped, box)
    assert Geometry.of(pasted) == Geometry.of(image)
    full, back = sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(pasted)
    assert back.dtype == full.dtype
    inside = np.zeros(full.shape, bool)
    inside[1:4, 2:6, 3:9] = True
    assert np.array_equal(back[inside], full[inside]) and not back[~inside].any()
    from_array = sitk.GetArrayFromImage(paste(sitk.GetArrayFromImage(cropped), box, background=-5))
    assert np.array_equal(from_array[inside], full[inside]) and (from_array[~inside] == -5).all()


def test_a_2d_box_crops_and_pastes():
    image = sitk.GetImageFromArray(np.arange(20, dtype=np.uint8).reshape(4, 5))
    image.SetSpacing((0.5, 2.0))
    box = CropBox.of(Geometry.of(image), (1, 2), (3, 4))
    cropped = crop(image, box)
    assert np.allclose(cropped.GetOrigin(), (1.0, 2.0))
    assert np.array_equal(sitk.GetArrayFromImage(cropped), [[7, 8], [12, 13]])
    assert sitk.GetArrayFromImage(paste(cropped, box)).sum() == 7 + 8 + 12 + 13


def test_json_round_trip():
    box = CropBox.of(Geometry.of(_image()), (1, 2, 3), (4, 6, 9))
    assert CropBox.from_json(json.loads(json.dumps(box.to_json()))) == box
    assert not box.is_whole and CropBox.whole(Geometry.of(_image())).is_whole
    data = box.to_json()
    del data["origin"]
    with pytest.raises(InvalidInput, match="origin"):
        CropBox.from_json(data, "crop_boxes.json (a)")
    with pytest.raises(InvalidInput, match="not an integer"):
        CropBox.from_json({**box.to_json(), "start": [1.5, 2, 3]})


def test_refusals_of_boxes_crops_and_pastes():
    geometry = Geometry.of(_image())
    with pytest.raises(InvalidInput, match="empty or outside"):
        CropBox.of(geometry, (1, 2, 3), (1, 6, 9))
    with pytest.raises(InvalidInput, match="empty or outside"):
        CropBox.of(geometry, (0, 0, 0), (7, 8, 10))
    box = CropBox.of(geometry, (1, 2, 3), (4, 6, 9))
    other = _image()
    other.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(InvalidInput, match="origin"):
        crop(other, box)
    cropped = crop(_image(), box)
    cropped.SetOrigin(ORIGIN)  # the full image's origin: not the box's crop
    with pytest.raises(InvalidInput, match="crop box's grid"):
        paste(cropped, box)
    with pytest.raises(InvalidInput, match="shape"):
        paste(np.zeros((3, 4, 5), np.uint8), box)


def test_box_of_a_label_map_file(tmp_path):
    labels = np.zeros((6, 8, 10), np.uint8)
    labels[2:4, 3:5, 4:7] = 2
    label = sitk.GetImageFromArray(labels)
    label.CopyInformation(_image())
    sitk.WriteImage(label, str(tmp_path / "case.nii.gz"))
    geometry = Geometry.of(_image())
    # 2 mm at (z, y, x) = (3, 1.5, 0.7) mm: (1, 2, 3) voxels, as in the hand-computed case above
    box = box_of_label_map(tmp_path / "case.nii.gz", [2], 2.0, geometry)
    assert box == CropBox.of(geometry, (1, 1, 1), (5, 7, 10))
    assert box_of_label_map(tmp_path / "case.nii.gz", [1, 3], 2.0, geometry) is None
    moved = _image()
    moved.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(InvalidInput, match="not on the grid of its image"):
        box_of_label_map(tmp_path / "case.nii.gz", [2], 2.0, Geometry.of(moved))


def test_largest_component_keeps_stray_detections_out_of_the_box(tmp_path):
    labels = np.zeros((6, 8, 10), np.uint8)
    labels[2:4, 3:5, 4:7] = 2  # the structure: 12 voxels
    labels[5, 7, 0] = 2  # a stray detection of the same label, far away
    labels[0, 0, 9] = 3  # another label's single voxel: its own largest component
    label = sitk.GetImageFromArray(labels)
    label.CopyInformation(_image())
    sitk.WriteImage(label, str(tmp_path / "case.nii.gz"))
    geometry = Geometry.of(_image())
    stretched = box_of_label_map(tmp_path / "case.nii.gz", [2], 0.0, geometry)
    assert (stretched.start, stretched.stop) == ((2, 3, 0), (6, 8, 7))
    kept = box_of_label_map(tmp_path / "case.nii.gz", [2], 0.0, geometry, largest_component=True)
    assert (kept.start, kept.stop) == ((2, 3, 4), (4, 5, 7))
    both = box_of_label_map(tmp_path / "case.nii.gz", [2, 3], 0.0, geometry, largest_component=True)
    assert (both.start, both.stop) == ((0, 0, 4), (4, 5, 10))  # each label's largest component, together
