"""The inputs of ``radconf_margin``, checked before any work: the cases, their grids, what the GTV, the barriers and
the body are, and where the output may go.

Per case ``CASE<ending>`` of the input folder: the input map (a label map, or a confidence level map 0..K), the map
holding the barrier and body labels (a map of the barrier folder with the same case name, or the input map itself)
and optionally a body mask (non-zero = body). Every map must be whole, 3D, axis-aligned and, for the barrier and body
maps, on the input map's grid (:func:`radconf.io.images.geometry_difference`).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.io.cases import DEFAULT_FILE_ENDING, format_case_list, list_cases
from radconf.io.images import Geometry, check_volume_file, geometry_difference, read_label_image
from radconf.margins.labels import LabelTable, dataset_json_of, label_table, resolve_label, resolve_labels

GENERATOR = "radconf.margins"
"""The ``radconf.generator`` of the dataset.json a margin output folder holds (it may be replaced by a new run)."""

GRID_FIX = ("resample it onto the input map's grid (nearest neighbour, e.g. SimpleITK's Resample(map, input_map, "
            "sitk.Transform(), sitk.sitkNearestNeighbor)) or export both from the same CT")


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case: the input map, the map with the barrier/body labels (None: the input map itself) and
    the body mask (None: none)."""

    case: str
    source: Path
    geometry: Geometry
    labels: Path | None = None
    body: Path | None = None


@dataclass(frozen=True)
class Plan:
    """A checked margin run: the cases and what to read from them.

    Attributes:
        cases: the cases in name order.
        file_ending: of the input maps (and the outputs).
        gtv_ids: the GTV's label ids (None with ``level``).
        level: the GTV is ``level >= L`` of a level map (None with ``gtv_ids``).
        barrier_ids: label ids of the barrier structures (empty: none).
        body_ids: label ids of the body structure (empty: no body label).
        description: the GTV in words, e.g. ``label gtv (4)`` or ``level >= 3 (levels 0..5)``.
    """

    cases: tuple[CaseFiles, ...]
    file_ending: str
    gtv_ids: tuple[int, ...] | None
    level: int | None
    barrier_ids: tuple[int, ...]
    body_ids: tuple[int, ...]
    description: str


def _folder(path: str | os.PathLike, flag: str, what: str) -> Path:
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{flag} {folder} is a file; give the folder of {what} (CASE{DEFAULT_FILE_ENDING}).")
    if not folder.is_dir():
        raise MissingInput(f"{flag} {folder} does not exist; check the path to the folder of {what}.")
    return folder


def check_output_folder(output: Path, inputs: Sequence[tuple[str, Path | None]]) -> None:
    """Refuses an output that is a file, is/lies inside/contains an input, or already holds files of another kind
    (only an earlier ``radconf_margin`` output, or an empty folder, may be replaced)."""
    from radconf.io.locations import check_output_location
    from radconf.raw.entry import written_by

    if output.exists() and not output.is_dir():
        raise InvalidInput(f"-o {output} is a file; give a folder for the margin masks.")
    check_output_location(output, inputs)
    if output.is_dir() and any(output.iterdir()) and not written_by(output, GENERATOR):
        shown = next(iter(sorted(p.name for p in output.iterdir())))
        raise InvalidInput(f"-o {output} already holds files radconf_margin did not write (e.g. {shown}); choose a new "
                           f"or empty folder (an earlier radconf_margin output is replaced).")


def _header(path: Path) -> Geometry:
    from radconf.contours.margins import array_axes

    geometry = check_volume_file(path, "label map")
    if len(geometry.size) != 3:
        raise InvalidInput(f"{path} is a {len(geometry.size)}D image (size {geometry.size}); margins in mm need 3D "
                           f"label maps.")
    try:
        array_axes(geometry.direction)
    except InvalidInput as error:
        raise InvalidInput(f"{path}: {error}") from None
    return geometry


def _companion(folder: Path | None, case: str, ending: str, source: Path, geometry: Geometry, flag: str
               ) -> Path | None:
    """The map of ``case`` in ``folder``, checked to be whole and on the grid of ``source`` (missing: None)."""
    if folder is None:
        return None
    path = folder / f"{case}{ending}"
    if not path.is_file():
        return None
    difference = geometry_difference(geometry, check_volume_file(path, "label map"))
    if difference:
        raise InvalidInput(f"{flag}: {path} is not on the grid of {source} ({difference}); {GRID_FIX}.")
    return path


def _case_files(source: Path, ending: str, labels_folder: Path | None, body_folder: Path | None
                ) -> tuple[CaseFiles, ...]:
    cases = list_cases(source, ending)
    if not cases:
        raise MissingInput(f"No CASE{ending} label maps in -i {source}; give the folder of GTV label maps (nnU-Net "
                           f"naming: one CASE{ending} per case).")
    result, missing = [], {"--barriers": [], "--body_dir": []}
    for case, path in cases.items():
        geometry = _header(path)
        labels = _companion(labels_folder, case, ending, path, geometry, "--barriers")
        body = _companion(body_folder, case, ending, path, geometry, "--body_dir")
        for flag, folder, found in (("--barriers", labels_folder, labels), ("--body_dir", body_folder, body)):
            if folder is not None and found is None:
                missing[flag].append(case)
        result.append(CaseFiles(case, path, geometry, labels, body))
    for (flag, cases_missing), folder in zip(missing.items(), (labels_folder, body_folder)):
        if cases_missing:
            raise MissingInput(f"{flag} {folder} has no map for {len(cases_missing)} case(s) of -i "
                               f"({format_case_list(cases_missing)}); give a CASE{ending} for every case of -i.")
    return tuple(result)


def _levels(cases: Sequence[CaseFiles], dataset_json: dict | None, where: str) -> tuple[int, str]:
    """K of the level maps: the dataset.json's ordinal levels, else the largest value the maps hold."""
    from radconf.raw.entry import RadconfEntry

    if dataset_json is not None:
        entry = RadconfEntry.of(dataset_json, where)
        if entry.ordinal and entry.levels is not None:
            return entry.levels, f"{where} declares levels 0..{entry.levels}"
    top = max(int(read_label_image(files.source)[0].max(initial=0)) for files in cases)
    return top, f"the maps of -i hold levels 0..{top}"


def _gtv(label: str | int | None, level: int | None, table: LabelTable | None, where: str) -> tuple[int, ...] | None:
    if (label is None) == (level is None):
        raise InvalidInput("Give the GTV as one of --label NAME|ID (a label map) or --level L (a confidence level "
                           "map: the GTV is level >= L).")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int) or level < 1):
        raise InvalidInput(f"--level must be an integer >= 1 (the GTV is level >= L), got {level!r}.")
    return None if label is None else resolve_label(label, table, where, "--label")


def plan_folder(input_folder: str | os.PathLike, output_folder: str | os.PathLike, *, label: str | int | None,
                level: int | None, dataset_json: str | os.PathLike | None, barrier_folder: str | os.PathLike | None,
                barrier_labels: Sequence[str | int], body_label: str | int | None,
                body_folder: str | os.PathLike | None, contract: bool) -> Plan:
    """Checks a margin run (see :func:`radconf.margins.grow_folder` for the arguments) before anything is written.

    Raises:
        InvalidInput, MissingInput: naming the file or option and the fix.
    """
    source = _folder(input_folder, "-i", "GTV label maps")
    labels_folder = None if barrier_folder is None else _folder(barrier_folder, "--barriers", "barrier label maps")
    body = None if body_folder is None else _folder(body_folder, "--body_dir", "body masks")
    check_output_folder(Path(output_folder), [("the input folder -i", source), ("the barrier folder --barriers",
                                                                                labels_folder),
                                              ("the body folder --body_dir", body)])
    found = dataset_json_of(source, dataset_json)
    data, where = (found[0], str(found[1])) if found else (None, str(source))
    table = label_table(data, where) if data is not None and "labels" in data else None
    gtv_ids = _gtv(label, level, table, where)
    barrier_ids, body_ids = _structures(labels_folder, barrier_labels, body_label, body is not None, table, where,
                                        level is not None, contract)
    if labels_folder is None and gtv_ids is not None and set(gtv_ids) & set(barrier_ids + body_ids):
        raise InvalidInput(f"--barrier_labels/--body name the GTV's label {gtv_ids}; a structure cannot be the GTV "
                           f"and a barrier (or the body) at once.")
    ending = (data or {}).get("file_ending") or DEFAULT_FILE_ENDING
    cases = _case_files(source, ending, labels_folder if (barrier_ids or body_ids) else None, body)
    if gtv_ids is not None:
        named = "" if _is_id(label) else f" ({', '.join(map(str, gtv_ids))})"
        description = f"label {str(label).strip()}{named}"
    else:
        top, why = _levels(cases, data, where)
        if level > top:
            raise InvalidInput(f"--level {level} is beyond the maps' levels: {why}; give --level 1..{top}.")
        description = f"level >= {level} (levels 0..{top})"
    return Plan(cases, ending, gtv_ids, level, barrier_ids, body_ids, description)


def _is_id(label: str | int | None) -> bool:
    return isinstance(label, int) or (isinstance(label, str) and label.strip().isdigit())


def _structures(labels_folder: Path | None, barrier_labels: Sequence[str | int], body_label: str | int | None,
                body_mask: bool, table: LabelTable | None, where: str, levels: bool, contract: bool
                ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The barrier and body ids, resolved against the barrier folder's dataset.json (else the input's)."""
    if body_label is not None and body_mask:
        raise InvalidInput("Give the body as one of --body LABEL or --body_dir DIR, not both.")
    if not barrier_labels and body_label is None:
        if labels_folder is not None:
            raise InvalidInput(f"--barriers {labels_folder} needs --barrier_labels (the structures of its maps that "
                               f"stop the margin, e.g. --barrier_labels bladder,rectum).")
        return (), ()
    if contract and barrier_labels:
        raise InvalidInput("--contract shrinks the mask and does not take barriers; drop --barriers/--barrier_labels "
                           "(--body or --body_dir still cuts the result to the body).")
    if labels_folder is None and levels:
        raise InvalidInput("-i holds confidence level maps, which have no barrier or body labels; give the label maps "
                           "with those structures as --barriers DIR.")
    if labels_folder is not None:
        found = dataset_json_of(labels_folder)
        if found is not None and "labels" in found[0]:
            table, where = label_table(found[0], str(found[1])), str(found[1])
    barrier_ids = resolve_labels(barrier_labels, table, where, "--barrier_labels") if barrier_labels else ()
    body_ids = resolve_label(body_label, table, where, "--body") if body_label is not None else ()
    if set(barrier_ids) & set(body_ids):
        raise InvalidInput(f"--barrier_labels and --body share label(s) {sorted(set(barrier_ids) & set(body_ids))}; a "
                           f"barrier lies inside the body, give them different labels.")
    return barrier_ids, body_ids


@dataclass(frozen=True)
class CaseArrays:
    """One case read: masks in (z, y, x) order."""

    gtv: np.ndarray
    barriers: np.ndarray | None
    body: np.ndarray | None


def read_case(files: CaseFiles, plan: Plan) -> CaseArrays:
    """The GTV, barrier and body masks of one case (read once each).

    Raises:
        InvalidInput: a map that is not an integer label map, naming it.
    """
    array, _ = read_label_image(files.source)
    gtv = array >= plan.level if plan.level is not None else np.isin(array, plan.gtv_ids)
    labels = array if files.labels is None else read_label_image(files.labels)[0]
    barriers = np.isin(labels, plan.barrier_ids) if plan.barrier_ids else None
    body = body_of_label(np.isin(labels, plan.body_ids), files.geometry) if plan.body_ids else None
    if files.body is not None:
        body = read_label_image(files.body)[0] != 0
    return CaseArrays(gtv, barriers, body)


def body_of_label(mask: np.ndarray, geometry: Geometry) -> np.ndarray:
    """The body from a body label: the label with its holes filled in each axial slice, so that the structures a
    label map draws over the body (each voxel holds one label) count as body, and those outside it do not."""
    from radconf.contours import fill_holes
    from radconf.contours.margins import array_axes

    axial = next(axis for axis, (patient_axis, _) in enumerate(array_axes(geometry.direction)) if patient_axis == 2)
    return fill_holes(mask, per_slice=True, axis=axial)
