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


def test_unknown_name_lists_alternatives():
    with pytest.raises(ValueError) as error:
        find_class("nnUNetTrainer_5epoch", "trainer")
    message = str(error.value)
    assert "Did you mean" in message and "nnUNetTrainer_5epochs" in message
    assert "nnUNetTrainer_1epoch" in message  # the full list follows
    with pytest.raises(ValueError, match="kind must be one of"):
        find_class("x", "preprocessor")


def test_listing_reads_names_without_importing():
    names = available_names("trainer")
    assert "nnUNetTrainerNoDeepSupervision" in names and len(names) > 50


def test_radconf_trainers_keep_nnunets_constructor_signature():
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    reference = inspect.signature(nnUNetTrainer.__init__)
    trainers = radconf_classes("trainer")
    if not trainers:
        pytest.skip("radconf ships no trainer subclasses yet")
    for name, cls in trainers.items():
        assert inspect.signature(cls.__init__) == reference, name
