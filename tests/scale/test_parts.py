"""radconf_predict -num_parts N -part_id I: nnU-Net's split (every case in exactly one part), every mode's parts
written into one folder without touching each other's files (single model, ensemble, uncertainty samples,
localise-crop-segment, DICOM series), merged parts equal to the whole-folder run, radconf_evaluate over the merged
folder, and the refusals."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.errors import InvalidInput
from radconf.scale.parts import Part

CASES = ("phantom_000", "phantom_001", "phantom_005")
COMMON = ["-device", "cpu", "--disable_tta", "-np", "1"]
SHARED = {"radconf_model.json", "ensemble.json", "dataset.json", "plans.json", "uncertainty.json"}


def test_every_case_is_in_exactly_one_part():
    rng = random.Random(3)
    for _ in range(20):
        cases = [f"case_{rng.randrange(10_000):05d}" for _ in range(rng.randrange(0, 40))]
        cases = list(dict.fromkeys(cases))
        shuffled = rng.sample(cases, len(cases))
        for n in range(1, 7):
            parts = [Part(n, i).select(shuffled) for i in range(n)]
            flat = [case for part in parts for case in part]
            assert sorted(flat) == sorted(cases) and len(flat) == len(set(flat))
            assert all(abs(len(a) - len(b)) <= 1 for a in parts for b in parts)  # balanced
            assert parts[0] == sorted(cases)[::n]  # nnU-Net's rule, whatever the listing order
    assert Part(4, 1).file_name("timing.json") == "timing.part_1_of_4.json"
    assert Part(4, 1).file_name("uncertainty_summary.csv") == "uncertainty_summary.part_1_of_4.csv"
    assert Part().file_name("timing.json") == "timing.json" and Part().whole


@pytest.mark.parametrize("num_parts, part_id, message", [
    (2, 2, r"-part_id 2 must be in 0..1 for -num_parts 2"), (3, -1, r"-part_id -1 must be in 0..2"),
    (0, 0, r"-num_parts 0 must be 1 or more"), (2.0, 0, "whole number"), (True, 0, "whole number")])
def test_refused_parts(num_parts, part_id, message):
    with pytest.raises(InvalidInput, match=message):
        Part(num_parts, part_id)


def _inputs(organ_model, tmp_path: Path) -> tuple[Path, Path]:
    """Three phantom cases (images and reference labels, linked)."""
    phantom = organ_model.phantom.folder
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for case in CASES:
        split = "Ts" if case == "phantom_005" else "Tr"
        os.symlink(phantom / f"images{split}" / f"{case}_0000.nii.gz", images / f"{case}_0000.nii.gz")
        os.symlink(phantom / f"labels{split}" / f"{case}.nii.gz", labels / f"{case}.nii.gz")
    return images, labels


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def _run_parts(images: Path, output: Path, arguments: list[str], capsys, num_parts: int = 2) -> list[dict[str, int]]:
    """Each part in turn into ``output``; returns the files each added. Fails if a part rewrote a file of an earlier
    part other than the run records every part writes alike (``SHARED``)."""
    from radconf.cli import predict

    added, before = [], {}
    for part_id in range(num_parts):
        assert predict.main(["-i", str(images), "-o", str(output), *arguments, *COMMON, "-num_parts", str(num_parts),
                             "-part_id", str(part_id)]) == 0
        assert f"(part {part_id} of {num_parts}, counting from 0)" in capsys.readouterr().out
        now = _files(output)
        rewritten = {Path(name).name for name in before if now[name] != before[name]}
        assert rewritten <= SHARED, rewritten  # only the records every part writes alike
        added.append({name: mtime for name, mtime in now.items() if name not in before})
        before = now
    return added


def _case_files(added: dict[str, int], ending: str = ".nii.gz") -> set[str]:
    return {name for name in added if name.endswith(ending) and "/" not in name}


def test_single_model_parts_equal_the_whole_run(organ_model, tmp_path, capsys):
    from radconf.cli import predict
    from radconf.evaluation import evaluate_folders

    images, labels = _inputs(organ_model, tmp_path)
    added = _run_parts(images, tmp_path / "parts", ["-m", organ_model.spec], capsys)
    assert _case_files(added[0]) == {"phantom_000.nii.gz", "phantom_005.nii.gz"}  # sorted()[0::2]
    assert _case_files(added[1]) == {"phantom_001.nii.gz"}
    for part_id, cases in ((0, ["phantom_000", "phantom_005"]), (1, ["phantom_001"])):
        timing = json.loads((tmp_path / "parts" / f"timing.part_{part_id}_of_2.json").read_text())
        assert [c["case"] for c in timing["cases"]] == cases
    assert not (tmp_path / "parts" / "timing.json").exists()
    for part_id in range(2):  # nnU-Net's record of each part, naming the user's files, not the part's links
        record = (tmp_path / "parts" / f"predict_from_raw_data_args.part_{part_id}_of_2.json").read_text()
        assert "phantom_00" in record and "radconf_part_" not in record
    assert not (tmp_path / "parts" / "predict_from_raw_data_args.json").exists()
    assert sorted(p.name for p in images.iterdir()) == [f"{c}_0000.nii.gz" for c in CASES]  # input untouched

    before = _files(tmp_path / "parts")
    assert predict.main(["-i", str(images), "-o", str(tmp_path / "parts"), "-m", organ_model.spec, *COMMON,
                         "-num_parts", "2", "-part_id", "0", "--continue_prediction"]) == 0  # a rerun of part 0
    assert "2 already there were kept" in capsys.readouterr().out
    assert all(_files(tmp_path / "parts")[f"{case}.nii.gz"] == before[f"{case}.nii.gz"] for case in CASES)
    assert predict.main(["-i", str(images), "-o", str(tmp_path / "whole"), "-m", organ_model.spec, *COMMON]) == 0
    for case in CASES:
        merged = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "parts" / f"{case}.nii.gz")))
        whole = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "whole" / f"{case}.nii.gz")))
        assert np.array_equal(merged, whole), case
    result = evaluate_folders(reference_dir=labels, prediction_dir=tmp_path / "parts", output_dir=tmp_path / "eval",
                              progress=False, plots=False)
    assert sorted({row["case"] for row in result.rows}) == list(CASES)

    with pytest.warns(UserWarning, match=r"part 4 of 5 has no case \(3 case\(s\) in"):
        assert predict.main(["-i", str(images), "-o", str(tmp_path / "again"), "-m", organ_model.spec, *COMMON,
                             "-num_parts", "5", "-part_id", "4"]) == 0  # more parts than cases: nothing to do
    assert "predicted 0 case(s)" in capsys.readouterr().out


def test_ensemble_samples_and_localised_parts(organ_model, tmp_path, capsys):
    images, _ = _inputs(organ_model, tmp_path)
    spec = organ_model.spec
    modes = {"ensemble": (["-m", spec, spec, "--save_disagreement"], ["ensemble.json"]),
             "samples": (["-m", spec, "--uncertainty", "tta", "--tta_axes", "0"], []),
             "localized": (["-m", spec, "--localizer", spec, "--localizer_labels", "gtv", "--crop_margin", "8"], [])}
    for mode, (arguments, shared) in modes.items():
        output = tmp_path / mode
        added = _run_parts(images, output, arguments, capsys)
        cases = [sorted(c[:-len(".nii.gz")] for c in _case_files(a)) for a in added]
        assert cases == [["phantom_000", "phantom_005"], ["phantom_001"]], mode
        for part_id in range(2):
            assert f"timing.part_{part_id}_of_2.json" in added[part_id], mode
        for name in shared:
            assert (output / name).is_file()
    for part_id, cases in ((0, 2), (1, 1)):
        summary = (tmp_path / "samples" / f"uncertainty_summary.part_{part_id}_of_2.csv").read_text().splitlines()
        assert len({line.split(",")[0] for line in summary[1:]}) == cases
        boxes = json.loads((tmp_path / "localized" / f"crop_boxes.part_{part_id}_of_2.json").read_text())
        assert len(boxes["cases"]) == cases
        assert (tmp_path / "localized" / f"localizer_timing.part_{part_id}_of_2.json").is_file()
    assert {p.name for p in (tmp_path / "ensemble" / "disagreement").iterdir()} == {
        f"{c}.nii.gz" for c in CASES}


def test_dicom_series_parts(organ_model, tmp_path, capsys):
    from radconf.dicom.geometry import SeriesGeometry
    from radconf.dicom.identity import PatientStudy
    from radconf.dicom.tps_export import write_tps_export

    images, _ = _inputs(organ_model, tmp_path)
    dicom = tmp_path / "ct_export"
    for i, case in enumerate(CASES[:2]):
        image = sitk.ReadImage(str(images / f"{case}_0000.nii.gz"))
        write_tps_export(dicom / f"patient{i}", sitk.GetArrayFromImage(image).astype(np.int16),
                         SeriesGeometry.from_image(image), PatientStudy(f"PID{i}", f"Doe^{i}", f"1.2.3.{i}"), [])
    output = tmp_path / "to_tps"
    added = _run_parts(dicom, output, ["-m", organ_model.spec, "--output_format", "rtstruct", "nifti"], capsys)
    written = [sorted(name.split("/")[0] for name in a if name.endswith("_RTSTRUCT.dcm")) for a in added]
    assert len(written[0]) == len(written[1]) == 1 and written[0] != written[1]
    assert len(list((output / "nifti").glob("CASE_*.nii.gz"))) == 2
    tables = [(output / f"cases.part_{i}_of_2.csv").read_text() for i in range(2)]
    assert all(table.count("\n") == 2 for table in tables) and not (output / "cases.csv").exists()
    assert all((output / f"export_report.part_{i}_of_2.csv").is_file() for i in range(2))


def test_bad_parts_are_refused_before_any_work(organ_model, tmp_path, capsys):
    from radconf.api import ModelSpec, RunOptions, predict
    from radconf.cli import predict as predict_cli

    images, _ = _inputs(organ_model, tmp_path)
    output = tmp_path / "out"
    for extra, message in ((["-num_parts", "2", "-part_id", "2"], "-part_id 2 must be in 0..1"),
                           (["-num_parts", "0"], "-num_parts"), (["-part_id", "-1"], "-part_id")):
        try:
            code = predict_cli.main(["-i", str(images), "-o", str(output), "-m", organ_model.spec, *COMMON, *extra])
        except SystemExit as exit:  # argparse's refusal of the value
            code = exit.code
        err = capsys.readouterr().err
        assert code == 2
        assert message in err and err.count("error:") == 1 and "Traceback" not in err
    assert not output.exists()
    (images / "phantom_001_0001.nii.gz").symlink_to(images / "phantom_001_0000.nii.gz")  # an extra channel
    with pytest.raises(InvalidInput, match=f"case phantom_001 in {images} has channels"):  # the user's folder named
        predict(images, output, [ModelSpec.parse(organ_model.spec)], run=RunOptions(device="cpu", num_processes=1),
                part=Part(2, 1))
    with pytest.raises(InvalidInput, match="radconf never writes"):
        predict(images, images / "out", [ModelSpec.parse(organ_model.spec)], part=Part(2, 0))
    assert not output.exists()
