"""Finds trainer and planner classes by name: radconf's own first, then nnU-Net's.

radconf does not patch nnU-Net's lookup. It scans its own packages (``radconf.trainers``, ``radconf.planners``),
and falls back to nnU-Net's recursive search inside the installed ``nnunetv2`` package. An unknown name fails with
up to five close matches and the way to list all names (read from the source files, so listing never imports every
nnU-Net module): ``radconf_train --list_trainers``, or ``available_names(kind)``.
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
    """Every trainer/planner name radconf resolves: radconf's and nnU-Net's, sorted."""
    return sorted(set(radconf_classes(kind)) | set(nnunet_class_names(kind)))


def name_listing(kind: str) -> str:
    """All names of ``kind`` for a terminal: radconf's with the first line of their docstring, then nnU-Net's."""
    ours = radconf_classes(kind)
    lines = [f"radconf {kind}s ({len(ours)}):"]
    for name in sorted(ours):
        summary = (inspect.getdoc(ours[name]) or "").strip().splitlines()
        lines.append(f"  {name}" + (f"  - {summary[0]}" if summary else ""))
    theirs = [n for n in nnunet_class_names(kind) if n not in ours]
    lines.append(f"nnU-Net {kind}s ({len(theirs)}):")
    lines += [f"  {name}" for name in theirs]
    return "\n".join(lines)


#: how a user lists every name of a kind (said by the unknown-name message)
LIST_HINTS = {
    "trainer": "radconf_train --list_trainers",
    "planner": "python -c \"from radconf.registry import available_names; print(*available_names('planner'), "
               "sep=chr(10))\"",
}


def close_matches(name: str, names: list[str], n: int = 5) -> list[str]:
    """Up to ``n`` names like ``name`` (difflib's ratio, case-insensitive), best first."""
    lowered = {candidate.lower(): candidate for candidate in names}
    return [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)]


def find_class(name: str, kind: str) -> type:
    """Resolves a trainer/planner class by name.

    Args:
        name: class name, e.g. ``nnUNetTrainer_5epochs`` or ``CPUPresetPlanner``.
        kind: ``"trainer"`` or ``"planner"``.

    Returns:
        The class; radconf's wins if both define the name.

    Raises:
        InvalidInput: the name is unknown; the message names up to five close matches and how to list all names.
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
    close = close_matches(name, names)
    hint = f" Did you mean {', '.join(close)}?" if close else " No name is close to it."
    raise InvalidInput(f"Unknown {kind} {name!r}.{hint} List all {len(names)} {kind}s (radconf's and nnU-Net's) "
                       f"with: {LIST_HINTS[kind]}")
