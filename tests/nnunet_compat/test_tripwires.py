"""Tripwires for every place radconf reaches into nnU-Net's internals (radconf.nnunet_compat and the trainers'
insertion points). Each fails loudly, naming what changed, when nnU-Net changes underneath radconf. All run in
seconds: nothing here trains."""
from __future__ import annotations

import inspect
import pickle

import pytest
import torch

from radconf.nnunet_compat.checkpoints import (
    CHECKPOINT_KEYS,
    restore_trainer_state,
    safe_load_checkpoint,
    unwrap_network,
)


def _trainer(planned, seed: int):
    from radconf.training import build_trainer

    torch.manual_seed(seed)
    trainer = build_trainer(planned["dataset"], "3d_fullres", "all", plans=planned["plans"], device="cpu")
    trainer.initialize()
    return trainer


def test_checkpoint_restore_equals_nnunets_own(planned, tmp_path):
    """radconf restores a weights_only-loaded checkpoint attribute for attribute as nnU-Net's path-based
    ``load_checkpoint`` does; the keys nnU-Net writes are the ones radconf restores."""
    saved = _trainer(planned, seed=0)
    for parameter in saved.network.parameters():  # one optimiser step: momentum buffers in the optimiser state
        parameter.grad = torch.randn_like(parameter)
    saved.optimizer.step()
    assert saved.optimizer.state_dict()["state"]
    saved.current_epoch, saved._best_ema = 3, 0.625
    saved.logger.log("ema_fg_dice", 0.625, 2)
    path = tmp_path / "checkpoint.pth"
    saved.save_checkpoint(str(path))
    checkpoint = safe_load_checkpoint(path)
    assert set(checkpoint) == CHECKPOINT_KEYS, "nnU-Net's save_checkpoint changed: update restore_trainer_state"

    ours, theirs = _trainer(planned, seed=1), _trainer(planned, seed=2)
    restore_trainer_state(ours, checkpoint)
    theirs.load_checkpoint(str(path))
    assert ours.current_epoch == theirs.current_epoch == 4  # nnU-Net saves the epoch to resume at
    assert ours._best_ema == theirs._best_ema == 0.625
    assert ours.logger.get_checkpoint() == theirs.logger.get_checkpoint()
    for (name, a), (_, b), (_, c) in zip(ours.network.state_dict().items(), theirs.network.state_dict().items(),
                                         saved.network.state_dict().items()):
        assert torch.equal(a, b) and torch.equal(a, c), name
    assert str(ours.optimizer.state_dict()) == str(theirs.optimizer.state_dict())


def test_unwrap_network_sees_through_torch_compile():
    network = torch.nn.Conv3d(1, 2, 3)
    assert unwrap_network(network) is network
    assert unwrap_network(torch.compile(network)) is network


def test_safe_loader_tells_corrupt_from_untrusted(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"network_weights": {"w": torch.ones(3)}}, good)
    assert torch.equal(safe_load_checkpoint(good)["network_weights"]["w"], torch.ones(3))
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"truncated.pth is corrupt \(not a complete zip archive"):
        safe_load_checkpoint(truncated)
    untrusted = tmp_path / "untrusted.pth"
    torch.save({"callable": pickle.Pickler}, untrusted)  # a class torch will not rebuild with weights_only
    with pytest.raises(ValueError, match="cannot be loaded safely"):
        safe_load_checkpoint(untrusted)
    with pytest.raises(FileNotFoundError):
        safe_load_checkpoint(tmp_path / "missing.pth")


def test_trainer_module_globals_that_radconf_substitutes():
    """``substitute_in_trainer_module`` swaps nnUNetDataLoader/nnUNetPredictor while these methods run."""
    import sys

    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    module = sys.modules[nnUNetTrainer.__module__]
    assert hasattr(module, "nnUNetDataLoader") and hasattr(module, "nnUNetPredictor")
    assert "nnUNetDataLoader" in nnUNetTrainer.get_dataloaders.__code__.co_names
    assert "nnUNetPredictor" in nnUNetTrainer.perform_actual_validation.__code__.co_names


def test_export_and_predictor_signatures():
    from nnunetv2.inference.export_prediction import (
        convert_predicted_logits_to_segmentation_with_correct_shape,
    )
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    export = inspect.signature(convert_predicted_logits_to_segmentation_with_correct_shape).parameters
    assert list(export)[:5] == ["predicted_logits", "plans_manager", "configuration_manager", "label_manager",
                                "properties_dict"] and "return_probabilities" in export
    manual = list(inspect.signature(nnUNetPredictor.manual_initialization).parameters)
    assert manual == ["self", "network", "plans_manager", "configuration_manager", "parameters", "dataset_json",
                      "trainer_name", "inference_allowed_mirroring_axes"]
    for method in ("predict_from_files", "predict_logits_from_preprocessed_data", "predict_sliding_window_return_logits"):
        assert hasattr(nnUNetPredictor, method), method


def test_training_transforms_end_with_the_step_anatomy_channels_insert_after():
    """The anatomy trainers move mask channels back to the image right after nnU-Net's RemoveLabelTansform."""
    from batchgeneratorsv2.transforms.utils.remove_label import RemoveLabelTansform
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    transforms = nnUNetTrainer.get_training_transforms(
        (16, 16, 16), (0, 0), None, (0, 1, 2), False, None, is_cascaded=False, foreground_labels=[1, 2],
        regions=None, ignore_label=None)
    assert any(isinstance(t, RemoveLabelTansform) for t in transforms.transforms)
    validation = nnUNetTrainer.get_validation_transforms(None, is_cascaded=False, foreground_labels=[1, 2],
                                                         regions=None, ignore_label=None)
    assert any(isinstance(t, RemoveLabelTansform) for t in validation.transforms)


def test_loss_internals_the_dice_variants_replace():
    """``radconf.losses.swap_dice`` rebuilds nnU-Net's Dice term with its settings; the DDP path uses AllGatherGrad."""
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from nnunetv2.utilities.ddp_allgather import AllGatherGrad  # noqa: F401

    dice = MemoryEfficientSoftDiceLoss(apply_nonlin=torch.sigmoid, batch_dice=True, do_bg=False, smooth=1e-5)
    for attribute in ("apply_nonlin", "batch_dice", "do_bg", "smooth", "ddp"):
        assert hasattr(dice, attribute), attribute
    assert DeepSupervisionWrapper(dice, [1.0]).loss is dice


def test_optimiser_and_epoch_start_hooks_radconf_sets_on_a_trainer(planned):
    """``radconf.nnunet_compat.optim``: nnU-Net builds the optimiser by calling ``self.configure_optimizers()`` in
    ``initialize`` (a poly schedule of the same signature), and ``run_training`` starts each epoch with
    ``self.on_train_epoch_start()``; an instance's replacements are what run."""
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from radconf.nnunet_compat.optim import use_optimizer

    assert "self.optimizer, self.lr_scheduler = self.configure_optimizers()" in inspect.getsource(
        nnUNetTrainer.initialize)
    assert "self.on_train_epoch_start()" in inspect.getsource(nnUNetTrainer.run_training)
    assert list(inspect.signature(PolyLRScheduler).parameters)[:3] == ["optimizer", "initial_lr", "max_steps"]
    from radconf.training import build_trainer

    trainer = build_trainer(planned["dataset"], "3d_fullres", "all", plans=planned["plans"], device="cpu")
    trainer.initial_lr, trainer.weight_decay = 2e-4, 0.0
    use_optimizer(trainer, "adam")
    trainer.initialize()
    assert type(trainer.optimizer) is torch.optim.Adam and trainer.optimizer.defaults["lr"] == 2e-4
    assert isinstance(trainer.lr_scheduler, PolyLRScheduler) and trainer.lr_scheduler.max_steps == trainer.num_epochs


def test_prediction_stages_radconf_times(planned):
    """``radconf.nnunet_compat.timing``: the names nnU-Net's pipelined prediction calls, and a timed configuration
    manager that pickles into spawned workers and still preprocesses as nnU-Net's (the seconds added to the
    properties)."""
    import nnunetv2.inference.data_iterators as iterators
    import nnunetv2.inference.predict_from_raw_data as module
    import numpy as np
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from radconf.nnunet_compat.timing import PROPERTY, TimedConfigurationManager, timed_export

    assert "self.predict_from_data_iterator(" in inspect.getsource(nnUNetPredictor.predict_from_files)
    loop = inspect.getsource(nnUNetPredictor.predict_from_data_iterator)
    assert "self.predict_logits_from_preprocessed_data(data)" in loop and "export_prediction_from_logits," in loop
    assert hasattr(module, "export_prediction_from_logits")
    assert "configuration_manager.preprocessor_class(verbose=verbose)" in inspect.getsource(iterators)
    assert pickle.loads(pickle.dumps(timed_export)) is timed_export
    import json

    from radconf.paths import require_nnunet_paths

    folder = next(require_nnunet_paths().preprocessed.glob(f"Dataset{planned['dataset']}_*"))
    plans = PlansManager(json.loads((folder / f"{planned['plans']}.json").read_text()))
    dataset_json = json.loads((folder / "dataset.json").read_text())
    raw = next(require_nnunet_paths().raw.glob(f"Dataset{planned['dataset']}_*"))
    manager = pickle.loads(pickle.dumps(TimedConfigurationManager.wrapping(plans.get_configuration("3d_fullres"))))
    image = [str(min((raw / "imagesTr").glob("*_0000.nii.gz")))]
    data, _, properties = manager.preprocessor_class(verbose=False).run_case(image, None, plans, manager,
                                                                               dataset_json)
    plain_data, _, plain_properties = plans.get_configuration("3d_fullres").preprocessor_class(
        verbose=False).run_case(image, None, plans, plans.get_configuration("3d_fullres"), dataset_json)
    assert np.array_equal(data, plain_data) and properties.pop(PROPERTY) > 0
    assert set(properties) == set(plain_properties)


def test_run_records_a_part_renames():
    import nnunetv2.inference.predict_from_raw_data as module
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    from radconf.nnunet_compat.records import ARGUMENTS_FILE, part_run_records
    from radconf.scale.parts import Part, active_part

    source = inspect.getsource(nnUNetPredictor.predict_from_files)
    assert f"save_json(my_init_kwargs, join(output_folder, '{ARGUMENTS_FILE}'))" in source
    assert "save_json(self.dataset_json, join(output_folder, 'dataset.json')" in source
    original = module.save_json
    with part_run_records():
        assert module.save_json is original  # outside a part nothing changes
    with active_part(Part(2, 1)), part_run_records():
        assert module.save_json is not original
    assert module.save_json is original


def test_preprocessing_iterator_the_ensemble_pipeline_uses():
    from nnunetv2.inference import data_iterators

    parameters = list(inspect.signature(data_iterators.preprocessing_iterator_fromfiles).parameters)
    assert parameters[:7] == ["list_of_lists", "list_of_segs_from_prev_stage_files", "output_filenames_truncated",
                              "plans_manager", "dataset_json", "configuration_manager", "num_processes"]
    assert {"pin_memory", "verbose"} <= set(parameters)
    source = inspect.getsource(data_iterators.preprocess_fromfiles_save_to_queue)
    assert "configuration_manager.preprocessor_class(verbose=verbose)" in source
    assert "'data': data, 'data_properties': data_properties" in source


def test_ddp_internals_the_cpu_process_group_adapts():
    """nnU-Net's trainer under a process group: rank r moved onto cuda:r in ``__init__`` and the network wrapped in
    the trainer module's ``DDP`` with ``device_ids=[rank]`` in ``initialize`` (what ``initialised_on`` undoes on
    CPU); a rank-local batch size; rank-0-only logging."""
    from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as module
    from torch.nn.parallel import DistributedDataParallel

    assert module.DDP is DistributedDataParallel
    init = inspect.getsource(module.nnUNetTrainer.__init__)
    assert "self.is_ddp = dist.is_available() and dist.is_initialized()" in init
    assert "torch.device(type='cuda', index=self.local_rank)" in init and "self.grad_scaler" in init
    assert "DDP(self.network, device_ids=[self.local_rank])" in inspect.getsource(module.nnUNetTrainer.initialize)
    assert "global_batch_size >= world_size" in inspect.getsource(module.nnUNetTrainer._set_batch_size_and_oversample)
    assert "if self.local_rank == 0" in inspect.getsource(module.nnUNetTrainer.print_to_log_file)
