from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from radconf.datasets.phantom import LABELS, PhantomConfig, ReaderModel, generate_case
from radconf.datasets.phantom.anatomy import GTV_LABEL, LABELS_WITH_FEMORAL_HEADS
from radconf.datasets.phantom.readers import reader_biases
from radconf.datasets.phantom.writer import MARKER, write_phantom_dataset

from radconf.errors import InvalidInput

CONFIG = PhantomConfig(seed=7, spacing=(5.0, 3.0, 3.0))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())


def test_same_config_same_case_and_seed_changes_it():
    a, b = generate_case(CONFIG, 2), generate_case(CONFIG, 2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.labels, b.labels)
    assert a.reader_masks.keys() == b.reader_masks.keys()
    assert all(np.array_equal(a.reader_masks[k], b.reader_masks[k]) for k in a.reader_masks)
    other = generate_case(replace(CONFIG, seed=8), 2)
    assert not np.array_equal(a.labels, other.labels) or not np.array_equal(a.image, other.image)


def test_every_structure_present_with_plausible_hu():
    case = generate_case(CONFIG, 0)
    assert case.image.dtype == np.int16 and case.labels.dtype == np.uint8
    assert case.image.shape == case.labels.shape == case.ctv.shape
    assert set(np.unique(case.labels)) == set(LABELS.values())
    assert case.image.min() <= -900  # air outside the body
    hu = {name: float(np.median(case.image[case.labels == label])) for name, label in LABELS.items() if label}
    assert hu["bladder"] < hu["gluteal_muscles"] < hu["gtv"]
    assert -150 < hu["bladder"] < 60 and 30 < hu["gluteal_muscles"] < 80
    assert case.image.max() > 500  # unlabelled cortical bone is in the image


def test_spacing_is_anisotropic_and_varies_per_case():
    spacings = [generate_case(CONFIG, i).spacing for i in range(3)]
    assert len(set(spacings)) == 3
    for z, y, x in spacings:
        assert z > 1.3 * max(y, x)
        assert abs(z - 5.0) <= 5.0 * CONFIG.spacing_jitter + 1e-6


def test_optional_femoral_heads_are_lateralised_bone():
    case = generate_case(replace(CONFIG, label_femoral_heads=True), 1)
    assert set(np.unique(case.labels)) == set(LABELS_WITH_FEMORAL_HEADS.values())
    left = np.argwhere(case.labels == LABELS_WITH_FEMORAL_HEADS["femoral_head_left"])[:, 2].mean()
    right = np.argwhere(case.labels == LABELS_WITH_FEMORAL_HEADS["femoral_head_right"])[:, 2].mean()
    assert left > case.labels.shape[2] / 2 > right  # patient left is +x
    assert np.median(case.image[case.labels == LABELS_WITH_FEMORAL_HEADS["femoral_head_left"]]) > 150
    plain = generate_case(CONFIG, 1)  # same anatomy and image, femoral heads not labelled
    assert np.array_equal(plain.image, case.image)
    assert np.array_equal(plain.labels == LABELS["gtv"], case.labels == LABELS_WITH_FEMORAL_HEADS["gtv"])


def test_ctv_contains_gtv_and_respects_barriers():
    case = generate_case(CONFIG, 0)
    gtv = case.labels == GTV_LABEL
    ctv = case.ctv.astype(bool)
    assert ctv[gtv].all()
    assert ctv.sum() > 1.5 * gtv.sum()
    for barrier in ("bladder", "rectum", "gluteal_muscles"):
        assert not (ctv & (case.labels == LABELS[barrier])).any(), barrier
    bones = generate_case(replace(CONFIG, label_femoral_heads=True), 0).labels >= 5
    assert not (ctv & bones).any()


def test_readers_disagree_plausibly_and_trials_go_missing():
    model = ReaderModel(n_readers=4, n_trials=3, missing_trial_probability=0.3)
    config = replace(CONFIG, readers=model)
    counts = []
    for index in range(4):
        case = generate_case(config, index)
        gtv = case.labels == GTV_LABEL
        counts.append(len(case.reader_masks))
        readers_present = {name.split("_")[0] for name in case.reader_masks}
        assert readers_present == {f"reader{r}" for r in range(1, 5)}  # every reader keeps a trial
        for mask in case.reader_masks.values():
            assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
            assert 0.6 < _dice(mask.astype(bool), gtv) <= 1.0
        dices = [_dice(m.astype(bool), gtv) for m in case.reader_masks.values()]
        assert np.mean(dices) < 0.97  # readers do not all reproduce the truth
    assert min(counts) < 12  # with p=0.3 some trials of 4 cases are missing


def test_reader_bias_is_a_reader_trait():
    biases = reader_biases(ReaderModel(bias_sd_mm=2.0), dataset_seed=5)
    assert np.array_equal(biases, reader_biases(ReaderModel(bias_sd_mm=2.0), dataset_seed=5))
    config = replace(CONFIG, readers=ReaderModel(bias_sd_mm=2.0, trial_noise_sd_mm=0.3), seed=5)
    generous, tight = f"reader{int(np.argmax(biases)) + 1}", f"reader{int(np.argmin(biases)) + 1}"
    for index in range(2):
        masks = generate_case(config, index).reader_masks
        big = np.mean([m.sum() for k, m in masks.items() if k.startswith(generous + "_")])
        small = np.mean([m.sum() for k, m in masks.items() if k.startswith(tight + "_")])
        assert big > small


def test_written_dataset_is_nnunet_raw_with_consistent_geometry(tmp_path):
    result = write_phantom_dataset(tmp_path, dataset_id=42, num_train=2, num_test=1, config=CONFIG,
                                   show_progress=False)
    folder = result.folder
    assert folder.name == "Dataset042_Phantom"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["numTraining"] == 2 and meta["channel_names"] == {"0": "CT"} and meta["labels"] == LABELS
    for case in result.train_cases:
        image = sitk.ReadImage(str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
        for other in (folder / "labelsTr" / f"{case}.nii.gz", folder / "ctvTr" / f"{case}.nii.gz",
                      *sorted((folder / "readers" / case).glob("*.nii.gz"))):
            mask = sitk.ReadImage(str(other))
            assert mask.GetSize() == image.GetSize() and mask.GetSpacing() == image.GetSpacing(), other
    assert (folder / "imagesTs" / f"{result.test_cases[0]}_0000.nii.gz").is_file()
    assert not list(tmp_path.glob("*.partial"))


def test_rerun_reuses_and_never_touches_foreign_folders(tmp_path):
    first = write_phantom_dataset(tmp_path, dataset_id=43, num_train=1, num_test=0, config=CONFIG,
                                  show_progress=False)
    stamp = (first.folder / MARKER).stat().st_mtime_ns
    again = write_phantom_dataset(tmp_path, dataset_id=43, num_train=1, num_test=0, config=CONFIG,
                                  show_progress=False)
    assert again.reused and (first.folder / MARKER).stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="other parameters"):
        write_phantom_dataset(tmp_path, dataset_id=43, num_train=2, num_test=0, config=CONFIG, show_progress=False)
    foreign = tmp_path / "Dataset044_Phantom"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not made by the radconf phantom generator"):
        write_phantom_dataset(tmp_path, dataset_id=44, config=CONFIG, show_progress=False, overwrite=True)
    assert (foreign / "mine.txt").read_text() == "user data"
    with pytest.raises(FileExistsError, match="already used"):
        write_phantom_dataset(tmp_path, dataset_id=44, name="Other", config=CONFIG, show_progress=False)


def _assert_same_case(a, b) -> None:
    assert a.spacing == b.spacing
    for name in ("image", "labels", "ctv"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert a.reader_masks.keys() == b.reader_masks.keys()
    assert all(np.array_equal(a.reader_masks[k], b.reader_masks[k]) for k in a.reader_masks)


def test_anatomy_scale_one_is_the_default_phantom():
    _assert_same_case(generate_case(PhantomConfig(anatomy_scale=1.0), 0), generate_case(PhantomConfig(), 0))
    # records of phantoms written before the option existed still match (reruns reuse them)
    assert PhantomConfig(anatomy_scale=1.0).to_dict() == PhantomConfig().to_dict()
    assert "anatomy_scale" not in PhantomConfig().to_dict()
    assert PhantomConfig(anatomy_scale=1.1).to_dict()["anatomy_scale"] == 1.1


def test_anatomy_scale_enlarges_the_anatomy_in_the_same_field_of_view():
    base, big = generate_case(PhantomConfig(), 0), generate_case(PhantomConfig(anatomy_scale=1.2), 0)
    assert big.spacing == base.spacing and big.image.shape == base.image.shape  # real grid unchanged
    voxel_mm3 = float(np.prod(base.spacing))
    bladder = LABELS["bladder"]
    ratio = (big.labels == bladder).sum() * voxel_mm3 / ((base.labels == bladder).sum() * voxel_mm3)
    assert abs(ratio / 1.2 ** 3 - 1) < 0.10, ratio
    assert not np.array_equal(big.image, base.image)


@pytest.mark.parametrize("scale", [0.4, 2.5, float("nan"), float("inf"), "1.1", True, None])
def test_anatomy_scale_outside_its_range_is_refused(scale):
    with pytest.raises(InvalidInput, match=r"anatomy_scale .*0\.5 to 2") as caught:
        PhantomConfig(anatomy_scale=scale)
    assert repr(scale) in str(caught.value)
