"""radconf_merge_labels on a tiny hand-made raw dataset: the written labels, dataset.json and report, the source
untouched, and every refusal leaving nothing behind."""
from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli.merge_labels import main
from radconf.errors import InvalidInput
from radconf.raw import merge
from radconf.raw.checks import check_raw_dataset
from radconf.raw.rules import parse_rules, plan_mapping

LABELS = {"background": 0, "muscle_l": 1, "muscle_r": 2, "gtv": 3, "couch": 4}
SPACING, ORIGIN, DIRECTION = (0.8, 0.9, 2.5), (1.0, -2.0, 3.0), (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
MISSING = {"case_001": ["muscle_l"], "case_002": ["couch"], "case_003": ["gtv", "muscle_r"]}
SOURCE = "Dataset501_Muscles"
MERGE = ["--merge", "muscle=muscle_l,muscle_r", "--rename", "gtv=tumour", "--drop", "couch"]


def _write(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN)
    image.SetDirection(DIRECTION)
    sitk.WriteImage(image, str(path), True)


def _label(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 5, size=(4, 8, 8)).astype(np.uint8)


@pytest.fixture
def raw(nnunet_dirs) -> Path:
    """nnUNet_raw holding Dataset501_Muscles: 3 training cases, 1 held-out case with a reference, gtv readers."""
    root = nnunet_dirs["nnUNet_raw"]
    folder = root / SOURCE
    rng = np.random.default_rng(0)
    for split, case, seed in [("Tr", "case_001", 1), ("Tr", "case_002", 2), ("Tr", "case_003", 3), ("Ts", "test_1", 4)]:
        _write(rng.normal(size=(4, 8, 8)).astype(np.float32), folder / f"images{split}" / f"{case}_0000.nii.gz")
        _write(_label(seed), folder / f"labels{split}" / f"{case}.nii.gz")
    _write((_label(1) == 3).astype(np.uint8), folder / "readers" / "case_001" / "r1_1.nii.gz")
    entry = {"generator": "radconf.dicom.import", "missing_structures": MISSING, "test_cases": ["test_1"],
             "readers_folders": {"gtv": "readers"}, "readers_folder": "readers"}
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 3, "file_ending": ".nii.gz",
        "name": "Muscles", "radconf": entry}))
    return root


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_merge_rename_and_drop_by_hand(raw: Path, capsys):
    before = _hashes(raw / SOURCE)
    assert main(["-d", "501", "-o", "512", *MERGE]) == 0
    out = capsys.readouterr().out
    folder = raw / "Dataset512_MusclesMerged"
    assert "radconf_plan_and_preprocess -d 512" in out and "muscle_l   (  1) -> muscle (1)" in out
    assert _hashes(raw / SOURCE) == before  # the source is untouched

    dataset = check_raw_dataset(folder)  # a valid raw dataset, values declared
    assert dataset["labels"] == {"background": 0, "muscle": 1, "tumour": 2}
    assert (dataset["numTraining"], dataset["channel_names"], dataset["file_ending"]) == (3, {"0": "CT"}, ".nii.gz")
    entry = dataset["radconf"]
    assert entry["generator"] == "radconf.merge_labels" and entry["source"] == SOURCE
    assert entry["source_generator"] == "radconf.dicom.import"
    assert entry["label_mapping"] == {"background": "background", "muscle_l": "muscle", "muscle_r": "muscle",
                                      "gtv": "tumour", "couch": "background"}
    assert entry["label_ids"] == {"0": 0, "1": 1, "2": 1, "3": 2, "4": 0}
    # ANY part missing -> the merged label is missing; dropped labels vanish; renamed names follow
    assert entry["missing_structures"] == {"case_001": ["muscle"], "case_003": ["muscle", "tumour"]}
    assert entry["readers_folders"] == {"tumour": "readers"} and entry["test_cases"] == ["test_1"]

    for split, case, seed in [("Tr", "case_001", 1), ("Tr", "case_003", 3), ("Ts", "test_1", 4)]:
        old, new = _label(seed), _array(folder / f"labels{split}" / f"{case}.nii.gz")
        assert new.dtype == np.uint8 and set(np.unique(new)) <= {0, 1, 2}
        assert np.array_equal(new == 1, (old == 1) | (old == 2))
        assert np.array_equal(new == 2, old == 3)
        assert np.array_equal(new == 0, (old == 0) | (old == 4))
        image = sitk.ReadImage(str(folder / f"labels{split}" / f"{case}.nii.gz"))
        assert np.allclose(image.GetSpacing(), SPACING) and np.allclose(image.GetOrigin(), ORIGIN)
        assert np.allclose(image.GetDirection(), DIRECTION)
        copied, original = folder / f"images{split}" / f"{case}_0000.nii.gz", raw / SOURCE / f"images{split}" / \
            f"{case}_0000.nii.gz"
        assert not copied.is_symlink() and os.stat(copied).st_ino != os.stat(original).st_ino
        assert copied.read_bytes() == original.read_bytes()
    assert (folder / "readers" / "case_001" / "r1_1.nii.gz").read_bytes() == \
        (raw / SOURCE / "readers" / "case_001" / "r1_1.nii.gz").read_bytes()

    with open(folder / "label_merge_report.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 * 4  # 4 cases with a reference x 4 source labels
    row = next(r for r in rows if r["case"] == "case_002" and r["old_label"] == "muscle_r")
    assert (row["new_label"], int(row["voxels"])) == ("muscle", int((_label(2) == 2).sum()))
    assert not [p for p in raw.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_mapping_numbers_labels_in_order_of_their_first_source_label():
    mapping = plan_mapping(LABELS, parse_rules(["pelvis=couch,muscle_r"], ["muscle_l=left"]))
    assert dict(mapping.new_labels) == {"background": 0, "left": 1, "pelvis": 2, "gtv": 3}
    assert dict(mapping.id_of) == {0: 0, 1: 1, 2: 2, 3: 3, 4: 2}
    assert mapping.remap(np.array([[0, 1, 2, 3, 4]], np.uint8)).tolist() == [[0, 1, 2, 3, 2]]
    big = plan_mapping({"background": 0, **{f"s{i}": i for i in range(1, 301)}}, parse_rules(drops=["s1"]))
    assert big.lookup().dtype == np.uint16 and big.remap(np.array([300]))[0] == 299
    with pytest.raises(InvalidInput, match="not declared"):
        mapping.remap(np.array([5]))


def test_empty_output_folder_is_used_and_name_can_be_given(raw: Path):
    (raw / "Dataset512_Left").mkdir()
    assert main(["-d", SOURCE, "-o", "Dataset512_Left", "--rename", "muscle_l=left"]) == 0
    labels = json.loads((raw / "Dataset512_Left" / "dataset.json").read_text())["labels"]
    assert labels == {"background": 0, "left": 1, "muscle_r": 2, "gtv": 3, "couch": 4}


REFUSALS = [
    (["--merge", "muscle=muscle_l,muscle_rr"], "Did you mean muscle_r"),
    (["--merge", "a=muscle_l,muscle_r", "--merge", "b=muscle_r,gtv"], "'muscle_r' appears in both"),
    (["--merge", "m=muscle_l,muscle_r", "--rename", "muscle_l=x"], "'muscle_l' appears in both"),
    (["--merge", "m=muscle_l,muscle_l"], "appears twice"),
    (["--rename", "muscle_l=gtv"], "stays in the dataset"),
    (["--rename", "muscle_l=x", "--rename", "muscle_r=x"], "both make a label named 'x'"),
    (["--merge", "m=background,gtv"], "background cannot be merged"),
    (["--rename", "gtv=background"], "use --drop"),
    (["--merge", "m=gtv"], "use --rename gtv=m"),
    (["--merge", "m"], "one '='"),
    (["--rename", "a=b,c"], "use --merge a=b,c"),
    (["--merge", "m=gtv,"], "empty"),
    ([], "Nothing to do"),
    (["--drop", "muscle_l", "muscle_r", "gtv", "couch"], "background only"),
    (["--merge", "target=gtv,couch"], "reader structure"),
    (["--drop", "gtv"], "reader structure"),
]


@pytest.mark.parametrize("rules, message", REFUSALS)
def test_refusals_name_the_rule_and_write_nothing(raw: Path, capsys, rules, message):
    before, listing = _hashes(raw / SOURCE), sorted(os.listdir(raw))
    assert main(["-d", "501", "-o", "512", *rules]) == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(raw)) == listing and _hashes(raw / SOURCE) == before


@pytest.mark.parametrize("output, setup, message", [
    ("512", "Dataset512_MusclesMerged/x.txt", "is not empty"),
    ("Dataset501_Muscles", None, "is the source dataset"),
    ("513", "Dataset513_Other/x.txt", "already used by"),
    ("foo", None, "give the new dataset's id"),
])
def test_output_refusals(raw: Path, capsys, output, setup, message):
    if setup:
        (raw / setup).parent.mkdir()
        (raw / setup).write_text("keep")
    listing = sorted(os.listdir(raw))
    assert main(["-d", "501", "-o", output, "--rename", "gtv=tumour"]) == 2
    assert message in capsys.readouterr().err
    assert sorted(os.listdir(raw)) == listing
    if setup:
        assert (raw / setup).read_text() == "keep"


def test_region_dataset_and_undeclared_values_are_refused(raw: Path, capsys):
    path = raw / SOURCE / "dataset.json"
    dataset = json.loads(path.read_text())
    path.write_text(json.dumps({**dataset, "labels": {**LABELS, "both": [1, 2]}}))
    assert main(["-d", "501", "-o", "512", "--rename", "gtv=tumour"]) == 2
    assert "region-based" in capsys.readouterr().err
    path.write_text(json.dumps(dataset))
    _write(np.full((4, 8, 8), 7, np.uint8), raw / SOURCE / "labelsTr" / "case_002.nii.gz")
    assert main(["-d", "501", "-o", "512", "--rename", "gtv=tumour"]) == 2
    assert "contains label values [7]" in capsys.readouterr().err
    assert not (raw / "Dataset512_MusclesMerged").exists()


def test_a_failure_while_writing_leaves_no_output(raw: Path, monkeypatch):
    calls = []

    def failing(path, target, mapping):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return original(path, target, mapping)

    original = merge._write_label
    monkeypatch.setattr(merge, "_write_label", failing)
    with pytest.raises(OSError):
        merge.merge_label_dataset("501", 512, parse_rules(renames=["gtv=tumour"]), raw_root=raw, progress=False)
    assert sorted(os.listdir(raw)) == [SOURCE]
