"""Two-stage prediction inputs (radconf.anatomy_inputs) on hand-made 4 x 5 x 6 images.

The anatomy model has 3 channels: CT (0) and the masks of bladder (1) and rectum (2). Predicted label maps use the
organ model's ids bladder = 2, rectum = 5. Case ``a`` has bladder at (z=0, y=0, x=0..2) and rectum at (z=1, y=1..2,
x=3); case ``b`` has a bladder voxel at (3, 4, 5) and no rectum.
"""
from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.anatomy.channels import AnatomyChannels
from radconf.anatomy.inputs import assemble_anatomy_inputs, split_channels_present

SHAPE = (4, 5, 6)  # numpy (z, y, x)
SPACING = (0.8, 0.9, 2.5)
ORIGIN = (10.5, -20.25, 30.0)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
ANATOMY = AnatomyChannels(channels={1: "bladder", 2: "rectum"}, source_labels={"bladder": 2, "rectum": 5})
ENDING = ".nii.gz"


def write(path, array, spacing=SPACING):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def read(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def label_maps() -> dict[str, np.ndarray]:
    a = np.zeros(SHAPE, np.uint8)
    a[0, 0, 0:3] = 2
    a[1, 1:3, 3] = 5
    a[2, 2, 2] = 7  # another organ: in no channel
    b = np.zeros(SHAPE, np.uint8)
    b[3, 4, 5] = 2
    return {"a": a, "b": b}


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    for case, labels in label_maps().items():
        write(tmp_path / "images" / f"{case}_0000{ENDING}", rng.integers(-1000, 1000, SHAPE).astype(np.int16))
        write(tmp_path / "organs" / f"{case}{ENDING}", labels)
    return tmp_path / "images", tmp_path / "organs", tmp_path / "out"


def test_assemble_writes_images_and_masks(folders):
    images, organs, out = folders
    assert assemble_anatomy_inputs(images, organs, out, ANATOMY, ENDING, 3) == ["a", "b"]
    assert sorted(p.name for p in out.iterdir()) == [f"{c}_{i:04d}{ENDING}" for c in "ab" for i in range(3)]
    assert (out / f"a_0000{ENDING}").read_bytes() == (images / f"a_0000{ENDING}").read_bytes()
    bladder, rectum = read(out / f"a_0001{ENDING}"), read(out / f"a_0002{ENDING}")
    assert bladder.dtype == np.uint8 and rectum.dtype == np.uint8
    expected = np.zeros(SHAPE, np.uint8)
    expected[0, 0, 0:3] = 1
    assert np.array_equal(bladder, expected)
    expected = np.zeros(SHAPE, np.uint8)
    expected[1, 1:3, 3] = 1
    assert np.array_equal(rectum, expected)
    assert read(out / f"b_0001{ENDING}").sum() == 1 and read(out / f"b_0001{ENDING}")[3, 4, 5] == 1
    assert not read(out / f"b_0002{ENDING}").any()  # rectum absent: an all-zero channel
    mask = sitk.ReadImage(str(out / f"a_0002{ENDING}"))
    assert mask.GetSpacing() == pytest.approx(SPACING) and mask.GetOrigin() == pytest.approx(ORIGIN)
    assert mask.GetDirection() == pytest.approx(DIRECTION)
    assert split_channels_present(out, ENDING, ANATOMY, 3) is True
    assert split_channels_present(images, ENDING, ANATOMY, 3) is False


def test_label_ids_override_and_unknown_structure(folders):
    images, organs, out = folders
    assemble_anatomy_inputs(images, organs, out, ANATOMY, ENDING, 3, label_ids={"bladder": 7, "rectum": 2})
    expected = np.zeros(SHAPE, np.uint8)
    expected[2, 2, 2] = 1
    assert np.array_equal(read(out / f"a_0001{ENDING}"), expected)
    with pytest.raises(ValueError, match=r"structures \['rectum'\] have no label id"):
        assemble_anatomy_inputs(images, organs, out, ANATOMY, ENDING, 3, label_ids={"bladder": 2})


def test_missing_label_maps_are_all_listed(folders):
    images, organs, out = folders
    write(images / f"c_0000{ENDING}", np.zeros(SHAPE, np.int16))
    (organs / f"a{ENDING}").unlink()
    with pytest.raises(FileNotFoundError, match=r"2 case\(s\) .* no label map .*: a, c\. Predict their anatomy"):
        assemble_anatomy_inputs(images, organs, out, ANATOMY, ENDING, 3)
    assert not out.exists()


def test_geometry_mismatch_names_the_file(folders):
    images, organs, out = folders
    write(organs / f"b{ENDING}", label_maps()["b"], spacing=(0.8, 0.9, 3.0))
    with pytest.raises(ValueError, match=r"case b: label map .*b\.nii\.gz does not match image b_0000\.nii\.gz: "
                                         r"spacing .*Resample"):
        assemble_anatomy_inputs(images, organs, out, ANATOMY, ENDING, 3)
    assert not out.exists()


def test_folders_with_anatomy_or_wrong_channels_are_refused(folders):
    images, organs, out = folders
    assemble_anatomy_inputs(images, organs, out, ANATOMY, ENDING, 3)
    with pytest.raises(ValueError, match="already holds the anatomy channels"):
        assemble_anatomy_inputs(out, organs, out.with_name("again"), ANATOMY, ENDING, 3)
    (out / f"b_0002{ENDING}").unlink()
    with pytest.raises(ValueError, match=r"case b has channels \[0, 1\]"):
        split_channels_present(out, ENDING, ANATOMY, 3)
    (out / f"b_0001{ENDING}").unlink()
    with pytest.raises(ValueError, match="mixes cases with anatomy channels"):
        split_channels_present(out, ENDING, ANATOMY, 3)
    with pytest.raises(ValueError, match="must differ"):
        assemble_anatomy_inputs(images, organs, images, ANATOMY, ENDING, 3)
