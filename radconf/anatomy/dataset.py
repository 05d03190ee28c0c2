"""Anatomy datasets: a source dataset's images and target labels plus one organ mask per extra image channel.

:func:`make_anatomy_dataset` (command ``radconf_anatomy_dataset``) writes ``$nnUNet_raw/DatasetXXX_<Name>``::

    imagesTr/<case>_0000 .. _{c-1}<ending>   the source's c image channels (byte copies)
    imagesTr/<case>_{c+i}<ending>            anatomy structure i (--anatomy order): uint8 0/1 on the image's grid
    labelsTr/<case><ending>                  the target labels renumbered 1..n (uint8), everything else 0
    imagesTs/, labelsTs/                     held-out cases likewise
    dataset.json                             "noNorm" per mask channel, "radconf": {"anatomy": ..., ...}

The masks are cut from (a) the source's own label maps, (b) another raw dataset's label maps of the same cases, or
(c) an organ model's cross-validated predictions (``fold_k/validation/``): what the model will see at inference, as in
nnU-Net's cascade. With (c) held-out cases get their image channels only; at inference the organ model predicts their
anatomy first (:mod:`radconf.anatomy_inputs`). Every problem found in names and file headers is reported at once
before anything is written; the dataset is built in a hidden ``.partial`` folder beside it and renamed into place. The source is never
modified.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.anatomy.channels import ENCODINGS, AnatomyChannels, anatomy_dataset_json
from radconf.anatomy.inputs import cut_masks, grid_problem, write_on_grid
from radconf.errors import InvalidInput, MissingInput
from radconf.io.dataset_json import read_json_file
from radconf.io.files import atomic_write_json, staged_folder
from radconf.io.images import check_volume_file, geometry_difference, read_geometry
from radconf.raw.checks import label_id_problem, resolve_source_folder, scan_image_folder
from radconf.raw.derived import check_output_dataset, derived_target, raise_problems
from radconf.raw.entry import written_by

GENERATOR = "radconf.anatomy_dataset"


@dataclass(frozen=True)
class AnatomyDataset:
    """Where the anatomy dataset was written, its cases, its declaration and the absent-structure warnings."""

    folder: Path
    train_cases: list[str]
    test_cases: list[str]
    anatomy: AnatomyChannels
    targets: dict[str, int]  # target name -> label id in the new dataset
    warnings: list[str]  # one line per structure absent from a case (its channel is all zero)


@dataclass(frozen=True)
class _Case:
    case: str
    split: str  # "train" or "test"
    images: tuple[Path, ...]  # channel 0 first
    target: Path | None  # source label map (None: a held-out case without one)
    anatomy: Path | None  # label map the masks are cut from (None: image channels only)


@dataclass(frozen=True)
class _AnatomySource:
    kind: str  # "labels", "dataset" or "model"
    origin: str  # source dataset name, anatomy dataset name or model spec
    labels: dict  # that source's dataset.json labels
    where: str  # the dataset.json they were read from
    maps: dict[str, Path]  # case -> label map
    folder: Path | None  # a raw dataset folder that must not be written to
    model_folder: Path | None = None  # the organ model's folder (kind "model")


def _read_dataset_json(folder: Path) -> dict:
    path = folder / "dataset.json"
    if not path.is_file():
        raise MissingInput(f"{path} is missing; the dataset needs a dataset.json with channel_names, labels and "
                           f"file_ending.")
    data = read_json_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
        raise InvalidInput(f"{path} has no 'labels' mapping (name -> id); add one.")
    wrong = [problem for problem in (label_id_problem(n, v) for n, v in data["labels"].items()) if problem]
    if wrong:
        raise InvalidInput(f"{path}: {'; '.join(wrong)}; fix 'labels'.")
    return data


def _foreground(labels: Mapping) -> dict:
    return {str(n): v for n, v in labels.items() if str(n) != "background" and v != 0}


def _label_maps(folder: Path, ending: str) -> dict[str, Path]:
    """Case -> label map over ``labelsTr`` and ``labelsTs`` of a raw dataset."""
    from radconf.io.cases import list_cases

    maps: dict[str, Path] = {}
    for sub in ("labelsTs", "labelsTr"):
        if (folder / sub).is_dir():
            maps.update(list_cases(folder / sub, ending))
    return maps


def _model_source(spec_text: str, results_root: Path, train_cases: Sequence[str],
                  problems: list[str]) -> _AnatomySource:
    """An organ model's cross-validated predictions; incomplete or overlapping folds go into ``problems``."""
    from radconf.io.cases import list_cases
    from radconf.models import ModelSpec

    spec = ModelSpec.parse(spec_text)
    if "all" in spec.folds:
        raise InvalidInput(f"Anatomy model {spec}: fold 'all' saw every case in training, so it has no cross-validated "
                         f"predictions; use folds 0,1,2,3,4.")
    train_hint = f"radconf_train {spec.dataset} {spec.configuration} FOLD -tr {spec.trainer} -p {spec.plans}"
    try:
        folder = spec.model_folder(results_root)
    except FileNotFoundError:
        raise MissingInput(f"Anatomy model {spec}: nnUNet_results ({results_root}) holds no model of dataset "
                                f"{spec.dataset}; run its cross-validation first: {train_hint} for FOLD in "
                                f"{' '.join(spec.folds)}.") from None
    if not folder.is_dir():
        raise MissingInput(f"Anatomy model folder {folder} does not exist; run its cross-validation first: "
                                f"{train_hint} for FOLD in {' '.join(spec.folds)}.")
    dataset_json = _read_dataset_json(folder)
    maps: dict[str, Path] = {}
    empty = []
    for fold in spec.folds:
        validation = folder / f"fold_{fold}" / "validation"
        predictions = list_cases(validation, dataset_json["file_ending"]) if validation.is_dir() else {}
        empty += [] if predictions else [fold]
        for case, path in predictions.items():
            if case in maps:
                problems.append(f"case {case} is predicted in two folds ({maps[case]} and {path}); each case must be "
                                f"validated by one fold only. Remove the stale prediction or fix the model's splits.")
            maps[case] = path
    missing = [case for case in train_cases if case not in maps]
    if missing:
        todo = (f"for the fold(s) without validation predictions ({', '.join(empty)})" if empty else
                f"for the fold(s) that validate them (the spec has folds {','.join(spec.folds)})")
        problems.append(f"{len(missing)} training case(s) have no cross-validated anatomy prediction in "
                        f"{folder}/fold_*/validation: {', '.join(missing)}. Finish the organ model's cross-validation: "
                        f"{train_hint} {todo} (add --val if a fold is trained but its validation was skipped).")
    return _AnatomySource("model", str(spec), dataset_json["labels"], str(folder / "dataset.json"), maps, None, folder)


def _anatomy_source(source_folder: Path, source_json: dict, anatomy_dataset: str | os.PathLike | None,
                    anatomy_model: str | None, raw_root: Path, results_root: str | os.PathLike | None,
                    problems: list[str]) -> _AnatomySource:
    """Where the masks are cut from: the model's predictions, another dataset's or the source's own label maps."""
    ending = source_json.get("file_ending", ".nii.gz")
    if not (source_folder / "imagesTr").is_dir():
        raise MissingInput(f"{source_folder / 'imagesTr'} does not exist; the source must be an nnU-Net raw dataset "
                           f"with imagesTr/<case>_0000{ending} and labelsTr/<case>{ending}.")
    if anatomy_model is not None:
        if results_root is None:
            from radconf.paths import require_nnunet_paths

            results_root = require_nnunet_paths().results
        train_cases = list(scan_image_folder(source_folder / "imagesTr", ending, []))  # names: see _scan_cases
        return _model_source(anatomy_model, Path(results_root), train_cases, problems)
    if anatomy_dataset is not None:
        other = resolve_source_folder(anatomy_dataset, raw_root)
        other_json = _read_dataset_json(other)
        return _AnatomySource("dataset", other.name, other_json["labels"], str(other / "dataset.json"),
                              _label_maps(other, other_json.get("file_ending", ending)), other)
    return _AnatomySource("labels", source_folder.name, source_json["labels"], str(source_folder / "dataset.json"),
                          _label_maps(source_folder, ending), source_folder)


def _written_by_us(folder: Path) -> bool:
    return written_by(folder, GENERATOR)


def _select(source_labels: Mapping, anatomy_source: _AnatomySource, anatomy: Sequence[str],
            targets: Sequence[str] | None, source_where: str, problems: list[str]) -> list[str]:
    """Checks the structure and target names (problems collected); returns the target names."""
    known = _foreground(anatomy_source.labels)
    for what, names in (("--anatomy", anatomy), ("--target", targets or [])):
        repeated = sorted({n for n in names if list(names).count(n) > 1})
        if repeated:
            problems.append(f"{what} names {repeated} more than once; give each structure once.")
    unknown = [n for n in anatomy if n not in known]
    if unknown:
        problems.append(f"anatomy structures {unknown} are not labels of {anatomy_source.where}; known: "
                        f"{', '.join(known) or 'none'}.")
    regions = [n for n in anatomy if isinstance(known.get(n), list)]
    if regions:
        problems.append(f"anatomy structures {regions} are regions (lists of label ids) in {anatomy_source.where}; "
                        f"masks are cut from single label ids, so pick the regions' member labels.")
    candidates = _foreground(source_labels)
    if targets is None:
        targets = [n for n in candidates if n not in anatomy]
    else:
        unknown = [n for n in targets if n not in candidates]
        if unknown:
            problems.append(f"--target labels {unknown} are not labels of {source_where}; known: "
                            f"{', '.join(candidates) or 'none'}.")
    regions = [n for n in targets if isinstance(candidates.get(n), list)]
    if regions:
        problems.append(f"target labels {regions} are regions (lists of label ids) in {source_where}; "
                        f"radconf_anatomy_dataset writes plain labels only: select single labels with --target.")
    both = [n for n in targets if n in anatomy]
    if both:
        problems.append(f"{both} are both anatomy structures and targets: the model would see its own target as "
                        f"input. Drop them from --target or from --anatomy.")
    if not targets:
        problems.append(f"no target labels left in {source_where} once the anatomy structures are taken out; select "
                        f"targets with --target.")
    return list(targets)


def _scan_cases(source: Path, ending: str, n_channels: int, anatomy_source: _AnatomySource,
                problems: list[str]) -> list[_Case]:
    """The source's cases with their files; missing files and header mismatches go into ``problems``."""
    splits = {"train": scan_image_folder(source / "imagesTr", ending, problems),
              "test": scan_image_folder(source / "imagesTs", ending, problems)}
    problems += [f"case {c} is in both imagesTr and imagesTs of {source}; keep it in one of them."
                 for c in sorted(set(splits["train"]) & set(splits["test"]))]
    expected = list(range(n_channels))
    cases = []
    for split, found in splits.items():
        suffix = "Tr" if split == "train" else "Ts"
        for case, channels in found.items():
            if channels != expected:
                problems.append(f"case {case}: {source}/images{suffix} holds channels {channels} but dataset.json "
                                f"declares {n_channels}; provide {case}_0000..{case}_{n_channels - 1:04d}{ending}.")
                continue
            target = source / f"labels{suffix}" / f"{case}{ending}"
            if not target.is_file():
                if split == "train":
                    problems.append(f"case {case}: target label map {target} is missing; add it or remove the "
                                    f"case's images.")
                target = None
            anatomy = anatomy_source.maps.get(case)
            reported = anatomy_source.kind == "labels" and split == "train"  # the missing target said it
            if anatomy is None and not reported and not (anatomy_source.kind == "model" and split == "test"):
                where = (f"{source}/labels{suffix}/{case}{ending}" if anatomy_source.kind == "labels"
                         else f"labelsTr/ or labelsTs/ of {anatomy_source.folder}")
                problems.append(f"case {case}: anatomy label map missing ({where}); add it, or remove the case's "
                                f"images from the source.")
            images = tuple(source / f"images{suffix}" / f"{case}_{c:04d}{ending}" for c in expected)
            cases.append(_Case(case, split, images, target, anatomy))
    if not splits["train"]:
        problems.append(f"{source}/imagesTr holds no images named <case>_0000{ending}.")
    for case in cases:
        _check_headers(case, problems)
    return sorted(cases, key=lambda c: (c.split != "train", c.case))


def _check_headers(case: _Case, problems: list[str]) -> None:
    """Every file of a case whole, finite, 2D/3D and scalar; the channels and label maps on channel 0's grid."""
    try:
        grids = [check_volume_file(path) for path in case.images]
    except ValueError as error:
        problems.append(f"case {case.case}: {error}")
        return
    for path, grid in zip(case.images[1:], grids[1:]):
        difference = geometry_difference(grids[0], grid)
        if difference:
            problems.append(f"case {case.case}: channel {path.name} does not match {case.images[0].name}: "
                            f"{difference}; resample it onto the grid of channel 0.")
    for what, path in (("target label map", case.target), ("anatomy label map", case.anatomy)):
        if path is None or (what == "anatomy label map" and path == case.target):
            continue
        try:
            check_volume_file(path, "label map")
        except ValueError as error:
            problems.append(f"case {case.case}: {error}")
            continue
        problem = grid_problem(case.case, grids[0], case.images[0].name, path, what)
        if problem:
            problems.append(problem)


def _remap(array: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """Label ids ``mapping``'s keys -> its values, every other value -> 0, as uint8."""
    lookup = np.zeros(max(int(array.max(initial=0)), max(mapping, default=0)) + 1, np.uint8)
    for old, new in mapping.items():
        lookup[old] = new
    return lookup[array]


def _write_case(case: _Case, staging: Path, ending: str, anatomy: AnatomyChannels, label_ids: Mapping[str, int],
                target_map: Mapping[int, int]) -> list[str]:
    """Copies the images and writes the masks and the remapped targets; returns absent-structure warnings."""
    from radconf.io.images import read_label_image

    suffix = "Tr" if case.split == "train" else "Ts"
    for image in case.images:
        shutil.copyfile(image, staging / f"images{suffix}" / image.name)
    grid = read_geometry(case.images[0])
    warnings = []
    if case.anatomy is not None:
        for index, name, mask in zip(anatomy.indices, anatomy.names, cut_masks(case.anatomy, label_ids, anatomy.names)):
            write_on_grid(mask, grid, staging / f"images{suffix}" / f"{case.case}_{index:04d}{ending}")
            if not mask.any():
                warnings.append(f"case {case.case}: {name} (label {label_ids[name]}) is absent from {case.anatomy}; "
                                f"its channel {index} is all zero.")
    if case.target is not None:
        labels, _ = read_label_image(case.target)
        write_on_grid(_remap(labels, target_map), grid, staging / f"labels{suffix}" / f"{case.case}{ending}")
    return warnings


def make_anatomy_dataset(source: str | os.PathLike, dataset_id: int, name: str | None = None, *,
                         anatomy: Sequence[str], targets: Sequence[str] | None = None,
                         anatomy_dataset: str | os.PathLike | None = None, anatomy_model: str | None = None,
                         encoding: str = "binary", overwrite: bool = False, raw_root: str | os.PathLike | None = None,
                         results_root: str | os.PathLike | None = None, progress: bool = True) -> AnatomyDataset:
    """Writes a source dataset's images and target labels plus anatomy mask channels as a new nnU-Net raw dataset.

    Args:
        source: source dataset folder, or its id/name in ``raw_root``.
        dataset_id: id of the new dataset (1..999).
        name: its name (default ``<source name>Anatomy``); the folder is ``DatasetXXX_<name>``.
        anatomy: structure names, one mask channel each, after the image channels in this order.
        targets: source labels kept as labels, renumbered 1..n in this order (default: every source label that is
            not an anatomy structure, in label-id order).
        anatomy_dataset: cut the masks from this raw dataset's labelsTr/labelsTs (same case identifiers).
        anatomy_model: cut them from this model's cross-validated predictions (``ModelSpec.parse`` text); held-out
            cases then get image channels only. Default (neither): the source's own label maps.
        encoding: how the network sees the masks (``binary`` or ``ct``, see :mod:`radconf.anatomy`).
        overwrite: replace an earlier output of this function (never anything else).
        raw_root: nnUNet_raw (default ``$nnUNet_raw``).
        results_root: nnUNet_results, for ``anatomy_model`` (default ``$nnUNet_results``).
        progress: tqdm bar over cases.

    Returns:
        The folder, cases, anatomy declaration, target ids and absent-structure warnings.

    Raises:
        FileNotFoundError: the source, the anatomy dataset or the model folder missing.
        FileExistsError: the output exists and may not be replaced, or its id is used by another dataset.
        ValueError: every problem of names and files found, one per line, each naming the file and the fix.
    """
    from tqdm import tqdm

    if anatomy_dataset is not None and anatomy_model is not None:
        raise InvalidInput("Give the anatomy either from a dataset (--anatomy_dataset) or from a model "
                         "(--anatomy_model), not both.")
    if encoding not in ENCODINGS:
        raise InvalidInput(f"Unknown anatomy encoding {encoding!r}; use one of {', '.join(ENCODINGS)}.")
    if not anatomy:
        raise InvalidInput("Name at least one anatomy structure (--anatomy bladder rectum ...).")
    target = derived_target(source, dataset_id, name, "Anatomy", raw_root)
    source_folder, folder, name = target.source, target.folder, target.name
    source_json = _read_dataset_json(source_folder)
    source_where = str(source_folder / "dataset.json")
    ending = source_json.get("file_ending", ".nii.gz")
    channel_names = dict(source_json.get("channel_names") or source_json.get("modality") or {"0": "CT"})
    problems: list[str] = []
    kind = _anatomy_source(source_folder, source_json, anatomy_dataset, anatomy_model, target.raw_root, results_root,
                           problems)
    inputs = [("the source dataset", source_folder), ("the --anatomy_model folder", kind.model_folder),
              ("the --anatomy_dataset", kind.folder if kind.kind == "dataset" else None)]
    check_output_dataset(folder, dataset_id, inputs, overwrite, "radconf_anatomy_dataset", _written_by_us)
    targets = _select(source_json["labels"], kind, anatomy, targets, source_where, problems)
    cases = _scan_cases(source_folder, ending, len(channel_names), kind, problems)
    raise_problems("radconf_anatomy_dataset", problems)

    label_ids = {n: int(kind.labels[n]) for n in anatomy}
    declaration = AnatomyChannels(channels={len(channel_names) + i: n for i, n in enumerate(anatomy)},
                                  encoding=encoding, ct_channel=0, source_labels=label_ids,
                                  source={"kind": kind.kind, "from": kind.origin})
    new_ids = {t: i + 1 for i, t in enumerate(targets)}
    target_map = {int(source_json["labels"][t]): new_ids[t] for t in targets}
    train = [c.case for c in cases if c.split == "train"]
    test = [c.case for c in cases if c.split == "test"]

    warnings: list[str] = []
    with staged_folder(folder) as staging:  # replaces only an earlier output of ours (overwrite checked above)
        for sub in ("imagesTr", "labelsTr") + (("imagesTs", "labelsTs") if test else ()):
            (staging / sub).mkdir(parents=True)
        for case in tqdm(cases, desc="radconf_anatomy_dataset", unit="case", disable=not progress):
            warnings += _write_case(case, staging, ending, declaration, label_ids, target_map)
        atomic_write_json(staging / "dataset.json", anatomy_dataset_json(
            channel_names, declaration, new_ids, train, test, ending, name, source_folder.name,
            {t: source_json["labels"][t] for t in targets}, GENERATOR))
    return AnatomyDataset(folder, train, test, declaration, new_ids, warnings)
