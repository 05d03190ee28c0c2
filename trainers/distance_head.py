"""Distance-map head (METHODS.md section 4): a second decoder regresses each structure's distance map.

``DistanceHeadMixin`` turns any softmax nnU-Net trainer into a multi-task one (``class T(DistanceHeadMixin, Base)``):

- network: nnU-Net's planned U-Net plus a parallel ``distance_decoder`` (nnU-Net's ``UNetDecoder`` on the same encoder
  skips, one output per foreground label, no deep supervision), as in the paper's AG-MTN. Encoder and segmentation
  decoder keep nnU-Net's parameter names, so plain nnU-Net checkpoints fine-tune it. The network's output is the
  segmentation exactly as nnU-Net's (deep supervision list in training, one tensor at inference), so nnU-Net's
  loss, pseudo-Dice, validation, predictor and export are unchanged; the distance prediction of the last forward
  pass waits in ``network.last_distance``.
- target: the distance in mm at the configuration's spacing, 0 inside (or signed), normalised d / (d + 20 mm), for
  every voxel of every patch (``radconf.trainers.distance_targets``): exact where the augmented patch certifies it,
  elsewhere the case's whole distance map (computed once, cached next to the preprocessed data) carried through
  nnU-Net's augmentation and bounded by what the patch proves.
- loss: nnU-Net's segmentation loss (deep supervision included) + ``distance_weight`` * MSE(sigmoid(head), target)
  (tanh for signed maps) at full resolution.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from dynamic_network_architectures.building_blocks.unet_decoder import UNetDecoder
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from radconf.trainers.distance_targets import (
    DistanceTargetTransform,
    with_distance_targets,
)
from radconf.trainers.no_augmentation import no_augmentation
from torch import nn

from radconf.anatomy.distance_targets import DistanceMapStore, distance_map_folder
from radconf.errors import InvalidInput
from radconf.losses import masked_mse
from radconf.nnunet_compat.checkpoints import unwrap_network
from radconf.nnunet_compat.extra_channels import (
    WithSegmentationChannels,
    segmentation_file,
)

DISTANCE_SETTINGS_FILE = "distance_head.json"


class DistanceHeadNetwork(nn.Module):
    """A U-Net (``encoder`` + ``decoder``) with a parallel decoder for distance maps.

    ``output_mode``: ``"segmentation"`` (default) returns the U-Net's output and, while training or with deep
    supervision on, stores the distance head's raw output in ``last_distance``; ``"distance"`` returns the head's
    raw output behind a zero channel, shaped like a softmax output (background first) so nnU-Net's sliding window
    can accumulate it.
    """

    pretrained_optional_prefixes = ("distance_decoder.",)

    def __init__(self, network: nn.Module, num_distance_channels: int, n_conv_per_stage):
        super().__init__()
        self.encoder = network.encoder
        self.decoder = network.decoder
        self.distance_decoder = UNetDecoder(network.encoder, num_distance_channels, n_conv_per_stage,
                                            deep_supervision=False)
        self.distance_decoder.apply(InitWeights_He(1e-2))
        self.output_mode = "segmentation"
        self.last_distance = None

    def forward(self, x):
        skips = self.encoder(x)
        if self.output_mode == "distance":
            distance = self.distance_decoder(skips)
            return torch.cat([torch.zeros_like(distance[:, :1]), distance], 1)
        segmentation = self.decoder(skips)
        self.last_distance = self.distance_decoder(skips) if self.training or self.decoder.deep_supervision else None
        return segmentation


class SegmentationWithDistanceLoss(nn.Module):
    """nnU-Net's segmentation loss + ``weight`` * masked MSE of the distance head (values supplied at call time)."""

    def __init__(self, segmentation_loss: nn.Module, weight: float, prediction, target, signed: bool):
        super().__init__()
        self.segmentation_loss = segmentation_loss
        self.weight, self.prediction, self.target, self.signed = weight, prediction, target, signed
        self.last_terms = (float("nan"), float("nan"))

    def forward(self, output, target):
        segmentation = self.segmentation_loss(output, target)
        prediction, distance_target = self.prediction(), self.target()
        if prediction is None or distance_target is None:
            return segmentation
        activation = torch.tanh if self.signed else torch.sigmoid
        half = distance_target.shape[1] // 2
        distance = masked_mse(activation(prediction.float()), distance_target[:, :half], distance_target[:, half:])
        self.last_terms = (float(segmentation.detach()), float(distance.detach()))
        return segmentation + self.weight * distance


class DistanceHeadMixin:
    """Distance-map head for a softmax nnU-Net trainer: ``class MyTrainer(DistanceHeadMixin, SomeTrainer)``.

    Class attributes (override in a subclass; the setting ``distance_weight``, ``radconf_train --distance_weight``,
    sets the weight per run): ``distance_weight`` (lambda), ``signed_distance``, ``distance_scale_mm`` (normalisation
    d / (d + scale)).
    """

    radconf_settings = ("distance_weight",)
    distance_weight = 1.0
    signed_distance = False
    distance_scale_mm = 20.0

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.label_manager.has_regions:
            raise InvalidInput(f"{type(self).__name__} regresses one distance map per label of a label map; dataset "
                             f"{self.plans_manager.dataset_name} uses regions (overlapping labels), which it does not "
                             f"support.")
        self._distance_target = None

    @classmethod
    def build_network_architecture(cls, plans_manager, configuration_manager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True):
        network = super().build_network_architecture(plans_manager, configuration_manager, num_input_channels,
                                                     num_output_channels, enable_deep_supervision)
        n_conv = configuration_manager.network_arch_init_kwargs.get("n_conv_per_stage_decoder", 2)
        return DistanceHeadNetwork(network, num_output_channels - 1, n_conv)

    def _do_i_compile(self):
        return False  # the head's output is handed to the loss through an attribute, which torch.compile may not see

    def initialize(self):
        self._record_distance_settings()
        super().initialize()

    def _record_distance_settings(self) -> None:
        """Writes the settings to ``distance_head.json``; a resumed run without an explicit weight reuses it."""
        path = Path(self.output_folder) / DISTANCE_SETTINGS_FILE
        explicit = "distance_weight" in vars(self)
        if path.is_file() and not explicit:
            self.distance_weight = float(json.loads(path.read_text())["distance_weight"])
        if not float(self.distance_weight) >= 0:
            raise InvalidInput(f"{type(self).__name__}: distance_weight must be >= 0, got {self.distance_weight}.")
        self.distance_weight = float(self.distance_weight)
        from radconf.io.files import atomic_write_json

        settings = {"distance_weight": self.distance_weight, "signed": self.signed_distance,
                    "scale_mm": self.distance_scale_mm, "labels": self._distance_label_names()}
        if self.local_rank == 0:
            atomic_write_json(path, settings)
        self.print_to_log_file(f"radconf distance head: {settings}")

    def _distance_label_names(self) -> list[str]:
        ids = {int(v): k for k, v in self.dataset_json["labels"].items() if not isinstance(v, (list, tuple))}
        return [ids.get(label, str(label)) for label in self.label_manager.foreground_labels]

    def _build_loss(self):
        return SegmentationWithDistanceLoss(super()._build_loss(), self.distance_weight,
                                            prediction=lambda: self._network_module().last_distance,
                                            target=lambda: self._distance_target, signed=self.signed_distance)

    def _network_module(self) -> DistanceHeadNetwork:
        return unwrap_network(self.network)

    def _distance_spacing(self) -> list[float]:
        return list(self.configuration_manager.spacing[-len(self.configuration_manager.patch_size):])

    def _with_distance_targets(self, transforms):
        target = DistanceTargetTransform(self.label_manager.foreground_labels, self._distance_spacing(),
                                         self.signed_distance, self.distance_scale_mm)
        return with_distance_targets(transforms, len(self.label_manager.foreground_labels), target)

    def get_training_transforms(self, *args, **kwargs):
        return self._with_distance_targets(super().get_training_transforms(*args, **kwargs))

    def get_validation_transforms(self, *args, **kwargs):
        return self._with_distance_targets(super().get_validation_transforms(*args, **kwargs))

    def get_tr_and_val_datasets(self):
        """nnU-Net's datasets, whose segmentations carry each case's whole distance maps (computed if missing)."""
        training, validation = super().get_tr_and_val_datasets()
        store = DistanceMapStore(distance_map_folder(self.preprocessed_dataset_folder_base,
                                                     self.configuration_manager.data_identifier),
                                 self.label_manager.foreground_labels, self._distance_spacing())
        if self.local_rank == 0:
            cases = sorted(set(training.identifiers) | set(validation.identifiers))
            computed = store.ensure(cases, self._preprocessed_segmentation,
                                    lambda case: segmentation_file(self.preprocessed_dataset_folder, case))
            self.print_to_log_file(f"radconf distance maps: {computed} computed, {len(cases) - computed} reused "
                                   f"({store.folder})")
        if self.is_ddp:
            torch.distributed.barrier()
        return WithSegmentationChannels(training, store.load), WithSegmentationChannels(validation, store.load)

    def _preprocessed_segmentation(self, case: str):
        return self.dataset_class(self.preprocessed_dataset_folder, [case]).load_case(case)[1]

    def _split_distance_target(self, batch: dict) -> dict:
        target = batch["target"]
        full = target[0] if isinstance(target, list) else target
        channels = 2 * len(self.label_manager.foreground_labels)
        self._distance_target = full[:, -channels:].to(self.device, non_blocking=True)
        labels = full[:, :-channels]
        if isinstance(target, list):
            return {**batch, "target": [labels.to(target[-1].dtype), *target[1:]]}
        return {**batch, "target": labels}

    def train_step(self, batch: dict) -> dict:
        return super().train_step(self._split_distance_target(batch))

    def validation_step(self, batch: dict) -> dict:
        return super().validation_step(self._split_distance_target(batch))

    def on_train_epoch_end(self, train_outputs):
        super().on_train_epoch_end(train_outputs)
        segmentation, distance = self.loss.last_terms
        self.print_to_log_file(f"last batch: segmentation loss {segmentation:.4f}, distance MSE {distance:.4f} "
                               f"(weight {self.distance_weight:g})")


class DistanceMapTrainer(DistanceHeadMixin, nnUNetTrainer):
    """nnU-Net's default trainer plus the distance-map head (unsigned distance, lambda = 1)."""


class DistanceMapTrainerSigned(DistanceHeadMixin, nnUNetTrainer):
    """Signed distance (negative inside the structure) as the auxiliary target."""

    signed_distance = True


DistanceMapTrainerNoDA = no_augmentation(DistanceMapTrainer)
