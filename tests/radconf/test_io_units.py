"""radconf.io: the one case-name parser, staged folders, the one geometry policy."""
from __future__ import annotations

import pytest

from radconf.io.cases import case_channels, check_input_folder, split_image_name
from radconf.io.files import staged_folder
from radconf.io.images import Geometry, geometry_difference

GRID = Geometry((4, 4, 2), (1.0, 1.0, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


@pytest.mark.parametrize("name, expected", [
    ("case_0000.nii.gz", ("case", 0)),
    ("a_b_0012.nii.gz", ("a_b", 12)),
    ("patient_0001_0000.nii.gz", ("patient_0001", 0)),  # the last _XXXX is the channel
    ("case.nii.gz", None),
    ("case_000.nii.gz", None),
    ("case-0000.nii.gz", None),
    ("_0000.nii.gz", None),
    ("case_0000.nrrd", None),
    ("case_٠٠٠٠.nii.gz", None),  # non-ASCII digits are not a channel
])
def test_split_image_name(name, expected):
    assert split_image_name(name, ".nii.gz") == expected


def test_case_channels_and_input_folder(tmp_path):
    import numpy as np
    import SimpleITK as sitk

    def image(name: str) -> None:
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.int16)), str(tmp_path / name))

    for name in ("b_0001.nii.gz", "b_0000.nii.gz", "a_0000.nii.gz", ".hidden_0000.nii.gz"):
        image(name)
    (tmp_path / "notes.txt").write_text("not an image")
    assert case_channels(tmp_path, ".nii.gz") == {"a": [0], "b": [0, 1]}
    with pytest.raises(ValueError, match="case a in .* has channels \\[0\\]"):
        check_input_folder(tmp_path, ".nii.gz", 2)
    image("a_0001.nii.gz")
    assert check_input_folder(tmp_path, ".nii.gz", 2) == ["a", "b"]
    image("stray.nii.gz")
    with pytest.raises(ValueError, match="stray.nii.gz: .*CASE_XXXX"):
        case_channels(tmp_path, ".nii.gz")
    assert case_channels(tmp_path, ".nii.gz", strict=False) == {"a": [0, 1], "b": [0, 1]}


def test_staged_folder_publishes_or_leaves_the_old_one(tmp_path):
    folder = tmp_path / "Dataset001_X"
    with staged_folder(folder) as staging:
        (staging / "a.txt").write_text("first")
    assert (folder / "a.txt").read_text() == "first" and not staging.exists()
    with pytest.raises(KeyboardInterrupt):
        with staged_folder(folder) as staging:
            (staging / "a.txt").write_text("second")
            raise KeyboardInterrupt
    assert (folder / "a.txt").read_text() == "first"  # the earlier output is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset001_X"]  # no partial or replaced folder left
    with staged_folder(folder) as staging:
        (staging / "b.txt").write_text("third")
    assert sorted(p.name for p in folder.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset001_X"]


@pytest.mark.parametrize("change, problem", [
    ({}, None),
    ({"spacing": (1.00009, 1.0, 2.5)}, None),  # within 1e-4 relative
    ({"spacing": (1.0002, 1.0, 2.5)}, "spacing"),
    ({"origin": (9e-4, 0.0, 0.0)}, None),  # within 1e-3 mm
    ({"origin": (0.0, 0.0, 0.002)}, "origin"),
    ({"direction": (1, 5e-5, 0, 0, 1, 0, 0, 0, 1)}, None),
    ({"direction": (1, 2e-4, 0, 0, 1, 0, 0, 0, 1)}, "direction"),
    ({"size": (4, 4, 3)}, "size"),
    ({"spacing": (1.0, 1.0)}, "spacing"),  # another dimension
])
def test_one_geometry_policy(change, problem):
    other = Geometry(**{**GRID.__dict__, **change})
    difference = geometry_difference(GRID, other)
    assert difference is None if problem is None else difference.startswith(problem)
