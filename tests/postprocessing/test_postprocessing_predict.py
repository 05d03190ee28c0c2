"""radconf_predict --postprocessing with a stand-in for nnU-Net's predictor (the ``fake`` model and
``fake_predictor`` of tests/reliability/test_prediction_reliability.py, through this folder's conftest): applied to
what the model wrote, checked before any prediction, never mixed with raw maps in one folder. The real organ model
runs with --postprocessing in that module."""
from __future__ import annotations

import json

import numpy as np

from radconf.cli import predict
from radconf.postprocessing import PostProcessing, Structure, apply_postprocessing
from tests.postprocessing.conftest import read_map, tree
from tests.reliability.test_prediction_reliability import FakePredictor, _image

LARGEST = {"op": "largest_component", "connectivity": 26}


def _pp_file(path, postprocessing: PostProcessing):
    path.write_text(json.dumps(postprocessing.as_json()))
    return path


def _two_blobs(folder):
    array = np.zeros((6, 7, 8), np.int16)
    array[1:5, 1:5, 1:5] = 100  # the organ
    array[2:3, 6:7, 6:8] = 100  # an island the fake model predicts too (it writes image > 0)
    return _image(folder / "a_0000.nii.gz", array)


def test_predict_applies_the_postprocessing(fake, fake_predictor, tmp_path, capsys):
    images = tmp_path / "blobs"
    image = _two_blobs(images)
    pp = _pp_file(tmp_path / "pp.json", PostProcessing("labels", (Structure("organ", labels=(1,), steps=(LARGEST,)),)))
    output = tmp_path / "out"
    assert predict.main(["-i", str(images), "-o", str(output), "-m", fake["plain"], "--postprocessing", str(pp)]) == 0
    assert "predicted 1 case(s)" in capsys.readouterr().out
    raw = (read_map(image) > 0).astype(np.uint8)
    result = read_map(output / "a.nii.gz")
    assert np.array_equal(result, apply_postprocessing(raw, (3.0, 1.0, 1.0), PostProcessing(
        "labels", (Structure("organ", labels=(1,), steps=(LARGEST,)),))))
    assert result.sum() == raw.sum() - 2  # the island is gone
    assert json.loads((output / "radconf_postprocessing.json").read_text())["applied_from"] == str(pp)

    kept = tree(output)
    calls = len(FakePredictor.calls)
    code = predict.main(["-i", str(images), "-o", str(output), "-m", fake["plain"]])  # raw maps into that folder
    err = capsys.readouterr().err
    assert code == 2 and "does not mix them" in err and tree(output) == kept and len(FakePredictor.calls) == calls


def test_the_postprocessing_is_checked_before_any_prediction(fake, fake_predictor, tmp_path, capsys):
    levels = _pp_file(tmp_path / "levels.json", PostProcessing("levels", (Structure("level>=1", level=1, steps=(
        LARGEST,)),), levels=3))
    other_label = _pp_file(tmp_path / "other.json", PostProcessing("labels", (Structure("x", labels=(7,)),)))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "radconf_postprocessing", "version": 1, "kind": "labels",
                               "structures": [{"name": "organ", "labels": [1], "steps": [{"op": "grow"}]}]}))
    output = tmp_path / "out"
    for path, needle in ((levels, "is for confidence levels 0..3"), (other_label, "label id(s) [7]"),
                         (bad, "unknown op 'grow'"), (tmp_path / "none.pkl", "does not exist")):
        code = predict.main(["-i", str(fake["images"]), "-o", str(output), "-m", fake["plain"], "--postprocessing",
                             str(path)])
        err = capsys.readouterr().err
        assert code == 2 and needle in err and "Traceback" not in err, err
        assert not output.exists() and FakePredictor.calls == []
