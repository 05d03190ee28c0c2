"""Post-processing files: steps and search spaces checked, postprocessing.json read back, nnU-Net's
postprocessing.pkl read through the restricted unpickler and applied exactly as nnU-Net applies it."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from radconf.errors import InvalidInput
from radconf.postprocessing import apply_postprocessing, read_postprocessing, read_search_space
from radconf.postprocessing.steps import check_step, step_text
from tests.postprocessing.conftest import cube


@pytest.mark.parametrize(("step", "needle"), [
    ({"op": "dilate_all"}, "unknown op 'dilate_all'"),
    ({"op": "opening"}, "needs radius_mm"),
    ({"op": "opening", "radius_mm": -1}, "radius_mm must be a number greater than 0"),
    ({"op": "closing", "radius_mm": float("nan")}, "radius_mm must be a number"),
    ({"op": "remove_small"}, "exactly one of min_volume_mm3"),
    ({"op": "remove_small", "min_volume_mm3": 5, "min_voxels": 3}, "exactly one of"),
    ({"op": "remove_small", "min_voxels": 2.5}, "min_voxels must be a whole number"),
    ({"op": "largest_component", "connectivity": 8}, "connectivity must be one of 6, 18, 26"),
    ({"op": "fill_holes", "per_slice": "yes"}, "per_slice must be true or false"),
    ({"op": "fill_holes", "axis": 1}, "axis only with"),
    ({"op": "largest_component", "size": 3}, "not size"),
    (["largest_component"], "is not a step"),
])
def test_bad_steps_are_refused_naming_the_place(step, needle):
    with pytest.raises(InvalidInput, match="search.json, step 2") as error:
        check_step(step, "search.json, step 2")
    assert needle in str(error.value)


def test_steps_get_their_defaults_and_a_short_name():
    assert check_step({"op": "largest_component"}, "x") == {"op": "largest_component", "connectivity": 26}
    assert check_step({"op": "fill_holes"}, "x") == {"op": "fill_holes", "per_slice": False}
    assert step_text(check_step({"op": "fill_holes", "per_slice": True}, "x")) == "fill_holes(per_slice=true)"
    assert step_text(check_step({"op": "remove_small", "min_volume_mm3": 50}, "x")) == "remove_small(min_volume_mm3=50)"


def test_a_search_space_file_is_checked(tmp_path):
    path = tmp_path / "search.json"
    path.write_text(json.dumps({"steps": [{"op": "largest_component"}, {"op": "opening", "radius_mm": 2}]}))
    assert [step["op"] for step in read_search_space(path)] == ["largest_component", "opening"]
    for content, needle in (([], "holds no step"), ([{"op": "closing", "radius_mm": 1}] * 2, "listed twice"),
                            ({"op": "closing"}, "must be a JSON list"), ([{"op": "closing"}], "step 1")):
        path.write_text(json.dumps(content))
        with pytest.raises(InvalidInput, match="search.json") as error:
            read_search_space(path)
        assert needle in str(error.value)
    path.write_text("[{\"op\": \"closing\",}]")
    with pytest.raises(InvalidInput, match="line 1"):
        read_search_space(path)


def test_postprocessing_json_is_checked(tmp_path):
    path = tmp_path / "postprocessing.json"
    good = {"format": "radconf_postprocessing", "version": 1, "kind": "labels", "levels": None,
            "structures": [{"name": "bladder", "labels": [1], "steps": [{"op": "closing", "radius_mm": 2}]}]}
    path.write_text(json.dumps(good))
    assert read_postprocessing(path).structures[0].steps == ({"op": "closing", "radius_mm": 2.0},)
    bad = [({"postprocessing_fns": []}, "nnU-Net's summary"), ({"kind": "labels"}, "not a radconf post-processing"),
           ({**good, "version": 7}, "version 7"),
           ({**good, "structures": [{"name": "both", "labels": [1, 2], "steps": [{"op": "closing", "radius_mm": 2}]}]},
            "only steps that remove voxels"),
           ({**good, "kind": "levels", "levels": 3, "structures": [{"name": "l", "level": 4, "steps": []}]}, "1..3"),
           ({**good, "structures": [{"name": "x", "labels": [0], "steps": []}]}, "label ids >= 1")]
    for content, needle in bad:
        path.write_text(json.dumps(content))
        with pytest.raises(InvalidInput, match="postprocessing.json") as error:
            read_postprocessing(path)
        assert needle in str(error.value)


def _nnunet_pickle(path: Path, labels=(1, 2)) -> tuple[list, list]:
    """What nnU-Net's determine_postprocessing saves: the whole foreground (label ids from np.unique, numpy
    integers), then one label."""
    from batchgenerators.utilities.file_and_folder_operations import save_pickle
    from nnunetv2.postprocessing.remove_connected_components import (
        remove_all_but_largest_component_from_segmentation as largest,
    )

    functions = [largest, largest]
    kwargs = [{"labels_or_regions": list(np.unique(labels))}, {"labels_or_regions": np.int64(labels[-1])}]
    save_pickle((functions, kwargs), str(path))
    return functions, kwargs


def test_nnunet_postprocessing_pkl_round_trip(tmp_path):
    from nnunetv2.postprocessing.remove_connected_components import apply_postprocessing as nnunet_apply

    path = tmp_path / "postprocessing.pkl"
    functions, kwargs = _nnunet_pickle(path)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "bladder": 1, "rectum": 2}}))
    pp = read_postprocessing(path)
    assert pp.kind == "labels" and [(s.name, s.labels) for s in pp.structures] == [("1+2", (1, 2)), ("rectum", (2,))]
    assert all(s.steps == ({"op": "largest_component", "connectivity": 26},) for s in pp.structures)
    labels = cube((8, 24, 24), ((slice(1, 6), slice(2, 10), slice(2, 10)), 1),
                  ((slice(1, 6), slice(10, 14), slice(2, 10)), 2),
                  ((slice(3, 4), slice(20, 22), slice(20, 22)), 1), ((slice(2, 3), slice(2, 3), slice(20, 21)), 2),
                  ((slice(6, 8), slice(16, 18), slice(16, 17)), 2))
    expected = nnunet_apply(labels.copy(), functions, kwargs)  # nnU-Net itself is the oracle
    assert np.array_equal(apply_postprocessing(labels, (2.0, 1.0, 1.0), pp), expected)
    assert not np.array_equal(expected, labels)


class _Payload:
    """Unpickling it would create a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_a_pkl_naming_another_function_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "postprocessing.pkl"
    path.write_bytes(pickle.dumps(([os.system], [{"labels_or_regions": 1}])))
    with pytest.raises(InvalidInput, match="postprocessing.pkl refers to posix.system"):
        read_postprocessing(path)
    path.write_bytes(pickle.dumps(([], [_Payload(marker)])))
    with pytest.raises(InvalidInput, match="pathlib"):
        read_postprocessing(path)
    assert not marker.exists()
    _nnunet_pickle(path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(InvalidInput, match="not a readable pickle"):
        read_postprocessing(path)
    path.write_bytes(pickle.dumps(([], [{"labels_or_regions": 1}])))
    with pytest.raises(InvalidInput, match="pair of lists"):
        read_postprocessing(path)
