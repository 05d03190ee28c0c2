"""The distance head's targets through nnU-Net's own transform pipelines: every voxel of a patch gets the whole case's
distance (not only those the patch certifies), spatial scaling is corrected, and the patch's exact bounds hold."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.compose import ComposeTransforms
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from radconf.trainers.distance_targets import (
    CARRIED,
    SCALE,
    DistanceTargetTransform,
    StashDistance,
    with_distance_targets,
)
from scipy.ndimage import distance_transform_edt

from radconf.anatomy.distance import certified_distance, normalise_distance
from radconf.anatomy.distance_targets import encode_distance, signed_distance_mm

SPACING = (3.0, 1.0, 1.0)


def _case() -> np.ndarray:
    """A (z, y, x) label map with one sphere-like structure (label 1) near a corner."""
    z, y, x = np.ogrid[:20, :40, :40]
    return ((((z - 4) * 3.0) ** 2 + (y - 6) ** 2 + (x - 6) ** 2) <= 25).astype(np.int16)


def _loader_crop(labels: np.ndarray, box) -> torch.Tensor:
    """What nnU-Net's loader hands the transforms: the segmentation with the case's codes stacked, cropped, -1 padding."""
    stacked = np.concatenate([labels[None], encode_distance(signed_distance_mm(labels == 1, SPACING))[None]])
    padded = np.pad(stacked, [(0, 0)] + [(max(0, -lo), max(0, hi - n)) for (lo, hi), n in zip(box, labels.shape)],
                    constant_values=-1)
    slices = tuple(slice(lo + max(0, -l0), hi + max(0, -l0)) for (lo, hi), (l0, _) in zip(box, box))
    return torch.from_numpy(padded[(slice(None), *slices)].astype(np.int16))


def _validation_pipeline(signed: bool = False):
    transforms = nnUNetTrainer.get_validation_transforms(deep_supervision_scales=None, is_cascaded=False,
                                                         foreground_labels=[1], regions=None, ignore_label=None)
    return with_distance_targets(transforms, 1, DistanceTargetTransform([1], SPACING, signed, 20.0))


def test_a_patch_without_the_structure_gets_the_whole_case_distance_everywhere():
    labels = _case()
    box = [(8, 20), (20, 40), (20, 40)]  # far from the structure: the patch certifies nothing
    crop = _loader_crop(labels, box)
    out = _validation_pipeline()(image=torch.zeros((1, 12, 20, 20)), segmentation=crop)["segmentation"]
    assert out.shape == (3, 12, 20, 20) and torch.equal(out[0], torch.zeros((12, 20, 20)))
    whole = distance_transform_edt(labels != 1, sampling=SPACING)[8:20, 20:40, 20:40]
    assert out[2].min() == 1  # every voxel is a target
    np.testing.assert_allclose(out[1].numpy(), normalise_distance(whole, 20.0), atol=2e-3)


def test_padding_beyond_the_image_gets_only_certified_targets_and_signed_maps_are_negative_inside():
    labels = _case()
    box = [(-4, 8), (-5, 15), (0, 20)]  # holds the structure and 4 slices / 5 rows of padding
    out = _validation_pipeline(signed=True)(image=torch.zeros((1, 12, 20, 20)),
                                            segmentation=_loader_crop(labels, box))["segmentation"]
    valid = out[2].numpy().astype(bool)
    padding = np.ones((12, 20, 20), bool)
    padding[4:, 5:] = False
    _, certified = certified_distance(out[0].numpy() == 1, SPACING, signed=True)
    assert valid[~padding].all() and not valid[padding & ~certified].any()
    assert valid[padding & certified].all() and (padding & ~certified).any()
    inside = labels[0:8, 0:15, 0:20] == 1
    assert (out[1].numpy()[4:, 5:][inside] < 0).all() and (out[1].numpy()[4:, 5:][~inside] > 0).all()


@pytest.mark.parametrize("dummy_2d", [False, True])
def test_nnunets_training_pipeline_carries_the_map_to_most_voxels(dummy_2d):
    """nnU-Net's own augmentation (rotation, scaling, intensity, mirroring; the pseudo-2D variant that anisotropic
    data gets): the pipeline is accepted and most voxels of a patch far from the structure get a finite target."""
    labels = _case()
    transforms = nnUNetTrainer.get_training_transforms(
        (12, 20, 20), rotation_for_DA=(-0.5, 0.5), deep_supervision_scales=[[1, 1, 1], [0.5, 0.5, 0.5]],
        mirror_axes=(0, 1, 2), do_dummy_2d_data_aug=dummy_2d, foreground_labels=[1])
    pipeline = with_distance_targets(transforms, 1, DistanceTargetTransform([1], SPACING, False, 20.0))
    depth = 12 if dummy_2d else 16  # nnU-Net's loader crops more than the patch where augmentation may rotate
    box = [(10 - depth // 2, 10 + depth // 2), (12, 40), (12, 40)]
    torch.manual_seed(0)
    np.random.seed(0)
    for _ in range(4):
        full = pipeline(image=torch.zeros((1, depth, 28, 28)), segmentation=_loader_crop(labels, box))
        full = full["segmentation"][0]
        assert full.shape == (3, 12, 20, 20) and torch.isfinite(full).all()
        assert full[2].mean() > 0.9 and full[1][full[2] > 0].min() >= 0


def test_carried_map_follows_spatial_scaling_with_the_scale_corrected():
    labels = np.zeros((40, 40, 40), np.int16)
    z, y, x = np.ogrid[:40, :40, :40]
    labels[((z - 20) ** 2 + (y - 20) ** 2 + (x - 20) ** 2) <= 36] = 1
    codes = encode_distance(signed_distance_mm(labels == 1, (1.0, 1.0, 1.0)))
    spatial = SpatialTransform((32, 32, 32), patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0,
                               p_rotation=0, p_scaling=1, scaling=(1.25, 1.25), mode_seg="nearest")
    pipeline = with_distance_targets(ComposeTransforms([spatial]), 1, ComposeTransforms([]))  # map, no targets
    out = pipeline(image=torch.zeros((1, 40, 40, 40)),
                   segmentation=torch.from_numpy(np.stack([labels, codes])))
    assert out[SCALE] == pytest.approx(1.25)
    augmented = out["segmentation"][0].numpy() == 1  # the sphere, now 1.25 times smaller, whole inside the patch
    truth = distance_transform_edt(~augmented)
    outside = ~augmented & (out[CARRIED][1].numpy() >= 0.999)
    error = np.abs(np.maximum(out[CARRIED][0].numpy(), 0) / out[SCALE] - truth)[outside]
    uncorrected = np.abs(np.maximum(out[CARRIED][0].numpy(), 0) - truth)[outside]
    assert error.mean() < 0.5 and uncorrected.mean() > 1.5


def test_estimates_are_kept_within_what_the_patch_proves():
    transform = DistanceTargetTransform([1], (1.0, 1.0, 1.0), signed=False, scale_mm=20.0)
    mask = np.zeros((1, 1, 4), bool)  # no structure voxel in the patch: no upper bound, lower bound 1 mm (edge)
    whole = np.array([[[0.5, 3.0, np.nan, 7.0]]], np.float32)
    inside_crop = np.array([[[True, True, True, False]]])
    distance, valid = transform.target(mask, (whole, inside_crop))
    np.testing.assert_array_equal(valid, [[[True, True, False, False]]])
    np.testing.assert_allclose(distance[valid], [1.0, 3.0])  # 0.5 is impossible: raised to the patch-edge bound

    mask = np.zeros((1, 1, 6), bool)
    mask[0, 0, 0] = True  # a structure voxel in the patch: nothing can be farther than it
    whole = np.array([[[0.0, 0.5, 9.0, 9.0, 9.0, 9.0]]], np.float32)
    distance, valid = transform.target(mask, (whole, np.ones_like(mask)))
    assert valid.all()
    np.testing.assert_allclose(distance, [[[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]])  # certified or capped at 1..5 mm


def test_a_transform_that_drops_the_map_between_spatial_ones_is_refused():
    class Opaque(BasicTransform):  # a BasicTransform that does not carry regression targets
        pass

    pipeline = ComposeTransforms([SpatialTransform((8, 8, 8), 0, False), Opaque(), MirrorTransform((0,))])
    with pytest.raises(RuntimeError, match="Opaque sits between spatial transforms"):
        with_distance_targets(pipeline, 1, StashDistance())
