"""Cross-command checks on one real tree (the tiny phantom, its preprocessed data and a trained organ model):

* every command that writes refuses an output on or around one of its inputs;
* every command that reads images, labels, probability archives, checkpoints or tables refuses a truncated one,
  naming it;

each with exit 2, one ``radconf: error:`` line, no traceback, and the whole tree byte for byte as it was. The tree is
shared by the module's tests: a refusal may not change it, which each test checks. The area modules next to this one
test each command's refusals in detail.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ORGAN_TRAINER, PLANS, copy_store, in_process_nnunet
from tests.reliability.test_arguments_fuzz import COMMANDS
from tests.reliability.test_prediction_reliability import _member

MODEL = ["-d", "990", "-c", "3d_fullres", "-tr", ORGAN_TRAINER, "-p", PLANS, "-f", "all", "-device", "cpu"]
RAW = "nnUNet_raw/Dataset990_Phantom"
FOLD = f"nnUNet_results/Dataset990_Phantom/{ORGAN_TRAINER}__{PLANS}__3d_fullres/fold_all"
CSV = "case,structure,dice\nphantom_005,bladder,0.8\nphantom_005,rectum,0.7\n"
PP = "tables/postprocessing.json"  # a post-processing of label 1 (radconf_apply_postprocessing -pp)

# command -> argv whose output is on or around an input (paths relative to the tree)
OUTPUT_OVER_INPUT = {
    "radconf_predict": ["-i", f"{RAW}/imagesTs", "-o", f"{RAW}/imagesTs", *MODEL],
    "radconf_ensemble": ["-i", "members/a", "members/b", "-o", "members/a"],
    "radconf_find_ensemble_weights": ["--folders", "members/a", "members/b", "--reference", "members/reference",
                                      "-o", "members"],
    "radconf_evaluate": ["-ref", f"{RAW}/labelsTs", "-pred", "predictions", "-o", "predictions/evaluation"],
    "radconf_compare": ["tables/comparison.csv", "tables/other.csv", "-o", "tables"],
    "radconf_fuse_readers": [RAW, "-d", "980", "--readers", "nnUNet_raw"],  # the readers folder holds the output
    "radconf_anatomy_dataset": [RAW, "-d", "990", "-n", "Phantom", "--anatomy", "bladder", "--overwrite"],
    "radconf_generate_phantom": ["-o", f"{RAW}/imagesTr", "-d", "982"],
    "radconf_demo": ["--out", RAW, "--fast"],
    "radconf_train": ["990", "3d_fullres", "all", "-tr", ORGAN_TRAINER, "-p", PLANS, "-device", "cpu"],
    "radconf_import_dicom": ["nnUNet_raw", "-d", "983", "-n", "Inside"],  # the new dataset lies inside the input
    "radconf_export_dicom": ["-i", "predictions", "--dicom", "dicom", "-o", "dicom/exported"],
    "radconf_merge_labels": ["-d", "990", "-o", "Dataset990_Phantom", "--rename", "gtv=GTV"],  # onto the source
    "radconf_crop_dataset": ["-d", "990", "-o", "Dataset990_Phantom", "--around", "bladder", "--margin", "5"],
    "radconf_determine_postprocessing": ["-i", "predictions", "-ref", f"{RAW}/labelsTs", "-o", "predictions/pp"],
    "radconf_apply_postprocessing": ["-i", "predictions", "-o", "predictions", "-pp", PP],
    "radconf_margin": ["-i", "predictions", "-o", "predictions/ctv", "--label", "gtv", "--margin", "5"],
    "radconf_calibrate": [*MODEL[:8], "-f", "all", "--folders", "calibration", "-ref", f"{RAW}/labelsTs", "-o",
                          "calibration/temperature.json"],
}
# commands without a user-given output: plan_and_preprocess writes nnU-Net's preprocessed folder of its dataset
# partial_labels records its table in nnU-Net's preprocessed folder of its dataset
NO_OUTPUT_FOLDER = {"radconf_plan_and_preprocess", "radconf_partial_labels"}

# command -> (file to truncate, argv)
TRUNCATED = {
    "radconf_predict": (f"{RAW}/imagesTs/phantom_005_0000.nii.gz", ["-i", f"{RAW}/imagesTs", "-o", "out", *MODEL]),
    "radconf_evaluate": ("predictions/phantom_005.nii.gz", ["-ref", f"{RAW}/labelsTs", "-pred", "predictions",
                                                            "-o", "out"]),
    "radconf_fuse_readers": (f"{RAW}/readers/phantom_002/reader1_trial2.nii.gz", [RAW, "-d", "980"]),
    "radconf_anatomy_dataset": (f"{RAW}/labelsTr/phantom_001.nii.gz", [RAW, "-d", "981", "--anatomy", "bladder"]),
    "radconf_plan_and_preprocess": (f"{RAW}/imagesTr/phantom_003_0000.nii.gz", ["-d", "990", "--preset", "cpu",
                                                                                "-np", "1"]),
    "radconf_ensemble": ("members/b/x.npz", ["-i", "members/a", "members/b", "-o", "out"]),
    "radconf_find_ensemble_weights": ("members/a/x.npz", ["--folders", "members/a", "members/b", "--reference",
                                                          "members/reference", "-o", "out"]),
    "radconf_compare": ("tables/other.csv", ["tables/comparison.csv", "tables/other.csv", "-o", "out"]),
    "radconf_train": (f"{FOLD}/checkpoint_final.pth", ["990", "3d_fullres", "all", "-tr", ORGAN_TRAINER, "-p", PLANS,
                                                       "-device", "cpu", "--c"]),
    "radconf_import_dicom": ("dicom/CT/CT_0001.dcm", ["dicom", "-d", "983", "-n", "Truncated"]),
    "radconf_export_dicom": ("predictions/phantom_005.nii.gz", ["-i", "predictions", "--dicom", "dicom", "-o", "out",
                                                                "--dataset_json", f"{RAW}/dataset.json"]),
    "radconf_partial_labels": (f"{RAW}/labelsTr/phantom_001.nii.gz", ["-d", "990", "--missing", "tables/missing.csv"]),
    "radconf_merge_labels": (f"{RAW}/labelsTr/phantom_001.nii.gz", ["-d", "990", "-o", "984", "--rename", "gtv=GTV"]),
    "radconf_crop_dataset": (f"{RAW}/labelsTr/phantom_001.nii.gz", ["-d", "990", "-o", "985", "--around", "bladder",
                                                                     "--margin", "5"]),
    "radconf_determine_postprocessing": ("predictions/phantom_005.nii.gz", ["-i", "predictions", "-ref",
                                                                            f"{RAW}/labelsTs", "-o", "out"]),
    "radconf_apply_postprocessing": ("predictions/phantom_005.nii.gz", ["-i", "predictions", "-o", "out", "-pp", PP]),
    "radconf_margin": (f"{RAW}/labelsTs/phantom_005.nii.gz", ["-i", "predictions", "-o", "out", "--label", "4",
                                                             "--margin", "5", "--barriers", f"{RAW}/labelsTs",
                                                             "--barrier_labels", "bladder"]),
}
TRUNCATED["radconf_calibrate"] = ("calibration/phantom_005.npz", [*MODEL[:8], "-f", "all", "--folders", "calibration",
                                                                  "-ref", f"{RAW}/labelsTs", "-o", "out.json"])
# the checkpoint at prediction, beside the image case above
TRUNCATED_CHECKPOINT_AT_PREDICTION = (f"{FOLD}/checkpoint_final.pth", ["-i", f"{RAW}/imagesTs", "-o", "out", *MODEL])
# commands that read no user file: the phantom and the demo make their own data
READS_NO_FILE = {"radconf_generate_phantom", "radconf_demo"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory, organ_store):
    """The organ store's folders plus prediction members, a perfect prediction and two metric tables."""
    root = tmp_path_factory.mktemp("cross_command")
    dirs = {name: root / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for path in dirs.values():
        path.mkdir()
    copy_store(organ_store, dirs)
    for name in ("a", "b"):
        _member(root / "members" / name)
    reference = root / "members" / "reference"
    reference.mkdir()
    shutil.copy(root / "members" / "a" / "x.nii.gz", reference / "x.nii.gz")
    shutil.copytree(root / RAW / "labelsTs", root / "predictions")
    (root / "tables").mkdir()
    (root / "tables" / "comparison.csv").write_text(CSV)
    (root / "tables" / "other.csv").write_text(CSV.replace("0.8", "0.75"))
    (root / "tables" / "missing.csv").write_text("case,missing\nphantom_001,gtv\n")
    (root / PP).write_text(json.dumps({"format": "radconf_postprocessing", "version": 1, "kind": "labels",
                                       "structures": [{"name": "bladder", "labels": [1],
                                                       "steps": [{"op": "largest_component"}]}]}))
    _tps_export(root / RAW / "labelsTs" / "phantom_005.nii.gz", root / "dicom")
    _calibration_folder(root / RAW / "labelsTs", root / "calibration")
    return root


def _calibration_folder(labels: Path, folder: Path) -> None:
    """Validation probabilities of the held-out cases (a separate validation split for radconf_calibrate): the
    reference one-hot, softened."""
    import SimpleITK as sitk

    folder.mkdir()
    for path in sorted(labels.glob("*.nii.gz")):
        label = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        classes = int(json.loads((labels.parent / "dataset.json").read_text())["labels"].__len__())
        p = np.full((classes, *label.shape), 0.1 / (classes - 1), np.float32)
        for c in range(classes):
            p[c][label == c] = 0.9
        np.savez_compressed(folder / path.name.replace(".nii.gz", ".npz"), probabilities=p)
        shutil.copy(path, folder / path.name)
    shutil.copy(labels.parent / "dataset.json", folder / "dataset.json")
    plans = next((labels.parents[2] / "nnUNet_preprocessed" / labels.parent.name).glob("*Plans.json"))
    shutil.copy(plans, folder / "plans.json")


def _tps_export(label_path: Path, folder: Path) -> None:
    """A CT series on the grid of a held-out case, with one structure set: what radconf_import_dicom reads and
    radconf_export_dicom writes onto."""
    import SimpleITK as sitk
    from radconf.dicom.geometry import SeriesGeometry
    from radconf.dicom.identity import PatientStudy
    from radconf.dicom.tps_export import StructureSetContent, write_tps_export

    image = sitk.ReadImage(str(label_path))
    labels = sitk.GetArrayFromImage(image)
    write_tps_export(folder, np.zeros(labels.shape, np.int16), SeriesGeometry.from_image(image),
                     PatientStudy("P", "N^M", "1.2.3"), [StructureSetContent("clinical", {"Bladder": labels == 1})])


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def _run(tree: Path, command: str, argv: list[str], monkeypatch, capsys) -> str:
    """Runs the command in the tree; returns its one error message (a line, or a line and the problems it lists)
    after checking exit 2 and no traceback."""
    monkeypatch.chdir(tree)
    with in_process_nnunet(monkeypatch, {n: tree / n for n in ("nnUNet_raw", "nnUNet_preprocessed",
                                                                 "nnUNet_results")}):
        try:
            code = importlib.import_module(COMMANDS[command]).main(argv)
        except SystemExit as stopped:
            code = stopped.code
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "Traceback" not in err
    lines = err.splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("radconf: error:")]
    assert len(errors) == 1, err[-2000:]
    return "\n".join(lines[errors[0]:])


def test_every_command_is_in_the_tables():
    assert set(COMMANDS) == set(OUTPUT_OVER_INPUT) | NO_OUTPUT_FOLDER
    assert set(COMMANDS) == set(TRUNCATED) | READS_NO_FILE


@pytest.mark.parametrize("command", sorted(OUTPUT_OVER_INPUT))
def test_no_command_writes_on_or_around_its_inputs(tree, command, monkeypatch, capsys):
    before = _snapshot(tree)
    line = _run(tree, command, OUTPUT_OVER_INPUT[command], monkeypatch, capsys)
    assert any(words in line for words in ("never writes", "would replace", "would overwrite", "no radconf demo wrote",
                                            "already holds checkpoint", "lies inside the dataset")), line
    assert _snapshot(tree) == before


def _truncate(path: Path) -> bytes:
    """Cuts ``path`` short the way a partial copy does and returns its original bytes."""
    data = path.read_bytes()
    if path.name.endswith(".nii.gz"):  # the decompressed file cut short, compressed again: a valid gzip stream
        path.write_bytes(gzip.compress(gzip.decompress(data)[:-200]))
    elif path.suffix == ".csv":
        path.write_bytes(data[:-6])  # the last row cut inside a cell, no line break
    else:
        path.write_bytes(data[: len(data) // 2])
    return data


@pytest.mark.parametrize("case", [*sorted(TRUNCATED), "radconf_predict (checkpoint)"])
def test_every_command_names_a_truncated_file(tree, case, monkeypatch, capsys):
    command = case.split()[0]
    relative, argv = TRUNCATED_CHECKPOINT_AT_PREDICTION if "checkpoint" in case else TRUNCATED[command]
    path = tree / relative
    original = _truncate(path)
    try:
        before = _snapshot(tree)
        line = _run(tree, command, argv, monkeypatch, capsys)
        assert path.name in line and any(w in line for w in ("truncated", "corrupt", "cut", "ends early")), line
        assert _snapshot(tree) == before and not (tree / "out").exists()
    finally:
        path.write_bytes(original)


def test_the_tree_is_whole_again(tree):
    """The module's truncations were undone: the shared tree still holds a loadable npz and a readable CSV."""
    assert json.loads((tree / "members" / "a" / "dataset.json").read_text())["file_ending"] == ".nii.gz"
    assert np.load(tree / "members" / "b" / "x.npz")["probabilities"].ndim == 4
    assert (tree / "tables" / "other.csv").read_text().endswith("\n")
