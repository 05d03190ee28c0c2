"""Applying a post-processing: label maps (per label), level maps (nesting kept), folders (geometry kept)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli import apply_postprocessing as apply_cli
from radconf.errors import InvalidInput
from radconf.postprocessing import PostProcessing, Structure, apply_postprocessing
from radconf.postprocessing.apply import apply_structure
from radconf.postprocessing.steps import check_step
from tests.postprocessing.conftest import ORIGIN, SPACING_ZYX, cube, read_map, tree, write_dataset_json, write_map

ONE = (1.0, 1.0, 1.0)


def _labels(*structures) -> PostProcessing:
    return PostProcessing("labels", tuple(Structure(name, labels=ids, steps=tuple(check_step(s, "test") for s in steps))
                                          for name, ids, steps in structures))


def test_removed_voxels_become_background_and_added_ones_never_take_another_label():
    array = cube((5, 12, 12), ((slice(1, 4), slice(1, 6), slice(1, 6)), 1),
                 ((slice(2, 3), slice(9, 11), slice(9, 11)), 1))
    array[2, 3, 3] = 2  # another structure inside the bladder: a "hole" of label 1 that is not background
    array[1, 3, 3] = 0  # a background hole in the axial slice z = 1 (open towards z = 0: not a hole in 3D)
    pp = _labels(("bladder", (1,), [{"op": "largest_component"}, {"op": "fill_holes", "per_slice": True}]))
    result = apply_postprocessing(array, ONE, pp)
    assert result[2, 9:11, 9:11].tolist() == [[0, 0], [0, 0]]  # the island went to background
    assert result[2, 3, 3] == 2  # the rectum voxel is not taken by the hole filling
    assert result[1, 3, 3] == 1  # the background hole is filled
    assert array[1, 3, 3] == 0 and array[2, 9, 9] == 1  # the input is not modified
    assert result.dtype == array.dtype


def test_a_union_removes_to_background_like_nnunet():
    array = cube((5, 12, 12), ((slice(1, 4), slice(1, 6), slice(1, 4)), 1),
                 ((slice(1, 4), slice(1, 6), slice(4, 6)), 2),
                 ((slice(2, 3), slice(9, 11), slice(9, 11)), 2))
    result = apply_postprocessing(array, ONE, _labels(("foreground", (1, 2), [{"op": "largest_component"}])))
    expected = array.copy()
    expected[2, 9:11, 9:11] = 0
    assert np.array_equal(result, expected)


def _nested(levels: np.ndarray, k: int) -> bool:
    return all(np.all((levels >= c) <= (levels >= c - 1)) for c in range(2, k + 1))


def test_level_maps_stay_nested():
    """Levels 1..3: an island at level 3 removed at level 1 leaves every level; a closing of level 3 fills the gap
    between two level-3 bars only where the map is at level 2 (a level-1 notch in the gap stays at level 1)."""
    levels = cube((9, 20, 20), ((slice(0, 9), slice(1, 14), slice(1, 14)), 1),
                  ((slice(1, 8), slice(2, 13), slice(2, 13)), 2), ((slice(2, 7), slice(3, 6), slice(3, 12)), 3),
                  ((slice(2, 7), slice(7, 10), slice(3, 12)), 3), ((slice(3, 6), slice(6, 7), slice(7, 8)), 1),
                  ((slice(2, 4), slice(16, 18), slice(16, 18)), 3))
    pp = PostProcessing("levels", (
        Structure("level>=1", level=1, steps=(check_step({"op": "largest_component"}, "t"),)),
        Structure("level>=3", level=3, steps=(check_step({"op": "closing", "radius_mm": 2}, "t"),))), levels=3)
    result = apply_postprocessing(levels, ONE, pp)
    assert _nested(levels, 3) and _nested(result, 3)
    assert not result[2:4, 16:18, 16:18].any()  # the island left every level
    assert np.all(result[3:6, 6, 4:7] == 3)  # the gap between the bars is closed where it was at level 2
    assert np.all(result[3:6, 6, 7] == 1)  # the notch stays at level 1: a voxel rises only from level 2 to 3
    expected = levels >= 2
    expected[2:4, 16:18, 16:18] = False
    assert np.array_equal(result >= 2, expected)  # level 2 is untouched but for the island
    with pytest.raises(InvalidInput, match="0..3"):
        apply_postprocessing(np.full((2, 2, 2), 4, np.uint8), ONE, pp, where="case.nii.gz")


def test_the_crop_changes_nothing():
    rng = np.random.default_rng(0)
    array = np.zeros((14, 40, 40), np.uint8)
    array[4:10, 8:30, 8:30] = (rng.random((6, 22, 22)) > 0.35).astype(np.uint8) * rng.integers(1, 3, (6, 22, 22))
    pp = _labels(("bladder", (1,), [{"op": "closing", "radius_mm": 2}, {"op": "remove_small", "min_volume_mm3": 6}]),
                 ("rectum", (2,), [{"op": "opening", "radius_mm": 1.5}, {"op": "fill_holes"}]))
    whole = array.copy()
    for structure in pp.structures:
        for step in structure.steps:
            apply_structure(whole, (2.0, 0.8, 0.8), "labels", structure, step)
    assert np.array_equal(apply_postprocessing(array, (2.0, 0.8, 0.8), pp), whole)
    assert not np.array_equal(whole, array)


def test_a_folder_keeps_the_geometry_and_the_input(tmp_path, capsys):
    source = tmp_path / "pred"
    array = cube((6, 10, 12), ((slice(1, 4), slice(1, 5), slice(1, 5)), 1),
                 ((slice(2, 3), slice(8, 9), slice(9, 11)), 1))
    write_map(source / "a.nii.gz", array)
    before = tree(source)
    pp_file = tmp_path / "postprocessing.json"
    pp = _labels(("bladder", (1,), [{"op": "largest_component"}]))
    pp_file.write_text(json.dumps(pp.as_json()))
    assert apply_cli.main(["-i", str(source), "-o", str(tmp_path / "out"), "-pp", str(pp_file)]) == 0
    assert "post-processed 1 map(s)" in capsys.readouterr().out
    image = sitk.ReadImage(str(tmp_path / "out" / "a.nii.gz"))
    assert image.GetOrigin() == ORIGIN and image.GetSpacing() == tuple(reversed(SPACING_ZYX))
    assert image.GetDirection() == sitk.ReadImage(str(source / "a.nii.gz")).GetDirection()
    assert np.array_equal(sitk.GetArrayFromImage(image), apply_postprocessing(array, SPACING_ZYX, pp))
    assert tree(source) == before
    record = json.loads((tmp_path / "out" / "radconf_postprocessing.json").read_text())
    assert record["applied_from"] == str(pp_file) and record["structures"][0]["steps"][0]["op"] == "largest_component"


def test_folder_refusals_write_nothing(tmp_path, capsys):
    source = tmp_path / "pred"
    write_map(source / "a.nii.gz", np.full((2, 3, 3), 4, np.uint8))
    write_dataset_json(tmp_path / "levels", levels=3)
    pp_file = tmp_path / "pp.json"
    pp_file.write_text(json.dumps(PostProcessing("levels", (Structure("level>=1", level=1, steps=(
        {"op": "largest_component", "connectivity": 26},)),), levels=3).as_json()))
    output = tmp_path / "out"
    cases = [(["-o", str(source / "inside")], "lies inside the input folder -i"),
             (["-o", str(output)], "holds the value 4"),
             (["-o", str(output), "-pp", str(tmp_path / "missing.json")], "does not exist")]
    for extra, needle in cases:
        argv = ["-i", str(source), "-pp", str(pp_file), *extra]
        assert apply_cli.main(argv) == 2
        assert needle in capsys.readouterr().err
        assert not output.exists() and not (source / "inside").exists()
    write_dataset_json(source)  # label maps of bladder/rectum: a levels post-processing does not fit them
    assert apply_cli.main(["-i", str(source), "-o", str(output), "-pp", str(pp_file)]) == 2
    assert "predicts label maps" in capsys.readouterr().err and not output.exists()


def test_a_folder_never_mixes_post_processings(tmp_path, capsys):
    source = tmp_path / "pred"
    write_map(source / "a.nii.gz", cube((4, 6, 6), ((slice(1, 3), slice(1, 4), slice(1, 4)), 1)))
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    first.write_text(json.dumps(_labels(("bladder", (1,), [{"op": "largest_component"}])).as_json()))
    second.write_text(json.dumps(_labels(("bladder", (1,), [{"op": "opening", "radius_mm": 1}])).as_json()))
    output = tmp_path / "out"
    assert apply_cli.main(["-i", str(source), "-o", str(output), "-pp", str(first)]) == 0
    assert apply_cli.main(["-i", str(source), "-o", str(output), "-pp", str(first)]) == 0  # the same again: fine
    kept = tree(output)
    assert apply_cli.main(["-i", str(source), "-o", str(output), "-pp", str(second)]) == 2
    assert "does not mix them" in capsys.readouterr().err and tree(output) == kept
    assert read_map(output / "a.nii.gz").sum() == 18


def test_predicted_level_maps_and_their_level_masks_are_rewritten(tmp_path):
    """What radconf_predict --postprocessing does to a confidence model's outputs: the level map in place, the
    ``--level`` masks taken from the post-processed map, and the record."""
    from radconf.postprocessing import postprocess_predictions

    levels = cube((6, 12, 12), ((slice(1, 5), slice(1, 8), slice(1, 8)), 1),
                  ((slice(2, 4), slice(2, 6), slice(2, 6)), 2), ((slice(2, 3), slice(10, 11), slice(10, 11)), 2))
    write_map(tmp_path / "a.nii.gz", levels)
    write_map(tmp_path / "level2_masks" / "a.nii.gz", levels >= 2)
    largest = check_step({"op": "largest_component"}, "t")
    pp = PostProcessing("levels", (Structure("level>=2", level=2, steps=(largest,)),), levels=2, source="pp.json")
    postprocess_predictions(tmp_path, ["a"], ".nii.gz", pp, mask_levels=(2,), progress=False)
    result = read_map(tmp_path / "a.nii.gz")
    assert result[2, 10, 10] == 1 and np.array_equal(result, apply_postprocessing(levels, SPACING_ZYX, pp))
    assert np.array_equal(read_map(tmp_path / "level2_masks" / "a.nii.gz"), (result >= 2).astype(np.uint8))
    assert sitk.ReadImage(str(tmp_path / "level2_masks" / "a.nii.gz")).GetOrigin() == ORIGIN
    assert json.loads((tmp_path / "radconf_postprocessing.json").read_text())["kind"] == "levels"
