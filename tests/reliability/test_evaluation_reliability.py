"""radconf_evaluate, radconf_compare and radconf_demo refuse what they cannot evaluate soundly: one line naming the
file or argument and the fix, exit 2, no traceback, and the output area as it was found."""
from __future__ import annotations

import csv
import errno
import gzip
import json
import math
import os

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli import compare, demo, evaluate

SHAPE = (8, 8, 8)
LABELS = {"background": 0, "bladder": 1, "rectum": 2}


def _write(path, array, dtype=np.uint8):
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.asarray(array, dtype=dtype)), str(path))
    return path


def _label_map(shift: int = 0) -> np.ndarray:
    array = np.zeros(SHAPE, np.uint8)
    array[2:5, 2 + shift:5 + shift, 2:5] = 1
    array[5:7, 5:7, 4:7] = 2
    return array


@pytest.fixture
def folders(tmp_path):
    """Dataset/labelsTr (2 cases) with dataset.json, and predictions/ (2 cases)."""
    ref, pred = tmp_path / "Dataset501_X" / "labelsTr", tmp_path / "predictions"
    for i, case in enumerate(("a", "b")):
        _write(ref / f"{case}.nii.gz", _label_map())
        _write(pred / f"{case}.nii.gz", _label_map(shift=i))
    dataset = ref.parent / "dataset.json"
    dataset.write_text(json.dumps({"labels": LABELS, "file_ending": ".nii.gz", "numTraining": 2}))
    return {"tmp": tmp_path, "ref": ref, "pred": pred, "dataset": dataset}


def _snapshot(folder):
    return {p.relative_to(folder): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def _refused(capsys, code, *words):
    """The command exited 2 with one error line holding every word, and no traceback."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("radconf: error:")]
    assert len(lines) == 1, err
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


def _evaluate(folders, *extra):
    return evaluate.main(["-ref", str(folders["ref"]), "-pred", str(folders["pred"]), "-o",
                          str(folders["tmp"] / "eval"), "--no_plots", *extra])


# ------------------------------------------------------------------------------------------------------ labels
def test_a_label_in_neither_dataset_json_nor_images_is_refused_before_anything_is_written(folders, capsys):
    before = _snapshot(folders["tmp"])
    _refused(capsys, _evaluate(folders, "-l", "9"), "-l", "9", "dataset.json", "bladder=1", "rectum=2")
    folders["dataset"].unlink()
    _refused(capsys, _evaluate(folders, "-l", "bladder=1", "spleen=9"), "-l", "spleen", "9", "1, 2")
    before.pop(folders["dataset"].relative_to(folders["tmp"]))
    assert _snapshot(folders["tmp"]) == before


def test_a_declared_label_absent_from_every_case_is_empty_versus_empty(folders, capsys):
    folders["dataset"].write_text(json.dumps({"labels": {**LABELS, "spleen": 3}, "file_ending": ".nii.gz"}))
    with pytest.warns(UserWarning, match=r"spleen.*absent from every reference and prediction"):
        code = _evaluate(folders, "-l", "spleen=3")
    out = capsys.readouterr().out
    assert code == 0 and "nan %" not in out and "n/a" in out
    with open(folders["tmp"] / "eval" / "metrics_per_case.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case"] for r in rows] == ["a", "b"]
    assert all(math.isnan(float(r["dice"])) and float(r["volume_ref_cm3"]) == 0.0 for r in rows)
    assert "nan %" not in (folders["tmp"] / "eval" / "summary.md").read_text()


def test_only_background_everywhere_is_refused(folders, capsys):
    folders["dataset"].unlink()
    for folder in (folders["ref"], folders["pred"]):
        for case in ("a", "b"):
            _write(folder / f"{case}.nii.gz", np.zeros(SHAPE))
    _refused(capsys, _evaluate(folders), "background", "-l")
    assert not (folders["tmp"] / "eval").exists()


# ------------------------------------------------------------------------------------------------- confidence
def test_confidence_on_a_dataset_that_is_not_ordinal_is_refused(folders, capsys):
    _refused(capsys, _evaluate(folders, "--confidence", "2"), "--confidence", str(folders["dataset"]), "ordinal")
    data = {"labels": {"background": 0, **{f"level_{c}": c for c in (1, 2, 3)}}, "file_ending": ".nii.gz",
            "radconf": {"ordinal": True, "levels": 3}}
    folders["dataset"].write_text(json.dumps(data))
    _refused(capsys, _evaluate(folders, "--confidence", "2"), "--confidence 2", "K = 3", "--confidence 3")
    _refused(capsys, _evaluate(folders, "--confidence", "3", "-l", "1"), "-l", "--confidence")
    assert not (folders["tmp"] / "eval").exists()


def test_confidence_values_above_k_name_the_file(folders, capsys):
    folders["dataset"].unlink()
    _refused(capsys, _evaluate(folders, "--confidence", "1"), "a.nii.gz", "0..1", "--confidence")
    assert not (folders["tmp"] / "eval").exists()


# ------------------------------------------------------------------------------------------ output over input
@pytest.mark.parametrize("where", ["pred", "inside_pred", "inside_ref", "contains_ref", "default_inside_ref"])
def test_output_over_an_input_is_refused(folders, capsys, where):
    ref, pred = folders["ref"], folders["pred"]
    argv = ["-ref", str(ref), "-pred", str(pred)]
    if where == "default_inside_ref":  # predictions kept inside the reference folder: <pred>_evaluation lies in it
        pred = ref / "predictions"
        for case in ("a", "b"):
            _write(pred / f"{case}.nii.gz", _label_map())
        argv = ["-ref", str(ref), "-pred", str(pred)]
    else:
        argv += ["-o", str({"pred": pred, "inside_pred": pred / "eval", "inside_ref": ref / "eval",
                            "contains_ref": ref.parent}[where])]
    before = _snapshot(folders["tmp"])
    _refused(capsys, evaluate.main([*argv, "--no_plots"]), "-o", "never writes")
    assert _snapshot(folders["tmp"]) == before


def test_an_existing_output_holding_files_radconf_did_not_write_is_refused(folders, capsys):
    out = folders["tmp"] / "eval"
    out.mkdir()
    (out / "summary.json").write_text('{"mine": 1}')
    _refused(capsys, _evaluate(folders), "summary.json", "-o")
    assert [p.name for p in out.iterdir()] == ["summary.json"] and (out / "summary.json").read_text() == '{"mine": 1}'
    (out / "summary.json").unlink()
    out.rmdir()
    out.write_text("a file")
    _refused(capsys, _evaluate(folders), str(out), "-o")


# ----------------------------------------------------------------------------------------- truncated and NaN files
def _truncate(path):
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-200]))  # a valid gzip stream holding a partial copy


def test_a_truncated_prediction_in_a_worker_process_is_one_line(folders, capsys):
    _truncate(folders["pred"] / "b.nii.gz")
    _refused(capsys, _evaluate(folders, "-np", "2"), "b.nii.gz", "truncated")
    assert not (folders["tmp"] / "eval").exists()


def test_truncated_and_nan_files_are_refused_in_label_and_confidence_mode(folders, capsys):
    folders["dataset"].unlink()
    _truncate(folders["ref"] / "a.nii.gz")
    _refused(capsys, _evaluate(folders, "--confidence", "2"), "a.nii.gz", "truncated")
    nan = _label_map().astype(np.float32)
    nan[0, 0, 0] = np.nan
    _write(folders["ref"] / "a.nii.gz", nan, np.float32)
    _refused(capsys, _evaluate(folders), "a.nii.gz", "NaN")
    assert not (folders["tmp"] / "eval").exists()


# ------------------------------------------------------------------------------------------ evaluate arguments
@pytest.mark.parametrize(("extra", "words"), [
    (["--tolerance", "0"], ["--tolerance", "greater than 0"]),
    (["--tolerance", "-1"], ["--tolerance"]),
    (["--tolerance", "nan"], ["--tolerance", "finite"]),
    (["--tolerance", "2", "2"], ["--tolerance", "twice"]),
    (["-np", "0"], ["-np", "at least 1"]),
    (["--confidence", "0"], ["--confidence", "at least 1"]),
    (["--confidence", "-2"], ["--confidence"]),
    (["--hd95", "p99"], ["--hd95", "surface-distance"]),
    (["--file_ending", ".nii"], ["'*.nii'", ".nii.gz", "--file_ending"]),
    (["--file_ending", "nii.gz"], ["--file_ending", "'.'"]),
    (["-l", "bladder=one"], ["-l", "integers"]),
])
def test_evaluate_arguments_are_checked_before_any_work(folders, capsys, extra, words):
    before = _snapshot(folders["tmp"])
    try:
        code = _evaluate(folders, *extra)
    except SystemExit as exit_info:  # argparse
        code = exit_info.code
        err = capsys.readouterr().err
        assert code == 2 and "Traceback" not in err and all(w in err for w in words), err
    else:
        _refused(capsys, code, *words)
    assert _snapshot(folders["tmp"]) == before


def test_invalid_djfile_and_same_folders_are_refused(folders, capsys):
    bad = folders["tmp"] / "bad.json"
    bad.write_text('{"labels": {"a": 1},\n}\n')
    _refused(capsys, _evaluate(folders, "-djfile", str(bad)), "bad.json", "line 2")
    _refused(capsys, evaluate.main(["-ref", str(folders["ref"]), "-pred", str(folders["ref"]), "-o",
                                    str(folders["tmp"] / "eval")]), "-ref", "-pred", "same folder")
    assert not (folders["tmp"] / "eval").exists()


def test_predictions_with_another_file_ending_are_named(folders, capsys):
    for case in ("a", "b"):
        (folders["pred"] / f"{case}.nii.gz").rename(folders["pred"] / f"{case}.nrrd")
    _refused(capsys, _evaluate(folders), "'.nii.gz'", ".nrrd", "--file_ending")


def test_nnunet_style_flags_with_aliases_and_defaults_in_help(folders, capsys):
    parser = evaluate.build_parser()
    for spelling in (["--allow_missing", "--file_ending", ".nii", "--no_plots"],
                     ["--allow-missing", "--file-ending", ".nii", "--no-plots"]):
        args = parser.parse_args(["-ref", "r", "-pred", "p", *spelling])
        assert args.allow_missing and args.no_plots and args.file_ending == ".nii"
    help_text = " ".join(parser.format_help().split())  # line breaks depend on the terminal width
    assert "--allow_missing, --allow-missing" in help_text and "--no_plots, --no-plots" in help_text
    assert "(default: 1)" in help_text and "(default: surface-distance)" in help_text
    with pytest.raises(SystemExit):
        parser.parse_args(["-ref", "r", "-pred", "p", "--allow"])  # no abbreviations
    assert "(default: 0.1)" in " ".join(compare.build_parser().format_help().split())
    assert "(default: radconf_demo)" in " ".join(demo.build_parser().format_help().split())


# --------------------------------------------------------------------------------------- failed writes leave it
def test_a_failed_write_leaves_the_output_as_it_was(folders, capsys, monkeypatch):
    out = folders["tmp"] / "eval"
    assert _evaluate(folders) == 0
    before = _snapshot(out)
    from radconf.evaluation import report

    def full_disk(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(report, "write_json", full_disk)  # the disk fills up after metrics_per_case.csv
    _refused(capsys, _evaluate(folders, "-l", "1"), "summary.json", "free disk space")
    assert _snapshot(out) == before
    assert sorted(p.name for p in folders["tmp"].iterdir()) == ["Dataset501_X", "eval", "predictions"]


def test_a_rerun_replaces_the_outputs_of_the_earlier_evaluation(folders, capsys):
    out = folders["tmp"] / "eval"
    assert _evaluate(folders) == 0
    (out / "plots").mkdir()
    (out / "plots" / "metric_dice.png").write_bytes(b"earlier plot")  # as an earlier run with plots left it
    (out / "calibration.csv").write_text("level\n")  # and an earlier run with --confidence
    (out / "notes.txt").write_text("mine")
    assert _evaluate(folders, "-l", "1") == 0  # --no_plots: the earlier plots no longer describe the outputs
    assert sorted(p.name for p in out.iterdir()) == ["metrics_per_case.csv", "notes.txt", "summary.json",
                                                     "summary.md"]
    with open(out / "metrics_per_case.csv", newline="") as handle:
        assert {r["structure"] for r in csv.DictReader(handle)} == {"1"}
    assert (out / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------------------ compare
def _method(path, values, cases=None, header=("case", "structure", "label", "dice", "assd_mm")):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i, value in enumerate(values):
            writer.writerow([(cases or [f"c{j}" for j in range(len(values))])[i], "gtv", 1, repr(float(value)),
                             repr(float(2 - value))][:len(header)])
    return path


@pytest.fixture
def methods(tmp_path):
    rng = np.random.default_rng(0)
    a = _method(tmp_path / "unet" / "metrics_per_case.csv", list(rng.uniform(0.7, 0.8, 6)))
    b = _method(tmp_path / "ensemble" / "metrics_per_case.csv", list(rng.uniform(0.75, 0.85, 6)))
    return tmp_path, a, b


def test_corrupt_csv_files_are_one_line_each(methods, capsys):
    _, a, b = methods
    text = b.read_text()
    b.write_text(text[: text.rindex(",")])  # a partial copy: the last row ends early
    _refused(capsys, compare.main([str(a), str(b)]), str(b), "line 7", "truncated")
    b.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    _refused(capsys, compare.main([str(a), str(b)]), str(b), "not")
    _method(b, [0.8, 0.7], header=("case", "dice"))
    _refused(capsys, compare.main([str(a), str(b)]), str(b), "'structure'")
    b.write_text(text.replace("0.", "x.", 1))
    _refused(capsys, compare.main([str(a), str(b)]), str(b), "line 2", "dice", "x.")
    b.write_text("")
    _refused(capsys, compare.main([str(a), str(b)]), str(b), "no rows")


def test_compare_inputs_that_cannot_be_paired(methods, capsys):
    _, a, b = methods
    _refused(capsys, compare.main([str(a)]), "at least two")
    _refused(capsys, compare.main([str(a), str(a)]), str(a), "twice")
    _method(b, [0.8, 0.7], cases=["x1", "x2"])
    _refused(capsys, compare.main([str(a), str(b)]), "no case", "common")
    _method(b, [0.8, 0.7], header=("case", "structure", "label"))
    _refused(capsys, compare.main([str(a), str(b)]), "--metric", "no metric")


@pytest.mark.parametrize(("extra", "words"), [
    (["--q", "0"], ["--q"]), (["--q", "1"], ["--q"]), (["--q", "1.5"], ["--q"]), (["--q", "nan"], ["--q"]),
    (["--metric", "hd99"], ["--metric", "hd99", "dice", "assd_mm"]),
    (["--names", "x"], ["--names", "2"]), (["--names", "x", "x"], ["--names"]),
    (["--baseline", "rf"], ["--baseline", "rf", "unet", "ensemble"]),
    (["--family", "pair"], ["--family"]),
])
def test_compare_arguments_are_checked_before_any_work(methods, capsys, extra, words):
    tmp, a, b = methods
    before = _snapshot(tmp)
    try:
        code = compare.main([str(a), str(b), "-o", str(tmp / "cmp"), *extra])
    except SystemExit as exit_info:
        err = capsys.readouterr().err
        assert exit_info.code == 2 and "Traceback" not in err and all(w in err for w in words), err
    else:
        _refused(capsys, code, *words)
    assert _snapshot(tmp) == before


def test_compare_output_that_would_overwrite_an_input_csv_is_refused(methods, capsys):
    tmp, a, b = methods
    renamed = b.with_name("comparison.csv")
    b.rename(renamed)
    before, text = _snapshot(tmp), renamed.read_text()
    _refused(capsys, compare.main([str(a), str(renamed), "-o", str(renamed.parent)]), str(renamed), "-o")
    assert _snapshot(tmp) == before
    assert compare.main([str(a), str(renamed), "-o", str(tmp / "cmp")]) == 0  # elsewhere is fine
    assert (tmp / "cmp" / "comparison.csv").is_file() and renamed.read_text() == text


# --------------------------------------------------------------------------------------------------------- demo
def test_demo_refuses_an_existing_folder_that_is_not_a_demo(tmp_path, capsys, monkeypatch):
    from radconf.datasets.phantom import writer

    def started(*args, **kwargs):
        raise AssertionError("the demo started")

    monkeypatch.setattr(writer, "write_phantom_dataset", started)
    user = tmp_path / "my_study"
    user.mkdir()
    (user / "ct.nii.gz").write_bytes(b"irreplaceable")
    _refused(capsys, demo.main(["--out", str(user)]), str(user), "--out")
    assert os.listdir(user) == ["ct.nii.gz"] and (user / "ct.nii.gz").read_bytes() == b"irreplaceable"
    (tmp_path / "file").write_text("x")
    _refused(capsys, demo.main(["--out", str(tmp_path / "file")]), "file", "--out")


def test_demo_accepts_a_new_an_empty_or_an_earlier_demo_folder(tmp_path):
    from radconf.demo.common import check_demo_output

    check_demo_output(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_demo_output(tmp_path / "empty")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "demo_log.txt").write_text("radconf demo log\n")
    (earlier / "predictions").mkdir()
    check_demo_output(earlier)
    assert sorted(os.listdir(tmp_path)) == ["earlier", "empty"]
