"""Hard-negative sampling: the raw -> preprocessed mapping by hand, false positives by hand, a real run on the tiny
phantom (settings and record), the loader drawing on false positives, and the refusals."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from radconf.trainers.hard_negatives import RECORD_FILE

from radconf.errors import InvalidInput
from radconf.sampling.false_positives import false_positive_mask, sample_locations
from radconf.sampling.geometry import raw_to_preprocessed
from radconf.training import TrainingOptions

TRAINER = "HardNegativeTrainerNoDA"


def test_mapping_by_hand():
    # raw (z, y, x) = (10, 20, 30); transpose (2, 0, 1) -> (30, 10, 20); crop [5, 25) x [0, 10) x [4, 20) -> (20, 10,
    # 16); resample to (10, 20, 16): axis 0 halves, axis 1 doubles, axis 2 stays
    args = ((2, 0, 1), [[5, 25], [0, 10], [4, 20]], (30, 10, 20), (20, 10, 16), (10, 20, 16))
    voxels = np.array([[3, 7, 9],    # transposed (9, 3, 7) -> cropped (4, 3, 3) -> (4.5*0.5-0.5, 3.5*2-0.5, 3)
                       [0, 2, 6],    # transposed (6, 0, 2): y 2 < 4 was cropped away
                       [9, 19, 24]])  # transposed (24, 9, 19) -> (19, 9, 15) -> (9.25 -> 9, 18.5 -> 18, 15)
    mapped = raw_to_preprocessed(voxels, *args)
    assert mapped.tolist() == [[2, 6, 3], [9, 18, 15]]
    with pytest.raises(ValueError, match="does not fit"):
        raw_to_preprocessed(voxels, (2, 0, 1), [[5, 26], [0, 10], [4, 20]], *args[2:])


def test_false_positives_by_hand():
    reference = np.array([[0, 1, 1, 2, 0, 3]])
    predicted = np.array([[1, 1, 2, 2, 0, 1]])
    assert false_positive_mask(predicted, reference).tolist() == [[True, False, True, False, False, True]]
    assert false_positive_mask(predicted, reference, ignore_label=3).tolist() == [[True, False, True, False, False,
                                                                                     False]]
    mask = np.zeros((20, 20), bool)
    mask[::2] = True  # 200 voxels
    first = sample_locations(mask, np.random.default_rng(0), limit=50)
    assert first.shape == (50, 2) and mask[tuple(first.T)].all() and len({tuple(v) for v in first}) == 50
    assert np.array_equal(first, sample_locations(mask, np.random.default_rng(0), limit=50))


def _predictions(phantom_dirs: dict[str, Path], out: Path, per_case: int = 40, spacing=None) -> Path:
    """Ground truth copies with ``per_case`` background voxels near the centre predicted as label 1."""
    gt = next(phantom_dirs["nnUNet_preprocessed"].glob("Dataset990_*")) / "gt_segmentations"
    out.mkdir()
    rng = np.random.default_rng(0)
    for path in sorted(gt.glob("*.nii.gz")):
        image = sitk.ReadImage(str(path))
        array = sitk.GetArrayFromImage(image)
        centre = np.array(array.shape) // 2
        near = np.argwhere(array == 0)
        near = near[np.argsort(np.abs(near - centre).sum(axis=1))[:per_case * 5]]
        pick = near[rng.choice(len(near), per_case, replace=False)]
        array[tuple(pick.T)] = 1
        result = sitk.GetImageFromArray(array)
        result.CopyInformation(image)
        if spacing is not None:
            result.SetSpacing(spacing)
        sitk.WriteImage(result, str(out / path.name))
    return out


def test_one_cycle_records_settings_and_draws_on_false_positives(planned_phantom, train_in_process, nnunet_dirs,
                                                                 tmp_path):
    source = _predictions(nnunet_dirs, tmp_path / "earlier")
    train_in_process(["990", "3d_fullres", "0", "-tr", TRAINER, "-p", "radconfCPUPlans", "-device", "cpu",
                      "--epochs", "1", "--iterations_per_epoch", "2", "--no_val", "--seed", "0",
                      "--hard_negatives_from", str(source), "--hard_negative_share", "1"])
    fold = next(nnunet_dirs["nnUNet_results"].glob("Dataset990_*")) / f"{TRAINER}__radconfCPUPlans__3d_fullres/fold_0"
    settings = json.loads((fold / "radconf_training_settings.json").read_text())["settings"]
    assert {k: settings[k] for k in ("hard_negatives_from", "hard_negative_share")} == \
        {"hard_negatives_from": str(source.resolve()), "hard_negative_share": 1.0}
    assert settings["optimizer_name"] is None and settings["initial_lr"] == 1e-2  # the trainer's own SGD
    record = json.loads((fold / RECORD_FILE).read_text())
    assert record["share"] == 1.0 and record["counts_exact"] and record["epochs_done"] == 1
    assert len(record["cases_with_false_positives"]) == record["training_cases"] == 4  # fold 0 of 5 cases
    assert set(record["false_positive_voxels"].values()) == {40}
    drawn = record["counts"]
    assert sum(c["false_positive"] for c in drawn.values()) == sum(sum(c.values()) for c in drawn.values()) > 0
    assert "hard negatives from" in next(fold.glob("training_log_*.txt")).read_text()
    # --c keeps the recorded settings, and refuses another share unless --change_settings
    from radconf.cli import train

    resume = ["990", "3d_fullres", "0", "-tr", TRAINER, "-p", "radconfCPUPlans", "-device", "cpu", "--no_val", "--c"]
    assert train.main([*resume, "--hard_negative_share", "0.5"]) != 0
    train_in_process([*resume, "--epochs", "2", "--change_settings"])
    settings = json.loads((fold / "radconf_training_settings.json").read_text())["settings"]
    assert {k: settings[k] for k in ("hard_negatives_from", "hard_negative_share")} == \
        {"hard_negatives_from": str(source.resolve()), "hard_negative_share": 1.0}
    assert settings["optimizer_name"] is None and settings["initial_lr"] == 1e-2  # the trainer's own SGD
    assert json.loads((fold / RECORD_FILE).read_text())["epochs_done"] == 2


def test_locations_land_on_background_of_the_preprocessed_case(trainer_dirs, trainer_datasets):
    from radconf.training import build_trainer

    trainer = build_trainer(990, "3d_fullres", 0, trainer=TRAINER, plans="radconfCPUPlans", device="cpu")
    trainer.hard_negatives_from = str(_predictions(trainer_dirs, trainer_dirs["nnUNet_results"].parent / "p"))
    trainer._false_positives = locations, counts = trainer._find_false_positives()
    dataset = trainer.get_tr_and_val_datasets()[0]
    for case, found in locations.items():
        seg = np.asarray(dataset.dataset.load_case(case)[1][:])[0]
        assert counts[case] == 40 and 0 < len(found) <= 40
        assert np.mean(seg[tuple(found.T)] == 0) >= 0.8, case  # injected on raw background (nearest resampling)


def test_refusals(trainer_dirs, trainer_datasets, tmp_path):
    from radconf.training import build_trainer

    for share in (0, 1.5, float("nan"), -0.1):
        with pytest.raises(InvalidInput, match="--hard_negative_share"):
            TrainingOptions(settings={"hard_negative_share": share})
    with pytest.raises(InvalidInput, match="not a folder"):
        TrainingOptions(settings={"hard_negatives_from": str(tmp_path / "missing")})
    trainer = build_trainer(990, "3d_fullres", 0, trainer=TRAINER, plans="radconfCPUPlans", device="cpu")
    (tmp_path / "empty").mkdir()
    trainer.hard_negatives_from = str(tmp_path / "empty")
    with pytest.raises(InvalidInput, match="holds no prediction of this fold's training cases"):
        trainer.initialize()
    bad = _predictions(trainer_dirs, tmp_path / "bad", spacing=(9.0, 9.0, 9.0))
    trainer.hard_negatives_from = str(bad)
    with pytest.raises(InvalidInput, match=r"Prediction .*\.nii\.gz does not match its raw image"):
        trainer.initialize()
    assert not hasattr(trainer, "network") or trainer.network is None
    shutil.rmtree(bad)


def test_prediction_folder_layouts(tmp_path):
    from radconf.errors import MissingInput
    from radconf.sampling.predictions import matching_predictions, prediction_files

    model = tmp_path / "model"
    for fold, cases in (("fold_0", ("a", "b")), ("fold_1", ("c",))):
        (model / fold / "validation").mkdir(parents=True)
        for case in cases:
            (model / fold / "validation" / f"{case}.nii.gz").write_bytes(b"")
        (model / fold / "validation" / "summary.json").write_text("{}")
    assert sorted(prediction_files(model, ".nii.gz")) == ["a", "b", "c"]
    assert sorted(prediction_files(model / "fold_0", ".nii.gz")) == ["a", "b"]
    assert sorted(prediction_files(model / "fold_1" / "validation", ".nii.gz")) == ["c"]
    assert sorted(matching_predictions(model, ".nii.gz", ["c", "d"])) == ["c"]
    with pytest.raises(InvalidInput, match="holds no prediction"):
        matching_predictions(model, ".nii.gz", ["d"])
    with pytest.raises(MissingInput, match="is not a folder"):
        prediction_files(tmp_path / "missing", ".nii.gz")
