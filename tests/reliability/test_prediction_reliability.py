"""What radconf_predict, radconf_ensemble and radconf_find_ensemble_weights refuse, and what a failed run leaves.

Every refusal here fires before a model is loaded, on tiny synthetic files and a fake results folder (dataset.json,
plans.json and checkpoint files that are never read); runs that must get past the checks use a stand-in for
nnU-Net's predictor (``FakePredictor``), and one test runs the real organ model of ``tests/conftest.py``.
Each refusal: exit 2, one ``radconf: error:`` line naming the file or argument, no traceback, nothing written.
"""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli import ensemble, find_ensemble_weights, predict

SHAPE = (6, 7, 8)  # numpy (z, y, x)
LABELS = {"background": 0, "organ": 1}
LEVELS = {"background": 0, "level_1": 1, "level_2": 2, "level_3": 3}
PLANS = {"configurations": {"3d_fullres": {}}, "original_median_spacing_after_transp": [3.0, 1.0, 1.0],
         "image_reader_writer": "SimpleITKIO"}


def _image(path: Path, array=None, dtype=np.int16, spacing=(1.0, 1.0, 3.0)) -> Path:
    array = np.arange(np.prod(SHAPE), dtype=dtype).reshape(SHAPE) if array is None else array
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((*spacing, 1.0)[: image.GetDimension()])
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def _model(results: Path, trainer: str = "nnUNetTrainer", labels=None, radconf=None, channels=None,
           folds=("0",)) -> str:
    """A fake trained model (files that exist, never loaded); returns its spec."""
    folder = results / "Dataset990_Fake" / f"{trainer}__nnUNetPlans__3d_fullres"
    dataset_json = {"channel_names": channels or {"0": "CT"}, "labels": labels or LABELS, "file_ending": ".nii.gz",
                    "numTraining": 1}
    if radconf:
        dataset_json["radconf"] = radconf
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps(dataset_json))
    (folder / "plans.json").write_text(json.dumps(PLANS))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        (folder / f"fold_{fold}" / "checkpoint_final.pth").write_bytes(b"never loaded")
    return f"990:{trainer}:nnUNetPlans:3d_fullres:{','.join(folds)}"


@pytest.fixture
def fake(nnunet_dirs, tmp_path):
    """A fake plain model, a confidence model (K = 3) and an anatomy-channel model, and an image folder of 2 cases."""
    results = nnunet_dirs["nnUNet_results"]
    images = tmp_path / "images"
    for case in ("a", "b_0001"):  # a case id ending in _NNNN: its prediction b_0001.nii.gz is not an image name
        _image(images / f"{case}_0000.nii.gz")
    return {"plain": _model(results), "images": images, "results": results,
            "confidence": _model(results, "ConfidenceTrainer", labels=LEVELS, radconf={"ordinal": True, "levels": 3}),
            "anatomy": _model(results, "AnatomyTrainer", channels={"0": "CT", "1": "noNorm"},
                              radconf={"anatomy": {"channels": {"1": "organ"}, "source_labels": {"organ": 1}}})}


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(capsys, code: int, *needles: str) -> str:
    """The message of a refusal (exit 2, ``radconf: error: ...``, no traceback) holding every needle."""
    err = capsys.readouterr().err
    assert code == 2, err
    message = err[err.index("radconf: error: "):] if "radconf: error: " in err else ""
    assert message and "Traceback" not in err, err
    for needle in needles:
        assert needle in message, (needle, message)
    return message


def _argparse_refused(capsys, command, argv: list[str], flag: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        command.main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and flag in err and "Traceback" not in err


# ---- output over input ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["same", "inside", "around", "symlink", "model", "anatomy"])
def test_predict_refuses_an_output_folder_on_or_around_an_input(fake, tmp_path, capsys, where):
    images = fake["images"]
    model_folder = fake["results"] / "Dataset990_Fake" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    extra = []
    output = {"same": images, "inside": images / "predictions", "around": tmp_path,
              "model": model_folder / "predictions", "anatomy": tmp_path / "organs"}.get(where)
    if where == "symlink":
        output = tmp_path / "link"
        output.symlink_to(images)
    if where == "anatomy":
        extra = ["--anatomy", str(output)]
    before = _tree(tmp_path)
    code = predict.main(["-i", str(images), "-o", str(output), "-m", fake["plain"], *extra])
    line = _refused(capsys, code, "radconf never writes into or around its inputs", "Choose an output folder")
    assert {"same": " is the input folder", "symlink": " is the input folder", "inside": "lies inside",
            "around": "contains", "model": "model folder", "anatomy": "anatomy folder"}[where] in line
    assert _tree(tmp_path) == before and not (images / "predictions").exists()


def _member(folder: Path, cases=("x",), labels=None, spacing=(1.0, 1.0, 3.0), write=True) -> Path:
    """A prediction folder as radconf_predict --save_probabilities writes it (CASE.npz, CASE.nii.gz, JSON files)."""
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps({"labels": labels or LABELS, "file_ending": ".nii.gz",
                                                     "channel_names": {"0": "CT"}}))
    (folder / "plans.json").write_text(json.dumps(PLANS))
    rng = np.random.default_rng(len(str(folder)))
    for case in cases:
        p = np.moveaxis(rng.dirichlet(np.ones(len(labels or LABELS)), size=SHAPE), -1, 0).astype(np.float32)
        if write:
            np.savez_compressed(folder / f"{case}.npz", probabilities=p)
        _image(folder / f"{case}.nii.gz", p.argmax(0).astype(np.uint8), spacing=spacing)
    return folder


@pytest.mark.parametrize("where", ["member", "inside", "around"])
def test_ensemble_refuses_an_output_folder_on_or_around_a_member(tmp_path, capsys, where):
    a, b = _member(tmp_path / "a"), _member(tmp_path / "b")
    output = {"member": b, "inside": b / "ensemble", "around": tmp_path}[where]
    before = _tree(tmp_path)
    code = ensemble.main(["-i", str(a), str(b), "-o", str(output)])
    _refused(capsys, code, "member folder", "radconf never writes into or around its inputs")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("where", ["folder", "reference"])
def test_find_ensemble_weights_refuses_an_output_folder_on_an_input(tmp_path, capsys, where):
    a, b = _member(tmp_path / "a"), _member(tmp_path / "b")
    reference = tmp_path / "reference"
    _image(reference / "x.nii.gz", np.zeros(SHAPE, np.uint8))
    before = _tree(tmp_path)
    code = find_ensemble_weights.main(["--folders", str(a), str(b), "--reference", str(reference), "-o",
                                       str(a if where == "folder" else reference)])
    _refused(capsys, code, "--folders" if where == "folder" else "--reference", "never writes into")
    assert _tree(tmp_path) == before


# ---- truncated, corrupt, NaN, 4D inputs -------------------------------------------------------------------------

def _truncate_nifti(path: Path) -> None:
    """A partial copy: the decompressed file cut short, compressed again (a valid gzip stream)."""
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))


@pytest.mark.parametrize("fault", ["truncated", "nan", "4d", "vector", "2d", "channel_grid", "other_ending"])
def test_predict_checks_every_input_image_first(fake, tmp_path, capsys, fault):
    images = fake["images"]
    argv = ["-m", fake["plain"]]
    if fault == "truncated":
        _truncate_nifti(images / "b_0001_0000.nii.gz")
        needles = ["b_0001_0000.nii.gz is truncated", "copy it again"]
    elif fault == "nan":
        array = np.ones(SHAPE, np.float32)
        array[0, 0, 0] = np.nan
        _image(images / "a_0000.nii.gz", array)
        needles = ["a_0000.nii.gz", "NaN or infinite"]
    elif fault == "4d":
        volume = sitk.GetImageFromArray(np.zeros(SHAPE, np.int16))
        sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(images / "a_0000.nii.gz"))
        needles = ["a_0000.nii.gz is a 4D image", "one 3D image per channel", "a_0001.nii.gz"]
    elif fault == "vector":
        _image(images / "a_0000.nii.gz", np.zeros((*SHAPE, 3), np.uint8))  # SimpleITK: the last axis as components
        needles = ["a_0000.nii.gz has 3 values per voxel", "one scalar image per channel"]
    elif fault == "2d":
        _image(images / "a_0000.nii.gz", np.zeros(SHAPE[1:], np.int16))
        needles = ["a_0000.nii.gz is a 2D image", "trained on 3D images"]
    elif fault == "channel_grid":
        argv = ["-m", fake["anatomy"]]
        for case in ("a", "b_0001"):
            _image(images / f"{case}_0001.nii.gz", np.zeros(SHAPE, np.uint8), spacing=(1.0, 1.0, 2.0))
        needles = ["a_0001.nii.gz is not on the grid of a_0000.nii.gz", "spacing", "Resample"]
    else:
        for path in images.iterdir():
            path.rename(path.with_name(path.name.replace(".nii.gz", ".nii")))
        needles = ["No CASE_0000.nii.gz images", "ending .nii", "convert or rename"]
    output = tmp_path / "out"
    code = predict.main(["-i", str(images), "-o", str(output), *argv])
    _refused(capsys, code, *needles)
    assert not output.exists()


def test_predict_checks_anatomy_label_maps_first(fake, tmp_path, capsys):
    organs = tmp_path / "organs"
    for case in ("a", "b_0001"):
        _image(organs / f"{case}.nii.gz", np.ones(SHAPE, np.uint8))
    _truncate_nifti(organs / "a.nii.gz")
    output = tmp_path / "out"
    code = predict.main(["-i", str(fake["images"]), "-o", str(output), "-m", fake["anatomy"], "--anatomy",
                         str(organs)])
    _refused(capsys, code, "a.nii.gz is truncated")
    (organs / "a.nii.gz").unlink()
    code = predict.main(["-i", str(fake["images"]), "-o", str(output), "-m", fake["anatomy"], "--anatomy",
                         str(organs)])
    _refused(capsys, code, "1 case(s)", "no label map", ": a.")
    assert not output.exists()


def _corrupt_npz(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "cut":  # a partial copy: no central directory
        path.write_bytes(data[: len(data) // 2])
    elif how == "short_array":  # a whole archive whose array holds less than its header says
        import io
        import zipfile

        buffer = io.BytesIO()
        np.save(buffer, np.zeros((2, *SHAPE), np.float32))
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("probabilities.npy", buffer.getvalue()[:-100])
    else:  # a flipped byte inside the compressed data: found when the case is read (bad CRC / stream)
        middle = len(data) // 3
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])


@pytest.mark.parametrize("how", ["cut", "short_array", "flipped"])
def test_ensemble_names_a_corrupt_npz_and_writes_nothing(tmp_path, capsys, how):
    a, b = _member(tmp_path / "a", cases=("x", "y")), _member(tmp_path / "b", cases=("x", "y"))
    _corrupt_npz(b / "y.npz", how)
    output = tmp_path / "out"
    code = ensemble.main(["-i", str(a), str(b), "-o", str(output)])
    _refused(capsys, code, str(b / "y.npz"), "truncated or corrupt" if how != "short_array" else "truncated")
    assert not output.exists()


@pytest.mark.parametrize("fault", ["npz", "reference"])
def test_find_ensemble_weights_names_a_corrupt_file(tmp_path, capsys, fault):
    a, b = _member(tmp_path / "a"), _member(tmp_path / "b")
    reference = tmp_path / "reference"
    _image(reference / "x.nii.gz", np.zeros(SHAPE, np.uint8))
    if fault == "npz":
        _corrupt_npz(a / "x.npz", "cut")
    else:
        _truncate_nifti(reference / "x.nii.gz")
    code = find_ensemble_weights.main(["--folders", str(a), str(b), "--reference", str(reference), "-o",
                                       str(tmp_path / "w")])
    _refused(capsys, code, *([str(a / "x.npz"), "truncated or corrupt"] if fault == "npz" else
                             [str(reference / "x.nii.gz"), "is truncated"]))
    assert not (tmp_path / "w").exists()


# ---- arguments, checked before any work -------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [("-step_size", "0"), ("-step_size", "nan"), ("-step_size", "1.5"),
                                         ("-np", "0"), ("-npp", "0"), ("-nps", "-1"), ("--level", "0")])
def test_predict_numbers_are_checked_by_argparse(fake, tmp_path, capsys, flag, value):
    _argparse_refused(capsys, predict, ["-i", str(fake["images"]), "-o", str(tmp_path / "out"), "-m", fake["plain"],
                                        flag, value], flag)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, needles", [
    (["-m", "{confidence}", "--level", "9"], ["--level must be in 1..3", "K = 3"]),
    (["-m", "{plain}", "--level", "1"], ["need a confidence-level model", "nnUNetTrainer"]),
    (["-m", "{plain}", "--level_probabilities"], ["need a confidence-level model"]),
    (["-d", "990", "-f", "0", "7"], ["fold_7", "Pass -f with trained folds"]),
    (["-d", "990", "-f", "0", "0"], ["Fold 0 is given twice"]),
    (["-d", "990", "-f", "0", "-chk", "checkpoint_best.pth"], ["fold_0 holds checkpoint_final.pth", "-chk"]),
    (["-d", "990", "-f", "0", "-chk", "../x.pth"], ["-chk '../x.pth' must be a checkpoint file name"]),
    (["-d", "990", "-tr", "nnUNetTrainr", "-f", "0"], ["does not exist", "nnUNetTrainer__nnUNetPlans__3d_fullres"]),
    (["-m", "990:nnUNetTrainer:nnUNetPlans:3d_fullres:0,x"], ["Model spec", "Fold 'x' is not a fold"]),
    (["-tr", "nnUNetTrainer", "--weights", "{weights}"], ["-tr describe the model of -d"]),
    (["-m", "{plain}", "{confidence}", "--weights", "{weights}"], ["{weights}", "not valid JSON"]),
    (["-m", "{plain}", "--save_distance"], ["distance_head.json does not exist"]),
    (["-m", "{plain}", "--anatomy_model", "990:nnUNetTrainer:nnUNetPlans:3d_fullres:0"], ["only apply to models"]),
    (["-m", "{anatomy}"], ["holds only the images", "--anatomy_model SPEC"]),
])
def test_predict_arguments_are_checked_before_any_work(fake, tmp_path, capsys, argv, needles):
    weights = tmp_path / "weights.json"
    weights.write_text('{"members": ["990"], "weights": [1.0]')  # cut short
    values = {**fake, "weights": str(weights)}
    output = tmp_path / "out"
    code = predict.main(["-i", str(fake["images"]), "-o", str(output), *[a.format(**values) for a in argv]])
    _refused(capsys, code, *[n.format(**values) for n in needles])
    assert not output.exists()


@pytest.mark.parametrize("weights, needle", [(["nan", "1"], "finite"), (["inf", "1"], "finite"),
                                             (["-1", "2"], "negative"), (["0", "0"], "all weights are 0"),
                                             (["1"], "1 weights for 2 folders")])
def test_ensemble_weights_are_checked_before_any_work(tmp_path, capsys, weights, needle):
    a, b = _member(tmp_path / "a"), _member(tmp_path / "b")
    code = ensemble.main(["-i", str(a), str(b), "-o", str(tmp_path / "out"), "--weights", *weights])
    _refused(capsys, code, needle)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, needle", [('{"members": ["990:A", "990:B"], "weights": [NaN, 1.0]}', "NaN"),
                                             ('{"members": ["990:A", "990:B"], "weights": [-0.5, 1.5]}', "negative"),
                                             ('{"members": ["990:A", "990:B"], "weights": [0, 0]}', "all weights"),
                                             ('{"members": ["990:A:P:c:x"], "weights": [1]}', "Fold 'x'"),
                                             ('[1, 2]', "not a radconf weights file")])
def test_weights_files_are_checked(tmp_path, capsys, content, needle):
    a, b = _member(tmp_path / "a"), _member(tmp_path / "b")
    weights = tmp_path / "weights.json"
    weights.write_text(content)
    code = ensemble.main(["-i", str(a), str(b), "-o", str(tmp_path / "out"), "--weights", str(weights)])
    _refused(capsys, code, str(weights), needle)
    assert not (tmp_path / "out").exists()


def test_ensemble_levels_members_and_grids_are_checked_before_any_work(tmp_path, capsys):
    a = _member(tmp_path / "a", cases=("x", "y"))
    b = _member(tmp_path / "b", cases=("x",))
    _member(tmp_path / "b2", cases=("y",), spacing=(1.0, 1.0, 2.0))
    for name in ("y.npz", "y.nii.gz"):  # case y of member b on another grid: found before case x is written
        (tmp_path / "b2" / name).rename(b / name)
    output = tmp_path / "out"
    _refused(capsys, ensemble.main(["-i", str(a), str(b), "-o", str(output)]), "Case y", "different image grids")
    _refused(capsys, ensemble.main(["-i", str(a), str(a), "-o", str(output)]), "twice")
    _refused(capsys, ensemble.main(["-i", str(a), str(tmp_path / "nope"), "-o", str(output)]), "nope",
             "does not exist")
    _refused(capsys, ensemble.main(["-i", str(a), "-o", str(output), "--level", "2"]),
             "need a confidence-level model")
    assert not output.exists()
    _argparse_refused(capsys, ensemble, ["-i", str(a), "-o", str(output), "--level", "0"], "--level")


def test_find_ensemble_weights_arguments(tmp_path, capsys):
    a, b = _member(tmp_path / "a"), _member(tmp_path / "b")
    _argparse_refused(capsys, find_ensemble_weights, ["--folders", str(a), str(b), "--reference", str(a), "-o",
                                                      str(tmp_path / "w"), "--seed", "-1"], "--seed")
    code = find_ensemble_weights.main(["-m", "990", "991", "--reference", str(a), "-o", str(tmp_path / "w")])
    _refused(capsys, code, "--reference is for --folders")
    code = find_ensemble_weights.main(["--folders", str(a), str(a), "--reference", str(tmp_path / "r"), "-o",
                                       str(tmp_path / "w")])
    _refused(capsys, code, "twice")
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("what", ["file", "empty", "missing"])
def test_predict_input_folder_must_hold_images(fake, tmp_path, capsys, what):
    source = tmp_path / "source"
    if what == "file":
        source.write_bytes(b"x")
    elif what == "empty":
        source.mkdir()
    needle = {"file": "is a file", "empty": "No CASE_0000.nii.gz images", "missing": "does not exist"}[what]
    _refused(capsys, predict.main(["-i", str(source), "-o", str(tmp_path / "out"), "-m", fake["plain"]]), needle)
    assert not (tmp_path / "out").exists()


def test_library_functions_refuse_too(fake, tmp_path):
    from radconf.api import ModelSpec, RunOptions
    from radconf.api import predict as api_predict
    from radconf.ensembles.fitting import find_ensemble_weights as fit
    from radconf.ensembles.folders import ensemble_folders

    spec = ModelSpec.parse(fake["plain"])
    with pytest.raises(ValueError, match="radconf never writes into or around"):
        api_predict(fake["images"], fake["images"], [spec])
    with pytest.raises(ValueError, match="-step_size 0"):
        api_predict(fake["images"], tmp_path / "out", [spec], run=RunOptions(tile_step_size=0))
    with pytest.raises(ValueError, match="-npp 0"):
        api_predict(fake["images"], tmp_path / "out", [spec], run=RunOptions(num_processes=0))
    a, b = _member(tmp_path / "a"), _member(tmp_path / "b")
    with pytest.raises(ValueError, match="member folder"):
        ensemble_folders([a, b], a, progress=False)
    with pytest.raises(ValueError, match="NaN or infinite"):
        ensemble_folders([a, b], tmp_path / "out", [float("nan"), 1.0], progress=False)
    with pytest.raises(ValueError, match="--folders"):
        fit(b / "weights", folders=[a, b], reference_dir=a, progress=False)
    assert not (tmp_path / "out").exists() and not (b / "weights").exists()


# ---- runs past the checks, with a stand-in for nnU-Net's predictor ---------------------------------------------

class FakePredictor:
    """What radconf uses of nnU-Net's predictor; writes a label map per case (and fails when told to)."""

    calls: ClassVar[list] = []

    def __init__(self, dataset_json: dict, fail_after: int | None = None):
        from types import SimpleNamespace

        self.fail_after = fail_after
        self.dataset_json = dataset_json
        # what the per-case timing wraps (radconf.nnunet_compat.timing); this fake never calls them
        self.configuration_manager, self.device = SimpleNamespace(), "cpu"
        self.plans_manager = SimpleNamespace(transpose_forward=[0, 1, 2])

    def predict_from_data_iterator(self, *args, **kwargs):
        raise AssertionError("not called by the fake")

    def predict_logits_from_preprocessed_data(self, data):
        raise AssertionError("not called by the fake")

    def predict_from_files(self, files, outputs, save_probabilities, overwrite, num_processes_preprocessing,
                           num_processes_segmentation_export):
        if isinstance(files, str):  # a folder, as nnU-Net also takes it
            images = sorted(Path(files).glob("*_0000.nii.gz"))
            files = [[str(p)] for p in images]
            outputs = [str(Path(outputs) / p.name[: -len("_0000.nii.gz")]) for p in images]
        FakePredictor.calls.append({"files": files, "outputs": outputs, "npp": num_processes_preprocessing,
                                    "nps": num_processes_segmentation_export})
        folder = Path(outputs[0]).parent
        for name in ("dataset.json", "plans.json", "predict_from_raw_data_args.json"):
            (folder / name).write_text("{}")  # what nnU-Net writes before the first case
        for number, (channels, output) in enumerate(zip(files, outputs)):
            if number == self.fail_after:
                raise RuntimeError("the export worker died")
            image = sitk.ReadImage(channels[0])
            sitk.WriteImage(sitk.Cast(image > 0, sitk.sitkUInt8), output + ".nii.gz")


@pytest.fixture
def fake_predictor(monkeypatch):
    import radconf.devices
    import radconf.inference

    FakePredictor.calls = []
    state = {"fail_after": None}
    def load_predictor(spec, **kwargs):
        from radconf.paths import require_nnunet_paths

        folder = spec.model_folder(require_nnunet_paths().results)
        return FakePredictor(json.loads((folder / "dataset.json").read_text()), state["fail_after"])

    monkeypatch.setattr(radconf.inference, "load_predictor", load_predictor)
    monkeypatch.setattr(radconf.devices, "configure_threads", lambda name: None)
    return state


def test_a_failed_prediction_leaves_the_output_folder_as_it_was(fake, tmp_path, capsys, fake_predictor):
    fake_predictor["fail_after"] = 1
    output = tmp_path / "new" / "out"
    assert predict.main(["-i", str(fake["images"]), "-o", str(output), "-m", fake["plain"]]) == 1
    assert not (tmp_path / "new").exists()  # created by this run: removed, its parent too
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "notes.txt").write_text("mine")
    assert predict.main(["-i", str(fake["images"]), "-o", str(existing), "-m", fake["plain"]]) == 1
    assert _tree(existing) == {"notes.txt": b"mine"}  # no radconf_model.json, dataset.json, plans.json, a.nii.gz
    capsys.readouterr()


def test_continue_prediction_says_what_was_predicted_and_what_was_kept(fake, tmp_path, capsys, fake_predictor):
    output = tmp_path / "out"
    argv = ["-i", str(fake["images"]), "-o", str(output), "-m", fake["plain"], "-np", "3", "-nps", "1"]
    assert predict.main(argv) == 0
    assert "predicted 2 case(s) into" in capsys.readouterr().out
    assert FakePredictor.calls[-1]["npp"] == 3 and FakePredictor.calls[-1]["nps"] == 1  # -np sets both, -nps wins
    assert (output / "b_0001.nii.gz").is_file() and (fake["images"] / "b_0001_0000.nii.gz").is_file()
    assert json.loads((output / "radconf_model.json").read_text())["model"] == fake["plain"]
    (output / "a.nii.gz").unlink()
    kept = (output / "b_0001.nii.gz").read_bytes()
    assert predict.main([*argv, "--continue_prediction"]) == 0
    out = capsys.readouterr().out
    assert "predicted 1 case(s) into" in out and "1 already there were kept (--continue_prediction)" in out
    assert [Path(o).name for o in FakePredictor.calls[-1]["outputs"]] == ["a"]
    assert (output / "b_0001.nii.gz").read_bytes() == kept and (output / "a.nii.gz").is_file()
    calls = len(FakePredictor.calls)
    assert predict.main([*argv, "--continue_prediction"]) == 0
    assert "predicted 0 case(s)" in capsys.readouterr().out and len(FakePredictor.calls) == calls


def test_ensemble_save_npz_continue_and_record_last(tmp_path, capsys):
    a, b = _member(tmp_path / "a", cases=("x", "y")), _member(tmp_path / "b", cases=("x", "y"))
    output = tmp_path / "out"
    assert ensemble.main(["-i", str(a), str(b), "-o", str(output), "--save_npz"]) == 0
    assert "ensembled 2 case(s) of 2 folders" in capsys.readouterr().out
    assert (output / "x.npz").is_file() and (output / "ensemble.json").is_file()
    (output / "y.nii.gz").unlink()
    assert ensemble.main(["-i", str(a), str(b), "-o", str(output), "--save_probabilities",
                          "--continue_prediction"]) == 0
    assert "ensembled 1 case(s) of 2 folders" in capsys.readouterr().out and (output / "y.nii.gz").is_file()


def test_help_shows_the_defaults(capsys):
    with pytest.raises(SystemExit):
        predict.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for default in ("(default: checkpoint_final.pth)", "(default: nnUNetTrainer)", "(default: nnUNetPlans)",
                    "(default: 3d_fullres)", "(default: 0.5)", "-npp", "-nps"):
        assert default in text, default
    with pytest.raises(SystemExit):
        ensemble.main(["--help"])
    assert "--save_npz, --save_probabilities" in capsys.readouterr().out


# ---- the real predictor -----------------------------------------------------------------------------------------

def test_organ_model_continues_a_prediction(organ_model, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    source = organ_model.phantom.folder / "imagesTs"
    for path in sorted(source.glob("*_0000.nii.gz")):
        os.symlink(path, images / path.name)
    case = min(source.glob("*_0000.nii.gz")).name[: -len("_0000.nii.gz")]
    output = tmp_path / "out"
    argv = ["-i", str(images), "-o", str(output), "-m", organ_model.spec, "-device", "cpu", "--disable_tta", "-np",
            "1"]
    assert predict.main(argv) == 0
    assert "predicted 1 case(s)" in capsys.readouterr().out and (output / f"{case}.nii.gz").is_file()
    assert predict.main([*argv, "--continue_prediction"]) == 0
    out = capsys.readouterr().out
    assert "predicted 0 case(s)" in out and "1 already there were kept" in out and "That's 0 cases" not in out
    # --postprocessing: the same prediction, then each structure's steps, as applying them by hand gives
    from radconf.postprocessing import apply_postprocessing, structures_of
    from radconf.postprocessing.definition import with_steps
    from radconf.postprocessing.steps import check_steps

    structures = structures_of(json.loads((organ_model.fold.parent / "dataset.json").read_text()))
    steps = check_steps([{"op": "largest_component"}, {"op": "closing", "radius_mm": 8}], "test")
    postprocessing = with_steps(structures, [steps] * len(structures.structures))
    pp_file = tmp_path / "postprocessing.json"
    pp_file.write_text(json.dumps(postprocessing.as_json()))
    post = tmp_path / "post"
    assert predict.main([*argv[:2], "-o", str(post), *argv[4:], "--postprocessing", str(pp_file)]) == 0
    capsys.readouterr()
    raw = sitk.ReadImage(str(output / f"{case}.nii.gz"))
    by_hand = apply_postprocessing(sitk.GetArrayFromImage(raw), raw.GetSpacing()[::-1], postprocessing)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(post / f"{case}.nii.gz"))), by_hand)
    assert not np.array_equal(by_hand, sitk.GetArrayFromImage(raw))
