"""Extra per-voxel channels that nnU-Net's data loader crops together with the segmentation.

nnU-Net's ``nnUNetDataLoader.generate_train_batch`` takes ``(data, seg, seg_prev, properties)`` from the dataset's
``load_case``, crops ``seg`` with ``crop_and_pad_nd(seg, bbox, -1, cast_cropped_to=np.int16)`` and hands the patch
to the transforms as ``segmentation``. ``WithSegmentationChannels`` wraps a dataset so that ``seg`` carries more
int16 channels after the label channel(s): they are cropped with exactly the patch's box and padded with -1, and
only the patch is read (the channels are stacked lazily, per crop). A transform at the start of the pipeline then
takes them out again (``radconf.trainers.distance_targets``). ``tests/nnunet_compat/`` fails if the loader stops
cropping this way.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np


class StackedChannels:
    """``(a; b)`` along axis 0, read lazily: indexing returns only the indexed part, as a numpy array."""

    def __init__(self, first, second):
        if tuple(first.shape[1:]) != tuple(second.shape[1:]):
            raise ValueError(f"cannot stack channels of shapes {first.shape} and {second.shape}")
        self.first, self.second = first, second
        self.shape = (first.shape[0] + second.shape[0], *first.shape[1:])
        self.ndim = len(self.shape)
        self.dtype = np.result_type(first.dtype, second.dtype)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if key and key[0] != slice(None):
            raise IndexError("StackedChannels only supports slicing every channel (key[0] == slice(None)).")
        return np.concatenate([np.asarray(self.first[key]), np.asarray(self.second[key])]).astype(self.dtype,
                                                                                                    copy=False)


class WithSegmentationChannels:
    """A view of an nnU-Net dataset whose ``load_case`` returns the segmentation plus ``channels(case)``.

    Args:
        dataset: an nnU-Net dataset (``nnUNetDatasetBlosc2``, ``nnUNetDatasetNumpy``, ...).
        channels: case identifier -> int16 array ``(n, *case shape)`` (e.g. a memory map).

    Everything else (``identifiers``, ``source_folder``, ...) is the wrapped dataset's. Picklable for nnU-Net's
    augmentation worker processes when ``channels`` is.
    """

    def __init__(self, dataset, channels: Callable[[str], np.ndarray]):
        self.dataset, self.channels = dataset, channels

    def __getattr__(self, name):
        if name in ("dataset", "channels"):  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, identifier):
        return self.load_case(identifier)

    def load_case(self, identifier):
        data, seg, seg_prev, properties = self.dataset.load_case(identifier)
        return data, StackedChannels(seg, self.channels(identifier)), seg_prev, properties


SEGMENTATION_FILES = ("{case}_seg.b2nd", "{case}_seg.npy", "{case}.npz")  # nnU-Net 2.8's preprocessed layouts


def segmentation_file(preprocessed_folder, case: str) -> Path:
    """The file holding a preprocessed case's segmentation (blosc2, unpacked numpy or npz), for change detection."""
    for pattern in SEGMENTATION_FILES:
        path = Path(preprocessed_folder) / pattern.format(case=case)
        if path.is_file():
            return path
    raise FileNotFoundError(f"{preprocessed_folder} holds no preprocessed segmentation of {case} "
                            f"({', '.join(p.format(case=case) for p in SEGMENTATION_FILES)}); run "
                            f"radconf_plan_and_preprocess again.")
