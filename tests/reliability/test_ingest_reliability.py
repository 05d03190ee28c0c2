"""Raw-data ingest refuses what it cannot trust: radconf_fuse_readers, radconf_anatomy_dataset,
radconf_plan_and_preprocess (its raw-dataset check) and radconf_generate_phantom on tiny 8 x 8 x 8 datasets.

Every refusal is one ``radconf: error:`` line (exit 2) naming the file or argument and the fix, without a traceback,
and leaves nnUNet_raw as it was. ``Dataset101_Src`` (written by ``make_source``): cases ``a``, ``b`` (imagesTr,
labelsTr) and ``t`` (imagesTs, labelsTs), one CT channel, label ``gtv`` = 1, and three reader masks per case
(``r1_t1``, ``r1_t2``, ``r2_t1``) in ``readers/<case>/``.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli import anatomy_dataset, fuse_readers, generate_phantom, plan_and_preprocess
from radconf.raw.checks import check_raw_dataset

SHAPE = (8, 8, 8)
MASKS = ("r1_t1", "r1_t2", "r2_t1")
CASES = {"a": "Tr", "b": "Tr", "t": "Ts"}


def write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(image, str(path))
    return path


def block(offset: int = 0) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[2:5, 2 + offset:6, 2:6] = 1
    return mask


def make_source(raw: Path, channels: int = 1) -> Path:
    source = raw / "Dataset101_Src"
    rng = np.random.default_rng(0)
    for case, split in CASES.items():
        for channel in range(channels):
            write(source / f"images{split}" / f"{case}_{channel:04d}.nii.gz",
                  rng.integers(-500, 500, SHAPE).astype(np.int16))
        write(source / f"labels{split}" / f"{case}.nii.gz", block())
        for offset, name in enumerate(MASKS):
            write(source / "readers" / case / f"{name}.nii.gz", block(offset))
    (source / "dataset.json").write_text(json.dumps({
        "channel_names": {str(c): f"CT{c}" for c in range(channels)}, "labels": {"background": 0, "gtv": 1},
        "numTraining": 2, "file_ending": ".nii.gz"}, indent=2))
    return source


def truncate(path: Path) -> None:
    """A partial copy: the decompressed file cut short and compressed again (a valid gzip stream)."""
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[: len(data) - 200]))


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def raw(nnunet_dirs) -> Path:
    make_source(nnunet_dirs["nnUNet_raw"])
    return nnunet_dirs["nnUNet_raw"]


def refused(main, argv, capsys, *fragments: str) -> str:
    """Runs ``main(argv)``; asserts exit 2, one error line holding every fragment, no traceback."""
    code = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("radconf: error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def argparse_refuses(main, argv, capsys, fragment: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and fragment in err and "Traceback" not in err, err


# ------------------------------------------------------------------------------------------- radconf_fuse_readers
@pytest.mark.parametrize("where, damage, fragment", [
    ("imagesTr/a_0001.nii.gz", truncate, "is truncated"), ("imagesTs/t_0000.nii.gz", truncate, "is truncated"),
    ("readers/b/r1_t2.nii.gz", truncate, "is truncated"),
    ("readers/a/r2_t1.nii.gz", lambda path: path.write_bytes(b""), "is empty (0 bytes)"),
])
def test_fusion_names_a_truncated_file_and_writes_nothing(nnunet_dirs, capsys, where, damage, fragment):
    raw = nnunet_dirs["nnUNet_raw"]
    source = make_source(raw, channels=2)
    damage(source / where)
    before = tree(raw)
    refused(fuse_readers.main, ["101", "-d", "102"], capsys, f"{source / where} {fragment}", "copy it again")
    assert tree(raw) == before


def test_fusion_refuses_nan_in_an_image_and_in_a_float_mask(raw, capsys):
    source = raw / "Dataset101_Src"
    image = np.zeros(SHAPE, np.float32)
    image[0, 0, 0] = np.nan
    write(source / "imagesTr" / "b_0000.nii.gz", image)
    refused(fuse_readers.main, ["101", "-d", "102"], capsys, "b_0000.nii.gz: 1 of 512 voxels", "NaN or infinite")
    write(source / "imagesTr" / "b_0000.nii.gz", np.zeros(SHAPE, np.int16))
    probability = block().astype(np.float32) * 0.9
    probability[7, 7, 7] = np.nan  # SimpleITK would read it as 0: outside the contour
    write(source / "readers" / "a" / "r2_t1.nii.gz", probability)
    refused(fuse_readers.main, ["101", "-d", "102", "--threshold", "0.5"], capsys, "r2_t1.nii.gz: 1 of 512 voxels")
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset101_Src"]


def test_fusion_thresholds_must_separate_background_and_contour(raw, capsys):
    mask = raw / "Dataset101_Src" / "readers" / "a" / "r1_t1.nii.gz"
    err = refused(fuse_readers.main, ["101", "-d", "102", "--threshold", "-1"], capsys, "--threshold -1 selects every "
                  "voxel", "r1_t1.nii.gz", "--threshold 0")
    assert str(mask.parent) in err
    write(mask, block() * 255)
    refused(fuse_readers.main, ["101", "-d", "102", "--threshold", "255"], capsys, "r1_t1.nii.gz",
            "does not separate", "{0, 255}")
    argparse_refuses(fuse_readers.main, ["101", "-d", "102", "--threshold", "nan"], capsys, "not a finite number")
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset101_Src"]
    # a probability map whose values stay below the threshold is an empty contour, not a wrong threshold
    write(mask, block().astype(np.float32) * np.linspace(0.1, 0.4, 8, dtype=np.float32))
    assert fuse_readers.main(["101", "-d", "102", "--threshold", "0.5"]) == 0


def test_fusion_warns_about_a_case_whose_masks_are_all_empty_and_refuses_if_all_are(raw, capsys):
    readers = raw / "Dataset101_Src" / "readers"
    for name in MASKS:
        write(readers / "b" / f"{name}.nii.gz", np.zeros(SHAPE, np.uint8))
    assert fuse_readers.main(["101", "-d", "102"]) == 0
    captured = capsys.readouterr()
    assert "radconf: warning: case b: all 3 reader masks are empty" in captured.out + captured.err
    for case in ("a", "t"):
        for name in MASKS:
            write(readers / case / f"{name}.nii.gz", np.zeros(SHAPE, np.uint8))
    refused(fuse_readers.main, ["101", "-d", "103"], capsys, "every reader mask of every case is empty")
    assert not (raw / "Dataset103_SrcConfidence").exists() and not list(raw.glob("*.partial"))


@pytest.mark.parametrize("copy, why", [
    ("r1_t1 (1).nii.gz", "naming rule <reader>_<trial>"),
    ("r3.nii.gz", "naming rule <reader>_<trial>"),
    ("r1_t1.nii", "second copies of masks ['r1_t1'] in another format"),
    ("R1_T1.nii.gz", "differ only in upper/lower case"),
])
def test_fusion_refuses_copies_and_misnamed_reader_files(raw, capsys, copy, why):
    folder = raw / "Dataset101_Src" / "readers" / "a"
    (folder / copy).write_bytes((folder / "r1_t1.nii.gz").read_bytes())
    refused(fuse_readers.main, ["101", "-d", "102"], capsys, copy, why)
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset101_Src"]


@pytest.mark.parametrize("argv, fragment", [
    (["-k", "1"], "-k"), (["-k", "0"], "-k"), (["-k", "256"], "-k"), (["-d", "0"], "-d"), (["-d", "1000"], "-d"),
    (["-np", "0"], "-np"), (["-d", "x"], "-d"),
])
def test_fusion_arguments_are_checked_before_any_work(raw, capsys, argv, fragment):
    argparse_refuses(fuse_readers.main, ["101", *(["-d", "102"] if "-d" not in argv else []), *argv], capsys,
                     fragment)


def test_fusion_warns_about_levels_no_case_can_reach(raw, capsys):
    assert fuse_readers.main(["101", "-d", "102", "-k", "5"]) == 0
    captured = capsys.readouterr()
    assert "radconf: warning: -k 5: the cases have at most 3 masks, so levels 1, 4 never occur" in captured.err


def test_fusion_never_writes_around_its_inputs(raw, capsys):
    assert fuse_readers.main(["101", "-d", "102"]) == 0
    output = raw / "Dataset102_SrcConfidence"
    readers = output / "kept_readers"
    os.rename(raw / "Dataset101_Src" / "readers", readers)
    before = tree(raw)
    refused(fuse_readers.main, ["101", "-d", "102", "--readers", str(readers), "--overwrite"], capsys,
            f"{output} contains the --readers folder", "Pick another")
    assert tree(raw) == before
    link = raw / "Dataset104_Link"
    link.symlink_to(raw / "Dataset101_Src")
    refused(fuse_readers.main, [str(raw / "Dataset101_Src"), "-d", "104", "-n", "Link", "--readers", str(readers)],
            capsys, "Dataset104_Link is the source dataset")
    assert tree(raw) == before


def test_fusion_refuses_an_id_nnunet_knows_under_another_name(raw, nnunet_dirs, capsys):
    (nnunet_dirs["nnUNet_preprocessed"] / "Dataset102_Other").mkdir()
    refused(fuse_readers.main, ["101", "-d", "102"], capsys, "Dataset id 102 is already used by",
            "Dataset102_Other", "-d 103")
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset101_Src"]


# ------------------------------------------------------------------------------------ the raw-dataset check
@pytest.mark.parametrize("where", ["imagesTs/t_0000.nii.gz", "labelsTs/t.nii.gz", "imagesTr/a_0000.nii.gz",
                                   "labelsTr/b.nii.gz"])
def test_raw_check_names_truncated_images_and_labels(raw, where):
    source = raw / "Dataset101_Src"
    truncate(source / where)
    with pytest.raises(ValueError, match=rf"{where.split('/')[1]} is truncated.*copy it again"):
        check_raw_dataset(source)


def test_raw_check_messages_say_what_is_wrong(raw):
    source = raw / "Dataset101_Src"
    image = np.zeros(SHAPE, np.float32)
    image[1, 1, 1] = np.inf
    write(source / "imagesTr" / "a_0000.nii.gz", image)
    sitk.WriteImage(sitk.JoinSeries([sitk.GetImageFromArray(np.zeros(SHAPE, np.int16))] * 2),
                    str(source / "imagesTs" / "t_0000.nii.gz"))
    label = block().astype(np.float32)
    label[0, 0, 0] = 3.5
    write(source / "labelsTr" / "b.nii.gz", label)
    with pytest.raises(ValueError) as error:
        check_raw_dataset(source)
    message = str(error.value)
    assert "a_0000.nii.gz: 1 of 512 voxels" in message and "NaN or infinite" in message
    assert "t_0000.nii.gz is a 4D image" in message and "as one 2D or 3D file" in message
    assert "resample the label" not in message
    assert "b.nii.gz is not an integer label image: it holds non-integer label values (3.5)" in message
    assert "label values [3]" not in message


def test_raw_check_names_missing_and_misnamed_files(raw):
    source = raw / "Dataset101_Src"
    (source / "labelsTr" / "b.nii.gz").unlink()
    (source / "imagesTr" / "a_0000 (1).nii.gz").write_bytes((source / "imagesTr" / "a_0000.nii.gz").read_bytes())
    sitk.WriteImage(sitk.ReadImage(str(source / "labelsTs" / "t.nii.gz")), str(source / "labelsTs" / "t.nii"))
    (source / "labelsTs" / "t.nii.gz").unlink()
    for copy, original in (("imagesTr/c_0000.nii.gz", "imagesTr/a_0000.nii.gz"),
                           ("labelsTr/c.nii.gz", "labelsTr/a.nii.gz")):
        (source / copy).write_bytes((source / original).read_bytes())  # case "c" is case "a" again
    with pytest.raises(ValueError) as error:
        check_raw_dataset(source)
    message = str(error.value)
    assert f"{source / 'labelsTr' / 'b.nii.gz'} is missing" in message and "set numTraining" not in message
    assert "a_0000 (1).nii.gz" in message and "CASE_XXXX.nii.gz" in message
    assert "t.nii" in message and "file_ending .nii.gz" in message
    assert f"case c: {source / 'imagesTr' / 'c_0000.nii.gz'} is a byte copy of " in message and "(case a)" in message


def test_raw_check_refuses_an_empty_imagesTr(raw):
    source = raw / "Dataset101_Src"
    for path in (source / "imagesTr").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=r"imagesTr holds no images named CASE_0000\.nii\.gz"):
        check_raw_dataset(source)


# --------------------------------------------------------------------------------- radconf_plan_and_preprocess
def test_plan_and_preprocess_names_an_invalid_dataset_json(raw, capsys):
    path = raw / "Dataset101_Src" / "dataset.json"
    path.write_text(path.read_text() + "\n}\n")
    refused(plan_and_preprocess.main, ["-d", "101"], capsys, f"{path} is not valid JSON", "line 12",
            "after the closing brace")


def test_plan_and_preprocess_checks_configurations_and_numbers_before_planning(raw, nnunet_dirs, capsys):
    refused(plan_and_preprocess.main, ["-d", "101", "-c", "4d_fancy"], capsys, "4d_fancy",
            "2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres")
    argparse_refuses(plan_and_preprocess.main, ["-d", "101", "-np", "0"], capsys, "-np")
    argparse_refuses(plan_and_preprocess.main, ["-d", "101", "-gpu_memory_target", "0"], capsys,
                     "-gpu_memory_target")
    assert not any(nnunet_dirs["nnUNet_preprocessed"].iterdir())


# ------------------------------------------------------------------------------------ radconf_anatomy_dataset
def make_organs(raw: Path) -> Path:
    organs = raw / "Dataset106_Organs"
    for case, split in CASES.items():
        write(organs / f"labels{split}" / f"{case}.nii.gz", block(1))
    (organs / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "bladder": 1}, "numTraining": 2,
        "file_ending": ".nii.gz"}))
    return organs


def test_anatomy_dataset_checks_every_file(raw, capsys):
    source, organs = raw / "Dataset101_Src", make_organs(raw)
    argv = ["101", "-d", "105", "--anatomy", "bladder", "--anatomy_dataset", "106"]
    truncate(organs / "labelsTs" / "t.nii.gz")
    refused(anatomy_dataset.main, argv, capsys, f"{organs / 'labelsTs' / 't.nii.gz'} is truncated")
    write(organs / "labelsTs" / "t.nii.gz", block())
    image = np.zeros(SHAPE, np.float32)
    image[0, 0, 0] = np.nan
    write(source / "imagesTs" / "t_0000.nii.gz", image)
    refused(anatomy_dataset.main, argv, capsys, "t_0000.nii.gz: 1 of 512 voxels")
    argparse_refuses(anatomy_dataset.main, ["101", "-d", "0", "--anatomy", "gtv"], capsys, "-d")
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset101_Src", "Dataset106_Organs"]


def test_anatomy_dataset_never_writes_around_its_inputs(raw, capsys):
    organs = make_organs(raw)
    assert anatomy_dataset.main(["101", "-d", "105", "--anatomy", "bladder", "--anatomy_dataset", "106"]) == 0
    output = raw / "Dataset105_SrcAnatomy"
    os.rename(organs, output / "organs")
    before = tree(raw)
    refused(anatomy_dataset.main, ["101", "-d", "105", "--anatomy", "bladder", "--anatomy_dataset",
                                   str(output / "organs"), "--overwrite"], capsys,
            f"{output} contains the --anatomy_dataset", "Pick another")
    assert tree(raw) == before


# ------------------------------------------------------------------------------------ radconf_generate_phantom
@pytest.mark.parametrize("argv, fragment", [
    (["--spacing", "0", "1", "1"], "--spacing"), (["--spacing", "-2", "2", "2"], "--spacing"),
    (["--num_train", "0"], "--num_train"), (["--num-test", "-1"], "--num_test"), (["--readers", "0"], "--readers"),
    (["--trials", "0"], "--trials"), (["-d", "0"], "-d"), (["-d", "1000"], "-d"), (["--seed", "-1"], "--seed"),
    (["--ctv_dataset", "1000"], "--ctv_dataset"),
])
def test_generate_phantom_checks_arguments_before_any_work(tmp_path, capsys, argv, fragment):
    argparse_refuses(generate_phantom.main, ["-o", str(tmp_path / "raw"), *argv], capsys, fragment)
    assert not (tmp_path / "raw").exists()


def test_generate_phantom_refuses_impossible_outputs_before_any_work(tmp_path, capsys):
    raw = tmp_path / "raw"
    refused(generate_phantom.main, ["-o", str(raw), "--spacing", "200", "4", "4"], capsys, "--spacing 200 4 4",
            "120 x 150 x 170 mm")
    refused(generate_phantom.main, ["-o", str(raw), "-d", "7", "--ctv_dataset", "7"], capsys, "--ctv_dataset 7",
            "-d")
    assert not raw.exists()
    raw.write_text("not a folder")
    refused(generate_phantom.main, ["-o", str(raw)], capsys, f"-o {raw} is a file")
    dataset = tmp_path / "Dataset101_Src"
    make_source(tmp_path)
    refused(generate_phantom.main, ["-o", str(dataset / "imagesTr")], capsys, "lies inside the dataset",
            str(dataset))
    assert not list(tmp_path.rglob("*.partial")) and not list(tmp_path.rglob("Dataset501*"))


def test_help_shows_the_defaults():
    assert "(default: 5)" in fuse_readers.build_parser().format_help()  # -k
    assert "(default: 2)" in plan_and_preprocess.build_parser().format_help()  # -np
    assert "(default: binary)" in anatomy_dataset.build_parser().format_help()  # --encoding


def test_generate_phantom_flags_in_nnunet_style_with_the_old_spellings(tmp_path):
    parser = generate_phantom.build_parser()
    new = parser.parse_args(["--num_train", "3", "--num_test", "1", "--femoral_heads", "--ctv_dataset", "503"])
    old = parser.parse_args(["--num-train", "3", "--num-test", "1", "--femoral-heads", "--ctv-dataset", "503"])
    assert new == old and (new.num_train, new.num_test, new.femoral_heads, new.ctv_dataset) == (3, 1, True, 503)
    assert "(default: 16)" in parser.format_help()
