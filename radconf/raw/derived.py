"""Derived datasets (fused readers, anatomy channels, the phantom, ...): where they go, their id and name, the
problem report.

A derived dataset is written as a new nnU-Net raw dataset ``DatasetXXX_<name>`` in nnUNet_raw; the writers collect
every problem before anything is written and report them at once (:func:`raise_problems`), refuse an output that
is, contains or lies inside one of their inputs and an id nnU-Net already knows under another name
(:func:`check_output_dataset`), then write through :func:`radconf.io.files.staged_folder`.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from radconf.errors import InvalidInput, OutputExists
from radconf.io.locations import check_output_location
from radconf.raw.checks import resolve_source_folder

MAX_SHOWN = 30
STAGING_SUFFIXES = (".partial", ".replaced")  # radconf's own staging folders, not datasets


@dataclass(frozen=True)
class DerivedTarget:
    """The source folder of a derived dataset and the folder it will be written to."""

    source: Path
    folder: Path
    name: str
    raw_root: Path


def check_dataset_name(name: str, flag: str = "-n") -> None:
    """Raises InvalidInput unless ``name`` is a valid dataset name (letters, digits, underscores)."""
    if not re.fullmatch(r"\w+", name):
        raise InvalidInput(f"Dataset name ({flag}) {name!r} may hold only letters, digits and underscores.")


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
    if name is not None:
        check_dataset_name(name)
    if raw_root is None:
        from radconf.paths import require_nnunet_paths

        raw_root = require_nnunet_paths().raw
    raw_root = Path(raw_root)
    source_folder = resolve_source_folder(source, raw_root)
    name = name or re.sub(r"^Dataset\d{3}_", "", source_folder.name) + suffix
    check_dataset_name(name)
    return DerivedTarget(source_folder, raw_root / f"Dataset{dataset_id:03d}_{name}", name, raw_root)


def raise_problems(what: str, problems: Sequence[str]) -> None:
    """Raises one InvalidInput listing every problem found (the first ``MAX_SHOWN``), if there is any."""
    if not problems:
        return
    shown = list(problems[:MAX_SHOWN]) + ([f"... and {len(problems) - MAX_SHOWN} more"]
                                          if len(problems) > MAX_SHOWN else [])
    raise InvalidInput(f"{what}: {len(problems)} problem(s), nothing written:\n  " + "\n  ".join(shown))


def nnunet_roots(raw_root: Path) -> list[Path]:
    """The folders in which nnU-Net looks a dataset id up: ``raw_root``, plus $nnUNet_preprocessed and
    $nnUNet_results when ``raw_root`` is $nnUNet_raw (they belong to it)."""
    roots = [Path(raw_root)]
    environment_raw = os.environ.get("nnUNet_raw")
    if environment_raw and Path(environment_raw).resolve() == Path(raw_root).resolve():
        roots += [Path(os.environ[n]) for n in ("nnUNet_preprocessed", "nnUNet_results") if os.environ.get(n)]
    return roots


def dataset_id_users(dataset_id: int, raw_root: Path, name: str) -> list[Path]:
    """Folders ``DatasetXXX_<other name>`` with this id in nnU-Net's folders (:func:`nnunet_roots`)."""
    own = f"Dataset{dataset_id:03d}_{name}"
    return sorted(p for root in nnunet_roots(raw_root) if root.is_dir() for p in root.glob(f"Dataset{dataset_id:03d}_*")
                  if p.is_dir() and p.name != own and not p.name.endswith(STAGING_SUFFIXES))


def free_dataset_id(after: int, raw_root: Path) -> int | None:
    """The first id above ``after`` that no folder of nnU-Net's folders uses (None if there is none up to 999)."""
    used = {int(match.group(1)) for root in nnunet_roots(raw_root) if root.is_dir() for p in root.iterdir()
            if (match := re.match(r"Dataset(\d{3})_", p.name))}
    return next((i for i in range(after + 1, 1000) if i not in used), None)


def check_dataset_id(folder: Path, dataset_id: int, flag: str = "-d") -> None:
    """Refuses (OutputExists) an id that nnU-Net's folders already hold under another name: nnU-Net finds datasets
    by id and would mix the two up."""
    others = dataset_id_users(dataset_id, folder.parent, folder.name.split("_", 1)[1])
    if others:
        free = free_dataset_id(dataset_id, folder.parent)
        raise OutputExists(f"Dataset id {dataset_id} is already used by {others[0]} (another name); nnU-Net finds "
                           f"datasets by id in nnUNet_raw, nnUNet_preprocessed and nnUNet_results. Pick another id"
                           + (f" with {flag}, e.g. {flag} {free}." if free else f" with {flag}."))


def check_output_dataset(folder: Path, dataset_id: int, inputs: Sequence[tuple[str, Path | None]], overwrite: bool,
                         command: str, written_by_command: Callable[[Path], bool]) -> None:
    """Refuses to write a derived dataset into ``folder`` when it is, contains or lies inside one of ``inputs``
    (InvalidInput; resolved paths, symlinks followed), when its id is used by another dataset, when it exists and
    ``written_by_command`` says it is not ``command``'s output, or when it is and ``overwrite`` is False
    (OutputExists), each naming the fix.

    Args:
        folder: the new dataset's folder.
        dataset_id: its id.
        inputs: ``(what, folder)`` of every folder the command reads, e.g. ``("the source dataset", source)``.
        overwrite: whether an earlier output of ``command`` may be replaced.
        command: the command's name, for the messages.
        written_by_command: whether an existing folder is ``command``'s output.
    """
    check_output_location(folder, inputs, subject=f"The new dataset {folder}",
                          fix="Pick another dataset id (-d) or name (-n), or move {what} out of it.")
    check_dataset_id(folder, dataset_id)
    if folder.exists() or folder.is_symlink():
        if folder.is_symlink() or not written_by_command(folder):
            raise OutputExists(f"{folder} exists and was not written by {command}; it is left untouched. Pick "
                               f"another dataset id or name.")
        if not overwrite:
            raise OutputExists(f"{folder} exists (an earlier {command} output). Pass --overwrite "
                               f"(overwrite=True) to replace it, or pick another dataset id or name.")
