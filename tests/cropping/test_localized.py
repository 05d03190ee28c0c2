"""radconf_predict --localizer on the tiny phantom, with the session's organ model as both localiser and fine model:
the localiser's box by hand, the crop predicted by hand with nnU-Net's predictor and pasted back (background outside,
the full grid), crop_boxes.json; a localiser finding nothing (an image of air has no gtv): a warning, an empty result
or the whole-image prediction; the refusals before any work; the output names mapped to their cases."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.api import LocalizerOptions, ModelSpec, RunOptions, predict
from radconf.errors import InvalidInput
from radconf.inference import predict_model

RUN = RunOptions(device="cpu", num_processes=1, use_mirroring=False)
MARGIN = 8.0


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _images(organ_model, tmp_path: Path, air: bool = False) -> Path:
    """The held-out phantom case (linked) and, with ``air``, a case ``air`` of constant -1000 HU on its grid."""
    images = tmp_path / "images"
    images.mkdir()
    source = organ_model.phantom.folder / "imagesTs" / "phantom_005_0000.nii.gz"
    os.symlink(source, images / source.name)
    if air:
        image = sitk.ReadImage(str(source))
        constant = sitk.GetImageFromArray(np.full(sitk.GetArrayViewFromImage(image).shape, -1000, np.int16))
        constant.CopyInformation(image)
        sitk.WriteImage(constant, str(images / "air_0000.nii.gz"))
    return images


def _box_by_hand(label: np.ndarray, value: int, spacing_zyx, margin_mm: float):
    where = np.nonzero(label == value)
    start = [max(0, int(w.min()) - math.ceil(margin_mm / s)) for w, s in zip(where, spacing_zyx)]
    stop = [min(n, int(w.max()) + 1 + math.ceil(margin_mm / s)) for w, s, n in zip(where, spacing_zyx, label.shape)]
    return start, stop


def test_the_crop_is_segmented_and_pasted_back(organ_model, tmp_path, capsys):
    from radconf.cli import predict as predict_cli

    images = _images(organ_model, tmp_path)
    spec = ModelSpec.parse(organ_model.spec)
    predict_model(images, tmp_path / "whole", spec, run=RUN)  # the localiser's map, by hand
    image = sitk.ReadImage(str(images / "phantom_005_0000.nii.gz"))
    start, stop = _box_by_hand(_array(tmp_path / "whole" / "phantom_005.nii.gz"), 4, image.GetSpacing()[::-1], MARGIN)
    assert any(a > 0 or b < n for a, b, n in zip(start, stop, image.GetSize()[::-1]))  # a real crop, not the image
    crop_folder = tmp_path / "crop"
    crop_folder.mkdir()
    cropped = sitk.RegionOfInterest(image, [b - a for a, b in zip(start[::-1], stop[::-1])], start[::-1])
    sitk.WriteImage(cropped, str(crop_folder / "phantom_005_0000.nii.gz"))
    predict_model(crop_folder, tmp_path / "crop_prediction", spec, run=RUN)  # the fine model on the crop, by hand
    on_crop = _array(tmp_path / "crop_prediction" / "phantom_005.nii.gz")

    output = tmp_path / "out"
    assert predict_cli.main(["-i", str(images), "-o", str(output), "-m", organ_model.spec, "-device", "cpu",
                             "--disable_tta", "-np", "1", "--localizer", organ_model.spec, "--localizer_labels", "gtv",
                             "--crop_margin", str(MARGIN)]) == 0
    assert "predicted 1 case(s)" in capsys.readouterr().out
    result = sitk.ReadImage(str(output / "phantom_005.nii.gz"))
    assert result.GetSize() == image.GetSize() and result.GetSpacing() == image.GetSpacing()
    assert np.allclose(result.GetOrigin(), image.GetOrigin()) and result.GetDirection() == image.GetDirection()
    pasted = sitk.GetArrayFromImage(result)
    inside = tuple(slice(a, b) for a, b in zip(start, stop))
    assert np.array_equal(pasted[inside], on_crop)
    outside = np.ones(pasted.shape, bool)
    outside[inside] = False
    assert not pasted[outside].any()
    boxes = json.loads((output / "crop_boxes.json").read_text())
    assert boxes["localizer"] == organ_model.spec and boxes["around"] == {"gtv": [4]}
    assert boxes["margin_mm"] == MARGIN and boxes["fallback"] == "empty"
    record = boxes["cases"]["phantom_005"]
    assert record["box"]["start"] == start and record["box"]["stop"] == stop
    assert record["box"]["shape"] == list(image.GetSize()[::-1]) and record["box"]["origin"] == list(image.GetOrigin())
    assert record["result"] == "cropped" and record["found"] is True and record["from"] == "localizer"
    assert json.loads((output / "radconf_model.json").read_text()) == {"model": organ_model.spec}
    assert json.loads((output / "timing.json").read_text())["cases"][0]["case"] == "phantom_005"
    fine_slices = json.loads((output / "timing.json").read_text())["cases"][0]["slices"]
    localizer_timing = json.loads((output / "localizer_timing.json").read_text())["cases"][0]
    assert localizer_timing["case"] == "phantom_005" and localizer_timing["slices"] == image.GetSize()[2]
    assert fine_slices == stop[0] - start[0]  # the fine run saw the crop's axial slices only
    assert not [p.name for p in output.iterdir() if p.name.startswith(".")]  # the work folder is gone


def test_a_localiser_finding_nothing_warns_and_falls_back(organ_model, tmp_path):
    images = _images(organ_model, tmp_path, air=True)
    spec = ModelSpec.parse(organ_model.spec)
    air = sitk.ReadImage(str(images / "air_0000.nii.gz"))
    localizer = LocalizerOptions(spec, margin_mm=MARGIN, labels=("gtv",))
    with pytest.warns(UserWarning, match=r"case air: the localiser .* found none of gtv; its results are all "
                                         r"background"):
        cases = predict(images, tmp_path / "empty", [spec], run=RUN, localizer=localizer)
    assert sorted(cases) == ["air", "phantom_005"]
    empty = sitk.ReadImage(str(tmp_path / "empty" / "air.nii.gz"))
    assert not sitk.GetArrayFromImage(empty).any() and empty.GetSize() == air.GetSize()
    assert np.allclose(empty.GetOrigin(), air.GetOrigin()) and empty.GetSpacing() == air.GetSpacing()
    records = json.loads((tmp_path / "empty" / "crop_boxes.json").read_text())["cases"]
    assert records["air"]["result"] == "empty" and records["air"]["found"] is False and records["air"]["whole"]
    assert records["phantom_005"]["result"] == "cropped"
    assert _array(tmp_path / "empty" / "phantom_005.nii.gz").any()

    only_air = tmp_path / "only_air"
    only_air.mkdir()
    os.symlink(images / "air_0000.nii.gz", only_air / "air_0000.nii.gz")
    with pytest.warns(UserWarning, match="case air"):
        predict(only_air, tmp_path / "none", [spec], run=RUN, localizer=localizer)
    assert not _array(tmp_path / "none" / "air.nii.gz").any()
    assert json.loads((tmp_path / "none" / "timing.json").read_text())["cases"] == []  # no case reached the model

    with pytest.warns(UserWarning, match=r"case air: .* the whole image is segmented \(--fallback full\)"):
        predict(images, tmp_path / "full", [spec], run=RUN,
                localizer=LocalizerOptions(spec, margin_mm=MARGIN, labels=("4",), fallback="full"))
    predict_model(images, tmp_path / "plain", spec, run=RUN)
    whole = _array(tmp_path / "plain" / "air.nii.gz")
    assert whole.any()  # the air image is not all background for this model, so "full" differs from "empty"
    assert np.array_equal(_array(tmp_path / "full" / "air.nii.gz"), whole)
    assert json.loads((tmp_path / "full" / "crop_boxes.json").read_text())["cases"]["air"]["result"] == "full"


def test_refusals_before_any_work(organ_model, tmp_path):
    from radconf.anatomy.inputs import AnatomyInputs
    from radconf.uncertainty.sources import UncertaintyOptions

    images = _images(organ_model, tmp_path)
    spec = ModelSpec.parse(organ_model.spec)
    localizer = LocalizerOptions(spec)
    output = tmp_path / "out"
    refused = [({"run": RunOptions(save_probabilities=True)}, "--save_probabilities does not combine with "
                                                              "--localizer"),
               ({"save_distance": True}, "--save_distance does not combine"),
               ({"uncertainty": UncertaintyOptions(source="tta")}, "--uncertainty does not combine"),
               ({"run": RunOptions(overwrite=False)}, "--continue_prediction does not combine"),
               ({"anatomy": AnatomyInputs(folder=str(images))}, "--anatomy does not combine")]
    for options, message in refused:
        with pytest.raises(InvalidInput, match=message):
            predict(images, output, [spec], localizer=localizer, **options)
    with pytest.raises(InvalidInput, match=r"--localizer_labels 'prostate' is neither .* known: bladder \(1\)"):
        predict(images, output, [spec], localizer=LocalizerOptions(spec, labels=("prostate",)))
    with pytest.raises(InvalidInput, match="background"):
        predict(images, output, [spec], localizer=LocalizerOptions(spec, labels=("0",)))
    with pytest.raises(InvalidInput, match="radconf never writes"):
        predict(images, images / "out", [spec], localizer=localizer)
    assert not output.exists() and sorted(p.name for p in images.iterdir()) == ["phantom_005_0000.nii.gz"]
    with pytest.raises(InvalidInput, match="--crop_margin"):
        LocalizerOptions(spec, margin_mm=-1.0)
    with pytest.raises(InvalidInput, match="--fallback 'nearest'"):
        LocalizerOptions(spec, fallback="nearest")
    assert LocalizerOptions(spec, labels="gtv").labels == ("gtv",)


def test_command_line_flags(tmp_path, capsys):
    from radconf.cli import predict as predict_cli

    args = predict_cli.build_parser().parse_args(["-i", "a", "-o", "b", "-d", "990", "--localizer", "990:T:P:2d:all",
                                                  "--localizer_labels", "bladder, 2", "--crop_margin", "12.5"])
    options = predict_cli._localizer_options(args)
    assert options == LocalizerOptions(ModelSpec("990", "T", "P", "2d", ("all",)), 12.5, ("bladder", "2"), "empty")
    args = predict_cli.build_parser().parse_args(["-i", "a", "-o", "b", "-d", "990", "--localizer", "990"])
    assert predict_cli._localizer_options(args).margin_mm == 20.0
    assert not predict_cli._localizer_options(args).largest_component
    args = predict_cli.build_parser().parse_args(["-i", "a", "-o", "b", "-d", "990", "--localizer", "990",
                                                  "--localizer_largest_component"])
    assert predict_cli._localizer_options(args).largest_component
    for extra, named in ((["--crop_margin", "5"], "--crop_margin"), (["--fallback", "full"], "--fallback"),
                         (["--localizer_labels", "1"], "--localizer_labels"),
                         (["--localizer_largest_component"], "--localizer_largest_component")):
        assert predict_cli.main(["-i", str(tmp_path), "-o", str(tmp_path / "out"), "-d", "990", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("radconf: error:") == 1 and f"{named} need --localizer SPEC" in err
    assert predict_cli.main(["-i", str(tmp_path), "-o", str(tmp_path / "out"), "-d", "990", "--localizer", "990",
                             "--localizer_labels", ","]) == 2
    assert "--localizer_labels is empty" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_outputs_are_mapped_to_their_cases():
    from radconf.cropping.localized import case_of_output, foreground_labels

    cases = ["a", "a_1", "b"]
    assert case_of_output(Path("a.nii.gz"), cases, ".nii.gz") == "a"
    assert case_of_output(Path("a_1.nii.gz"), cases, ".nii.gz") == "a_1"
    assert case_of_output(Path("level3_masks/a_1.nii.gz"), cases, ".nii.gz") == "a_1"
    assert case_of_output(Path("level_probabilities/a_1_ge2.nii.gz"), cases, ".nii.gz") == "a_1"
    assert case_of_output(Path("level_probabilities/a_ge2.nii.gz"), cases, ".nii.gz") == "a"
    assert case_of_output(Path("distance/b_gtv.nii.gz"), cases, ".nii.gz") == "b"
    assert case_of_output(Path("c.nii.gz"), cases, ".nii.gz") is None
    assert foreground_labels({"background": 0, "bladder": 1, "level>=1": [1, 2], "all": [0, 1], "ignore": 3}) == \
        ["bladder", "level>=1"]
