"""CTV/PTV margins: one case (:func:`grow_case`, numpy) and a folder of label maps (:func:`grow_folder`,
``radconf_margin``).

A case's mask is grown (or, with ``contract``, shrunk) by a :class:`radconf.contours.Margin` in patient directions
(LPS: +x left, +y posterior, +z superior) mapped onto the array through the image's direction. With barriers the
growth goes around them (:func:`radconf.contours.expand_within`): a voxel is reached only along a path through
tissue, within the body, that avoids every barrier. The result never lies in a barrier or outside the body, and it
always holds the GTV itself. See ``documentation/contours.md``, "Margins command".
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.contours import Margin
from radconf.errors import InvalidInput

REPORT = "margin_report.csv"
REPORT_COLUMNS = ("case", "gtv_cm3", "ctv_cm3", "clipped_at_border")


@dataclass(frozen=True)
class GrownCase:
    """The result of :func:`grow_case`.

    Attributes:
        mask: the grown (or shrunk) mask, bool, the GTV's shape.
        clipped: the margin reached beyond the image border and the mask was cut there.
    """

    mask: np.ndarray
    clipped: bool


@dataclass(frozen=True)
class CaseReport:
    """One row of ``margin_report.csv``: volumes in cm3 and whether the image border cut the margin."""

    case: str
    gtv_cm3: float
    ctv_cm3: float
    clipped: bool

    def row(self) -> dict[str, object]:
        return {"case": self.case, "gtv_cm3": round(self.gtv_cm3, 4), "ctv_cm3": round(self.ctv_cm3, 4),
                "clipped_at_border": "yes" if self.clipped else "no"}


def check_margin(margin: Margin | float) -> Margin:
    """``margin`` as a :class:`Margin` (a number: radial mm).

    Raises:
        InvalidInput: a negative, infinite or non-numeric margin (shrinking is ``contract=True``).
    """
    if isinstance(margin, Margin):
        return margin
    if isinstance(margin, bool) or not isinstance(margin, (int, float)):
        raise InvalidInput(f"margin must be a Margin or a number of mm, got {margin!r}.")
    if margin < 0:
        raise InvalidInput(f"margin {margin:g} mm is negative; give the margin as a distance >= 0 and shrink with "
                           f"contract=True (radconf_margin --contract).")
    return Margin(radial=float(margin))


def clipped_at_border(gtv: np.ndarray, mask: np.ndarray, spacing: Sequence[float], margin: Margin,
                      direction: Sequence[float] | None) -> bool:
    """Whether the margin of ``gtv`` reaches beyond a side of the image where ``mask`` touches that side."""
    from radconf.contours.margins import reach_voxels, semi_axes

    if not gtv.any():
        return False
    before, after = reach_voxels(semi_axes(margin, direction), spacing)
    for axis, size in enumerate(gtv.shape):
        present = np.flatnonzero(gtv.any(axis=tuple(a for a in range(3) if a != axis)))
        border = [slice(None)] * 3
        if present[0] - before[axis] < 0:
            border[axis] = 0
            if mask[tuple(border)].any():
                return True
        if present[-1] + after[axis] > size - 1:
            border[axis] = size - 1
            if mask[tuple(border)].any():
                return True
    return False


def grow_case(*, gtv: np.ndarray, spacing: Sequence[float], margin: Margin | float,
              direction: Sequence[float] | None = None, barriers: np.ndarray | None = None,
              body: np.ndarray | None = None, contract: bool = False, threads: int | None = None) -> GrownCase:
    """Grows (or shrinks) one mask by a margin in mm.

    Args:
        gtv: 3D bool (or 0/1) mask in (z, y, x) order (SimpleITK's ``GetArrayFromImage``); not modified.
        spacing: voxel spacing (z, y, x) in mm (SimpleITK's ``GetSpacing()`` reversed).
        margin: a :class:`radconf.contours.Margin` (patient directions) or a radial margin in mm.
        direction: SimpleITK's direction matrix (9 numbers, row-major); None = identity. Axis-aligned only.
        barriers: bool mask the margin may not enter or cross (growth only).
        body: bool mask; the result is cut to it (and, with barriers, paths may not leave it).
        contract: shrink by the margin instead (voxels outside the image never erode the mask).
        threads: threads of the distance transform (None: every core).

    Returns:
        The mask (grown: it holds ``gtv``, also where ``gtv`` overlaps a barrier or leaves the body) and whether the
        image border cut the margin. A margin larger than the image warns (the result is clipped).

    Raises:
        InvalidInput: a bad mask, spacing, margin, direction, barriers with ``contract``, or masks of another shape.
    """
    from radconf.contours import contract as shrink
    from radconf.contours import expand_within

    margin = check_margin(margin)
    if contract:
        if barriers is not None:
            raise InvalidInput("contract=True takes no barriers (they act on growth only); cut the result to the body "
                               "with body= instead.")
        mask = shrink(gtv, spacing, margin, direction=direction, threads=threads)
        if body is not None:
            body = np.asarray(body, dtype=bool)
            if body.shape != mask.shape:
                raise InvalidInput(f"body has shape {body.shape} but the mask has shape {mask.shape}; pass the body "
                                   f"on the mask's grid.")
            mask &= body
        return GrownCase(mask, False)
    mask = expand_within(gtv, spacing, margin, barriers=barriers, body=body, direction=direction, keep_input=True,
                         threads=threads)
    return GrownCase(mask, clipped_at_border(np.asarray(gtv, bool), mask, spacing, margin, direction))


def _write_case(files, plan, margin: Margin, contract: bool, folder: Path, threads: int | None) -> CaseReport:
    import SimpleITK as sitk

    from radconf.io.files import atomic_write_image
    from radconf.margins.inputs import read_case

    arrays = read_case(files, plan)
    geometry = files.geometry
    grown = grow_case(gtv=arrays.gtv, spacing=geometry.spacing_zyx, margin=margin, direction=geometry.direction,
                      barriers=arrays.barriers, body=arrays.body, contract=contract, threads=threads)
    image = geometry.apply_to(sitk.GetImageFromArray(grown.mask.astype(np.uint8)))
    atomic_write_image(folder / f"{files.case}{plan.file_ending}", image)
    volume = geometry.voxel_volume_ml
    return CaseReport(files.case, float(arrays.gtv.sum()) * volume, float(grown.mask.sum()) * volume, grown.clipped)


def _record(plan, margin: Margin, contract: bool, output_label: str, source: Path) -> dict:
    from radconf.margins.inputs import GENERATOR

    return {"labels": {"background": 0, output_label: 1}, "file_ending": plan.file_ending,
            "radconf": {"generator": GENERATOR, "source": str(source), "gtv": plan.description,
                        "margin": margin.describe(), "contract": contract,
                        "barrier_labels": list(plan.barrier_ids), "body_labels": list(plan.body_ids)}}


def grow_folder(*, input_folder: str | os.PathLike, output_folder: str | os.PathLike, margin: Margin | float,
                label: str | int | None = None, level: int | None = None,
                dataset_json: str | os.PathLike | None = None, barrier_folder: str | os.PathLike | None = None,
                barrier_labels: Sequence[str | int] | str = (), body_label: str | int | None = None,
                body_folder: str | os.PathLike | None = None, contract: bool = False, output_label: str = "ctv",
                threads: int | None = None, progress: bool = True) -> list[CaseReport]:
    """Grows the GTV of every map ``CASE<ending>`` of ``input_folder`` into a binary mask in ``output_folder``.

    Everything is checked before the first case is computed. The masks (uint8 0/1, the input map's origin, spacing and
    direction), ``margin_report.csv`` and a ``dataset.json`` (``output_label`` = 1) are written into a staged folder
    that replaces ``output_folder`` only when every case is done: a failure leaves it as it was.

    Args:
        input_folder: label maps (GTV = ``label``) or confidence level maps (GTV = ``level >= level``).
        output_folder: new, empty, or an earlier ``radconf_margin`` output (replaced); never on or around an input.
        margin: a :class:`radconf.contours.Margin` or a radial margin in mm (>= 0).
        label: the GTV's label name (needs a dataset.json) or id.
        level: the GTV is ``level >= L`` of a level map (K from the dataset.json's ordinal levels, else the maps').
        dataset_json: the input's dataset.json (default: ``input_folder/dataset.json``, else the one beside it).
        barrier_folder: label maps ``CASE<ending>`` on the input's grid holding the barrier (and body) labels;
            default: the input maps themselves.
        barrier_labels: names or ids of the barrier structures, or one comma-separated string (names need the
            barrier maps' dataset.json, else the input's).
        body_label: name or id of the body structure in the barrier (or input) maps.
        body_folder: body masks ``CASE<ending>`` (non-zero = body) on the input's grid; instead of ``body_label``.
        contract: shrink by the margin instead of growing (no barriers; the body still cuts).
        output_label: the mask's name in the output dataset.json.
        threads: threads of the distance transform (None: every core).
        progress: tqdm progress bar.

    Returns:
        One report per case, in case order.

    Raises:
        InvalidInput, MissingInput: an argument or input file that cannot be used, naming it and the fix.
    """
    from tqdm import tqdm

    from radconf.io.files import atomic_write_json, removed_on_failure, staged_folder
    from radconf.io.tables import write_csv
    from radconf.margins.inputs import plan_folder

    margin = check_margin(margin)
    if not isinstance(output_label, str) or not output_label.strip() or output_label.strip() == "background":
        raise InvalidInput(f"--output_label must be a structure name (e.g. ctv, ptv), got {output_label!r}.")
    plan = plan_folder(input_folder, output_folder, label=label, level=level, dataset_json=dataset_json,
                       barrier_folder=barrier_folder, barrier_labels=barrier_labels, body_label=body_label,
                       body_folder=body_folder, contract=contract)
    output = Path(output_folder)
    reports = []
    with removed_on_failure(output), staged_folder(output) as staging:
        for files in tqdm(plan.cases, desc="Margins", unit="case", disable=not progress):
            reports.append(_write_case(files, plan, margin, contract, staging, threads))
        write_csv(staging / REPORT, [report.row() for report in reports], REPORT_COLUMNS)
        atomic_write_json(staging / "dataset.json", _record(plan, margin, contract, output_label.strip(),
                                                            Path(input_folder)))
    return reports
