"""Finds trainer and planner classes by name: radconf's own first, then nnU-Net's.

radconf does not patch nnU-Net's lookup. It scans its own packages (``radconf.trainers``, ``radconf.planners``),
and falls back to nnU-Net's recursive search inside the installed ``nnunetv2`` package. An unknown name fails with
the list of available names (read from the source files, so listing never imports every nnU-Net module).
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import pkgutil
import re
from functools import lru_cache
from pathlib import Path

from radconf.errors import InvalidInput

_CLASS_RE = re.compile(r"^class\s+(\w+)\s*[(:]", re.MULTILINE)

_KINDS = {
    # kind: (radconf package, nnU-Net sub-folder, nnU-Net module prefix, base class import path, name marker)
    "trainer": ("radconf.trainers", ("training", "nnUNetTrainer"), "nnunetv2.training.nnUNetTrainer",
                "nnunetv2.training.nnUNetTrainer.nnUNetTrainer:nnUNetTrainer", "Trainer"),
    "planner": ("radconf.planners", ("experiment_planning",), "nnunetv2.experiment_planning",
                "nnunetv2.experiment_planning.experiment_planners.default_experiment_planner:ExperimentPlanner",
                "Planner"),
}


def _base_class(kind: str) -> type:
    module, name = _KINDS[kind][3].split(":")
    return getattr(importlib.import_module(module), name)


@lru_cache(maxsize=None)
def radconf_classes(kind: str) -> dict[str, type]:
    """All subclasses of nnU-Net's base class defined in radconf's package for ``kind`` ('trainer'/'planner')."""
    package = importlib.import_module(_KINDS[kind][0])
    base = _base_class(kind)
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, base) and obj.__module__ == module.__name__:
                found[name] = obj
    return found


def _nnunet_folder(kind: str) -> Path:
    import nnunetv2

    return Path(nnunetv2.__path__[0]).joinpath(*_KINDS[kind][1])


@lru_cache(maxsize=None)
def nnunet_class_names(kind: str) -> tuple[str, ...]:
    """Names of the classes nnU-Net defines for ``kind``, read from its source (nothing is imported)."""
    names = set()
    for source in _nnunet_folder(kind).rglob("*.py"):
        names.update(n for n in _CLASS_RE.findall(source.read_text(encoding="utf-8", errors="ignore"))
                     if _KINDS[kind][4] in n)
    return tuple(sorted(names))


def available_names(kind: str) -> list[str]:
    return sorted(set(radconf_classes(kind)) | set(nnunet_class_names(kind)))


def find_class(name: str, kind: str) -> type:
    """Resolves a trainer/planner class by name.

    Args:
        name: class name, e.g. ``nnUNetTrainer_5epochs`` or ``CPUPresetPlanner``.
        kind: ``"trainer"`` or ``"planner"``.

    Returns:
        The class; radconf's wins if both define the name.

    Raises:
        ValueError: the name is unknown; the message lists close matches and all available names.
    """
    if kind not in _KINDS:
        raise InvalidInput(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    ours = radconf_classes(kind)
    if name in ours:
        return ours[name]
    if name in nnunet_class_names(kind):
        from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

        cls = recursive_find_python_class(str(_nnunet_folder(kind)), name, current_module=_KINDS[kind][2])
        if cls is not None and issubclass(cls, _base_class(kind)):
            return cls
    names = available_names(kind)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise InvalidInput(f"Unknown {kind} {name!r}.{hint} Available {kind}s (radconf, then nnU-Net): "
                     f"{', '.join(sorted(ours)) or '(none)'}; {', '.join(nnunet_class_names(kind))}")
