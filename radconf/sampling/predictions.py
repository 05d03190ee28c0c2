"""False-positive locations of an earlier model's predictions on the training cases, in preprocessed space.

The predictions come from a folder: a model's training output (``fold_*/validation/`` hold nnU-Net's
cross-validation predictions of the training cases), a fold folder (``validation/``), or any folder of predicted
label files named like the raw cases (``<case><file ending>``, e.g. ``radconf_predict`` on ``imagesTr``). The
reference is the raw-space ground truth nnU-Net keeps next to the preprocessed data (``gt_segmentations/``), so
predicted and reference labels are compared voxel by voxel in raw space, then mapped (``radconf.sampling.geometry``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.sampling.false_positives import (
    MAX_LOCATIONS,
    false_positive_mask,
    sample_locations,
)
from radconf.sampling.geometry import raw_to_preprocessed


@dataclass(frozen=True)
class CaseGeometry:
    """What maps a raw case into its preprocessed array (from nnU-Net's case properties and the plans)."""

    transpose_forward: tuple[int, ...]
    bbox: tuple[tuple[int, int], ...]
    shape_before_cropping: tuple[int, ...]
    shape_after_cropping: tuple[int, ...]
    preprocessed_shape: tuple[int, ...]


def prediction_files(folder: str | Path, file_ending: str) -> dict[str, Path]:
    """Predicted label files by case identifier: ``fold_*/validation/*``, else ``validation/*``, else ``*``.

    Raises:
        MissingInput: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInput(f"--hard_negatives_from {folder} is not a folder: pass a model's training output folder "
                           f"(fold_*/validation/) or a folder of predicted label files named like the raw cases.")
    candidates = sorted(folder.glob("fold_*/validation")) or [p for p in [folder / "validation"] if p.is_dir()] \
        or [folder]
    found: dict[str, Path] = {}
    for place in candidates:
        for path in sorted(place.glob(f"*{file_ending}")):
            found.setdefault(path.name[:-len(file_ending)], path)
    return found


def matching_predictions(folder: str | Path, file_ending: str, cases: Sequence[str]) -> dict[str, Path]:
    """The predictions of ``cases`` in ``folder`` (:func:`prediction_files`).

    Raises:
        MissingInput: a missing folder.
        InvalidInput: no prediction of any of ``cases``.
    """
    found = prediction_files(folder, file_ending)
    matched = {case: found[case] for case in cases if case in found}
    if not matched:
        shown = ", ".join(sorted(found)[:3]) or f"no *{file_ending} files"
        raise InvalidInput(f"--hard_negatives_from {folder} holds no prediction of this fold's training cases "
                           f"({', '.join(list(cases)[:3])}, ...; found {shown}). Predict the training cases "
                           f"(nnU-Net's validation of every fold, or radconf_predict on imagesTr) into it first.")
    return matched


def _same_geometry(a: dict, b: dict) -> bool:
    if not np.allclose(a.get("spacing", ()), b.get("spacing", ()), rtol=1e-4, atol=1e-5):
        return False
    sa, sb = a.get("sitk_stuff"), b.get("sitk_stuff")
    if sa is None or sb is None:
        return True
    return all(np.allclose(sa[k], sb[k], rtol=1e-4, atol=1e-4) for k in ("origin", "direction") if k in sa and k in sb)


def case_false_positives(prediction: Path, reference: Path, read_seg: Callable[[str], tuple], geometry: CaseGeometry,
                         rng: np.random.Generator, ignore_label: int | None = None,
                         limit: int = MAX_LOCATIONS) -> tuple[np.ndarray, int]:
    """A bounded random subset of one case's false-positive voxels in preprocessed space, and their total count.

    Args:
        prediction: the predicted label file (raw space).
        reference: the case's raw-space ground truth (``gt_segmentations/<case><ending>``).
        read_seg: the dataset's reader (nnU-Net ``read_seg``: ``(1, *shape)`` array and properties).
        geometry: how the case was preprocessed.
        rng: draws the subset (seeded by the caller).
        ignore_label: reference voxels that count as neither.
        limit: most locations kept.

    Returns:
        ``(locations (n, d) int64, false-positive voxels in raw space)``.

    Raises:
        InvalidInput: the prediction's shape, spacing, origin or direction differ from the reference (named).
    """
    predicted, predicted_props = read_seg(str(prediction))
    truth, truth_props = read_seg(str(reference))
    if predicted.shape != truth.shape or not _same_geometry(predicted_props, truth_props):
        raise InvalidInput(f"Prediction {prediction} does not match its raw image: shape {predicted.shape[1:]} "
                           f"spacing {predicted_props.get('spacing')} vs {truth.shape[1:]} "
                           f"{truth_props.get('spacing')} ({reference.name}). Predict the raw case again, or remove "
                           f"the file from --hard_negatives_from.")
    mask = false_positive_mask(predicted[0], truth[0], ignore_label)
    raw = sample_locations(mask, rng, limit)
    mapped = raw_to_preprocessed(raw, geometry.transpose_forward, geometry.bbox, geometry.shape_before_cropping,
                                 geometry.shape_after_cropping, geometry.preprocessed_shape)
    return mapped, int(mask.sum())


def false_positive_locations(predictions: dict[str, Path], reference_folder: Path, file_ending: str,
                             read_seg: Callable[[str], tuple], geometries: Callable[[str], CaseGeometry],
                             seed: int, ignore_label: int | None = None,
                             limit: int = MAX_LOCATIONS) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """:func:`case_false_positives` of every case in ``predictions`` (one generator per case: ``seed`` and the case's
    position in sorted order), and the raw false-positive voxel counts."""
    locations, counts = {}, {}
    for index, case in enumerate(sorted(predictions)):
        rng = np.random.default_rng([seed, index])
        locations[case], counts[case] = case_false_positives(
            predictions[case], Path(reference_folder) / f"{case}{file_ending}", read_seg, geometries(case), rng,
            ignore_label, limit)
    return locations, counts


def summary(source: str | Path, share: float, counts: dict[str, int], locations: dict[str, np.ndarray],
            cases: Iterable[str]) -> dict:
    """The record written to ``hard_negatives.json`` (planned share and false-positive statistics per case)."""
    return {"source": str(source), "share": float(share), "training_cases": len(list(cases)),
            "cases_with_predictions": sorted(counts),
            "cases_with_false_positives": sorted(c for c, n in counts.items() if n > 0),
            "false_positive_voxels": {c: int(n) for c, n in sorted(counts.items())},
            "locations_kept": {c: len(v) for c, v in sorted(locations.items())}}
