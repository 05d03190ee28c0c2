"""crop_dataset / radconf_crop_dataset on the tiny raw phantom: every case cut to its labels' box (or a localiser
model's predicted labels' box) grown by the margin, at its world position, the boxes recorded, the source untouched,
and the refusals before anything is written."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli.crop_dataset import main
from radconf.cropping.dataset import crop_dataset, read_crop_boxes
from radconf.errors import InvalidInput, MissingInput, OutputExists


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _expected_box(label: sitk.Image, ids: list[int], margin_mm: float) -> tuple[list[int], list[int]]:
    """By hand: the labels' extent per array axis, grown by ceil(margin / spacing) voxels, clipped."""
    array = sitk.GetArrayFromImage(label)
    spacing = label.GetSpacing()[::-1]
    where = np.nonzero(np.isin(array, ids))
    start = [max(0, int(w.min()) - math.ceil(margin_mm / s)) for w, s in zip(where, spacing)]
    stop = [min(n, int(w.max()) + 1 + math.ceil(margin_mm / s)) for w, s, n in zip(where, spacing, array.shape)]
    return start, stop


def test_cases_are_cropped_at_their_world_position(tiny_phantom):
    source = tiny_phantom.folder
    before = _snapshot(source)
    result = crop_dataset(990, 991, ["bladder", "4"], 10.0, progress=False)
    assert _snapshot(source) == before
    folder = source.parent / "Dataset991_PhantomCrop"
    assert result.folder == folder and result.dataset_id == 991 and result.whole == [] and result.warnings == []
    assert result.around == {"bladder": [1], "gtv": [4]}
    assert sorted(result.boxes) == [f"phantom_{i:03d}" for i in range(6)]
    for case, box in result.boxes.items():
        split = "Ts" if case == "phantom_005" else "Tr"
        full_label = sitk.ReadImage(str(source / f"labels{split}" / f"{case}.nii.gz"))
        start, stop = _expected_box(full_label, [1, 4], 10.0)
        assert list(box.start) == start and list(box.stop) == stop, case
        assert not box.is_whole
        for name, sub in ((f"{case}_0000.nii.gz", "images"), (f"{case}.nii.gz", "labels")):
            full = sitk.ReadImage(str(source / f"{sub}{split}" / name))
            cut = sitk.ReadImage(str(folder / f"{sub}{split}" / name))
            assert cut.GetPixelID() == full.GetPixelID()
            assert cut.GetSpacing() == full.GetSpacing() and cut.GetDirection() == full.GetDirection()
            assert np.allclose(cut.GetOrigin(), full.TransformIndexToPhysicalPoint(start[::-1]))
            assert np.allclose(cut.TransformIndexToPhysicalPoint([s - 1 for s in cut.GetSize()]),
                               full.TransformIndexToPhysicalPoint([b - 1 for b in stop[::-1]]))
            expected = sitk.GetArrayFromImage(full)[tuple(slice(a, b) for a, b in zip(start, stop))]
            assert np.array_equal(sitk.GetArrayFromImage(cut), expected), name
        # every voxel of the labels cropped around is kept
        assert (sitk.GetArrayFromImage(cut) == 4).sum() == (sitk.GetArrayFromImage(full_label) == 4).sum()
    assert read_crop_boxes(folder / "crop_boxes.json") == result.boxes
    boxes = json.loads((folder / "crop_boxes.json").read_text())
    assert boxes["margin_mm"] == 10.0 and boxes["around"] == {"bladder": [1], "gtv": [4]}
    assert boxes["cases"]["phantom_005"]["split"] == "test" and boxes["cases"]["phantom_001"]["from"] == "labels"
    dataset = json.loads((folder / "dataset.json").read_text())
    source_json = json.loads((source / "dataset.json").read_text())
    assert dataset["labels"] == source_json["labels"] and dataset["numTraining"] == 5
    assert dataset["channel_names"] == source_json["channel_names"]
    entry = dataset["radconf"]
    assert entry["generator"] == "radconf.crop_dataset" and entry["source"] == "Dataset990_Phantom"
    assert entry["crop"] == {"around": {"bladder": [1], "gtv": [4]}, "margin_mm": 10.0, "from": "labels",
                             "boxes": "crop_boxes.json"}
    assert "readers_folder" not in entry and not (folder / "readers").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["crop_boxes.json", "dataset.json", "imagesTr", "imagesTs",
                                                         "labelsTr", "labelsTs"]


def test_a_case_without_the_labels_is_kept_whole_with_a_warning(tiny_phantom):
    label_path = tiny_phantom.folder / "labelsTr" / "phantom_002.nii.gz"
    label = sitk.ReadImage(str(label_path))
    array = sitk.GetArrayFromImage(label)
    array[array == 4] = 0
    without = sitk.GetImageFromArray(array)
    without.CopyInformation(label)
    sitk.WriteImage(without, str(label_path))
    with pytest.warns(UserWarning, match="case phantom_002: none of gtv is present"):
        result = crop_dataset(990, "Dataset992_Gtv", ["gtv"], 0.0, progress=False)
    assert result.whole == ["phantom_002"] and result.boxes["phantom_002"].is_whole
    cut = sitk.ReadImage(str(result.folder / "imagesTr" / "phantom_002_0000.nii.gz"))
    assert cut.GetSize() == label.GetSize() and cut.GetOrigin() == label.GetOrigin()
    cases = json.loads((result.folder / "crop_boxes.json").read_text())["cases"]
    assert cases["phantom_002"]["whole"] is True and cases["phantom_001"]["whole"] is False


def test_refusals_write_nothing(tiny_phantom):
    raw = tiny_phantom.folder.parent
    before = _snapshot(raw)
    with pytest.raises(InvalidInput, match="never writes"):
        crop_dataset(990, "Dataset990_Phantom", ["bladder"], 5.0)
    with pytest.raises(InvalidInput, match="known: bladder \\(1\\), rectum \\(2\\)"):
        crop_dataset(990, 993, ["prostate"], 5.0)
    with pytest.raises(InvalidInput, match="background"):
        crop_dataset(990, 993, ["0"], 5.0)
    with pytest.raises(InvalidInput, match="--margin"):
        crop_dataset(990, 993, ["bladder"], -1.0)
    with pytest.raises(InvalidInput, match="at least one label"):
        crop_dataset(990, 993, [], 5.0)
    assert _snapshot(raw) == before
    (raw / "Dataset993_Taken").mkdir()
    (raw / "Dataset993_Taken" / "note.txt").write_text("mine")
    with pytest.raises(OutputExists, match="not empty"):
        crop_dataset(990, "Dataset993_Taken", ["bladder"], 5.0)
    assert (raw / "Dataset993_Taken" / "note.txt").read_text() == "mine"
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset990_Phantom", "Dataset993_Taken"]


def test_command_line(tiny_phantom, capsys):
    assert main(["-d", "990", "-o", "994", "--around", "bladder,rectum", "--margin", "0"]) == 0
    out = capsys.readouterr().out
    assert "6 cases cropped around bladder, rectum with 0 mm, 0 kept whole" in out
    assert "radconf_plan_and_preprocess -d 994" in out
    assert main(["-d", "990", "-o", "995", "--around", "liver", "--margin", "5"]) == 2
    err = capsys.readouterr().err
    assert err.count("radconf: error:") == 1 and "--around 'liver'" in err
    assert not (tiny_phantom.folder.parent / "Dataset995_PhantomCrop").exists()
    assert main(["-d", "990", "-o", "995", "--around", "bladder", "--margin", "5", "-device", "cpu"]) == 2
    assert "add --from_model SPEC" in capsys.readouterr().err


def test_boxes_from_a_localiser_model(organ_model, tmp_path):
    """--from_model: each case's box is the localiser's gtv predicted on the source image (checked against nnU-Net's
    predictor run by hand), grown by the margin; an image of air (no gtv found) is kept whole with a warning."""
    from radconf.inference import RunOptions, predict_model
    from radconf.models import ModelSpec

    source = organ_model.phantom.folder
    # phantom_002 becomes an image of air on phantom_005's grid (with that case's label map, so the pair is valid)
    image = sitk.ReadImage(str(source / "imagesTs" / "phantom_005_0000.nii.gz"))
    air = sitk.GetImageFromArray(np.full(sitk.GetArrayViewFromImage(image).shape, -1000, np.int16))
    air.CopyInformation(image)
    sitk.WriteImage(air, str(source / "imagesTr" / "phantom_002_0000.nii.gz"))
    sitk.WriteImage(sitk.ReadImage(str(source / "labelsTs" / "phantom_005.nii.gz")),
                    str(source / "labelsTr" / "phantom_002.nii.gz"))
    run = RunOptions(device="cpu", num_processes=1, use_mirroring=False)
    spec = ModelSpec.parse(organ_model.spec)
    for split in ("Tr", "Ts"):
        predict_model(source / f"images{split}", tmp_path / split, spec, run=run)
    before = _snapshot(source)
    with pytest.warns(UserWarning, match=r"case phantom_002: the localiser .* found none of gtv; kept whole"):
        result = crop_dataset(990, 996, ["gtv"], 8.0, from_model=organ_model.spec, run=run, progress=False)
    assert _snapshot(source) == before
    assert result.whole == ["phantom_002"] and result.boxes["phantom_002"].is_whole
    for case, box in result.boxes.items():
        split = "Ts" if case == "phantom_005" else "Tr"
        predicted = sitk.ReadImage(str(tmp_path / split / f"{case}.nii.gz"))
        if case == "phantom_002":
            assert not (sitk.GetArrayFromImage(predicted) == 4).any()  # the premise: no gtv in air
            continue
        start, stop = _expected_box(predicted, [4], 8.0)
        assert list(box.start) == start and list(box.stop) == stop, case
        label = sitk.ReadImage(str(source / f"labels{split}" / f"{case}.nii.gz"))
        cut = sitk.ReadImage(str(result.folder / f"labels{split}" / f"{case}.nii.gz"))
        assert np.allclose(cut.GetOrigin(), label.TransformIndexToPhysicalPoint(start[::-1]))
        expected = sitk.GetArrayFromImage(label)[tuple(slice(a, b) for a, b in zip(start, stop))]
        assert np.array_equal(sitk.GetArrayFromImage(cut), expected)
    boxes = json.loads((result.folder / "crop_boxes.json").read_text())
    assert boxes["model"] == organ_model.spec and boxes["around"] == {"gtv": [4]}
    assert boxes["cases"]["phantom_001"]["from"] == "model" and boxes["cases"]["phantom_001"]["model"] == \
        organ_model.spec
    assert boxes["cases"]["phantom_002"]["whole"] is True and boxes["cases"]["phantom_001"]["whole"] is False
    entry = json.loads((result.folder / "dataset.json").read_text())["radconf"]
    assert entry["crop"] == {"around": {"gtv": [4]}, "margin_mm": 8.0, "from": "model", "model": organ_model.spec,
                             "boxes": "crop_boxes.json"}
    assert sorted(p.name for p in result.folder.iterdir()) == ["crop_boxes.json", "dataset.json", "imagesTr",
                                                                "imagesTs", "labelsTr", "labelsTs"]
    raw = source.parent
    with pytest.warns(UserWarning, match="case phantom_002"):
        assert main(["-d", "990", "-o", "998", "--around", "4", "--margin", "8", "--from_model", organ_model.spec,
                     "-device", "cpu", "-np", "1", "--disable_tta"]) == 0
    assert read_crop_boxes(raw / "Dataset998_PhantomCrop" / "crop_boxes.json") == result.boxes
    with pytest.raises(InvalidInput, match=r"--around 'prostate' is neither .* of the localiser"):
        crop_dataset(990, 997, ["prostate"], 8.0, from_model=organ_model.spec, run=run)
    with pytest.raises(MissingInput, match="Model folder"):
        crop_dataset(990, 997, ["gtv"], 8.0, from_model="990:nnUNetTrainer:radconfCPUPlans:3d_fullres:all", run=run)
    assert not (raw / "Dataset997_PhantomCrop").exists()
    assert not [p.name for p in raw.iterdir() if p.name.startswith(".")]
