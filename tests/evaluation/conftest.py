"""Fixtures of the evaluation tests: shapes with known geometry and small label-image folders in tmp_path."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def blob(shape: tuple[int, ...], seed: int, threshold: float = 0.0, smooth: float = 2.0) -> np.ndarray:
    """A random smooth blob (thresholded smoothed noise): irregular surfaces with concavities and holes."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), smooth)
    return field > threshold + field.std() * 0.3


def ellipsoid(shape: tuple[int, ...], centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
    """Voxels whose centres lie inside an axis-aligned ellipsoid (voxel units)."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij", sparse=True)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0


@pytest.fixture
def write_label_image():
    """Returns ``write(path, array_zyx, spacing_xyz=(1, 1, 1), origin=(0, 0, 0), pixel=None)`` (SimpleITK)."""
    import SimpleITK as sitk

    def write(path: Path, array: np.ndarray, spacing_xyz=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=None):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(tuple(float(s) for s in spacing_xyz))
        image.SetOrigin(tuple(float(o) for o in origin))
        if direction is not None:
            image.SetDirection(direction)
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path))
        return path

    return write


SPACING_XYZ = (0.8, 1.1, 2.5)  # SimpleITK order; numpy (z, y, x) order is (2.5, 1.1, 0.8)
LABELS = {"background": 0, "bladder": 1, "rectum": 2}


def make_case(seed: int, shape=(12, 20, 22)) -> tuple[np.ndarray, np.ndarray]:
    """Reference and prediction label maps (z, y, x) with two structures; the prediction is shifted and eroded."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    ref = np.zeros(shape, dtype=np.uint8)
    ref[ellipsoid(shape, (6, 7 + rng.integers(0, 2), 7), (3.5, 4.0, 4.5))] = 1
    ref[ellipsoid(shape, (5, 13, 15), (2.5, 3.0, 3.0 + rng.integers(0, 2)))] = 2
    pred = np.zeros_like(ref)
    pred[np.roll(ref == 1, 1, axis=2)] = 1
    pred[ndimage.binary_erosion(ref == 2) | (np.roll(ref == 2, 1, axis=1) & (rng.random(shape) > 0.3))] = 2
    return ref, pred


@pytest.fixture
def label_folders(tmp_path: Path, write_label_image):
    """nnU-Net-style folders: Dataset/labelsTr (3 cases), Dataset/dataset.json and predictions/ (3 cases)."""
    dataset = tmp_path / "Dataset501_Test"
    ref_dir, pred_dir = dataset / "labelsTr", tmp_path / "predictions"
    arrays = {}
    for i in range(3):
        ref, pred = make_case(i)
        case = f"case_{i:03d}"
        write_label_image(ref_dir / f"{case}.nii.gz", ref, SPACING_XYZ, origin=(10.0, -5.0, 3.0))
        write_label_image(pred_dir / f"{case}.nii.gz", pred, SPACING_XYZ, origin=(10.0, -5.0, 3.0))
        arrays[case] = (ref, pred)
    (dataset / "dataset.json").write_text(json.dumps({"labels": LABELS, "file_ending": ".nii.gz", "numTraining": 3}))
    return {"ref": ref_dir, "pred": pred_dir, "dataset_json": dataset / "dataset.json", "arrays": arrays,
            "tmp": tmp_path}


@pytest.fixture
def shapes():
    """The shape helpers of this conftest (test modules cannot import a conftest reliably)."""
    from types import SimpleNamespace

    return SimpleNamespace(blob=blob, ellipsoid=ellipsoid, make_case=make_case, spacing_xyz=SPACING_XYZ, labels=LABELS)
