"""2.5D input: a 2D network that sees ``context_slices`` neighbouring axial slices as input channels.

``SliceContextMixin`` turns any nnU-Net trainer into a 2.5D one (``class MyTrainer(SliceContextMixin, SomeTrainer)``);
it touches only inputs (data loader, network input channels, sliding window), never the loss or the labels.
``nnUNetTrainerSliceContext5`` is nnU-Net's default trainer with 5 slices (centre +- 2). Use it with ``-c 2d``.

Conventions shared by training and inference (both use ``neighbour_index``):
- channel order: input channel major, slice minor. With S slices, network channel ``c * S + k`` holds input channel
  ``c`` of slice ``z - S // 2 + k``; the centre slice is ``k = S // 2``.
- out-of-volume neighbours: edge replication (slice ``-1`` repeats slice 0, slice ``D`` repeats slice ``D - 1``): a
  scan ends where the anatomy does not, so the nearest real slice is a better guess than zeros.
- the segmentation target is the centre slice only.
"""
from __future__ import annotations

from functools import cache, partial

import numpy as np
import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from radconf.errors import InvalidInput
from radconf.nnunet_compat.substitution import substitute_in_trainer_module
from radconf.trainers.input_steps import InputStepsMixin


def neighbour_index(centres: torch.Tensor, depth: int, context_slices: int) -> torch.Tensor:
    """Slice indices ``(S, len(centres))``: row k is ``centre - S // 2 + k``, clamped into ``[0, depth)``."""
    offsets = torch.arange(context_slices) - context_slices // 2
    return (offsets[:, None] + centres[None, :]).clamp_(0, depth - 1)


def stack_neighbour_slices(volume: torch.Tensor, context_slices: int) -> torch.Tensor:
    """``(c, D, y, x)`` -> ``(c * S, D, y, x)``: every slice with its neighbours as channels (see module docstring)."""
    index = neighbour_index(torch.arange(volume.shape[1]), volume.shape[1], context_slices)
    return volume[:, index.to(volume.device)].flatten(0, 1)


def check_context_slices(context_slices: int) -> None:
    if not isinstance(context_slices, int) or context_slices < 1 or context_slices % 2 == 0:
        raise InvalidInput(f"context_slices must be an odd positive int (centre slice +- n), got {context_slices!r}.")


class SliceContextDataLoader(nnUNetDataLoader):
    """nnU-Net's 2D loader with a crop of ``context_slices`` slices around the sampled slice.

    nnU-Net samples a pseudo-3D box of z extent 1 (foreground oversampling puts the chosen foreground voxel's slice
    there); this loader widens the box to S slices around that slice, replicates edge slices for neighbours outside
    the volume, stacks the slices as channels and keeps the centre slice's segmentation, then runs nnU-Net's 2D
    transforms on the result.
    """

    def __init__(self, *args, context_slices: int = 5, **kwargs):
        super().__init__(*args, **kwargs)
        check_context_slices(context_slices)
        if not self.patch_size_was_2d:
            raise InvalidInput("SliceContextDataLoader needs a 2D patch size (a 2d configuration).")
        self.context_slices = context_slices
        self.patch_size_was_2d = False  # the parent would crop data[:, 0]; the S slices are handled below instead
        self.inner_transforms, self.transforms = self.transforms, self._stack_then_transform
        self._sampled = None  # (centre slice, depth) of the sample being built; set by get_bbox

    def get_bbox(self, data_shape, force_fg, class_locations, overwrite_class=None, verbose=False):
        lbs, ubs = super().get_bbox(data_shape, force_fg, class_locations, overwrite_class, verbose)
        centre, half = lbs[0], self.context_slices // 2  # the parent's z extent is 1: lbs[0] is the sampled slice
        # generate_train_batch crops and transforms each sample right after its get_bbox, in the same process
        self._sampled = (centre, data_shape[0])
        return [centre - half, *lbs[1:]], [centre + half + 1, *ubs[1:]]

    def _stack_then_transform(self, image: torch.Tensor, segmentation: torch.Tensor) -> dict:
        centre, depth = self._sampled
        half = self.context_slices // 2
        # the crop padded out-of-volume slices with zeros; index the nearest in-volume slice instead
        within_crop = neighbour_index(torch.tensor([centre]), depth, self.context_slices)[:, 0] - (centre - half)
        image = image[:, within_crop].flatten(0, 1)  # (c, S, y, x) -> (c * S, y, x)
        segmentation = segmentation[:, half]
        if self.inner_transforms is None:
            return {"image": image, "segmentation": segmentation}
        return self.inner_transforms(image=image, segmentation=segmentation)


class SliceContextPredictor(nnUNetPredictor):
    """nnU-Net's predictor for a 2.5D network: each slice goes in with its neighbours as channels.

    The whole preprocessed volume is expanded once to ``(c * S, D, y, x)`` (S times the input's memory) and handed
    to nnU-Net's 2D sliding window unchanged, so tiling, Gaussian weighting, fold averaging and test-time mirroring
    (in-plane axes only for a 2D net) all stay nnU-Net's.
    """

    context_slices = 5
    changes_channel_layout = True  # composed after the per-channel input steps (radconf.trainers.input_steps)

    @torch.inference_mode()
    def predict_sliding_window_return_logits(self, input_image: torch.Tensor) -> torch.Tensor:
        if len(self.configuration_manager.patch_size) != 2:
            raise InvalidInput(f"{type(self).__name__} needs a 2d configuration, got patch size "
                             f"{self.configuration_manager.patch_size}.")
        if not isinstance(input_image, torch.Tensor):
            input_image = torch.from_numpy(np.asarray(input_image))
        return super().predict_sliding_window_return_logits(stack_neighbour_slices(input_image, self.context_slices))


@cache
def _with_context_slices(predictor: type, context_slices: int) -> type:
    """``predictor`` (a slice-context predictor, maybe composed with other input steps) for ``context_slices``."""
    if predictor.context_slices == context_slices:
        return predictor
    name = f"{predictor.__name__}{context_slices}"
    return type(name, (predictor,), {"context_slices": context_slices, "__module__": predictor.__module__,
                                     "__qualname__": name})


class SliceContextMixin(InputStepsMixin):
    """2.5D input for any nnU-Net trainer: ``class MyTrainer(SliceContextMixin, SomeTrainer)``; 2d configurations only.

    Its input step is ``SliceContextPredictor``, composed with the input steps of other mixins (e.g. anatomy channels,
    which run before the stacking) into the trainer's ``predictor_class``; a subclass that changes ``context_slices``
    gets a matching ``predictor_class`` automatically. radconf's ``load_predictor`` uses ``predictor_class``;
    checkpoints, ``--c`` and pretrained weights are nnU-Net's as usual.
    """

    context_slices = 5
    input_predictor = SliceContextPredictor

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)  # composes predictor_class from the input steps
        check_context_slices(cls.context_slices)
        cls.predictor_class = _with_context_slices(cls.predictor_class, cls.context_slices)

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        patch_size = PlansManager(plans).get_configuration(configuration).patch_size
        if len(patch_size) != 2:
            raise InvalidInput(f"{type(self).__name__} stacks neighbouring slices as channels of a 2D network, but "
                             f"configuration {configuration!r} has a {len(patch_size)}D patch {patch_size}; use -c 2d.")
        super().__init__(plans, configuration, fold, dataset_json, device)

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        # a classmethod (called like nnU-Net's staticmethod, also by radconf's load_predictor) to read context_slices;
        # the trainer's num_input_channels stays the dataset's channel count (nnU-Net only plots the network with it)
        return super().build_network_architecture(plans_manager, configuration_manager,
                                                  num_input_channels * cls.context_slices, num_output_channels,
                                                  enable_deep_supervision)

    def get_dataloaders(self):
        loader = partial(SliceContextDataLoader, context_slices=self.context_slices)
        with substitute_in_trainer_module("nnUNetDataLoader", loader):
            return super().get_dataloaders()


class nnUNetTrainerSliceContext5(SliceContextMixin, nnUNetTrainer):
    """nnU-Net's default trainer on 5 neighbouring slices (centre +- 2) as input channels; use with ``-c 2d``."""
