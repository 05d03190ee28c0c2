"""Turns nnU-Net's probability exports of a confidence model into radconf's outputs.

nnU-Net writes ``CASE<ending>`` (its own decoding) plus ``CASE.npz``/``CASE.pkl`` when probabilities are requested.
For a cumulative (sigmoid) model radconf re-decodes the level map monotonically (nnU-Net lets the last region above
0.5 win) and rewrites ``CASE<ending>``; for a softmax model on levels nnU-Net's argmax is kept. Optional extras:
``level_probabilities/CASE_ge<c><ending>`` (P(level >= c), float32) and ``level<L>_masks/CASE<ending>`` (binary).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radconf.confidence.ordinal import count_levels, cumulative_from_softmax, monotone
from radconf.errors import InvalidInput

PROBABILITY_FOLDER = "level_probabilities"


@dataclass(frozen=True)
class LevelOutputs:
    """Extra outputs of a confidence model: P(level >= c) maps and binary masks ``level >= L`` for chosen L."""

    probabilities: bool = False
    masks: tuple[int, ...] = ()

    @property
    def requested(self) -> bool:
        return self.probabilities or bool(self.masks)

    def files(self, case: str, file_ending: str, k: int | None) -> list[str]:
        """The level outputs of ``case`` (relative to the prediction folder) a model with ``k`` levels writes."""
        if k is None:
            return []
        maps = [f"{PROBABILITY_FOLDER}/{case}_ge{c}{file_ending}" for c in range(1, k + 1)] if self.probabilities else []
        return maps + [f"{level_mask_folder(level)}/{case}{file_ending}" for level in self.masks]

    def check(self, k: int | None, model: str) -> None:
        """Refuses outputs the model cannot give, before any prediction: levels outside 1..K, or level outputs of a
        model without confidence levels (``k`` None).

        Raises:
            InvalidInput: naming the model, its K and the levels it has.
        """
        if not self.requested:
            return
        if k is None:
            raise InvalidInput(f"--level and --level_probabilities need a confidence-level model; {model} has no "
                               f"confidence levels. Drop them, or predict with a model trained by radconf's "
                               f"confidence trainers.")
        check_mask_levels(self.masks, k, model)


def check_mask_levels(mask_levels: Sequence[int], k: int, model: str = "this model") -> None:
    """Raises InvalidInput unless every level is an integer in 1..K."""
    bad = [level for level in mask_levels if isinstance(level, bool) or int(level) != level or not 1 <= level <= k]
    if bad:
        raise InvalidInput(f"--level must be in 1..{k} for {model} (K = {k} confidence levels), got "
                           f"{', '.join(str(level) for level in bad)}.")


def level_mask_folder(level: int) -> str:
    return f"level{level}_masks"


def _with_array(reference_image, array: np.ndarray):
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference_image)
    return image


def finish_level_predictions(folder: str | Path, k: int, file_ending: str, *, cumulative: bool,
                             keep_npz: bool = False, probability_maps: bool = False,
                             mask_levels: Sequence[int] = (), cases: Sequence[str] | None = None) -> list[str]:
    """Post-processes the ``CASE.npz`` in ``folder`` (cases exported by nnU-Net in this run).

    Args:
        folder: nnU-Net prediction folder holding ``CASE<ending>`` and ``CASE.npz``.
        k: highest level K.
        file_ending: image file ending, e.g. ``.nii.gz``.
        cumulative: the model has K sigmoid channels (True) or K + 1 softmax channels (False).
        keep_npz: keep nnU-Net's ``.npz``/``.pkl`` (else removed once the outputs are written).
        probability_maps: write P(level >= c) per level.
        mask_levels: write binary masks ``level >= L`` for these L.
        cases: the cases to process (default: every ``CASE.npz`` in ``folder``).

    Returns:
        The cases processed.
    """
    import SimpleITK as sitk

    from radconf.io.files import atomic_write_image

    folder = Path(folder)
    check_mask_levels(mask_levels, k)
    cases = sorted(p.name[: -len(".npz")] for p in folder.glob("*.npz")) if cases is None else list(cases)
    for case in cases:
        probabilities = np.load(folder / f"{case}.npz")["probabilities"].astype(np.float32, copy=False)
        expected = k if cumulative else k + 1
        if probabilities.shape[0] != expected:
            raise InvalidInput(f"{folder / case}.npz has {probabilities.shape[0]} channels; a K = {k} "
                             f"{'cumulative' if cumulative else 'softmax'} model exports {expected}.")
        segmentation_file = folder / f"{case}{file_ending}"
        reference = sitk.ReadImage(str(segmentation_file))
        if cumulative:
            cumulative_p = monotone(probabilities)
            levels = count_levels(cumulative_p)  # already monotone: no second pass
            atomic_write_image(segmentation_file, _with_array(reference, levels))
        else:
            cumulative_p = cumulative_from_softmax(probabilities)
            levels = sitk.GetArrayFromImage(reference)
        if probability_maps:
            for c in range(1, k + 1):
                atomic_write_image(folder / PROBABILITY_FOLDER / f"{case}_ge{c}{file_ending}",
                                   _with_array(reference, cumulative_p[c - 1].astype(np.float32)))
        for level in mask_levels:
            atomic_write_image(folder / level_mask_folder(level) / f"{case}{file_ending}",
                               _with_array(reference, (levels >= level).astype(np.uint8)))
        if not keep_npz:
            (folder / f"{case}.npz").unlink()
            (folder / f"{case}.pkl").unlink(missing_ok=True)
    return cases
