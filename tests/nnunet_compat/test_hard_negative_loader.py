"""Tripwire: nnU-Net's training loader asks ``get_bbox(shape, force_fg, properties['class_locations'])`` per sample,
so a dataset wrapper's ``ClassLocations`` reaches ``HardNegativeDataLoader`` and centres patches on false positives."""
from __future__ import annotations

import inspect
from functools import partial

import numpy as np
import pytest
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.label_handling.label_handling import LabelManager

from radconf.nnunet_compat.hard_negatives import (
    ClassLocations,
    HardNegativeDataLoader,
    WithFalsePositives,
    hard_negative_loader,
    trainer_module_global,
    with_hard_negative_sampling,
)

SHAPE = (6, 10, 12)
PATCH = (4, 4, 4)
FALSE_POSITIVES = np.array([[1, 2, 3], [4, 7, 9], [5, 0, 11]])


class _Dataset:
    """Two cases whose single channel holds each voxel's flat index (a patch's centre value names its voxel)."""

    identifiers = ("a", "b")

    def load_case(self, identifier):
        data = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(1, *SHAPE)
        seg = np.zeros((1, *SHAPE), dtype=np.int16)
        seg[0, 2:4, 4:6, 4:6] = 1
        return data, seg, None, {"class_locations": {1: np.argwhere(seg == 1)}}


def _loader(share: float, locations=None, oversample: float = 0.0):
    dataset = WithFalsePositives(_Dataset(), {"a": FALSE_POSITIVES} if locations is None else locations)
    make = hard_negative_loader(nnUNetDataLoader, share)
    return make(dataset, 4, PATCH, PATCH, LabelManager({"background": 0, "x": 1}, None),
                oversample_foreground_percent=oversample)


def _centres(loader, batches: int) -> list[int]:
    out = []
    for _ in range(batches):
        batch = loader.generate_train_batch()
        out += [int(v) for v in batch["data"][:, 0, PATCH[0] // 2, PATCH[1] // 2, PATCH[2] // 2]]
    return out


def test_nnunet_still_looks_the_loader_up_and_asks_get_bbox_with_class_locations():
    assert trainer_module_global("nnUNetDataLoader") is nnUNetDataLoader
    assert "nnUNetDataLoader(dataset_tr" in inspect.getsource(nnUNetTrainer.get_dataloaders)
    assert "get_tr_and_val_datasets()" in inspect.getsource(nnUNetTrainer.get_dataloaders)
    assert "self.get_bbox(shape, force_fg, properties['class_locations'])" in inspect.getsource(
        nnUNetDataLoader.generate_train_batch)


def test_share_one_centres_every_patch_of_a_case_with_false_positives_on_one():
    np.random.seed(0)
    loader = _loader(1.0, {"a": FALSE_POSITIVES, "b": FALSE_POSITIVES})
    assert type(loader) is HardNegativeDataLoader and loader.hard_negative_share == 1.0
    flat = {int(np.ravel_multi_index(tuple(v), SHAPE)) for v in FALSE_POSITIVES}
    assert set(_centres(loader, 10)) <= flat
    assert sum(c["false_positive"] for c in loader.counts.values()) == 40


def test_share_half_vs_untouched_case():
    np.random.seed(1)
    loader = _loader(0.5)  # case b has no false positives: always nnU-Net's choice
    _centres(loader, 100)
    a, b = loader.counts["a"], loader.counts["b"]
    drawn_a = sum(a.values())
    assert b["false_positive"] == 0 and sum(b.values()) > 100
    assert abs(a["false_positive"] - drawn_a / 2) < 4 * np.sqrt(drawn_a / 4)  # binomial, 4 sigma
    assert a["random"] == drawn_a - a["false_positive"]


def test_class_locations_stay_nnunets_and_validation_keeps_its_loader():
    _, _, _, properties = WithFalsePositives(_Dataset(), {"a": FALSE_POSITIVES}).load_case("a")
    locations = properties["class_locations"]
    assert isinstance(locations, ClassLocations) and list(locations) == [1] and locations.case == "a"
    assert np.array_equal(locations.false_positives, FALSE_POSITIVES)
    plain = hard_negative_loader(nnUNetDataLoader, 1.0)(_Dataset(), 2, PATCH, PATCH,
                                                        LabelManager({"background": 0, "x": 1}, None))
    assert type(plain) is nnUNetDataLoader


def test_composes_under_another_loader_subclass():
    class Outer(nnUNetDataLoader):
        def get_bbox(self, *args, **kwargs):
            lbs, ubs = super().get_bbox(*args, **kwargs)
            self.seen = lbs
            return lbs, ubs

    composed = with_hard_negative_sampling(Outer)
    assert composed.__mro__[1:3] == (Outer, HardNegativeDataLoader)
    loader = hard_negative_loader(partial(Outer), 1.0)(WithFalsePositives(_Dataset(), {"a": FALSE_POSITIVES}), 2,
                                                       PATCH, PATCH, LabelManager({"background": 0, "x": 1}, None))
    assert type(loader) is composed
    with pytest.raises(AttributeError):
        WithFalsePositives.__getattr__(object.__new__(WithFalsePositives), "dataset")


def test_loader_and_wrapped_dataset_pickle_for_augmentation_workers():
    import pickle

    loader = _loader(1.0, {"a": FALSE_POSITIVES, "b": FALSE_POSITIVES})
    copy = pickle.loads(pickle.dumps(loader))
    assert type(copy) is HardNegativeDataLoader and copy.hard_negative_share == 1.0
    locations = copy._data.load_case("a")[3]["class_locations"]
    assert isinstance(locations, ClassLocations) and locations.case == "a"
    assert np.array_equal(locations.false_positives, FALSE_POSITIVES)
    np.random.seed(2)
    flat = {int(np.ravel_multi_index(tuple(v), SHAPE)) for v in FALSE_POSITIVES}
    assert set(_centres(copy, 2)) <= flat
