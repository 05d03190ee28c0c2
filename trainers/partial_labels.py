"""Training from partially labelled cases (seed 003): the marginal Dice + CE loss of ``radconf.partial.loss``.

``PartialLabelMixin`` makes a softmax trainer read which structures each training case misses
(``radconf.partial.structures``: the dataset.json entry of ``radconf_import_dicom``, or the table recorded by
``radconf_partial_labels``) and train with the marginal loss: on a case missing M, background voxels cost
-log(p_bg + sum_{m in M} p_m) and the Dice skips M. Which classes a sample has is looked up from the case keys that
nnU-Net's data loader returns with each batch (``batch["keys"]``, in the order of the batch's samples), so shuffling,
augmentation workers and deep supervision cannot mismatch them. Validation: the online pseudo-Dice and the final
``validation/summary.json`` count only the structures each case has (``radconf.partial.validation``).

Composes with input-side trainers (anatomy channels, no augmentation); not with regions (confidence levels) or the
distance head, whose losses are not softmax Dice + CE.
"""
from __future__ import annotations

from pathlib import Path

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from radconf.trainers.anatomy_channels import AnatomyChannelsMixin
from radconf.trainers.no_augmentation import no_augmentation

from radconf.errors import InvalidInput
from radconf.io.files import atomic_write_json
from radconf.nnunet_compat.losses import batch_case_keys
from radconf.partial.loss import inner_marginal, marginal_loss_like
from radconf.partial.structures import MissingStructures, dataset_missing_structures
from radconf.partial.validation import restrict_summary, tp_fp_fn_present

RECORD = "partial_labels.json"


class PartialLabelMixin:
    """Marginal loss over each case's missing structures; validation on the structures a case has."""

    _missing: MissingStructures | None = None

    def _build_loss(self):
        if self.label_manager.has_regions:
            raise InvalidInput(f"{type(self).__name__} trains softmax classes; this dataset defines regions (e.g. "
                               f"confidence levels), for which a missing structure has no meaning. Use another "
                               f"trainer.")
        self._missing = self._read_missing_structures()
        return marginal_loss_like(super()._build_loss())

    def _read_missing_structures(self) -> MissingStructures:
        from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class

        folder = self.preprocessed_dataset_folder
        cases = infer_dataset_class(folder).get_identifiers(folder)
        missing = dataset_missing_structures(self.dataset_json, self.preprocessed_dataset_folder_base, cases)
        counts = missing.counts(cases)
        if self.local_rank == 0:
            self._record(missing, counts, len(cases))
        self.print_to_log_file(
            f"radconf: partial labels: {len(missing.missing)} of {len(cases)} cases miss structures; annotated in "
            + ", ".join(f"{s} {n}/{len(cases)}" for s, n in counts.items()))
        return missing

    def _record(self, missing: MissingStructures, counts: dict, total: int) -> None:
        path = Path(self.output_folder) / RECORD
        record = {**missing.to_json(), "annotated_cases": counts, "cases": total}
        if path.is_file():
            import json

            if json.loads(path.read_text(encoding="utf-8")).get("missing_structures") != record["missing_structures"]:
                self.print_to_log_file(f"radconf: WARNING: the missing structures differ from those {path.name} "
                                       f"recorded when this fold started; training on the current ones.")
        atomic_write_json(path, record)

    def presence(self, keys) -> torch.Tensor:
        """``(len(keys), classes)`` bool: which classes each case of a batch has (background always)."""
        present = torch.ones((len(keys), self.label_manager.num_segmentation_heads), dtype=torch.bool)
        for row, key in enumerate(keys):
            for label in self._missing.missing_ids(str(key)):
                present[row, label] = False
        return present

    def train_step(self, batch: dict) -> dict:
        with inner_marginal(self.loss).presence(self.presence(batch_case_keys(batch))):
            return super().train_step(batch)

    def validation_step(self, batch: dict) -> dict:
        from nnunetv2.utilities.helpers import dummy_context
        from torch import autocast

        present = self.presence(batch_case_keys(batch))
        data = batch["data"].to(self.device, non_blocking=True)
        target = batch["target"]
        target = [t.to(self.device, non_blocking=True) for t in target] if isinstance(target, list) \
            else target.to(self.device, non_blocking=True)
        with autocast(self.device.type, enabled=True) if self.device.type == "cuda" else dummy_context():
            output = self.network(data)
            with inner_marginal(self.loss).presence(present):
                loss = self.loss(output, target)
        if self.enable_deep_supervision:
            output, target = output[0], target[0]
        tp, fp, fn = tp_fp_fn_present(output, target, present, self.label_manager.ignore_label)
        return {"loss": loss.detach().cpu().numpy(), "tp_hard": tp, "fp_hard": fp, "fn_hard": fn}

    def perform_actual_validation(self, save_probabilities: bool = False):
        super().perform_actual_validation(save_probabilities)
        summary = Path(self.output_folder) / "validation" / "summary.json"
        if self.local_rank == 0 and self._missing and summary.is_file():
            unknown = restrict_summary(summary, self._missing, self.dataset_json["file_ending"])
            if unknown:
                self.print_to_log_file(f"radconf: validation summary: {unknown} case-structure pairs not annotated "
                                       f"in the reference are left out (NaN) of summary.json")


class PartialLabelTrainer(PartialLabelMixin, nnUNetTrainer):
    """nnU-Net's trainer with the marginal Dice + CE loss for partially labelled cases."""


class PartialLabelAnatomyChannelsTrainer(PartialLabelMixin, AnatomyChannelsMixin, nnUNetTrainer):
    """Anatomy channels as inputs, trained from partially labelled cases."""


PartialLabelTrainerNoDA = no_augmentation(PartialLabelTrainer)
PartialLabelAnatomyChannelsTrainerNoDA = no_augmentation(PartialLabelAnatomyChannelsTrainer)
