"""radconf_predict --uncertainty end to end on a tiny dropout model (two folds), in-process."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.cli import predict
from tests.conftest import DROPOUT_MODEL, ORGAN_MODEL

DROPOUT = ["-d", "990", "-tr", "DropoutTrainerNoDA", "-p", "radconfCPUPlans", "-c", "3d_fullres", "-device", "cpu",
           "-np", "1"]


def _run(argv: list[str], capsys=None) -> tuple[int, str]:
    code = predict.main(argv)
    text = capsys.readouterr().err if capsys is not None else ""
    return code, text


def _npz(folder, case):
    return np.load(folder / f"{case}.npz")["probabilities"]


@pytest.fixture
def images(dropout_model):
    return dropout_model.folder / "imagesTs"


def _case(images) -> str:
    return sorted(images.glob("*_0000.nii.gz"))[0].name[:-len("_0000.nii.gz")]


def test_mc_dropout_samples_repeat_and_write_every_output(dropout_model, images, tmp_path):
    out = tmp_path / "mc"
    code, _ = _run(["-i", str(images), "-o", str(out), *DROPOUT, "-f", "0", "--uncertainty", "mc_dropout",
                    "--mc_samples", "4", "--seed", "7", "--save_probabilities"])
    assert code == 0
    case = _case(images)
    record = json.loads((out / "uncertainty.json").read_text())
    assert record["source"] == "mc_dropout" and record["sample_seeds"] == [7, 8, 9, 10]
    case_json = json.loads((out / "uncertainty" / f"{case}.json").read_text())
    assert case_json["samples"] == 4 and {r["structure"] for r in case_json["structures"]} >= {"bladder", "gtv"}
    segmentation = sitk.ReadImage(str(out / f"{case}.nii.gz"))
    for name in ("entropy", "expected_entropy", "mutual_information", "bladder_variance", "bladder_inner95",
                 "bladder_outer95", "bladder_frequency"):
        image = sitk.ReadImage(str(out / "uncertainty" / f"{case}_{name}.nii.gz"))
        assert image.GetSize() == segmentation.GetSize() and image.GetOrigin() == segmentation.GetOrigin()
    variance = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "uncertainty" / f"{case}_bladder_variance.nii.gz")))
    assert variance.max() > 0  # dropout was on through nnU-Net's eval() calls: the samples differ
    inner = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "uncertainty" / f"{case}_bladder_inner95.nii.gz")))
    outer = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "uncertainty" / f"{case}_bladder_outer95.nii.gz")))
    assert np.all(inner <= outer)
    summary = (out / "uncertainty_summary.csv").read_text().splitlines()
    qualities = [float(line.split(",")[2]) for line in summary[1:]]
    assert qualities == sorted(qualities) and (out / "uncertainty_summary.png").is_file()
    # the same seed repeats the samples exactly; the mean is a valid distribution
    again = tmp_path / "again"
    assert _run(["-i", str(images), "-o", str(again), *DROPOUT, "-f", "0", "--uncertainty", "mc_dropout",
                 "--mc_samples", "4", "--seed", "7", "--save_probabilities"])[0] == 0
    np.testing.assert_array_equal(_npz(out, case), _npz(again, case))
    np.testing.assert_allclose(_npz(out, case).sum(0), 1.0, atol=1e-5)


def test_tta_and_folds_sample_counts(dropout_model, images, tmp_path):
    case = _case(images)
    tta = tmp_path / "tta"
    assert _run(["-i", str(images), "-o", str(tta), *DROPOUT, "-f", "0", "--uncertainty", "tta", "--tta_axes", "0",
                 "1", "2", "--no_uncertainty_maps"])[0] == 0
    assert json.loads((tta / "uncertainty" / f"{case}.json").read_text())["samples"] == 8
    assert not (tta / "uncertainty" / f"{case}_entropy.nii.gz").exists()
    folds = tmp_path / "folds"
    assert _run(["-i", str(images), "-o", str(folds), *DROPOUT, "-f", "0", "1", "--uncertainty", "folds",
                 "--disable_tta"])[0] == 0
    assert json.loads((folds / "uncertainty" / f"{case}.json").read_text())["samples"] == 2
    # a model that records no mirroring axes: the identity and two rotated, scaled inputs
    affine = tmp_path / "affine"
    assert _run(["-i", str(images), "-o", str(affine), "-m", ORGAN_MODEL, "-device", "cpu", "-np", "1",
                 "--uncertainty", "tta", "--tta_affine", "2", "--seed", "3"])[0] == 0
    assert json.loads((affine / "uncertainty" / f"{case}.json").read_text())["samples"] == 3


def test_ensemble_samples_mean_equals_the_ensemble_prediction(dropout_model, images, tmp_path):
    case = _case(images)
    members = [f"{DROPOUT_MODEL}:0", f"{DROPOUT_MODEL}:1"]
    sampled, ensemble = tmp_path / "sampled", tmp_path / "ensemble"
    common = ["-i", str(images), "-device", "cpu", "-np", "1", "--disable_tta", "--save_probabilities", "-m", *members]
    assert _run([*common, "-o", str(sampled), "--uncertainty", "ensemble"])[0] == 0
    assert _run([*common, "-o", str(ensemble)])[0] == 0
    np.testing.assert_allclose(_npz(sampled, case), _npz(ensemble, case), atol=1e-6)
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(sampled / f"{case}.nii.gz")))
            == sitk.GetArrayFromImage(sitk.ReadImage(str(ensemble / f"{case}.nii.gz")))).all()


def test_refusals_before_any_output(dropout_model, images, tmp_path, capsys):
    out = tmp_path / "refused"
    organ = ["-m", ORGAN_MODEL, "-device", "cpu", "-np", "1"]
    code, message = _run(["-i", str(images), "-o", str(out), *organ, "--uncertainty", "mc_dropout", "--mc_samples",
                          "4"], capsys)
    assert code == 2 and "no dropout" in message and "--uncertainty tta" in message
    code, message = _run(["-i", str(images), "-o", str(out), *DROPOUT, "-f", "0", "--uncertainty", "mc_dropout",
                          "--mc_samples", "1"], capsys)
    assert code == 2 and "at least 2" in message
    code, message = _run(["-i", str(images), "-o", str(out), *organ, "--uncertainty", "tta"], capsys)
    assert code == 2 and "--tta_axes" in message  # trained without mirroring: nothing recorded to flip
    code, message = _run(["-i", str(images), "-o", str(out), *DROPOUT, "-f", "0", "--mc_samples", "4"], capsys)
    assert code == 2 and "--uncertainty" in message
    code, message = _run(["-i", str(images), "-o", str(out), *DROPOUT, "-f", "0", "--uncertainty", "folds"], capsys)
    assert code == 2 and "two or more folds" in message
    assert not out.exists()


def test_calibrated_prediction_with_the_models_own_temperature(dropout_model, images, tmp_path, capsys):
    from radconf.calibration.temperature import read_temperature
    from radconf.cli import calibrate
    from radconf.models import ModelSpec, find_model

    assert calibrate.main(["-d", "990", "-tr", "DropoutTrainerNoDA", "-p", "radconfCPUPlans", "-c", "3d_fullres",
                           "-f", "0", "1"]) == 0
    model = find_model(ModelSpec.parse(f"{DROPOUT_MODEL}:0,1"))
    scaling = read_temperature(model.folder / "temperature.json", model)
    case = _case(images)
    plain, calibrated = tmp_path / "plain", tmp_path / "calibrated"
    common = ["-i", str(images), *DROPOUT, "-f", "0", "1", "--save_probabilities"]
    assert _run([*common, "-o", str(plain)])[0] == 0
    assert _run([*common, "-o", str(calibrated), "--calibrate"])[0] == 0
    before, after = _npz(plain, case), _npz(calibrated, case)
    # the calibrated probabilities are the temperature applied to the folds' mean probabilities (nnU-Net averages
    # logits over folds, radconf's calibrated path probabilities: compare the argmax, which one T keeps)
    np.testing.assert_allclose(after.sum(0), 1.0, atol=1e-5)
    assert scaling.temperatures[0] != 1.0 and not np.allclose(before, after, atol=1e-4)
    one_fold = tmp_path / "one_fold"
    assert _run(["-i", str(images), *DROPOUT, "-f", "0", "--save_probabilities", "--disable_tta", "-o",
                 str(one_fold)])[0] == 0
    one_fold_calibrated = tmp_path / "one_fold_calibrated"
    assert _run(["-i", str(images), *DROPOUT, "-f", "0", "--save_probabilities", "--disable_tta", "--calibrate",
                 "-o", str(one_fold_calibrated)])[0] == 0
    np.testing.assert_allclose(_npz(one_fold_calibrated, case), scaling.apply(_npz(one_fold, case)), atol=1e-5)
    assert (sitk.GetArrayFromImage(sitk.ReadImage(str(one_fold / f"{case}.nii.gz")))
            == sitk.GetArrayFromImage(sitk.ReadImage(str(one_fold_calibrated / f"{case}.nii.gz")))).all()
    # another model's temperature file is refused before anything is written
    refused = tmp_path / "refused"
    code, message = _run(["-i", str(images), "-o", str(refused), "-m", ORGAN_MODEL, "-device", "cpu", "-np", "1",
                          "--calibrate", str(model.folder / "temperature.json")], capsys)
    assert code == 2 and "temperature.json" in message and not refused.exists()


def test_dicom_output_carries_the_bounds_as_extra_rois(dropout_model, images, tmp_path):
    from radconf.dicom.geometry import SeriesGeometry
    from radconf.dicom.identity import PatientStudy
    from radconf.dicom.structure_sets import rasterise_roi, read_structure_set
    from radconf.dicom.tps_export import write_tps_export

    image_path = min(images.glob("*_0000.nii.gz"))
    image = sitk.ReadImage(str(image_path))
    geometry = SeriesGeometry.from_image(image)
    dicom = tmp_path / "ct_export"
    write_tps_export(dicom / "patient", sitk.GetArrayFromImage(image).astype(np.int16), geometry,
                     PatientStudy("PID9", "Doe^K", "1.2.3.9"), [])
    out = tmp_path / "to_tps"
    assert _run(["-i", str(dicom), "-o", str(out), *DROPOUT, "-f", "0", "--uncertainty", "mc_dropout",
                 "--mc_samples", "3", "--output_format", "rtstruct", "nifti"])[0] == 0
    rois = {roi.name: rasterise_roi(roi, geometry)[0]
            for roi in read_structure_set(out / "CASE_0001" / "CASE_0001_RTSTRUCT.dcm").rois}
    assert {"bladder", "gtv", "bladder_inner95", "bladder_outer95", "gtv_inner95", "gtv_outer95"} <= set(rois)
    for name in ("bladder_inner95", "gtv_outer95"):
        path = out / "nifti" / "uncertainty" / f"CASE_0001_{name}.nii.gz"
        written = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        assert np.array_equal(rois[name], written > 0), name
    mean = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "nifti" / "CASE_0001.nii.gz")))
    labels = json.loads((dropout_model.folder / "dataset.json").read_text())["labels"]
    assert np.array_equal(rois["bladder"], mean == labels["bladder"])
