from __future__ import annotations

import inspect

import pytest

from radconf.registry import available_names, find_class, radconf_classes


def test_nnunet_trainers_still_resolve():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    cls = find_class("nnUNetTrainer_5epochs", "trainer")
    assert cls.__name__ == "nnUNetTrainer_5epochs" and issubclass(cls, nnUNetTrainer)
    assert find_class("nnUNetTrainer", "trainer") is nnUNetTrainer


def test_radconf_planner_and_nnunet_planner_resolve():
    from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import (
        ExperimentPlanner,
    )
    from radconf.planners.cpu_preset import CPUPresetPlanner

    assert find_class("CPUPresetPlanner", "planner") is CPUPresetPlanner
    resenc = find_class("nnUNetPlannerResEncM", "planner")
    assert issubclass(resenc, ExperimentPlanner) and resenc.__name__ == "nnUNetPlannerResEncM"
    assert "CPUPresetPlanner" in radconf_classes("planner")


def test_unknown_name_shows_close_matches_and_how_to_list_all():
    with pytest.raises(ValueError) as error:
        find_class("nnUNetTrainer_5epoch", "trainer")
    message = str(error.value)
    assert "Did you mean" in message and "nnUNetTrainer_5epochs" in message
    close = message.split("Did you mean ")[1].split("?")[0].split(", ")
    assert 1 <= len(close) <= 5 and "radconf_train --list_trainers" in message  # not the ~100 names
    assert f"List all {len(available_names('trainer'))} trainers" in message
    with pytest.raises(ValueError, match="kind must be one of"):
        find_class("x", "preprocessor")


def test_listing_reads_names_without_importing():
    names = available_names("trainer")
    assert "nnUNetTrainerNoDeepSupervision" in names and len(names) > 50


def _parameters(function) -> list[tuple]:
    """What nnU-Net's ``my_init_kwargs`` depends on: names, kinds and defaults (annotations may be strings under
    ``from __future__ import annotations``)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_radconf_trainers_keep_nnunets_constructor_signature():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    trainers = radconf_classes("trainer")
    assert len(trainers) >= 10, f"trainer discovery found only {sorted(trainers)}"  # fails, never skips
    reference = _parameters(nnUNetTrainer.__init__)
    for name, cls in trainers.items():
        assert _parameters(cls.__init__) == reference, name


def test_the_signature_check_sees_a_changed_default():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    class Changed(nnUNetTrainer):
        def __init__(self, plans, configuration, fold, dataset_json, device=None):
            super().__init__(plans, configuration, fold, dataset_json, device)

    assert _parameters(Changed.__init__) != _parameters(nnUNetTrainer.__init__)
