"""nnU-Net's constructor signature, which radconf's trainers keep as far as nnU-Net reads it: names, kinds, defaults.

The per-trainer comparison is ``test_radconf_trainers_keep_nnunets_constructor_signature`` in
``tests/radconf/test_registry.py``.

nnU-Net records a trainer's init arguments in ``my_init_kwargs`` by looking up each parameter name of
``inspect.signature(self.__init__)`` in ``nnUNetTrainer.__init__``'s locals, and rebuilds trainers from checkpoints
with those keywords; annotations play no part (trainer modules use ``from __future__ import annotations``, which makes
them strings).
"""
from __future__ import annotations

import inspect

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from radconf.registry import radconf_classes


def _parameters(function) -> list[tuple[str, inspect._ParameterKind, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


REFERENCE = _parameters(nnUNetTrainer.__init__)


def test_reference_is_nnunets_signature():
    # hand-written: if nnU-Net changes its constructor, radconf's mixins must follow
    keyword = inspect.Parameter.POSITIONAL_OR_KEYWORD
    empty = inspect.Parameter.empty
    assert REFERENCE == [("self", keyword, empty), ("plans", keyword, empty), ("configuration", keyword, empty),
                         ("fold", keyword, empty), ("dataset_json", keyword, empty),
                         ("device", keyword, torch.device("cuda"))]
    assert "inspect.signature(self.__init__)" in inspect.getsource(nnUNetTrainer.__init__)


def test_trainer_modules_postpone_annotations():
    overriding = {name: cls for name, cls in radconf_classes("trainer").items()
                  if any("__init__" in vars(k) for k in cls.__mro__ if k.__module__.startswith("radconf."))}
    assert "AnatomyChannelsTrainer" in overriding and "ConfidenceTrainer" in overriding
    for name, cls in overriding.items():
        annotations = inspect.signature(cls.__init__).parameters["plans"].annotation
        assert annotations == "dict", name  # a string: the module uses postponed annotations
