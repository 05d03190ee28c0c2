"""radconf_evaluate --probabilities end to end, in process: tiny images, CASE.npz written with numpy, values checked
against metrics computed directly on the arrays; readers; refused inputs."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from radconf.calibration import compute_calibration, evaluate_probabilities
from radconf.cli.evaluate import main
from radconf.errors import InvalidInput, MissingInput
from radconf.io.tables import read_csv
from tests.images import write_image

SPACING_XYZ = (1.0, 1.0, 2.0)  # numpy (z, y, x): 2, 1, 1 mm
GRID = {"spacing_xyz": SPACING_XYZ, "origin": (0.0, 0.0, 0.0), "direction": (1, 0, 0, 0, 1, 0, 0, 0, 1)}
SHAPE = (6, 14, 16)
LABELS = {"background": 0, "bladder": 1, "rectum": 2}
CASES = ("case_000", "case_001")
MARGIN = 2.0
PADS = (1, 2, 2)  # 2 mm in voxels of (2, 1, 1) mm


def _reference(seed: int) -> np.ndarray:
    reference = np.zeros(SHAPE, np.uint8)
    reference[2:4, 3:6 + seed, 3:7] = 1
    reference[2:5, 8:11, 9:13 - seed] = 2
    return reference


def _softmax(reference: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (3, *SHAPE)) + 2.5 * (np.arange(3)[:, None, None, None] == reference)
    exp = np.exp(logits)
    return (exp / exp.sum(0)).astype(np.float32)


@pytest.fixture
def folders(tmp_path):
    """Dataset/labelsTr (references), predictions/ (CASE.npz + CASE.nii.gz), readers/<case>/r<i>_t1.nii.gz."""
    dataset = tmp_path / "Dataset501_X"
    (dataset / "labelsTr").mkdir(parents=True)
    (dataset / "dataset.json").write_text(json.dumps({"labels": LABELS, "file_ending": ".nii.gz"}))
    arrays = {}
    for i, case in enumerate(CASES):
        reference, probabilities = _reference(i), _softmax(_reference(i), i)
        write_image(dataset / "labelsTr" / f"{case}.nii.gz", reference, **GRID)
        write_image(tmp_path / "predictions" / f"{case}.nii.gz", probabilities.argmax(0).astype(np.uint8), **GRID)
        np.savez_compressed(tmp_path / "predictions" / f"{case}.npz", probabilities=probabilities)
        masks = []
        for r in range(3):  # three readers of the bladder: the reference shifted by -1, 0, +1 voxel in x
            mask = np.roll(reference == 1, r - 1, axis=2)
            write_image(tmp_path / "readers" / case / f"r{r}_t1.nii.gz", mask.astype(np.uint8), **GRID)
            masks.append(mask)
        arrays[case] = (reference, probabilities, masks)
    return {"tmp": tmp_path, "ref": dataset / "labelsTr", "pred": tmp_path / "predictions",
            "readers": tmp_path / "readers", "arrays": arrays}


def _near(y: np.ndarray, p: np.ndarray) -> tuple[slice, ...]:
    union = y | (p >= 0.5)
    where = [np.flatnonzero(union.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    return tuple(slice(max(0, w[0] - pad), min(n, w[-1] + 1 + pad)) for w, pad, n in zip(where, PADS, SHAPE))


def _direct(folders, label: int, region: str, y_of=None) -> tuple[np.ndarray, np.ndarray]:
    """The voxels (p, y) of one structure and region over both cases, straight from the arrays."""
    ps, ys = [], []
    for reference, probabilities, masks in folders["arrays"].values():
        p = probabilities[label]
        y = (reference == label) if y_of is None else y_of(reference, masks)
        box = _near(np.asarray(y) > 0 if y_of is None else np.logical_or.reduce(masks), p) \
            if region == "near_structure" else ...
        ps.append(p[box].ravel())
        ys.append(np.asarray(y, float)[box].ravel())
    return np.concatenate(ps), np.concatenate(ys)


def _textbook_ece(p: np.ndarray, y: np.ndarray, n_bins: int) -> float:
    p = p.astype(np.float64)
    index = np.minimum((p * n_bins).astype(int), n_bins - 1)
    return sum((index == b).mean() * abs(y[index == b].mean() - p[index == b].mean()) for b in np.unique(index))


def test_softmax_folder_values_equal_direct_metrics(folders):
    out = folders["tmp"] / "calibration"
    result = evaluate_probabilities(folders["pred"], folders["ref"], out, n_bins=10, margin_mm=MARGIN, progress=False)
    rows = read_csv(out / "calibration_probabilities.csv")
    assert len(rows) == len(result.rows) == 4 and result.cases == list(CASES)
    for row in rows:
        label = LABELS[row["structure"]]
        p, y = _direct(folders, label, row["region"])
        assert int(row["voxels"]) == p.size and row["reference"] == "reference" and row["cases"] == "2"
        assert float(row["ece"]) == pytest.approx(_textbook_ece(p, y, 10), abs=1e-9)
        assert float(row["brier"]) == pytest.approx(np.mean((p.astype(np.float64) - y) ** 2), abs=1e-9)
        expected = compute_calibration(p, y, n_bins=10)
        assert float(row["adaptive_ece"]) == pytest.approx(expected["adaptive_ece"], abs=1e-12)
        assert float(row["mce"]) == pytest.approx(expected["mce"], abs=1e-12)
    whole = [r for r in rows if r["region"] == "whole_image"]
    assert all(int(r["voxels"]) == 2 * np.prod(SHAPE) for r in whole)
    data = json.loads((out / "calibration_probabilities.json").read_text())
    assert len(data["rows"][0]["reliability"]) == 10 and data["settings"]["margin_mm"] == MARGIN
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["reliability_bladder.png", "reliability_rectum.png"]


def test_readers_fraction_each_reader_and_pooled(folders):
    out = folders["tmp"] / "calibration"
    result = evaluate_probabilities(folders["pred"], folders["ref"], out, margin_mm=MARGIN, plots=False,
                                    readers_dir=folders["readers"], reader_structure="bladder", progress=False)
    rows = {(r["structure"], r["region"], r["reference"]): r for r in result.rows}
    for region in ("whole_image", "near_structure"):
        fraction = rows[("bladder", region, "readers_fraction")]
        p, y = _direct(folders, 1, region, lambda _, masks: np.mean(masks, axis=0))
        assert fraction["bins"] == 50
        assert fraction["ece"] == pytest.approx(_textbook_ece(p, y, 50), abs=1e-9)
        assert fraction["brier"] == pytest.approx(np.mean((p.astype(np.float64) - y) ** 2), abs=1e-9)
        per_reader = []
        for r in range(3):
            row = rows[("bladder", region, f"reader:r{r}_t1")]
            p, y = _direct(folders, 1, region, lambda _, masks, r=r: masks[r])
            assert row["brier"] == pytest.approx(np.mean((p.astype(np.float64) - y) ** 2), abs=1e-9)
            assert row["ece"] == pytest.approx(_textbook_ece(p, y, 50), abs=1e-9)
            per_reader.append(row["brier"])
        pooled = rows[("bladder", region, "readers_pooled")]
        assert pooled["brier"] == pytest.approx(np.mean(per_reader), abs=1e-12)
        assert pooled["ece"] == pytest.approx(fraction["ece"], abs=1e-12)  # same voxels, same mean y per bin
        assert pooled["voxels"] == fraction["voxels"] == p.size and pooled["cases"] == fraction["cases"] == 2
    assert ("rectum", "whole_image", "readers_fraction") not in rows and len(rows) == 2 * (2 + 1 + 1 + 3)


def test_confidence_model_channels_are_levels(tmp_path):
    """A confidence model (K = 2): channel c - 1 is P(level >= c), compared with reference level >= c."""
    (tmp_path / "ref").mkdir()
    reference = np.zeros(SHAPE, np.uint8)
    reference[1:5, 2:12, 2:14] = 1
    reference[2:4, 4:9, 5:10] = 2
    write_image(tmp_path / "ref" / "c.nii.gz", reference, **GRID)
    rng = np.random.default_rng(4)
    at_least = np.stack([np.clip((reference >= c) * 0.7 + rng.random(SHAPE) * 0.3, 0, 1) for c in (1, 2)])
    at_least[1] = np.minimum(at_least[1], at_least[0])
    (tmp_path / "pred").mkdir()
    np.savez_compressed(tmp_path / "pred" / "c.npz", probabilities=at_least.astype(np.float32))
    (tmp_path / "pred" / "dataset.json").write_text(json.dumps({
        "labels": {"background": 0, "level>=1": [1, 2], "level>=2": [2]}, "regions_class_order": [1, 2],
        "file_ending": ".nii.gz", "radconf": {"ordinal": True, "levels": 2}}))
    result = evaluate_probabilities(tmp_path / "pred", tmp_path / "ref", tmp_path / "out", plots=False,
                                    progress=False)
    whole = {r["structure"]: r for r in result.rows if r["region"] == "whole_image"}
    for c in (1, 2):
        p, y = at_least[c - 1].astype(np.float32).astype(np.float64), (reference >= c).astype(float)
        assert whole[f"level>={c}"]["brier"] == pytest.approx(np.mean((p - y) ** 2), abs=1e-9)
    assert (tmp_path / "out" / "calibration_probabilities.csv").is_file()


def _snapshot(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("problem", ["missing npz", "channels", "corrupt npz", "NaN", "output inside -ref",
                                     "reader grid"])
def test_bad_inputs_are_refused_naming_the_file(folders, problem, capsys):
    out = folders["tmp"] / "calibration"
    named, error = {
        "missing npz": ("case_001.npz", MissingInput),
        "channels": ("case_001.npz", InvalidInput),
        "corrupt npz": ("case_000.npz", InvalidInput),
        "NaN": ("case_001.npz", InvalidInput),
        "output inside -ref": (str(folders["ref"]), InvalidInput),
        "reader grid": ("r1_t1.nii.gz", InvalidInput),
    }[problem]
    if problem == "missing npz":
        (folders["pred"] / "case_001.npz").unlink()
    elif problem == "channels":
        np.savez_compressed(folders["pred"] / "case_001.npz", probabilities=np.zeros((2, *SHAPE), np.float32))
    elif problem == "corrupt npz":
        data = (folders["pred"] / "case_000.npz").read_bytes()
        (folders["pred"] / "case_000.npz").write_bytes(data[: len(data) // 2])
    elif problem == "NaN":
        probabilities = folders["arrays"]["case_001"][1].copy()
        probabilities[0, 0, 0, 0] = np.nan
        np.savez_compressed(folders["pred"] / "case_001.npz", probabilities=probabilities)
    elif problem == "output inside -ref":
        out = folders["ref"] / "calibration"
    else:
        write_image(folders["readers"] / "case_001" / "r1_t1.nii.gz", np.zeros(SHAPE, np.uint8),
                    **{**GRID, "origin": (5.0, 0.0, 0.0)})
    before = _snapshot(folders["tmp"])
    extra = ["--readers", str(folders["readers"]), "--reader_structure", "bladder"]
    with pytest.raises(error, match=re.escape(named)):
        evaluate_probabilities(folders["pred"], folders["ref"], out, progress=False, readers_dir=extra[1],
                               reader_structure="bladder")
    code = main(["-ref", str(folders["ref"]), "--probabilities", str(folders["pred"]), "-o", str(out), *extra])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert [line for line in err.splitlines() if "error:" in line] == [line for line in err.splitlines()
                                                                       if line.startswith("radconf: error:")]
    assert len([line for line in err.splitlines() if "error:" in line]) == 1 and named in err
    assert _snapshot(folders["tmp"]) == before  # nothing written


def test_cli_success_and_flag_combinations(folders, capsys):
    out = folders["tmp"] / "calibration"
    code = main(["-ref", str(folders["ref"]), "--probabilities", str(folders["pred"]), "-o", str(out), "--bins", "10",
                 "--calibration_margin", "2", "--readers", str(folders["readers"]), "--reader_structure", "1",
                 "-l", "bladder", "--no_plots"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "bladder: ECE" in captured.out and "reader fraction" in captured.out and "rectum" not in captured.out
    rows = read_csv(out / "calibration_probabilities.csv")
    assert {r["structure"] for r in rows} == {"bladder"} and not (out / "plots").exists()
    assert {r["bins"] for r in rows if r["reference"] == "reference"} == {"10"}
    for argv, words in ((["-ref", str(folders["ref"]), "-o", str(out)], ("-pred", "--probabilities")),
                        (["-ref", str(folders["ref"]), "-pred", str(folders["pred"]), "--probabilities",
                          str(folders["pred"])], ("not both",)),
                        (["-ref", str(folders["ref"]), "-pred", str(folders["pred"]), "--readers", "x"],
                         ("--readers", "--probabilities")),
                        (["-ref", str(folders["ref"]), "--probabilities", str(folders["pred"]), "--readers",
                          str(folders["readers"])], ("--reader_structure",)),
                        (["-ref", str(folders["ref"]), "--probabilities", str(folders["pred"]), "-l", "spleen"],
                         ("-l", "spleen", "bladder=1"))):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and all(word in err for word in words), err
