"""Derived datasets (fused readers, anatomy channels, ...): where they go, their id and name, the problem report.

A derived dataset is written as a new nnU-Net raw dataset ``DatasetXXX_<name>`` next to its source; the writers
collect every problem before anything is written and report them at once (:func:`raise_problems`), then write
through :func:`radconf.io.files.staged_folder`.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from radconf.errors import InvalidInput
from radconf.raw.checks import resolve_source_folder

MAX_SHOWN = 30


@dataclass(frozen=True)
class DerivedTarget:
    """The source folder of a derived dataset and the folder it will be written to."""

    source: Path
    folder: Path
    name: str
    raw_root: Path


def derived_target(source: str | os.PathLike, dataset_id: int, name: str | None, suffix: str,
                   raw_root: str | os.PathLike | None) -> DerivedTarget:
    """Checks the new dataset's id and name and resolves the source (a folder, or an id/name in nnUNet_raw).

    Args:
        source: the source dataset folder, or its id/name in ``raw_root``.
        dataset_id: the new dataset's id (1..999).
        name: its name; None = the source's name + ``suffix``.
        suffix: e.g. ``Confidence``, ``Anatomy``.
        raw_root: nnUNet_raw (None = ``$nnUNet_raw``).

    Raises:
        ValueError: an id outside 1..999 or a name with other characters than letters, digits and ``_``.
        FileNotFoundError: the source does not exist.
    """
    if not 1 <= dataset_id <= 999:
        raise InvalidInput(f"Dataset id (-d) must be between 1 and 999, got {dataset_id}.")
    if raw_root is None:
        from radconf.paths import require_nnunet_paths

        raw_root = require_nnunet_paths().raw
    raw_root = Path(raw_root)
    source_folder = resolve_source_folder(source, raw_root)
    name = name or re.sub(r"^Dataset\d{3}_", "", source_folder.name) + suffix
    if not re.fullmatch(r"\w+", name):
        raise InvalidInput(f"Dataset name (-n) {name!r} may hold only letters, digits and underscores.")
    return DerivedTarget(source_folder, raw_root / f"Dataset{dataset_id:03d}_{name}", name, raw_root)


def raise_problems(what: str, problems: Sequence[str]) -> None:
    """Raises one InvalidInput listing every problem found (the first ``MAX_SHOWN``), if there is any."""
    if not problems:
        return
    shown = list(problems[:MAX_SHOWN]) + ([f"... and {len(problems) - MAX_SHOWN} more"]
                                          if len(problems) > MAX_SHOWN else [])
    raise InvalidInput(f"{what}: {len(problems)} problem(s), nothing written:\n  " + "\n  ".join(shown))
