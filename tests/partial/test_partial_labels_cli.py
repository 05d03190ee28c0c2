"""radconf_partial_labels: the table checked against the raw dataset and recorded; every refusal writes nothing."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli import partial_labels
from radconf.partial.structures import RECORD_FILE

NAME = "Dataset990_Phantom"


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _erase(label_file: Path, label: int) -> None:
    image = sitk.ReadImage(str(label_file))
    array = sitk.GetArrayFromImage(image)
    array[array == label] = 0
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    sitk.WriteImage(out, str(label_file))


@pytest.fixture
def dataset(tiny_phantom, nnunet_dirs):
    raw = nnunet_dirs["nnUNet_raw"] / NAME
    _erase(raw / "labelsTr" / "phantom_001.nii.gz", 2)  # rectum not contoured in case 1
    _erase(raw / "labelsTr" / "phantom_003.nii.gz", 1)  # bladder not contoured in case 3
    return raw, nnunet_dirs["nnUNet_preprocessed"] / NAME


def _table(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cases.csv"
    path.write_text(text)
    return path


def test_table_recorded_and_shown(dataset, tmp_path, capsys):
    raw, preprocessed = dataset
    before = _hashes(raw)
    table = _table(tmp_path, "# not contoured in the clinical sets\ncase,missing\nphantom_001,rectum\n"
                             "phantom_003,1\n")
    assert partial_labels.main(["-d", "990", "--missing", str(table)]) == 0
    out = capsys.readouterr().out
    assert "2 of 5 training cases miss structures" in out and "rectum" in out and "annotated in    4 / 5" in out
    record = json.loads((preprocessed / RECORD_FILE).read_text())
    assert record["missing_structures"] == {"phantom_001": ["rectum"], "phantom_003": ["bladder"]}
    assert record["source_sha256"] == hashlib.sha256(table.read_bytes()).hexdigest()
    assert _hashes(raw) == before  # the raw dataset is only read
    assert partial_labels.main(["-d", "990"]) == 0
    assert "phantom_003: missing bladder" in capsys.readouterr().out
    assert partial_labels.main(["-d", "990", "--clear"]) == 0
    assert not (preprocessed / RECORD_FILE).exists()


@pytest.mark.parametrize("text, message", [
    ("case,missing\nphantom_01,rectum\n", "phantom_01.*not a training case.*did you mean phantom_001"),
    ("case,missing\nphantom_001,rectun\n", "unknown structure 'rectun'.*did you mean rectum"),
    ("case,missing\nphantom_001,background\n", "background cannot be missing"),
    ("case,missing\nphantom_001,bladder;rectum;gluteal_muscles;gtv\n", "would miss every structure"),
    ("case,missing\nphantom_002,rectum\n", "phantom_002 is said to miss rectum, but phantom_002.nii.gz holds it"),
    ("patient,organ\nphantom_001,rectum\n", "header 'case,missing'"),
    ("case,missing\nphantom_001,\n", "lists no missing structure"),
])
def test_bad_tables_refused_and_nothing_written(dataset, tmp_path, capsys, text, message):
    raw, preprocessed = dataset
    before = _hashes(raw)
    assert partial_labels.main(["-d", "990", "--missing", str(_table(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    import re
    assert re.search(message, err), err
    assert "Traceback" not in err
    assert not (preprocessed / RECORD_FILE).exists() and _hashes(raw) == before


def test_table_must_agree_with_the_dataset_json_entry(dataset, tmp_path, capsys):
    raw, preprocessed = dataset
    dataset_json = json.loads((raw / "dataset.json").read_text())
    dataset_json["radconf"] = {**dataset_json.get("radconf", {}), "missing_structures": {"phantom_001": ["gtv"]}}
    (raw / "dataset.json").write_text(json.dumps(dataset_json))
    table = _table(tmp_path, "case,missing\nphantom_001,rectum\n")
    assert partial_labels.main(["-d", "990", "--missing", str(table)]) == 2
    assert "Make them agree" in capsys.readouterr().err
    assert not (preprocessed / RECORD_FILE).exists()


def test_missing_table_file_named(dataset, tmp_path, capsys):
    assert partial_labels.main(["-d", "990", "--missing", str(tmp_path / "none.csv")]) == 2
    assert "none.csv not found" in capsys.readouterr().err


def test_evaluation_treats_missing_structures_as_unknown(tmp_path, capsys):
    """A model that finds the uncontoured rectum is not penalised with --missing; without it the pair scores 0."""
    from radconf.cli import evaluate

    ref, pred = tmp_path / "labelsTr", tmp_path / "pred"
    ref.mkdir()
    pred.mkdir()
    truth = np.zeros((6, 10, 10), dtype=np.uint8)
    truth[1:4, 1:4, 1:4] = 1
    truth[1:4, 6:9, 6:9] = 2
    partial = truth.copy()
    partial[partial == 2] = 0  # case b: rectum not contoured
    for case, reference in (("a", truth), ("b", partial)):
        sitk.WriteImage(sitk.GetImageFromArray(reference), str(ref / f"{case}.nii.gz"))
        sitk.WriteImage(sitk.GetImageFromArray(truth), str(pred / f"{case}.nii.gz"))
    dataset_json = {"labels": {"background": 0, "bladder": 1, "rectum": 2}, "file_ending": ".nii.gz",
                    "channel_names": {"0": "CT"}, "numTraining": 2}
    (tmp_path / "dataset.json").write_text(json.dumps(dataset_json))
    args = ["-ref", str(ref), "-pred", str(pred), "--no_plots"]
    assert evaluate.main([*args, "-o", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "summary.json").read_text())
    table = _table(tmp_path, "case,missing\nb,rectum\n")
    assert evaluate.main([*args, "-o", str(tmp_path / "partial"), "--missing", str(table)]) == 0
    assert "1 case-structure pair(s) not annotated" in capsys.readouterr().out
    partial_summary = json.loads((tmp_path / "partial" / "summary.json").read_text())

    def rectum(summary):
        return summary["per_structure"]["rectum"]["dice"]

    assert rectum(plain)["mean"] == pytest.approx(0.5) and rectum(plain)["n"] == 2
    assert rectum(partial_summary)["mean"] == pytest.approx(1.0) and rectum(partial_summary)["n"] == 1
    assert partial_summary["settings"]["unknown_structures"] == {"b": ["rectum"]}
    rows = (tmp_path / "partial" / "metrics_per_case.csv").read_text().splitlines()
    assert len(rows) == 1 + 3
    dataset_json["radconf"] = {"missing_structures": {"b": ["rectum"]}}  # the same from the dataset.json entry
    (tmp_path / "dataset.json").write_text(json.dumps(dataset_json))
    assert evaluate.main([*args, "-o", str(tmp_path / "entry")]) == 0
    assert rectum(json.loads((tmp_path / "entry" / "summary.json").read_text()))["n"] == 1
    bad = _table(tmp_path, "case,missing\nb,prostate\n")
    assert evaluate.main([*args, "-o", str(tmp_path / "bad"), "--missing", str(bad)]) == 2
    assert "unknown structure 'prostate'" in capsys.readouterr().err and not (tmp_path / "bad").exists()
