"""Trainers declare their settings; train() refuses undeclared ones; radconf_train's flags map to TrainingOptions."""
from __future__ import annotations

import dataclasses

import pytest
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.label_handling.label_handling import LabelManager
from radconf.trainers.anatomy_guided import AnatomyGuidedMultiTaskTrainer
from radconf.trainers.distance_head import DistanceHeadMixin, DistanceMapTrainer
from radconf.trainers.loss_variants import WeightedCELossTrainer

from radconf.cli.train import build_parser, training_options
from radconf.errors import InvalidInput
from radconf.training import (
    TrainingOptions,
    check_settings,
    configure_trainer,
    declared_settings,
    train,
)


def test_settings_are_collected_along_the_mro():
    assert declared_settings(DistanceMapTrainer) == ("distance_weight",)
    assert declared_settings(AnatomyGuidedMultiTaskTrainer) == ("distance_weight",)
    assert declared_settings(WeightedCELossTrainer) == ("class_weights",)
    assert declared_settings(nnUNetTrainer) == ()
    both = type("Both", (DistanceHeadMixin, WeightedCELossTrainer), {})
    assert declared_settings(both) == ("distance_weight", "class_weights")


def test_undeclared_settings_are_refused_with_the_accepted_ones():
    check_settings(DistanceMapTrainer, {"distance_weight": 0.5})  # declared: accepted
    with pytest.raises(InvalidInput, match=r"DistanceMapTrainer does not accept the setting\(s\) class_weights; it "
                                           r"accepts distance_weight besides the common ones \(optimizer_name, "
                                           r".*\)\..*class_weights: e\.g\. WeightedCELossTrainer"):
        check_settings(DistanceMapTrainer, {"class_weights": [1.0, 2.0]})
    with pytest.raises(InvalidInput, match=r"nnUNetTrainer does not accept .*distance_weight; it accepts no radconf "
                                           r"settings besides.*distance_weight: e\.g\. AnatomyGuidedMultiTaskTrainer"):
        check_settings(nnUNetTrainer, {"distance_weight": 1.0})


def test_train_refuses_an_undeclared_setting_before_building_anything(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no nnU-Net folders are set up: building the trainer would fail differently
    with pytest.raises(InvalidInput, match="WeightedCELossTrainer does not accept the setting"):
        train(990, "3d_fullres", 0, trainer="WeightedCELossTrainer",
              options=TrainingOptions(settings={"distance_weight": 0.5}))
    assert not list(tmp_path.iterdir())


def test_configure_trainer_sets_length_and_instance_settings():
    class Stub:
        radconf_settings = ("class_weights",)
        class_weights = None

    stub = Stub()
    configure_trainer(stub, TrainingOptions(epochs=3, iterations_per_epoch=12, settings={"class_weights": [1, 2]}))
    assert (stub.num_epochs, stub.num_iterations_per_epoch, stub.num_val_iterations_per_epoch) == (3, 12, 2)
    assert vars(stub)["class_weights"] == [1, 2] and stub.disable_checkpointing is False
    configure_trainer(stub, TrainingOptions(iterations_per_epoch=4))
    assert stub.num_val_iterations_per_epoch == 1  # at least one validation iteration
    with pytest.raises(InvalidInput, match="Stub does not accept"):
        configure_trainer(Stub(), TrainingOptions(settings={"distance_weight": 1.0}))


def test_options_are_frozen_including_the_settings():
    options = TrainingOptions(settings={"distance_weight": 0.5})
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.epochs = 2
    with pytest.raises(TypeError):
        options.settings["distance_weight"] = 2.0


def test_cli_flags_map_to_the_same_options():
    base = ["501", "3d_fullres", "0"]
    assert training_options(build_parser().parse_args(base)) == TrainingOptions()
    args = build_parser().parse_args(base + ["--epochs", "2", "--iterations-per-epoch", "5", "--seed", "7", "--npz",
                                             "--no-val", "--disable_checkpointing", "-pretrained_weights", "w.pth",
                                             "--distance_weight", "0.25", "--ce_weights", "0.1", "0.9"])
    assert training_options(args) == TrainingOptions(
        epochs=2, iterations_per_epoch=5, seed=7, validate=False, export_npz=True, pretrained_weights="w.pth",
        disable_checkpointing=True, settings={"distance_weight": 0.25, "class_weights": [0.1, 0.9]})


class _DistanceStub(DistanceHeadMixin):
    signed_distance = False

    def __init__(self, output_folder):
        self.output_folder = str(output_folder)
        self.local_rank = 0
        self.dataset_json = {"labels": {"background": 0, "ctv": 1}}
        self.label_manager = LabelManager(self.dataset_json["labels"], None)
        self.print_to_log_file = lambda *args, **kwargs: None


def test_distance_weight_is_checked_and_recorded(tmp_path):
    import json

    stub = _DistanceStub(tmp_path)
    stub.distance_weight = -0.5
    with pytest.raises(InvalidInput, match="_DistanceStub: distance_weight must be >= 0, got -0.5"):
        stub._record_distance_settings()
    stub.distance_weight = 2
    stub._record_distance_settings()
    recorded = json.loads((tmp_path / "distance_head.json").read_text())
    assert recorded["distance_weight"] == 2.0 and recorded["labels"] == ["ctv"]
    resumed = _DistanceStub(tmp_path)  # no explicit setting: the recorded weight, not the class default 1.0
    resumed._record_distance_settings()
    assert resumed.distance_weight == 2.0
