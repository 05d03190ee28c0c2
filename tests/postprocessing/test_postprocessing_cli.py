"""radconf_determine_postprocessing and radconf_apply_postprocessing in-process on tiny NIfTI folders: what they
choose, write and refuse (exit 2, one line, nothing written)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from radconf.cli import apply_postprocessing as apply_cli
from radconf.cli import determine_postprocessing as determine_cli
from radconf.postprocessing import apply_postprocessing, read_postprocessing
from tests.postprocessing.conftest import SPACING_ZYX, read_map, tree, write_dataset_json

SEARCH = [{"op": "largest_component"}, {"op": "fill_holes"}, {"op": "closing", "radius_mm": 2}]


def _refused(capsys, code: int, needle: str) -> None:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.startswith("radconf: error: ") and needle in err, err


def test_determine_then_apply(island_cases, tmp_path, capsys):
    predictions, references = island_cases
    output = tmp_path / "chosen"
    before = tree(predictions), tree(references)
    assert determine_cli.main(["-i", str(predictions), "-ref", str(references), "-o", str(output)]) == 0
    out = capsys.readouterr().out
    assert "bladder: largest_component (mean Dice 0.9" in out and "rectum: none" in out
    assert (tree(predictions), tree(references)) == before
    chosen = json.loads((output / "postprocessing.json").read_text())
    assert [s["steps"] for s in chosen["structures"]] == [[{"op": "largest_component", "connectivity": 26}], []]
    assert chosen["scores"]["bladder"]["postprocessed"]["mean_dice"] == 1.0
    assert chosen["scores"]["rectum"]["raw"]["mean_dice"] == chosen["scores"]["rectum"]["postprocessed"]["mean_dice"]
    assert chosen["sources"]["cases"] == ["case_0", "case_1"] and chosen["sources"]["model"] is None
    assert chosen["rule"]["min_dice_gain"] > 0 and len(chosen["search_space"]) == 12
    table = (output / "postprocessing_steps.csv").read_text().splitlines()
    assert table[0].startswith("structure,step,on_top_of,dice_before") and len(table) == 1 + 12 + 12
    rectum_largest = next(line for line in table if line.startswith("rectum,largest_component,"))
    assert ",no,mean Dice -" in rectum_largest
    assert "| bladder | largest_component |" in (output / "postprocessing_steps.md").read_text()

    applied = tmp_path / "applied"
    assert apply_cli.main(["-i", str(predictions), "-o", str(applied), "-pp", str(output / "postprocessing.json")]) == 0
    pp = read_postprocessing(output / "postprocessing.json")
    for case in ("case_0", "case_1"):
        raw = read_map(predictions / f"{case}.nii.gz")
        result = read_map(applied / f"{case}.nii.gz")
        assert np.array_equal(result, apply_postprocessing(raw, SPACING_ZYX, pp))
        assert np.array_equal(result, read_map(references / f"{case}.nii.gz"))  # the island gone, the rectum whole


def test_a_search_space_file(island_cases, tmp_path, capsys):
    predictions, references = island_cases
    search = tmp_path / "search.json"
    search.write_text(json.dumps(SEARCH))
    output = tmp_path / "chosen"
    assert determine_cli.main(["-i", str(predictions), "-ref", str(references), "-o", str(output), "--search_space",
                               str(search)]) == 0
    chosen = json.loads((output / "postprocessing.json").read_text())
    assert [step["op"] for step in chosen["search_space"]] == ["largest_component", "fill_holes", "closing"]
    capsys.readouterr()


def test_determine_refusals_write_nothing(island_cases, tmp_path, capsys):
    predictions, references = island_cases
    output = tmp_path / "out"
    search = tmp_path / "search.json"
    search.write_text(json.dumps([{"op": "erode_twice"}]))
    base = ["-i", str(predictions), "-ref", str(references)]
    cases = [([*base, "-o", str(output), "--search_space", str(search)], "search.json, step 1: unknown op"),
             ([*base, "-o", str(predictions / "pp")], "lies inside the prediction folder -i"),
             ([*base, "-o", str(tmp_path)], "contains the prediction folder -i"),
             (["-i", str(predictions), "-o", str(output)], "-i needs -ref"),
             ([*base, "-o", str(output), "-djfile", str(tmp_path / "none.json")], "No dataset.json")]
    for argv, needle in cases:
        _refused(capsys, determine_cli.main(argv), needle)
        assert not output.exists() and not (predictions / "pp").exists()
    (references / "case_1.nii.gz").unlink()
    _refused(capsys, determine_cli.main([*base, "-o", str(output)]), "No reference for 1 prediction(s)")
    assert not output.exists()
    output.mkdir()
    (output / "postprocessing.json").write_text(json.dumps({"postprocessing_fns": [], "postprocessing_kwargs": []}))
    _refused(capsys, determine_cli.main([*base, "-o", str(output)]), "was not written by radconf")
    assert tree(output) == {"postprocessing.json": b'{"postprocessing_fns": [], "postprocessing_kwargs": []}'}


def _fake_model(island_cases, dirs) -> str:
    """A model folder whose two folds validated the island cases, and the dataset's gt_segmentations."""
    predictions, references = island_cases
    model = dirs["nnUNet_results"] / "Dataset990_Fake" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    write_dataset_json(model)
    for fold, case in enumerate(("case_0", "case_1")):
        (model / f"fold_{fold}" / "validation").mkdir(parents=True)
        shutil.copy(predictions / f"{case}.nii.gz", model / f"fold_{fold}" / "validation" / f"{case}.nii.gz")
    shutil.copytree(references, dirs["nnUNet_preprocessed"] / "Dataset990_Fake" / "gt_segmentations")
    return "990:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1"


def test_a_model_writes_into_its_folder(island_cases, nnunet_dirs, capsys):
    spec = _fake_model(island_cases, nnunet_dirs)
    model = nnunet_dirs["nnUNet_results"] / "Dataset990_Fake" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    folds = tree(model / "fold_0"), tree(model / "fold_1")
    assert determine_cli.main(["-m", spec]) == 0
    assert "post-processing chosen on 2 validation case(s)" in capsys.readouterr().out
    chosen = json.loads((model / "postprocessing.json").read_text())
    assert chosen["sources"]["model"] == spec and chosen["sources"]["reference"].endswith("gt_segmentations")
    assert chosen["structures"][0]["steps"][0]["op"] == "largest_component"
    assert (tree(model / "fold_0"), tree(model / "fold_1")) == folds
    assert determine_cli.main(["-m", spec]) == 0  # its own earlier file is replaced
    capsys.readouterr()


@pytest.mark.parametrize(("argv", "needle"), [
    (["-m", "990:nnUNetTrainer:nnUNetPlans:3d_fullres:all"], "fold 'all' was trained on every case"),
    (["-m", "990:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2"], "fold_2/validation holds no validation predictions"),
    (["-m", "990:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1", "-o", "{model}/fold_0/validation"], "is the validation"),
    (["-m", "990:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1", "-ref", "x"], "-ref go with -i"),
    (["-m", "990:nnUNetTrainer:nnUNetPlans:2d:0,1"], "does not exist"),
])
def test_model_refusals(island_cases, nnunet_dirs, capsys, argv, needle):
    _fake_model(island_cases, nnunet_dirs)
    model = nnunet_dirs["nnUNet_results"] / "Dataset990_Fake" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    before = tree(nnunet_dirs["nnUNet_results"])
    _refused(capsys, determine_cli.main([a.format(model=model) for a in argv]), needle)
    assert tree(nnunet_dirs["nnUNet_results"]) == before
