"""Part I of N of a prediction's cases (``radconf_predict -num_parts N -part_id I``), for every prediction mode.

The split is nnU-Net's: the case identifiers sorted, part ``I`` takes every ``N``-th from the ``I``-th
(``sorted(cases)[I::N]``), so every case is in exactly one part, whatever the machine, and the parts of one command
line cover the folder. Each part predicts from a temporary folder of links to its cases' images (the user's folder is
only read) into the same output folder: the per-case outputs are disjoint, and the files that describe one run
(``timing.json``, ``crop_boxes.json``, ``localizer_timing.json``, the uncertainty summary, a DICOM run's
``cases.csv``) get the part in their name, ``timing.part_1_of_4.json``, so parts running at once never write the same
file. Files equal for every part (``radconf_model.json``, ``ensemble.json``, ``dataset.json``, ``plans.json``, the
post-processing record) keep their names; they are written atomically.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from radconf.errors import InvalidInput

_ACTIVE: ContextVar[Part | None] = ContextVar("radconf_active_part", default=None)


@dataclass(frozen=True)
class Part:
    """Part ``part_id`` (from 0) of ``num_parts``; ``Part()`` is the whole folder."""

    num_parts: int = 1
    part_id: int = 0

    def __post_init__(self) -> None:
        for flag, value in (("-num_parts", self.num_parts), ("-part_id", self.part_id)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{flag} {value!r} must be a whole number.")
        if self.num_parts < 1:
            raise InvalidInput(f"-num_parts {self.num_parts} must be 1 or more (the number of processes or nodes "
                               f"sharing the cases).")
        if not 0 <= self.part_id < self.num_parts:
            raise InvalidInput(f"-part_id {self.part_id} must be in 0..{self.num_parts - 1} for -num_parts "
                               f"{self.num_parts} (parts count from 0, e.g. SLURM_ARRAY_TASK_ID with --array=0-"
                               f"{self.num_parts - 1}).")

    @property
    def whole(self) -> bool:
        return self.num_parts == 1

    def select(self, cases: Sequence[str]) -> list[str]:
        """This part's cases: ``sorted(cases)[part_id::num_parts]``."""
        return sorted(cases)[self.part_id::self.num_parts]

    def file_name(self, name: str) -> str:
        """``name`` with the part before its suffix (``timing.json`` -> ``timing.part_1_of_4.json``); unchanged for
        the whole folder."""
        if self.whole:
            return name
        path = Path(name)
        return str(path.with_name(f"{path.stem}.part_{self.part_id}_of_{self.num_parts}{path.suffix}"))

    def describe(self) -> str:
        return "" if self.whole else f" (part {self.part_id} of {self.num_parts}, counting from 0)"


def part_file_name(name: str) -> str:
    """``name`` for the part being predicted (:func:`active_part`); unchanged outside one."""
    part = _ACTIVE.get()
    return name if part is None else part.file_name(name)


def in_part() -> bool:
    """Whether a part of a sharded prediction is being predicted (:func:`active_part`)."""
    return _ACTIVE.get() is not None


@contextmanager
def active_part(part: Part) -> Iterator[Part]:
    """Within the block, the run-level files are named for ``part`` (:func:`part_file_name`)."""
    token = _ACTIVE.set(None if part.whole else part)
    try:
        yield part
    finally:
        _ACTIVE.reset(token)


def _link(source: Path, target: Path) -> None:
    try:
        os.symlink(source, target)
    except OSError:  # file systems without symbolic links
        shutil.copyfile(source, target)


@contextmanager
def part_input_folder(input_folder: str | os.PathLike, channels: dict[str, list[int]], ending: str,
                      part: Part) -> Iterator[tuple[Path, list[str]]]:
    """A temporary folder (the system's) of links to the images of ``part``'s cases, and those cases; within it the
    part is active.

    Args:
        input_folder: the user's images, ``CASE_XXXX<ending>``.
        channels: case -> its channel numbers (:func:`radconf.io.cases.input_case_channels`).
        ending: the images' file ending.
        part: which cases.
    """
    source = Path(input_folder).resolve()
    chosen = part.select(list(channels))
    with tempfile.TemporaryDirectory(prefix="radconf_part_") as tmp, active_part(part):
        folder = Path(tmp) / "images"
        folder.mkdir()
        for case in chosen:
            for c in channels[case]:
                name = f"{case}_{c:04d}{ending}"
                _link(source / name, folder / name)
        yield folder, chosen
