"""The distance head's training targets: exact where the patch can tell, the whole case's distance elsewhere.

For each training patch and structure the target is

- where the patch certifies the distance (its nearest structure voxel inside the patch is no farther than the patch
  edge): that exact distance, computed on the augmented labels (``radconf.anatomy.distance.certified_distance``);
- elsewhere: the case's precomputed distance map (``radconf.anatomy.distance_targets``), cropped with the patch,
  resampled by nnU-Net's spatial augmentation like an image (it travels as the ``regression_target``) and divided
  by the augmentation's scale factor, then kept within what the patch proves: at least the distance to the patch
  edge (a structure voxel outside the patch is at least that far) and at most the distance to the structure voxels
  the patch holds;
- not used (weight 0) where neither is known: padding beyond the image, a structure the case does not have.

The pipeline: ``DistanceCodesToTarget`` (first) moves the map's int16 codes out of the segmentation, into which the
dataset wrapper stacked them so that nnU-Net's loader crops them with the patch; nnU-Net's spatial transforms
resample the ``regression_target`` (``RecordsScale`` notes their scale); ``StashDistance`` puts it aside before a
transform that would drop it; ``DistanceTargetTransform`` (last) appends ``[d_1..d_T, valid_1..valid_T]`` to the
full-resolution segmentation for the loss.
"""
from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import (
    BasicTransform,
    ImageOnlyTransform,
    SegOnlyTransform,
)
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.random import RandomTransform

from radconf.anatomy.distance import (
    certified_distance,
    distance_to_exterior,
    normalise_distance,
)
from radconf.anatomy.distance_targets import decode_distance

CARRIED = "radconf_distance"  # data_dict key of the resampled map, once stashed
SCALE = "radconf_distance_scale"  # data_dict key of the spatial augmentation's scale factor
_FULL = 0.999  # the validity channel is 1 where the whole interpolation support lay inside the crop


class DistanceCodesToTarget(BasicTransform):
    """Segmentation channels ``1..count`` (distance codes) -> ``regression_target`` = ``[mm..., validity]``."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count

    def apply(self, data_dict, **params):
        segmentation = data_dict["segmentation"]
        codes = segmentation[1:1 + self.count]
        distance = torch.from_numpy(decode_distance(codes.numpy()))
        data_dict["regression_target"] = torch.cat([distance, torch.ones_like(distance[:1])])
        data_dict["segmentation"] = torch.cat([segmentation[:1], segmentation[1 + self.count:]])
        data_dict[SCALE] = 1.0
        return data_dict


class RecordsScale(BasicTransform):
    """nnU-Net's ``SpatialTransform``, plus its scale factor (``|det A| ** (1 / dim)``) noted in the data dict."""

    def __init__(self, spatial: SpatialTransform):
        super().__init__()
        self.spatial = spatial

    def __call__(self, **data_dict) -> dict:
        params = self.spatial.get_parameters(**data_dict)
        data_dict = self.spatial.apply(data_dict, **params)
        affine = params.get("affine")
        if affine is not None:  # output voxel y samples input voxel A y: input distances are |det A|^(1/n) larger
            data_dict[SCALE] = data_dict.get(SCALE, 1.0) * float(abs(np.linalg.det(affine)) ** (1.0 / len(affine)))
        return data_dict


class StashDistance(BasicTransform):
    """Moves the ``regression_target`` aside (``CARRIED``) before transforms that do not carry it."""

    def apply(self, data_dict, **params):
        data_dict[CARRIED] = data_dict.pop("regression_target")
        return data_dict


def _carries_regression_target(transform) -> bool:
    if isinstance(transform, RandomTransform):
        return _carries_regression_target(transform.transform)
    if isinstance(transform, RecordsScale):
        return True
    return type(transform)._apply_to_regr_target is not BasicTransform._apply_to_regr_target


def _ignores_regression_target(transform) -> bool:
    if isinstance(transform, RandomTransform):
        return _ignores_regression_target(transform.transform)
    return isinstance(transform, (ImageOnlyTransform, SegOnlyTransform))


def with_distance_targets(transforms, count: int, target: BasicTransform):
    """nnU-Net's transform pipeline with the carried distance maps (module docstring) and ``target`` last.

    Raises:
        RuntimeError: a transform between the spatial ones would drop the map (an unsupported nnU-Net version).
    """
    steps = [RecordsScale(t) if isinstance(t, SpatialTransform) else t for t in transforms.transforms]
    carriers = [i for i, t in enumerate(steps) if _carries_regression_target(t)]
    stash_at = carriers[-1] + 1 if carriers else 0
    for step in steps[:stash_at]:
        if not (_carries_regression_target(step) or _ignores_regression_target(step)):
            raise RuntimeError(f"nnU-Net's training transform {type(step).__name__} sits between spatial transforms "
                               f"and would drop the distance targets; this nnU-Net version is not supported by the "
                               f"distance-head trainers.")
    transforms.transforms = [DistanceCodesToTarget(count), *steps[:stash_at], StashDistance(), *steps[stash_at:],
                             target]
    return transforms


class DistanceTargetTransform(BasicTransform):
    """Appends the distance targets to the full-resolution segmentation: ``[labels, d_1..d_T, valid_1..valid_T]``.

    ``d`` is normalised (``d / (d + scale_mm)``); where a data dict carries no map (``CARRIED``), only the voxels the
    patch certifies are targets. Runs last, after nnU-Net's deep-supervision downsampling; the full-resolution target
    becomes float32 (the label values stay exact) and the lower resolutions are untouched.
    """

    def __init__(self, labels, spacing, signed: bool, scale_mm: float):
        super().__init__()
        self.labels, self.spacing, self.signed, self.scale_mm = list(labels), tuple(spacing), signed, scale_mm

    def apply(self, data_dict, **params):
        segmentation = data_dict["segmentation"]
        full = segmentation[0] if isinstance(segmentation, list) else segmentation
        label_map = full[0].numpy()
        carried = data_dict.pop(CARRIED, None)
        scale = float(data_dict.pop(SCALE, 1.0))
        inside_crop = None if carried is None else carried[-1].numpy() >= _FULL
        distances, valids = [], []
        for index, label in enumerate(self.labels):
            own = None if carried is None else (carried[index].numpy() / scale, inside_crop)
            distance, valid = self.target(label_map == label, own)
            distances.append(normalise_distance(np.where(valid, distance, 0), self.scale_mm))
            valids.append(valid)
        targets = torch.from_numpy(np.stack(distances + valids).astype(np.float32))
        full = torch.cat([full.float(), targets])
        data_dict["segmentation"] = [full, *segmentation[1:]] if isinstance(segmentation, list) else full
        return data_dict

    def target(self, mask: np.ndarray, carried: tuple[np.ndarray, np.ndarray] | None):
        """``(distance_mm, valid)`` of one structure in one patch (module docstring)."""
        exact, certified = certified_distance(mask, self.spacing, self.signed)
        if carried is None:
            return exact, certified
        whole, inside_crop = carried
        known = inside_crop & np.isfinite(whole)
        lower = distance_to_exterior(mask.shape, self.spacing)
        upper = np.abs(exact)  # inf where the patch holds no structure (or, signed inside, no outside) voxel
        magnitude = np.clip(np.abs(np.where(known, whole, 0)), lower, np.maximum(lower, upper))
        if self.signed:
            estimate = np.where(mask, -magnitude, magnitude)
        else:
            estimate = np.where(mask, 0.0, magnitude)
        return np.where(certified, exact, estimate).astype(np.float32), certified | known
