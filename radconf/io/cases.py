"""Case identifiers and the files of a case, with ONE parser of nnU-Net's image names ``CASE_XXXX<ending>``.

``CASE`` is everything before the last ``_XXXX`` (four digits = the channel); label maps, predictions and
probability files are ``CASE<ending>``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from radconf.errors import InvalidInput, MissingInput

DEFAULT_FILE_ENDING = ".nii.gz"


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


def split_image_name(name: str, file_ending: str) -> tuple[str, int] | None:
    """``(case, channel)`` of an image file name ``CASE_XXXX<ending>``, or None if the name is not one."""
    if not name.endswith(file_ending) or len(name) <= len(file_ending) + 5:
        return None
    stem = name[:-len(file_ending)]
    case, separator, channel = stem[:-5], stem[-5], stem[-4:]
    if separator != "_" or not channel.isdigit() or not channel.isascii() or not case:
        return None
    return case, int(channel)


def case_channels(folder: str | os.PathLike, file_ending: str, *, strict: bool = True) -> dict[str, list[int]]:
    """Case -> sorted channel indices of the files ``CASE_XXXX<ending>`` in ``folder`` (hidden files skipped).

    Args:
        folder: an image folder.
        file_ending: e.g. ``.nii.gz``.
        strict: refuse a file with the ending that is not named ``CASE_XXXX<ending>`` (else skip it).

    Raises:
        FileNotFoundError: ``folder`` does not exist.
        ValueError: (strict) a file with the ending whose name lacks the ``_XXXX`` channel suffix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInput(f"Image folder {folder} does not exist.")
    channels: dict[str, list[int]] = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or not name.endswith(file_ending):
            continue
        parsed = split_image_name(name, file_ending)
        if parsed is None:
            if not strict:
                continue
            raise InvalidInput(f"{folder / name}: image files must be named CASE_XXXX{file_ending} (XXXX = channel, "
                               f"e.g. CASE_0000{file_ending}); rename it.")
        channels.setdefault(parsed[0], []).append(parsed[1])
    return {case: sorted(found) for case, found in sorted(channels.items())}


def check_input_folder(folder: Path, file_ending: str, num_channels: int) -> list[str]:
    """Case identifiers of an input folder whose files are ``CASE_XXXX<ending>``; every case needs all channels."""
    if not Path(folder).is_dir():
        raise MissingInput(f"Input folder {folder} does not exist.")
    channels = case_channels(folder, file_ending)
    if not channels:
        raise MissingInput(f"No *_0000{file_ending} images in {folder}.")
    wrong = {c: ch for c, ch in channels.items() if ch != list(range(num_channels))}
    if wrong:
        case, found = next(iter(wrong.items()))
        raise InvalidInput(f"The model expects {num_channels} channel(s) per case (_0000..._{num_channels - 1:04d}) "
                           f"but case {case} in {folder} has channels {found} ({len(wrong)} case(s) affected). "
                           f"Provide exactly the channels the model was trained with.")
    return sorted(channels)
