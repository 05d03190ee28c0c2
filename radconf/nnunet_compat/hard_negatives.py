"""Hard-negative patch centres for nnU-Net's training data loader (reach into its loader, dataset and properties).

nnU-Net's ``nnUNetDataLoader.generate_train_batch`` loads ``(data, seg, seg_prev, properties)`` with the dataset's
``load_case`` and calls ``self.get_bbox(shape, force_fg, properties['class_locations'])`` for every sample. Here:

* ``WithFalsePositives`` wraps the training dataset: its ``load_case`` returns the properties with
  ``class_locations`` replaced by a ``ClassLocations`` (a plain ``dict`` of the same entries, so nnU-Net's foreground
  oversampling sees exactly its own locations) that also carries the case's false-positive voxels and identifier. The
  locations travel with the case, never by batch position, and the wrapper pickles for the augmentation workers.
* ``HardNegativeDataLoader`` overrides ``get_bbox`` one level above nnU-Net's: with probability
  ``hard_negative_share`` (cases with false positives only) the patch is centred on a random false-positive voxel
  (padded where it reaches outside the case); otherwise nnU-Net's own choice, unchanged. Another loader subclass
  (e.g. the 2.5D ``SliceContextDataLoader``) is composed above it (``with_hard_negative_sampling``), so its own
  ``get_bbox`` still post-processes the box.
* ``case_geometry`` reads the case properties that map raw voxels into the preprocessed case.

``tests/nnunet_compat/test_hard_negative_loader.py`` fails if nnU-Net stops working this way.
"""
from __future__ import annotations

from functools import partial

import numpy as np
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader

from radconf.sampling.predictions import CaseGeometry

KINDS = ("false_positive", "foreground", "random")


class ClassLocations(dict):
    """nnU-Net's ``class_locations`` of a case plus ``false_positives`` (``(n, d)`` preprocessed indices) and
    ``case`` (its identifier)."""

    def __init__(self, locations: dict, false_positives: np.ndarray, case: str):
        super().__init__(locations)
        self.false_positives, self.case = false_positives, case


class WithFalsePositives:
    """A view of an nnU-Net dataset whose ``load_case`` properties carry the case's false-positive voxels.

    Args:
        dataset: an nnU-Net dataset.
        locations: case identifier -> ``(n, d)`` preprocessed indices (cases left out have none).
    """

    carries_false_positives = True

    def __init__(self, dataset, locations: dict[str, np.ndarray]):
        self.dataset, self.locations = dataset, locations

    def __getattr__(self, name):
        if name in ("dataset", "locations"):  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, identifier):
        return self.load_case(identifier)

    def load_case(self, identifier):
        data, seg, seg_prev, properties = self.dataset.load_case(identifier)
        found = self.locations.get(identifier)
        found = np.zeros((0, len(data.shape) - 1), dtype=np.int64) if found is None else found
        properties = {**properties, "class_locations": ClassLocations(properties["class_locations"], found,
                                                                        identifier)}
        return data, seg, seg_prev, properties


class HardNegativeDataLoader(nnUNetDataLoader):
    """nnU-Net's loader that centres a share of the patches on false-positive voxels (see the module docstring).

    ``counts[case][kind]`` counts the boxes this loader (this process) drew: ``false_positive`` (centred on a false
    positive), ``foreground`` (nnU-Net's foreground oversampling asked for; it falls back to random in a case without
    foreground) and ``random``.
    """

    hard_negative_share = 0.0

    def get_bbox(self, data_shape, force_fg, class_locations, overwrite_class=None, verbose=False):
        found = getattr(class_locations, "false_positives", None)
        case = getattr(class_locations, "case", None)
        if found is not None and len(found) and np.random.uniform() < self.hard_negative_share:
            voxel = found[np.random.randint(len(found))]
            lbs = [int(voxel[i]) - self.patch_size[i] // 2 for i in range(len(data_shape))]
            self._count(case, "false_positive")
            return lbs, [lb + p for lb, p in zip(lbs, self.patch_size)]
        self._count(case, "foreground" if force_fg else "random")
        return super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)

    def _count(self, case: str | None, kind: str) -> None:
        if case is not None:
            counts = self.__dict__.setdefault("counts", {})
            counts.setdefault(case, dict.fromkeys(KINDS, 0))[kind] += 1


def with_hard_negative_sampling(base: type) -> type:
    """``base`` (``nnUNetDataLoader`` or a subclass) with ``HardNegativeDataLoader`` just above nnU-Net's loader in
    its MRO; the composed class is defined in this module (picklable by name once made)."""
    if issubclass(base, HardNegativeDataLoader):
        return base
    if base is nnUNetDataLoader:
        return HardNegativeDataLoader
    name = f"HardNegative{base.__name__}"
    if name not in globals():
        globals()[name] = type(name, (base, HardNegativeDataLoader), {"__module__": __name__, "__qualname__": name})
    return globals()[name]


def hard_negative_loader(current, share: float):
    """A stand-in for nnU-Net's ``nnUNetDataLoader`` global while ``get_dataloaders`` runs: a dataset that carries
    false positives (the training one) gets ``current`` (a loader class or a ``functools.partial`` of one) composed
    with hard-negative sampling at ``share``; any other dataset (validation) gets ``current`` unchanged."""
    def make(data, *args, **kwargs):
        if not getattr(data, "carries_false_positives", False):
            return current(data, *args, **kwargs)
        base, extra = (current.func, dict(current.keywords)) if isinstance(current, partial) else (current, {})
        loader = with_hard_negative_sampling(base)(data, *args, **{**extra, **kwargs})
        loader.hard_negative_share = float(share)
        return loader
    return make


def trainer_module_global(name: str):
    """The current value of a global of nnU-Net's trainer module (e.g. another mixin's loader substitution)."""
    import sys

    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    return getattr(sys.modules[nnUNetTrainer.__module__], name)


def training_data_loader(augmenter):
    """The data loader behind nnU-Net's augmenter (single-threaded: ``data_loader``; workers: ``generator``)."""
    return getattr(augmenter, "data_loader", None) or getattr(augmenter, "generator", None)


def loader_counts(augmenter) -> dict | None:
    """The training loader's per-case counts when augmentation runs in this process (``nnUNet_n_proc_DA=0``:
    nnU-Net's ``SingleThreadedAugmenter``), else None (each worker process counts its own copy)."""
    from batchgenerators.dataloading.single_threaded_augmenter import (
        SingleThreadedAugmenter,
    )

    if not isinstance(augmenter, SingleThreadedAugmenter):
        return None
    return {case: dict(kinds) for case, kinds in getattr(augmenter.data_loader, "counts", {}).items()}


def case_geometry(preprocessed_folder: str, case: str, transpose_forward) -> CaseGeometry:
    """A preprocessed case's :class:`CaseGeometry` from nnU-Net's properties (``<case>.pkl``) and its array."""
    from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

    data, _, _, properties = infer_dataset_class(preprocessed_folder)(preprocessed_folder, [case]).load_case(case)
    return CaseGeometry(tuple(int(a) for a in transpose_forward),
                        tuple((int(lo), int(hi)) for lo, hi in properties["bbox_used_for_cropping"]),
                        tuple(int(s) for s in properties["shape_before_cropping"]),
                        tuple(int(s) for s in properties["shape_after_cropping_and_before_resampling"]),
                        tuple(int(s) for s in data.shape[1:]))
