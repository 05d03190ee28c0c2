"""TODO module docstring."""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from radconf.errors import InvalidInput, MissingInput
from radconf.io.files import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported for the evaluation modules)

DEFAULT_FILE_ENDING = ".nii.gz"


# --------------------------------------------------------------------------------------------------------- cases
def list_cases(folder: str | os.PathLike, file_ending: str) -> dict[str, Path]:
    """Maps case id -> file for every file in ``folder`` ending with ``file_ending`` (nnU-Net naming ``CASE.ending``).

    Raises:
        FileNotFoundError: if ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInput(
            f"Folder {folder} does not exist or is not a directory; check the -ref/-pred paths."
        )
    return {
        p.name[: -len(file_ending)]: p
        for p in sorted(folder.iterdir())
        if p.is_file()
        and p.name.endswith(file_ending)
        and len(p.name) > len(file_ending)
        and not p.name.startswith(".")
    }


def format_case_list(cases: Iterable[str], limit: int = 20) -> str:
    """Comma-separated case list, shortened to ``limit`` entries with a count of the rest."""
    cases = list(cases)
    text = ", ".join(cases[:limit])
    return text + (f", ... ({len(cases) - limit} more)" if len(cases) > limit else "")


def check_input_folder(folder: Path, file_ending: str, num_channels: int) -> list[str]:
    """Case identifiers of an input folder whose files are ``CASE_XXXX<ending>``; every case needs all channels."""
    if not folder.is_dir():
        raise MissingInput(f"Input folder {folder} does not exist.")
    files = sorted(p.name for p in folder.iterdir() if p.name.endswith(file_ending))
    channels: dict[str, list[int]] = {}
    for name in files:
        match = re.fullmatch(r"(.+)_(\d{4})" + re.escape(file_ending), name)
        if not match:
            raise InvalidInput(f"{folder / name}: input files must be named CASE_XXXX{file_ending} (XXXX = channel, "
                             f"e.g. CASE_0000{file_ending}); rename it.")
        channels.setdefault(match.group(1), []).append(int(match.group(2)))
    if not channels:
        raise MissingInput(f"No *_0000{file_ending} images in {folder}.")
    wrong = {c: ch for c, ch in channels.items() if sorted(ch) != list(range(num_channels))}
    if wrong:
        case, found = next(iter(wrong.items()))
        raise InvalidInput(f"The model expects {num_channels} channel(s) per case (_0000..._{num_channels - 1:04d}) but "
                         f"case {case} in {folder} has channels {sorted(found)} ({len(wrong)} case(s) affected). "
                         f"Provide exactly the channels the model was trained with.")
    return sorted(channels)


def case_channels(folder: str | os.PathLike, file_ending: str) -> dict[str, list[int]]:
    """Case -> sorted channel indices of the files ``CASE_XXXX<ending>`` in ``folder``.

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: a file with the ending whose name lacks the ``_XXXX`` channel suffix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInput(f"Image folder {folder} does not exist.")
    pattern = re.compile(r"(.+)_(\d{4})" + re.escape(file_ending))
    channels: dict[str, list[int]] = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or not name.endswith(file_ending):
            continue
        match = pattern.fullmatch(name)
        if not match:
            raise InvalidInput(f"{folder / name}: image files must be named CASE_XXXX{file_ending} (XXXX = channel, "
                             f"e.g. CASE_0000{file_ending}); rename it.")
        channels.setdefault(match.group(1), []).append(int(match.group(2)))
    return {case: sorted(found) for case, found in sorted(channels.items())}
