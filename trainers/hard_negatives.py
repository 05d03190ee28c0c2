"""Hard-negative patch sampling (seed 003): a share of the training patches centred on an earlier model's false
positives.

Settings (``radconf_train --hard_negatives_from DIR --hard_negative_share 0.1``; recorded in
``radconf_training_settings.json``, kept by ``--c``): ``hard_negatives_from``, a model's training output folder
(``fold_*/validation/``: nnU-Net's cross-validation predictions of the training cases) or any folder of predicted
label files named like the raw cases; ``hard_negative_share`` in (0, 1], 0.1 by default. Without a folder the trainer
samples as nnU-Net does.

When the trainer initialises (before the network is built), every training case of the fold with a prediction gets
its false-positive voxels (:mod:`radconf.sampling.false_positives`: predicted foreground where the reference differs)
against the raw-space ground truth, mapped into preprocessed space, at most 10000 per case (a seeded subset). Each
training sample of such a case is centred on one of them with probability ``hard_negative_share``; every other sample
is nnU-Net's own (foreground oversampling unchanged). The validation loader is nnU-Net's. Composed with a mixin that
substitutes the loader too (``SliceContextMixin``), list ``HardNegativeMixin`` after it: its loader is then
composed above the hard-negative one (the other order is refused when the loaders are built).

Each run (a training cycle) recomputes the locations from the folder's current predictions: train, validate (or
``radconf_predict`` the training cases), then train again with ``--hard_negatives_from`` the earlier model.

``hard_negatives.json`` in the fold folder records the source, the share, the false-positive voxels per case and,
after each epoch, the boxes drawn per case (false-positive, foreground-oversampled, random). Those counts are exact
only with ``nnUNet_n_proc_DA=0`` (the loader runs in the training process); with worker processes each worker counts
its own copy and the record says ``"counts": null``.
"""
from __future__ import annotations

from pathlib import Path

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from radconf.trainers.no_augmentation import no_augmentation

from radconf.errors import InvalidInput
from radconf.nnunet_compat.hard_negatives import (
    HardNegativeDataLoader,
    WithFalsePositives,
    case_geometry,
    hard_negative_loader,
    loader_counts,
    trainer_module_global,
    training_data_loader,
)
from radconf.nnunet_compat.substitution import substitute_in_trainer_module

RECORD_FILE = "hard_negatives.json"
DEFAULT_SHARE = 0.1
LOCATION_SEED = 12345  # the subset of false-positive voxels kept per case repeats run to run


def check_share(share) -> float:
    """``share`` as a float in (0, 1].

    Raises:
        InvalidInput: anything else.
    """
    try:
        value = float(share)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(share, bool) or not 0 < value <= 1:
        raise InvalidInput(f"--hard_negative_share must be a number in (0, 1] (the share of training patches "
                           f"centred on false positives), got {share!r}.")
    return value


class HardNegativeMixin:
    """Centres ``hard_negative_share`` of the training patches on false positives of ``hard_negatives_from``."""

    radconf_settings = ("hard_negatives_from", "hard_negative_share")
    hard_negatives_from = None
    hard_negative_share = DEFAULT_SHARE

    def initialize(self):
        self._false_positives = self._find_false_positives()  # refusals before the network is built
        super().initialize()

    def _find_false_positives(self) -> tuple[dict, dict] | None:
        """Per-case false-positive locations and raw counts, or None without ``hard_negatives_from``."""
        from radconf.sampling.predictions import (
            false_positive_locations,
            matching_predictions,
        )

        share = check_share(self.hard_negative_share)
        if self.hard_negatives_from is None:
            self.print_to_log_file("radconf: no --hard_negatives_from: nnU-Net's patch sampling unchanged")
            return None
        train_keys, _ = self.do_split()
        ending = self.dataset_json["file_ending"]
        predictions = matching_predictions(self.hard_negatives_from, ending, train_keys)
        transpose = self.plans_manager.transpose_forward
        locations, counts = false_positive_locations(
            predictions, Path(self.preprocessed_dataset_folder_base) / "gt_segmentations", ending,
            self.plans_manager.image_reader_writer_class().read_seg,
            lambda case: case_geometry(self.preprocessed_dataset_folder, case, transpose), LOCATION_SEED,
            self.label_manager.ignore_label)
        self._hard_negative_cases = list(train_keys)
        with_fp = sum(n > 0 for n in counts.values())
        self.print_to_log_file(f"radconf: hard negatives from {self.hard_negatives_from}: {len(counts)} of "
                               f"{len(train_keys)} training cases predicted, {with_fp} with false positives "
                               f"({sum(counts.values())} voxels); share {share:g} of their patches")
        return locations, counts

    def get_tr_and_val_datasets(self):
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        if getattr(self, "_false_positives", None) is None:
            return dataset_tr, dataset_val
        return WithFalsePositives(dataset_tr, self._false_positives[0]), dataset_val

    def get_dataloaders(self):
        if getattr(self, "_false_positives", None) is None:
            return super().get_dataloaders()
        current = trainer_module_global("nnUNetDataLoader")  # another mixin's substitution, composed with
        with substitute_in_trainer_module("nnUNetDataLoader",
                                          hard_negative_loader(current, check_share(self.hard_negative_share))):
            loaders = super().get_dataloaders()
        if not isinstance(training_data_loader(loaders[0]), HardNegativeDataLoader):
            raise TypeError(f"{type(self).__name__}: a mixin before HardNegativeMixin replaced the data loader; list "
                            f"HardNegativeMixin after loader-substituting mixins (e.g. SliceContextMixin).")
        return loaders

    def on_train_start(self):
        super().on_train_start()
        self._write_hard_negative_record(None)

    def on_epoch_end(self):
        epoch = self.current_epoch
        super().on_epoch_end()
        self._write_hard_negative_record(epoch)

    def _write_hard_negative_record(self, epoch: int | None) -> None:
        from radconf.io.files import atomic_write_json
        from radconf.sampling.predictions import summary

        if getattr(self, "_false_positives", None) is None or self.local_rank != 0:
            return
        locations, counts = self._false_positives
        record = summary(self.hard_negatives_from, check_share(self.hard_negative_share), counts, locations,
                         self._hard_negative_cases)
        drawn = loader_counts(self.dataloader_train)
        record.update({"epochs_done": None if epoch is None else epoch + 1, "counts": drawn,
                       "counts_exact": drawn is not None,
                       "counts_note": "boxes drawn since the start of this run, per case" if drawn is not None else
                       "augmentation runs in worker processes (nnUNet_n_proc_DA > 0): per-case counts are not "
                       "collected; the share is the planned one"})
        atomic_write_json(Path(self.output_folder) / RECORD_FILE, record)
        if epoch is not None and drawn is not None:
            totals = {k: sum(c[k] for c in drawn.values()) for k in ("false_positive", "foreground", "random")}
            self.print_to_log_file(f"radconf: hard negatives so far: {totals['false_positive']} boxes on false "
                                   f"positives, {totals['foreground']} foreground-oversampled, {totals['random']} "
                                   f"random (exact: single-process augmentation)")


class HardNegativeTrainer(HardNegativeMixin, nnUNetTrainer):
    """nnU-Net's trainer with a share of the patches centred on an earlier model's false positives."""


HardNegativeTrainerNoDA = no_augmentation(HardNegativeTrainer)
