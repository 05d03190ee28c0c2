"""Anatomy channels (METHODS.md section 4): organ masks as extra input channels of a target-volume model.

``AnatomyChannelsMixin`` makes any nnU-Net trainer read the anatomy declaration of its dataset (written by
``radconf_anatomy_dataset``, see ``radconf.anatomy``) and treat those channels as masks, not images:

- augmentation: before nnU-Net's transforms run, the mask channels move into the segmentation (binarised), so the
  spatial transform resamples them like labels and the intensity transforms (noise, blur, brightness, contrast,
  gamma, low resolution) never touch them; right after nnU-Net's ``RemoveLabelTansform`` they move back to their
  input channels (nnU-Net's cascade handles its previous-stage masks the same way).
- encoding: ``radconf.anatomy.encode_anatomy`` then gives the network binary masks, or masks filled with the CT
  channel (``"ct"``), for training patches and, through ``AnatomyPredictor``, for whole images at inference.
"""
from __future__ import annotations

import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform
from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from radconf.anatomy.channels import AnatomyChannels, anatomy_of, encode_anatomy
from radconf.errors import InvalidInput
from radconf.trainers.input_steps import InputStepsMixin
from radconf.trainers.no_augmentation import no_augmentation


class AnatomyToSegmentation(BasicTransform):
    """Moves the anatomy channels (binarised) from the image to the end of the segmentation."""

    def __init__(self, anatomy: AnatomyChannels, num_channels: int):
        super().__init__()
        self.anatomy_index = torch.tensor(anatomy.indices)
        self.image_index = torch.tensor(anatomy.image_channels(num_channels))

    def apply(self, data_dict, **params):
        image, segmentation = data_dict["image"], data_dict["segmentation"]
        masks = (image.index_select(0, self.anatomy_index) > 0.5).to(segmentation.dtype)
        data_dict["image"] = image.index_select(0, self.image_index)
        data_dict["segmentation"] = torch.cat([segmentation, masks])
        return data_dict


class AnatomyToImage(BasicTransform):
    """Moves the anatomy masks from the end of the segmentation back to their input channels, then encodes them."""

    def __init__(self, anatomy: AnatomyChannels, num_channels: int):
        super().__init__()
        self.anatomy = anatomy
        self.num_channels = num_channels
        self.anatomy_index = torch.tensor(anatomy.indices)
        self.image_index = torch.tensor(anatomy.image_channels(num_channels))

    def apply(self, data_dict, **params):
        image, segmentation = data_dict["image"], data_dict["segmentation"]
        count = len(self.anatomy_index)
        full = torch.empty((self.num_channels, *image.shape[1:]), dtype=image.dtype)
        full[self.image_index] = image
        full[self.anatomy_index] = segmentation[-count:].to(image.dtype)
        data_dict["image"] = encode_anatomy(full, self.anatomy)
        data_dict["segmentation"] = segmentation[:-count]
        return data_dict


def with_anatomy_channels(transforms, anatomy: AnatomyChannels, num_channels: int):
    """nnU-Net's transform pipeline with the anatomy channels carried through the segmentation (see module doc)."""
    steps = list(transforms.transforms)
    after = [i for i, t in enumerate(steps) if isinstance(t, RemoveLabelTansform)]
    if not after:
        raise RuntimeError("nnU-Net's transforms have no RemoveLabelTansform to return the anatomy channels after; "
                           "this nnU-Net version is not supported by the anatomy trainers.")
    steps.insert(after[0] + 1, AnatomyToImage(anatomy, num_channels))
    steps.insert(0, AnatomyToSegmentation(anatomy, num_channels))
    transforms.transforms = steps
    return transforms


class AnatomyPredictor(nnUNetPredictor):
    """nnU-Net's predictor that encodes the anatomy channels of each preprocessed image before the sliding window.

    ``AnatomyChannelsMixin``'s input step (``radconf.trainers.input_steps``): it composes with other steps.
    """

    @torch.inference_mode()
    def predict_sliding_window_return_logits(self, input_image: torch.Tensor) -> torch.Tensor:
        anatomy = anatomy_of(self.dataset_json)
        if anatomy is None:
            raise InvalidInput("AnatomyPredictor needs a model trained on a dataset with radconf anatomy channels.")
        if not isinstance(input_image, torch.Tensor):
            input_image = torch.as_tensor(input_image)
        return super().predict_sliding_window_return_logits(encode_anatomy(input_image, anatomy))


class AnatomyChannelsMixin(InputStepsMixin):
    """Anatomy channels for any nnU-Net trainer: ``class MyTrainer(AnatomyChannelsMixin, SomeTrainer)``.

    Inference and the final validation encode the masks with ``AnatomyPredictor``, composed with the input steps of
    other mixins (e.g. slice context) into the trainer's ``predictor_class``.
    """

    input_predictor = AnatomyPredictor

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        if getattr(self, "context_slices", 1) != 1:
            # the slice-context loader stacks the slices before nnU-Net's transforms, where the masks are moved
            raise InvalidInput(f"{type(self).__name__}: training anatomy channels together with slice context is not "
                               f"supported (the augmentation would read the masks from the stacked channels); "
                               f"only their inference steps compose.")
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.anatomy = anatomy_of(self.dataset_json, where=f"dataset.json of {self.plans_manager.dataset_name}")
        if self.anatomy is None:
            raise InvalidInput(f"{type(self).__name__} needs organ masks as input channels, but dataset "
                             f"{self.plans_manager.dataset_name} declares none. Build one with radconf_anatomy_dataset "
                             f"(e.g. radconf_anatomy_dataset SOURCE -d NEW_ID --anatomy bladder rectum).")
        self.num_image_channels = len(self.dataset_json["channel_names"])

    def get_training_transforms(self, *args, **kwargs):
        return with_anatomy_channels(super().get_training_transforms(*args, **kwargs), self.anatomy,
                                     self.num_image_channels)

    def get_validation_transforms(self, *args, **kwargs):
        return with_anatomy_channels(super().get_validation_transforms(*args, **kwargs), self.anatomy,
                                     self.num_image_channels)


class AnatomyChannelsTrainer(AnatomyChannelsMixin, nnUNetTrainer):
    """nnU-Net's default trainer on a dataset with anatomy channels (the paper's AG-UNet)."""


AnatomyChannelsTrainerNoDA = no_augmentation(AnatomyChannelsTrainer)
