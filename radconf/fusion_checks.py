"""Inputs of the file-level reader fusion (``radconf_fuse_readers``): finding cases and masks, checking them.

Layout read (nnU-Net raw dataset plus a readers folder)::

    <source>/imagesTr/<case>_0000<ending>     (+ _0001 ... for more channels; imagesTs/ likewise, optional)
    <source>/readers/<case>/<mask><ending>    one binary mask of the structure per reader and trial,
                                              named <reader>_<trial> (reader = the part before the last "_")

Everything that can be checked from file headers (SimpleITK's ``ReadImageInformation``: no voxel data is decoded) is
checked for all cases before anything is written, and every problem is reported at once with the file and the fix.
Voxel values (binary or not) are checked when a mask is read.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.evaluation.io import Geometry

SPACING_RELATIVE_TOLERANCE = 1e-4  # |spacing difference| <= 1e-4 * image spacing, per axis
ORIGIN_TOLERANCE_MM = 1e-3  # |origin difference| <= 1e-3 mm, per axis
DIRECTION_TOLERANCE = 1e-4  # |direction cosine difference| <= 1e-4
DEFAULT_FILE_ENDING = ".nii.gz"
RESAMPLE_HINT = ("Resample the mask onto the image grid (nearest neighbour, e.g. SimpleITK's "
                 "Resample(mask, image, sitk.Transform(), sitk.sitkNearestNeighbor)) or export it with the image's "
                 "geometry.")


@dataclass(frozen=True)
class ImageGeometry(Geometry):
    """Voxel grid of an image in SimpleITK's (x, y, z) order, with what fusion needs on top of evaluation's."""

    @classmethod
    def of(cls, image) -> ImageGeometry:
        """Geometry of a ``sitk.Image`` or of an ``sitk.ImageFileReader`` after ``ReadImageInformation``."""
        return cls(tuple(int(s) for s in image.GetSize()), tuple(float(s) for s in image.GetSpacing()),
                   tuple(float(s) for s in image.GetOrigin()), tuple(float(s) for s in image.GetDirection()))

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def apply_to(self, image):
        """Copies spacing, origin and direction onto ``image`` (a ``sitk.Image`` of the same size) and returns it."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image


def _rounded(values: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(round(v, 6) for v in values)


def geometry_difference(image: ImageGeometry, mask: ImageGeometry) -> str | None:
    """Which property of ``mask`` differs from ``image`` beyond the tolerances, with both values; None if none."""
    if mask.size != image.size:
        return f"size {mask.size} vs image {image.size}"
    spacing_ok = np.all(np.abs(np.subtract(mask.spacing, image.spacing))
                        <= SPACING_RELATIVE_TOLERANCE * np.abs(image.spacing))
    if not spacing_ok:
        return (f"spacing {_rounded(mask.spacing)} vs image {_rounded(image.spacing)} "
                f"(tolerance {SPACING_RELATIVE_TOLERANCE:g} relative)")
    if not np.all(np.abs(np.subtract(mask.origin, image.origin)) <= ORIGIN_TOLERANCE_MM):
        return (f"origin {_rounded(mask.origin)} vs image {_rounded(image.origin)} "
                f"(tolerance {ORIGIN_TOLERANCE_MM:g} mm)")
    if not np.all(np.abs(np.subtract(mask.direction, image.direction)) <= DIRECTION_TOLERANCE):
        return (f"direction {_rounded(mask.direction)} vs image {_rounded(image.direction)} "
                f"(tolerance {DIRECTION_TOLERANCE:g})")
    return None


def read_header(path: Path):
    """``sitk.ImageFileReader`` with the header of ``path`` read (no voxel data).

    Raises:
        ValueError: SimpleITK cannot read the file, naming it.
    """
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as error:
        raise ValueError(f"SimpleITK cannot read {path} ({_last_line(error)}); re-export the file in a format "
                         f"SimpleITK reads (e.g. NIfTI).") from None
    return reader


def _last_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def binarise(array: np.ndarray, path: Path, threshold: float | None = None) -> np.ndarray:
    """Binary mask (bool) of a mask file's voxels.

    Without ``threshold`` the values must be 0 and 1 only (an empty or full mask is fine); with it, ``value >
    threshold`` (for any dtype, e.g. 0/255 masks or probability maps).

    Raises:
        ValueError: other values, naming the file, the values found and the ``--threshold`` fix.
    """
    if threshold is not None:
        return array > threshold
    if array.dtype == bool:
        return array
    if array.size == 0:
        return array.astype(bool)
    if np.issubdtype(array.dtype, np.integer):
        binary = int(array.min()) >= 0 and int(array.max()) <= 1
    else:
        binary = bool(np.all((array == 0) | (array == 1)))
    if not binary:
        values = np.unique(array)
        shown = ", ".join(f"{v:g}" for v in values[:6].tolist()) + (", ..." if values.size > 6 else "")
        raise ValueError(f"Mask {path} is not binary: it holds the values {{{shown}}} ({array.dtype}), but masks must "
                         f"hold 0 and 1 only. Pass --threshold T (threshold=T) to use value > T, e.g. --threshold 0 "
                         f"for 0/255 masks or --threshold 0.5 for probability maps.")
    return array.view(bool) if array.dtype == np.uint8 else array != 0


@dataclass(frozen=True)
class CaseInputs:
    """One case of the source dataset: its image channels and its reader masks (name -> file)."""

    case: str
    split: str  # "train" or "test"
    images: tuple[Path, ...]  # channel 0 first
    masks: Mapping[str, Path]


@dataclass(frozen=True)
class SourceDataset:
    folder: Path
    name: str  # the part after DatasetXXX_ (or the folder name)
    file_ending: str
    channel_names: dict[str, str]
    readers_folder: Path
    cases: list[CaseInputs]


def _source_name(folder: Path) -> str:
    match = re.fullmatch(r"Dataset\d{3}_(.+)", folder.name)
    return match.group(1) if match else folder.name


def resolve_source_folder(source: str | os.PathLike, raw_root: Path | None) -> Path:
    """The source dataset folder: an existing folder, or a dataset id/name looked up in ``raw_root`` (nnUNet_raw).

    Raises:
        FileNotFoundError: neither, naming what was tried.
    """
    path = Path(str(source)).expanduser()
    if path.is_dir():
        return path.resolve()
    if re.fullmatch(r"(?:Dataset)?\d{1,3}(?:_\w+)?", str(source)) and raw_root is not None:
        from radconf.dataset_checks import find_dataset_name

        return (raw_root / find_dataset_name(str(source), raw_root)).resolve()
    raise FileNotFoundError(f"Source dataset {source} does not exist: give an existing dataset folder, or a dataset "
                            f"id/name (e.g. 501 or Dataset501_Phantom) present in nnUNet_raw ({raw_root}).")


def _images_of(folder: Path, ending: str) -> dict[str, list[str]]:
    """case -> sorted image file names ``<case>_XXXX<ending>`` in ``folder``."""
    pattern = re.compile(r"(.+)_(\d{4})" + re.escape(ending))
    cases: dict[str, list[str]] = {}
    for entry in sorted(os.listdir(folder)) if folder.is_dir() else []:
        match = pattern.fullmatch(entry)
        if match:
            cases.setdefault(match.group(1), []).append(entry)
    return cases


def scan_source(source: Path, readers_folder: Path | None = None) -> SourceDataset:
    """Finds cases, image channels and reader masks, and checks every header against its case's image.

    Raises:
        FileNotFoundError: the source has no imagesTr, or the readers folder does not exist.
        ValueError: all case-level problems found, one per line (case without masks, readers folder without image,
            missing channel, unreadable file, mask geometry differing from the image), each naming the file and fix.
    """
    dataset_json_path = source / "dataset.json"
    try:
        dataset_json = json.loads(dataset_json_path.read_text()) if dataset_json_path.is_file() else {}
    except ValueError as error:
        raise ValueError(f"{dataset_json_path} is not valid JSON ({error}); fix it (channel_names, file_ending) or "
                         f"remove it to use one CT channel and .nii.gz.") from None
    ending = dataset_json.get("file_ending", DEFAULT_FILE_ENDING)
    if not (source / "imagesTr").is_dir():
        raise FileNotFoundError(f"{source / 'imagesTr'} does not exist; the source must be an nnU-Net raw dataset with "
                                f"imagesTr/<case>_0000{ending} (and optionally imagesTs/).")
    readers_folder = Path(readers_folder) if readers_folder is not None else source / "readers"
    if not readers_folder.is_dir():
        raise FileNotFoundError(f"Readers folder {readers_folder} does not exist. Put each case's masks in "
                                f"readers/<case>/<reader>_<trial>{ending} inside the source dataset, or pass "
                                f"--readers DIR (readers_folder=...).")
    splits = {"train": _images_of(source / "imagesTr", ending), "test": _images_of(source / "imagesTs", ending)}
    problems: list[str] = []
    channel_names = dataset_json.get("channel_names")
    if channel_names is None:
        found = max((len(files) for split in splits.values() for files in split.values()), default=1)
        if found > 1:
            raise ValueError(f"{source} has {found} image channels per case but no dataset.json; add a dataset.json "
                             f"with channel_names (and file_ending) so that the channels can be named.")
        channel_names = {"0": "CT"}
    expected_channels = len(channel_names)
    both = sorted(set(splits["train"]) & set(splits["test"]))
    problems += [f"case {case} is in both imagesTr and imagesTs; keep it in one of them." for case in both]
    cases: list[CaseInputs] = []
    for split, images in splits.items():
        folder = source / ("imagesTr" if split == "train" else "imagesTs")
        for case, files in images.items():
            expected = [f"{case}_{c:04d}{ending}" for c in range(expected_channels)]
            if files != expected:
                problems.append(f"case {case}: {folder} holds {files} but dataset.json declares {expected_channels} "
                                f"channel(s); expected {expected}.")
            masks = _masks_of(readers_folder / case, ending, problems)
            if masks is not None and files == expected:
                cases.append(CaseInputs(case, split, tuple(folder / f for f in files), masks))
    known = set(splits["train"]) | set(splits["test"])
    for entry in sorted(readers_folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir() and entry.name not in known:
            problems.append(f"{entry} has no image {entry.name}_0000{ending} in imagesTr or imagesTs; add the image or "
                            f"remove (or rename) the readers folder.")
        elif entry.is_file() and entry.name.endswith(ending):
            problems.append(f"{entry} lies directly in the readers folder; masks go into readers/<case>/"
                            f"<reader>_<trial>{ending}.")
    for inputs in cases:
        _check_headers(inputs, problems)
    if problems:
        shown = problems[:30] + ([f"... and {len(problems) - 30} more"] if len(problems) > 30 else [])
        raise ValueError(f"Reader fusion input {source} has {len(problems)} problem(s):\n  " + "\n  ".join(shown))
    if not cases:
        raise ValueError(f"{source / 'imagesTr'} holds no images named <case>_0000{ending}; nothing to fuse.")
    return SourceDataset(source, _source_name(source), ending, dict(channel_names), readers_folder,
                         sorted(cases, key=lambda c: (c.split != "train", c.case)))


def _masks_of(folder: Path, ending: str, problems: list[str]) -> dict[str, Path] | None:
    case = folder.name
    if not folder.is_dir():
        problems.append(f"case {case} has no reader masks: {folder} does not exist. Add its masks as "
                        f"{folder}/<reader>_<trial>{ending}, or remove the case's image.")
        return None
    entries = [e for e in sorted(folder.iterdir()) if not e.name.startswith(".")]
    masks = {e.name[: -len(ending)]: e for e in entries if e.is_file() and e.name.endswith(ending)
             and len(e.name) > len(ending)}
    others = [e.name for e in entries if e not in masks.values()]
    if others:
        problems.append(f"case {case}: {folder} holds {others}, which are not masks named <reader>_<trial>{ending}; "
                        f"convert or remove them (all masks need the dataset's file ending {ending}).")
    if not masks:
        problems.append(f"case {case} has no reader masks: {folder} holds no <reader>_<trial>{ending} files. Add its "
                        f"masks, or remove the case's image.")
        return None
    return masks


def _check_headers(inputs: CaseInputs, problems: list[str]) -> None:
    try:
        image = ImageGeometry.of(read_header(inputs.images[0]))
    except ValueError as error:
        problems.append(f"case {inputs.case}: {error}")
        return
    for path in inputs.masks.values():
        try:
            reader = read_header(path)
        except ValueError as error:
            problems.append(f"case {inputs.case}: {error}")
            continue
        if reader.GetNumberOfComponents() != 1:
            problems.append(f"case {inputs.case}: mask {path} has {reader.GetNumberOfComponents()} components per "
                            f"voxel; masks must be scalar binary images.")
            continue
        difference = geometry_difference(image, ImageGeometry.of(reader))
        if difference:
            problems.append(f"case {inputs.case}: mask {path} does not match image {inputs.images[0].name}: "
                            f"{difference}. {RESAMPLE_HINT}")
