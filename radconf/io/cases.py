"""Case identifiers and the files of a case, with ONE parser of nnU-Net's image names ``CASE_XXXX<ending>``.

``CASE`` is everything before the last ``_XXXX`` (four digits = the channel); label maps, predictions and
probability files are ``CASE<ending>``. Also: the checks of a prediction input folder (names, channels, every image
whole, 3D and on one grid per case).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
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


def check_input_folder(folder: str | os.PathLike, file_ending: str, num_channels: int, *,
                       channels: Sequence[int] | None = None, dimensions: Sequence[int] = (2, 3),
                       flag: str = "-i") -> list[str]:
    """Case identifiers of a prediction input folder, every image checked before any work starts.

    Each case needs exactly the channels the model reads (``_0000`` .. ``_{num_channels - 1}``, or ``channels``);
    each image must be whole and finite (:func:`radconf.io.images.check_image_file`), have one of ``dimensions``
    and share the grid of the case's other channels.

    Raises:
        MissingInput: the folder does not exist or holds no images with the ending.
        InvalidInput: a file instead of a folder, a misnamed file, missing or extra channels, a truncated, NaN, 4D
            or off-grid image, naming the file and the fix.
    """
    folder = Path(folder)
    found = input_case_channels(folder, file_ending, flag)
    expected = list(range(num_channels)) if channels is None else sorted(channels)
    wrong = {c: ch for c, ch in found.items() if ch != expected}
    if wrong:
        case, present = next(iter(wrong.items()))
        raise InvalidInput(f"The model expects {len(expected)} channel(s) per case ("
                           f"{', '.join(f'_{c:04d}' for c in expected)}) but case {case} in {folder} has channels "
                           f"{present} ({len(wrong)} case(s) affected). Provide exactly the channels the model was "
                           f"trained with.")
    check_case_images(folder, found, file_ending, dimensions)
    return sorted(found)


def input_case_channels(folder: str | os.PathLike, file_ending: str, flag: str = "-i") -> dict[str, list[int]]:
    """:func:`case_channels` of an input folder that must exist and hold images (a file, a missing or an empty folder
    refused with the fix)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{flag} {folder} is a file; give the folder that holds the images (CASE_0000{file_ending}, "
                           f"one file per channel).")
    if not folder.is_dir():
        raise MissingInput(f"Input folder {flag} {folder} does not exist; check the path.")
    found = case_channels(folder, file_ending)
    if not found:
        raise MissingInput(_no_images(folder, file_ending))
    return found


def _no_images(folder: Path, file_ending: str) -> str:
    names = [p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    endings = sorted({"".join(Path(n).suffixes[-2:]) if n.endswith(".gz") else Path(n).suffix for n in names} - {""})
    held = f"it holds {len(names)} file(s) ending {', '.join(endings)}" if endings else "it holds no image files"
    return (f"No CASE_0000{file_ending} images in {folder} ({held}). The model reads {file_ending} files named "
            f"CASE_XXXX{file_ending} (XXXX = channel); convert or rename the images.")


def check_case_images(folder: Path, channels: dict[str, list[int]], file_ending: str,
                      dimensions: Sequence[int] = (2, 3)) -> None:
    """Checks every image ``CASE_XXXX<ending>`` of ``channels`` (case -> channel indices) in ``folder``: whole,
    finite, of one of ``dimensions`` and on the grid of the case's first channel."""
    from radconf.io.images import Geometry, checked_header, geometry_difference

    for case, indices in channels.items():
        first = None
        for channel in indices:
            path = Path(folder) / f"{case}_{channel:04d}{file_ending}"
            header = checked_header(path)
            geometry = Geometry.of(header)
            if len(geometry.size) not in dimensions:
                raise InvalidInput(_dimension_problem(path, case, geometry.size, dimensions, file_ending))
            components = header.GetNumberOfComponents()
            if components != 1:
                raise InvalidInput(f"{path} has {components} values per voxel (a vector or colour image); radconf "
                                   f"reads one scalar image per channel ({case}_0000{file_ending}, "
                                   f"{case}_0001{file_ending}, ...). Split the components into one file each.")
            if first is None:
                first = (path, geometry)
                continue
            difference = geometry_difference(first[1], geometry)
            if difference:
                raise InvalidInput(f"Case {case}: {path} is not on the grid of {first[0].name} ({difference}); all "
                                   f"channels of a case must share one voxel grid. Resample it onto the first "
                                   f"channel's grid (e.g. SimpleITK's Resample(image, first_channel)).")


def _dimension_problem(path: Path, case: str, size: tuple[int, ...], dimensions: Sequence[int], ending: str) -> str:
    wanted = " or ".join(f"{d}D" for d in sorted(dimensions))
    if len(size) > 3:
        return (f"{path} is a {len(size)}D image (size {size}); radconf reads one {wanted} image per channel: "
                f"{case}_0000{ending}, {case}_0001{ending}, ... Split it into one {wanted} file per channel (e.g. "
                f"SimpleITK's image[:, :, :, c]) and give the model the channels it was trained with.")
    return (f"{path} is a {len(size)}D image (size {size}) but this model was trained on {wanted} images; give each "
            f"case as {wanted} images, one file per channel ({case}_0000{ending}, ...).")


def split_done(cases: Sequence[str], output_folder: Path, overwrite: bool,
               outputs: Callable[[str], Sequence[str]]) -> tuple[list[str], list[str]]:
    """``(to predict, already there)``: with ``overwrite`` False a case whose every output file (``outputs(case)``,
    relative to ``output_folder``) exists is left as it is."""
    if overwrite:
        return list(cases), []
    done = {case for case in cases if all((Path(output_folder) / name).is_file() for name in outputs(case))}
    return [case for case in cases if case not in done], [case for case in cases if case in done]


class PredictedCases(list):
    """The case identifiers of a prediction run (a list), and ``skipped``: those whose output was already there
    (``--continue_prediction``) and were left as they were."""

    def __init__(self, cases: Iterable[str] = (), skipped: Iterable[str] = ()):
        super().__init__(cases)
        self.skipped = sorted(skipped)

    @property
    def predicted(self) -> list[str]:
        """The cases written by this run."""
        skipped = set(self.skipped)
        return [case for case in self if case not in skipped]
