"""File-level reader fusion (radconf.fusion_dataset, fusion_checks, fusion_report) on tiny hand-made NIfTI datasets.

The source dataset written by ``make_source`` (numpy (z, y, x) = (4, 5, 6), spacing 0.8 x 0.9 x 2.5 mm, a flipped
direction and an off-zero origin) holds three cases:

* ``caseA`` (train): masks alice_1, alice_2, bob_1, bob_2; mask i (in that order) covers x = i+1..5 of row
  (z=1, y=2), so voxel x is drawn by min(x, 4) of the 4 masks: counts 0,1,2,3,4,4 -> levels 0,2,3,4,5,5 (K = 5).
* ``caseB`` (test): masks carl_1, dana_1, erin_1 cover x < 3, x < 2, x < 1 of row (z=2, y=0): counts 3,2,1,0,0,0
  -> levels 5,3,2,0,0,0 (n = 3: 1 + floor(4 c / 3)).
* ``caseC`` (train): one mask -> levels {0, 5}.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from radconf.confidence.dataset import FUSION_RULE, fuse_case, fuse_reader_dataset
from radconf.io.images import Geometry, geometry_difference
from radconf.raw.checks import check_raw_dataset

SHAPE = (4, 5, 6)  # numpy (z, y, x)
SPACING = (0.8, 0.9, 2.5)  # SimpleITK (x, y, z), mm
ORIGIN = (10.5, -20.25, 30.0)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
VOXEL_ML = 0.8 * 0.9 * 2.5 / 1000.0


def write(path: Path, array: np.ndarray, spacing=SPACING, origin=ORIGIN, direction=DIRECTION) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def row_mask(z: int, y: int, xs) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[z, y, list(xs)] = 1
    return mask


CASE_A = {name: row_mask(1, 2, range(i + 1, 6)) for i, name in enumerate(["alice_1", "alice_2", "bob_1", "bob_2"])}
CASE_B = {name: row_mask(2, 0, range(0, 3 - i)) for i, name in enumerate(["carl_1", "dana_1", "erin_1"])}
BLOCK = np.zeros(SHAPE, np.uint8)
BLOCK[1:3, 1:4, 2:5] = 1
CASE_C = {"solo_1": BLOCK}


def make_source(root: Path, with_json: bool = True) -> Path:
    source = root / "Dataset101_Readers"
    rng = np.random.default_rng(0)
    for split, case, masks in (("Tr", "caseA", CASE_A), ("Ts", "caseB", CASE_B), ("Tr", "caseC", CASE_C)):
        write(source / f"images{split}" / f"{case}_0000.nii.gz", rng.integers(-1000, 1000, SHAPE).astype(np.int16))
        for name, mask in masks.items():
            write(source / "readers" / case / f"{name}.nii.gz", mask)
    if with_json:
        (source / "dataset.json").write_text(json.dumps({
            "channel_names": {"0": "CT"}, "labels": {"background": 0, "gtv": 1}, "numTraining": 2,
            "file_ending": ".nii.gz"}))
    return source


def hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_source(tmp_path / "src")


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return tmp_path / "nnUNet_raw"


def run(source: Path, raw: Path, **kwargs) -> Path:
    kwargs.setdefault("progress", False)
    return fuse_reader_dataset(source, 102, raw_root=raw, **kwargs).folder


# ------------------------------------------------------------------------------------------------ one case by hand
def test_fuse_case_by_hand(source: Path):
    masks = {name: source / "readers" / "caseA" / f"{name}.nii.gz" for name in CASE_A}
    result = fuse_case(source / "imagesTr" / "caseA_0000.nii.gz", masks, k=5)
    assert result.levels.shape == SHAPE and result.levels.dtype == np.uint8
    assert result.levels[1, 2].tolist() == [0, 2, 3, 4, 5, 5]
    assert result.levels.sum() == 19  # nothing outside the row
    assert result.fusion.counts[1, 2].tolist() == [0, 1, 2, 3, 4, 4]
    assert result.majority[1, 2].tolist() == [0, 0, 0, 1, 1, 1]  # 3 or 4 of 4; 2 of 4 is no majority
    assert result.majority.dtype == np.uint8 and result.majority.sum() == 3
    assert result.box == (slice(1, 2), slice(2, 3), slice(1, 6))  # union of the masks' bounding boxes
    # mask sizes 5, 4, 3, 2 and nested: Dice(i, j) = 2 |j| / (|i| + |j|)
    assert result.agreement.intra_reader == [("alice_1", "alice_2", pytest.approx(8 / 9)),
                                             ("bob_1", "bob_2", pytest.approx(4 / 5))]
    assert [d for *_, d in result.agreement.inter_reader] == pytest.approx([6 / 8, 4 / 7, 6 / 7, 4 / 6])
    assert result.n_readers == 2
    assert result.volumes_ml() == pytest.approx([v * VOXEL_ML for v in (5, 5, 4, 3, 2)])
    assert result.geometry.size == (6, 5, 4) and result.geometry.spacing == pytest.approx(SPACING)
    assert result.geometry.origin == pytest.approx(ORIGIN) and result.geometry.direction == pytest.approx(DIRECTION)


def test_fuse_case_other_k_and_one_mask(source: Path):
    image = source / "imagesTr" / "caseC_0000.nii.gz"
    single = fuse_case(image, {"solo_1": source / "readers" / "caseC" / "solo_1.nii.gz"}, k=3)
    assert np.array_equal(single.levels, BLOCK * 3)  # n = 1: plain binary segmentation {0, K}
    assert single.agreement.inter_reader == [] and single.agreement.intra_reader == []
    masks = {name: source / "readers" / "caseB" / f"{name}.nii.gz" for name in CASE_B}
    assert fuse_case(image, masks, k=2, num_threads=1).levels[2, 0].tolist() == [2, 1, 1, 0, 0, 0]


def test_empty_masks_give_level_zero(tmp_path: Path):
    image = write(tmp_path / "img.nii.gz", np.zeros(SHAPE, np.int16))
    masks = {f"r{i}_1": write(tmp_path / f"r{i}_1.nii.gz", np.zeros(SHAPE, np.uint8)) for i in range(2)}
    result = fuse_case(image, masks)
    assert not result.levels.any() and result.volumes_ml() == [0.0] * 5
    assert math.isnan(result.agreement.inter_reader[0][2])  # Dice of two empty masks


# --------------------------------------------------------------------------------------------- the whole dataset
def test_dataset_written_by_hand(source: Path, raw: Path):
    before = hashes(source)
    folder = run(source, raw, staple=True, structure="gtv")
    assert folder == raw / "Dataset102_ReadersConfidence"
    assert hashes(source) == before  # the source is never modified
    assert not list(raw.glob("*.partial")) and not list(raw.glob("*.replaced"))

    # images: byte copies, not links
    for split, case in (("Tr", "caseA"), ("Ts", "caseB"), ("Tr", "caseC")):
        copy = folder / f"images{split}" / f"{case}_0000.nii.gz"
        assert not copy.is_symlink() and copy.read_bytes() == (source / f"images{split}" / copy.name).read_bytes()

    level_a, level_b = read(folder / "labelsTr" / "caseA.nii.gz"), read(folder / "labelsTs" / "caseB.nii.gz")
    assert level_a.dtype == np.uint8 and level_a[1, 2].tolist() == [0, 2, 3, 4, 5, 5] and level_a.sum() == 19
    assert level_b[2, 0].tolist() == [5, 3, 2, 0, 0, 0] and level_b.sum() == 10  # n = 3 in this case
    assert np.array_equal(read(folder / "labelsTr" / "caseC.nii.gz"), BLOCK * 5)  # n = 1
    assert read(folder / "consensus" / "caseA.nii.gz")[1, 2].tolist() == [0, 0, 0, 1, 1, 1]
    assert read(folder / "consensus" / "caseB.nii.gz")[2, 0].tolist() == [1, 1, 0, 0, 0, 0]
    assert np.array_equal(read(folder / "consensus_staple" / "caseC.nii.gz"), BLOCK)
    label, image = (sitk.ReadImage(str(folder / sub / name)) for sub, name in
                    (("labelsTs", "caseB.nii.gz"), ("imagesTs", "caseB_0000.nii.gz")))
    for what in ("GetSize", "GetSpacing", "GetOrigin", "GetDirection"):  # the image's geometry, copied
        assert getattr(label, what)() == getattr(image, what)()
    assert label.GetDirection() == pytest.approx(DIRECTION) and label.GetOrigin() == pytest.approx(ORIGIN)

    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["labels"] == {"background": 0, "level_1": 1, "level_2": 2, "level_3": 3, "level_4": 4, "level_5": 5}
    assert dataset["numTraining"] == 2 and dataset["file_ending"] == ".nii.gz"
    assert dataset["channel_names"] == {"0": "CT"}
    info = dataset["radconf"]
    assert info["ordinal"] is True and info["levels"] == 5 and info["structure"] == "gtv"
    assert info["fusion_rule"] == FUSION_RULE and info["source"] == str(source.resolve())
    assert info["consensus"] == ["majority", "staple"] and info["test_cases"] == ["caseB"]
    assert check_raw_dataset(folder)["numTraining"] == 2

    pairs = read_csv(folder / "agreement.csv")
    assert list(pairs[0]) == ["case", "split", "mask_a", "mask_b", "kind", "dice"]
    assert [(r["case"], r["split"], r["mask_a"], r["mask_b"], r["kind"]) for r in pairs] == [
        ("caseA", "train", "alice_1", "alice_2", "intra"), ("caseA", "train", "alice_1", "bob_1", "inter"),
        ("caseA", "train", "alice_1", "bob_2", "inter"), ("caseA", "train", "alice_2", "bob_1", "inter"),
        ("caseA", "train", "alice_2", "bob_2", "inter"), ("caseA", "train", "bob_1", "bob_2", "intra"),
        ("caseB", "test", "carl_1", "dana_1", "inter"), ("caseB", "test", "carl_1", "erin_1", "inter"),
        ("caseB", "test", "dana_1", "erin_1", "inter")]
    assert [float(r["dice"]) for r in pairs] == pytest.approx([8 / 9, 6 / 8, 4 / 7, 6 / 7, 4 / 6, 4 / 5,
                                                              4 / 5, 2 / 4, 2 / 3])
    cases = {r["case"]: r for r in read_csv(folder / "agreement_cases.csv")}
    assert [cases[c]["n_masks"] for c in ("caseA", "caseB", "caseC")] == ["4", "3", "1"]
    assert [cases[c]["n_readers"] for c in ("caseA", "caseB", "caseC")] == ["2", "3", "1"]
    inter_a, intra_a = (6 / 8 + 4 / 7 + 6 / 7 + 4 / 6) / 4, (8 / 9 + 4 / 5) / 2
    assert float(cases["caseA"]["mean_inter_dice"]) == pytest.approx(inter_a)
    assert float(cases["caseA"]["mean_intra_dice"]) == pytest.approx(intra_a)
    assert cases["caseB"]["mean_intra_dice"] == "nan" and cases["caseC"]["mean_inter_dice"] == "nan"
    assert float(cases["caseB"]["volume_ge_level_3_ml"]) == pytest.approx(2 * VOXEL_ML)
    assert float(cases["caseA"]["volume_ge_level_5_ml"]) == pytest.approx(2 * VOXEL_ML)
    assert float(cases["caseA"]["volume_majority_ml"]) == pytest.approx(3 * VOXEL_ML)
    assert (folder / "agreement.png").stat().st_size > 5_000


def test_summary_over_cases(source: Path, raw: Path):
    result = fuse_reader_dataset(source, 102, raw_root=raw, progress=False, k=4)
    inter = [(6 / 8 + 4 / 7 + 6 / 7 + 4 / 6) / 4, (4 / 5 + 2 / 4 + 2 / 3) / 3]  # caseC has no pair
    assert result.summary["inter_mean"] == pytest.approx(np.mean(inter))
    assert result.summary["inter_sd"] == pytest.approx(np.std(inter, ddof=1))
    assert result.summary["intra_mean"] == pytest.approx((8 / 9 + 4 / 5) / 2) and result.summary["intra_cases"] == 1
    assert math.isnan(result.summary["intra_sd"])
    assert result.train_cases == ["caseA", "caseC"] and result.test_cases == ["caseB"] and result.n_masks == 8
    # K = 4: 1 + floor(3 c / 4) for c = 1, 2, 3
    assert read(result.folder / "labelsTr" / "caseA.nii.gz")[1, 2].tolist() == [0, 1, 2, 3, 4, 4]


def test_without_dataset_json_and_by_id(source: Path, raw: Path, nnunet_dirs):
    (source / "dataset.json").unlink()
    moved = nnunet_dirs["nnUNet_raw"] / source.name
    source.rename(moved)
    folder = fuse_reader_dataset(101, 102, "Fused", progress=False).folder  # id looked up in $nnUNet_raw
    assert folder == nnunet_dirs["nnUNet_raw"] / "Dataset102_Fused"
    dataset = json.loads((folder / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"} and dataset["file_ending"] == ".nii.gz"


def test_geometry_within_tolerance_is_accepted_and_image_geometry_written(source: Path, raw: Path):
    shifted = tuple(o + 4e-4 for o in ORIGIN)  # below 1e-3 mm
    write(source / "readers" / "caseA" / "bob_2.nii.gz", CASE_A["bob_2"], origin=shifted,
          spacing=tuple(s * (1 + 5e-5) for s in SPACING))
    folder = run(source, raw)
    label = sitk.ReadImage(str(folder / "labelsTr" / "caseA.nii.gz"))
    assert label.GetOrigin() == pytest.approx(ORIGIN, abs=1e-6) and label.GetSpacing() == pytest.approx(SPACING)


def test_threshold_on_float_and_255_masks(source: Path, raw: Path):
    probability = CASE_B["carl_1"] * 0.7 + (1 - CASE_B["carl_1"]) * 0.2  # 0.7 inside, 0.2 outside
    write(source / "readers" / "caseB" / "carl_1.nii.gz", probability.astype(np.float32))
    with pytest.raises(ValueError, match=r"carl_1\.nii\.gz is not binary: it holds the values \{0\.2, 0\.7\}.*--thr"):
        run(source, raw)
    write(source / "readers" / "caseA" / "alice_1.nii.gz", CASE_A["alice_1"] * 255)
    with pytest.raises(ValueError, match=r"alice_1\.nii\.gz is not binary: it holds the values \{0, 255\}"):
        run(source, raw)
    folder = run(source, raw, threshold=0.5)
    assert read(folder / "labelsTs" / "caseB.nii.gz")[2, 0].tolist() == [5, 3, 2, 0, 0, 0]
    assert read(folder / "labelsTr" / "caseA.nii.gz")[1, 2].tolist() == [0, 2, 3, 4, 5, 5]
    assert json.loads((folder / "dataset.json").read_text())["radconf"]["threshold"] == 0.5


# ------------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("change, message", [
    ({"spacing": (0.8, 0.9, 3.0)},
     r"bob_2\.nii\.gz does not match image caseA_0000\.nii\.gz: spacing \(0\.8, 0\.9, 3\.0\) "
     r"vs \(0\.8, 0\.9, 2\.5\)"),
    ({"origin": (10.5, -20.25, 30.01)}, r"bob_2\.nii\.gz does not match .*origin \(10\.5, -20\.25, 30\.01\) vs "),
    ({"direction": (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)}, r"bob_2\.nii\.gz does not match .*direction"),
    ({"shape": (4, 5, 7)}, r"bob_2\.nii\.gz does not match .*size \(7, 5, 4\) vs \(6, 5, 4\)"),
])
def test_geometry_mismatch_names_file_property_and_values(source: Path, raw: Path, change, message):
    shape = change.pop("shape", SHAPE)
    write(source / "readers" / "caseA" / "bob_2.nii.gz", np.zeros(shape, np.uint8), **change)
    with pytest.raises(ValueError, match=message + r".*Resample the mask"):
        run(source, raw)
    assert not raw.exists() or not any(raw.iterdir())  # nothing written


def test_geometry_difference_tolerances():
    image = Geometry((2, 2, 2), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    near = Geometry((2, 2, 2), (1.00009, 1.0, 2.0), (9e-4, 0.0, 0.0), (1, 5e-5, 0, 0, 1, 0, 0, 0, 1))
    assert geometry_difference(image, near) is None
    assert "spacing" in geometry_difference(image, Geometry((2, 2, 2), (1.0002, 1, 2), (0, 0, 0), image.direction))
    assert "origin" in geometry_difference(image, Geometry((2, 2, 2), (1, 1, 2), (0, 0, 0.002), image.direction))


def test_non_binary_mask(source: Path, raw: Path):
    write(source / "readers" / "caseA" / "alice_2.nii.gz", CASE_A["alice_2"] * 2)
    with pytest.raises(ValueError, match=r"alice_2\.nii\.gz is not binary: it holds the values \{0, 2\}"):
        run(source, raw)
    assert not raw.exists() or not any(raw.iterdir())  # the staging folder is removed


@pytest.mark.parametrize("how", ["missing", "empty"])
def test_case_without_masks(source: Path, raw: Path, how: str):
    for mask in (source / "readers" / "caseC").iterdir():
        mask.unlink()
    if how == "missing":
        (source / "readers" / "caseC").rmdir()
    with pytest.raises(ValueError, match=r"case caseC has no reader masks: .*readers/caseC"):
        run(source, raw)


def test_readers_folder_without_image(source: Path, raw: Path):
    write(source / "readers" / "caseZ" / "r_1.nii.gz", BLOCK)
    with pytest.raises(ValueError, match=r"readers/caseZ has no image caseZ_0000\.nii\.gz in imagesTr or imagesTs"):
        run(source, raw)


def test_stray_files_missing_channels_and_bad_json(source: Path, raw: Path):
    (source / "readers" / "caseA" / "carol_1.nrrd").write_bytes(b"")
    dataset = json.loads((source / "dataset.json").read_text())
    (source / "dataset.json").write_text(json.dumps({**dataset, "channel_names": {"0": "CT", "1": "MR"}}))
    with pytest.raises(ValueError, match=r"4 problem\(s\)") as error:
        run(source, raw)
    assert "readers/caseA holds ['carol_1.nrrd'], which are not masks named <reader>_<trial>.nii.gz" in str(error.value)
    assert "case caseB: " in str(error.value)
    assert "expected ['caseB_0000.nii.gz', 'caseB_0001.nii.gz']" in str(error.value)
    (source / "dataset.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"dataset\.json is not valid JSON"):
        run(source, raw)


def test_unreadable_files_are_named(source: Path, raw: Path):
    (source / "readers" / "caseA" / "bob_1.nii.gz").write_bytes(b"not an image")
    (source / "imagesTr" / "caseC_0000.nii.gz").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(ValueError, match=r"2 problem\(s\)") as error:
        run(source, raw)
    assert "bob_1.nii.gz is corrupt (gzip: " in str(error.value)  # not a gzip stream at all
    assert "caseC_0000.nii.gz is corrupt (gzip: " in str(error.value)  # a broken one


def test_missing_folders_and_bad_k(source: Path, raw: Path, tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"Readers folder .*elsewhere does not exist.*--readers"):
        run(source, raw, readers_folder=tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match=r"Source dataset .*nowhere does not exist"):
        run(tmp_path / "nowhere", raw)
    for k in (1, 256):
        with pytest.raises(ValueError, match=rf"K \(-k\) must be in 2\.\.255, got {k}"):
            run(source, raw, k=k)


def test_readers_elsewhere(source: Path, raw: Path, tmp_path: Path):
    (source / "readers").rename(tmp_path / "contours")
    folder = run(source, raw, readers_folder=tmp_path / "contours")
    assert read(folder / "labelsTs" / "caseB.nii.gz")[2, 0].tolist() == [5, 3, 2, 0, 0, 0]


# ------------------------------------------------------------------------------------- overwriting and atomicity
def test_refuses_to_overwrite_and_replaces_only_its_own_output(source: Path, raw: Path):
    folder = run(source, raw)
    with pytest.raises(FileExistsError, match="--overwrite"):
        run(source, raw)
    run(source, raw, overwrite=True, k=3)
    assert read(folder / "labelsTr" / "caseA.nii.gz").max() == 3  # replaced

    # a failing overwrite leaves the earlier output as it was
    before = hashes(folder)
    write(source / "readers" / "caseB" / "erin_1.nii.gz", CASE_B["erin_1"] * 7)
    with pytest.raises(ValueError, match="not binary"):
        run(source, raw, overwrite=True)
    assert hashes(folder) == before and not list(raw.glob("*.partial"))

    # a folder radconf_fuse_readers did not write is never replaced
    foreign = raw / "Dataset103_Foreign"
    foreign.mkdir()
    (foreign / "dataset.json").write_text(json.dumps({"radconf": {"generator": "radconf.datasets.phantom"}}))
    with pytest.raises(FileExistsError, match="was not written by radconf_fuse_readers"):
        fuse_reader_dataset(source, 103, "Foreign", raw_root=raw, overwrite=True, progress=False)
    # an id used by a differently named dataset is refused
    with pytest.raises(FileExistsError, match=r"Dataset id 103 is already used by .*Dataset103_Foreign"):
        fuse_reader_dataset(source, 103, "Other", raw_root=raw, progress=False)


def test_refuses_to_write_over_the_source(source: Path):
    with pytest.raises(ValueError, match="Dataset101_Readers is the source dataset"):
        fuse_reader_dataset(source, 101, "Readers", raw_root=source.parent, overwrite=True, progress=False)
    with pytest.raises(FileExistsError, match="Dataset id 101 is already used"):
        fuse_reader_dataset(source, 101, raw_root=source.parent, progress=False)


def test_parallel_workers_write_the_same_dataset(source: Path, raw: Path, tmp_path: Path):
    serial = hashes(run(source, raw))
    parallel = hashes(fuse_reader_dataset(source, 102, raw_root=tmp_path / "raw2", num_workers=2,
                                          progress=False).folder)
    assert parallel.keys() == serial.keys()
    differing = {name for name in serial if serial[name] != parallel[name]}
    assert differing == set(), differing
