"""Tripwire: nnU-Net's data loader crops channels stacked onto a dataset's segmentation with the patch's own box and
pads them with -1 (``radconf.nnunet_compat.extra_channels``, which the distance-head targets rely on)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from radconf.nnunet_compat.extra_channels import (
    StackedChannels,
    WithSegmentationChannels,
    segmentation_file,
)


def _extra(case: str) -> np.ndarray:
    """The channel stacked onto the case: a code of each voxel's position (never -1)."""
    z, y, x = np.indices((6, 10, 12))
    return (z * 1000 + y * 50 + x)[None].astype(np.int16)


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    seg = np.zeros((1, 6, 10, 12), np.int8)
    seg[0, 2:4, 3:6, 4:8] = 1
    locations = {1: np.argwhere(seg == 1)}
    nnUNetDatasetBlosc2.save_case(rng.random((1, 6, 10, 12), dtype=np.float32), seg,
                                  {"class_locations": locations}, str(tmp_path / "case_0"),
                                  chunks=(1, 6, 10, 12), blocks=(1, 6, 10, 12), chunks_seg=(1, 6, 10, 12),
                                  blocks_seg=(1, 6, 10, 12))
    return WithSegmentationChannels(nnUNetDatasetBlosc2(str(tmp_path), ["case_0"]), _extra)


def test_the_loader_crops_the_extra_channels_with_the_patch(dataset):
    labels = LabelManager({"background": 0, "x": 1}, regions_class_order=None)
    loader = nnUNetDataLoader(dataset, 4, (8, 8, 8), (8, 8, 8), labels, oversample_foreground_percent=0.5)
    position = _extra("case_0")[0]
    for _ in range(3):
        batch = loader.generate_train_batch()
        segmentation = batch["target"]
        assert segmentation.shape == (4, 2, 8, 8, 8)
        for sample in segmentation.numpy():
            padded = sample[1] == -1
            assert padded.any()  # the case (6 slices) is thinner than the patch (8)
            np.testing.assert_array_equal(sample[0] == -1, padded)  # padded exactly where the labels are
            codes = sample[1][~padded]
            z, y, x = codes // 1000, codes % 1000 // 50, codes % 50
            np.testing.assert_array_equal(sample[0][~padded], dataset.dataset.load_case("case_0")[1][0][z, y, x])
            assert len(np.unique(codes)) == len(codes) and set(codes.tolist()) <= set(position.ravel().tolist())


def test_stacked_channels_read_only_the_crop_and_survive_pickling(dataset):
    restored = pickle.loads(pickle.dumps(dataset))
    _, seg, _, properties = restored.load_case("case_0")
    assert isinstance(seg, StackedChannels) and seg.shape == (2, 6, 10, 12)
    part = seg[(slice(None), slice(1, 3), slice(0, 4), slice(5, 9))]
    assert part.shape == (2, 2, 4, 4) and part.dtype == np.int16
    np.testing.assert_array_equal(part[1], _extra("case_0")[0, 1:3, 0:4, 5:9])
    assert restored.identifiers == ["case_0"] and 1 in properties["class_locations"]
    assert segmentation_file(restored.source_folder, "case_0").name == "case_0_seg.b2nd"
    with pytest.raises(FileNotFoundError, match="radconf_plan_and_preprocess"):
        segmentation_file(restored.source_folder, "missing")
