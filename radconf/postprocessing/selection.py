"""The selection rule: which steps each structure keeps, chosen greedily on validation predictions, as nnU-Net does.

For each structure in order (labels in dataset.json order; confidence maps: ``level >= 1``, then 2, ..., K), starting
from the predictions as they stand (the raw ones, with the steps already kept for earlier structures applied):

1. score the structure over the cases: mean Dice and mean HD95 (radconf's evaluation,
   :class:`radconf.evaluation.StructureMetrics`, HD95 under its default ``surface-distance`` convention);
2. for each step of the search space, in its order, apply it on top of the steps kept so far and score again;
3. keep it only if the mean Dice rises by more than ``MIN_DICE_GAIN`` **and** the HD95 does not get worse: no
   more cases with an infinite HD95 (a structure predicted where the reference has none, or missed), and the mean
   HD95 over the cases finite before and after does not rise by more than ``HD95_TOLERANCE_MM``.

Cases where the structure is absent from both the reference and the prediction have an undefined Dice and HD95
(NaN) and are left out of the means, as nnU-Net leaves them out of its Dice means (``np.nanmean``). A step that
removes a false-positive island from a case whose reference is empty therefore takes that case's Dice of 0 out of
the mean, as in nnU-Net. Unions of labels (regions) only try steps that remove voxels.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from radconf.postprocessing.apply import apply_structure
from radconf.postprocessing.definition import PostProcessing, Structure, with_steps
from radconf.postprocessing.steps import Step, adds_voxels, check_steps, step_text

#: A step is kept only if the structure's mean Dice rises by more than this (nnU-Net: any rise).
MIN_DICE_GAIN = 1e-4
#: ... and its mean HD95 (cases finite before and after) rises by no more than this, in mm (rounding only).
HD95_TOLERANCE_MM = 1e-6


@dataclass
class CaseMaps:
    """One validation case: reference and prediction maps (cropped to the same box), their spacing (z, y, x)."""

    case: str
    reference: np.ndarray
    prediction: np.ndarray
    spacing: tuple[float, ...]


@dataclass(frozen=True)
class Scores:
    """A structure's per-case Dice and HD95 (NaN: absent from both) and their means."""

    dice: tuple[float, ...]
    hd95: tuple[float, ...]

    @property
    def mean_dice(self) -> float:
        values = [v for v in self.dice if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    @property
    def mean_hd95(self) -> float:
        """Mean over the cases with an HD95 (inf when one case has none: a missed or spurious structure)."""
        values = [v for v in self.hd95 if not math.isnan(v)]
        return float(np.mean(values)) if values else math.nan

    @property
    def infinite(self) -> int:
        return sum(1 for v in self.hd95 if math.isinf(v))

    def as_json(self) -> dict:
        return {"mean_dice": self.mean_dice, "mean_hd95_mm": self.mean_hd95, "cases_with_infinite_hd95": self.infinite,
                "cases_scored": sum(1 for v in self.dice if not math.isnan(v))}


@dataclass(frozen=True)
class Trial:
    """One step tried on one structure: the scores before and after, kept or not, and why."""

    structure: str
    step: Step
    on_top_of: tuple[Step, ...]
    before: Scores
    after: Scores
    kept: bool
    reason: str


@dataclass
class Selection:
    """The outcome: the kept steps per structure, every trial, the scores before and after."""

    postprocessing: PostProcessing
    trials: list[Trial] = field(default_factory=list)
    raw: dict[str, Scores] = field(default_factory=dict)
    final: dict[str, Scores] = field(default_factory=dict)


def structure_mask(array: np.ndarray, kind: str, structure: Structure) -> np.ndarray:
    """The structure's mask in a label map (union of its ids) or a level map (``level >= c``)."""
    if kind == "levels":
        return array >= structure.level
    ids = structure.labels
    return array == ids[0] if len(ids) == 1 else np.isin(array, ids)


def case_scores(reference: np.ndarray, prediction: np.ndarray, spacing: Sequence[float]) -> tuple[float, float]:
    """Dice and HD95 (mm) of one mask pair with radconf's evaluation (NaN, NaN when both are empty)."""
    from radconf.evaluation import StructureMetrics

    metrics = StructureMetrics(reference, prediction, spacing, tolerances_mm=(), num_threads=1)
    return float(metrics.overlap.dice), float(metrics.hd95)


def _score(cases: Sequence[CaseMaps], maps: Sequence[np.ndarray], kind: str, structure: Structure,
           known: Scores | None = None, changed: Sequence[bool] | None = None) -> Scores:
    """Scores of ``structure`` on ``maps`` (one per case); cases not ``changed`` keep their ``known`` scores."""
    dice, hd95 = [], []
    for number, (case, array) in enumerate(zip(cases, maps)):
        if known is not None and changed is not None and not changed[number]:
            dice.append(known.dice[number])
            hd95.append(known.hd95[number])
            continue
        d, h = case_scores(structure_mask(case.reference, kind, structure), structure_mask(array, kind, structure),
                           case.spacing)
        dice.append(d)
        hd95.append(h)
    return Scores(tuple(dice), tuple(hd95))


def _paired_hd95(before: Scores, after: Scores) -> tuple[float, float]:
    pairs = [(b, a) for b, a in zip(before.hd95, after.hd95) if math.isfinite(b) and math.isfinite(a)]
    if not pairs:
        return math.nan, math.nan
    return float(np.mean([b for b, _ in pairs])), float(np.mean([a for _, a in pairs]))


def decide(before: Scores, after: Scores) -> tuple[bool, str]:
    """The rule for one trial: ``(kept, why)``."""
    gain = after.mean_dice - before.mean_dice
    if math.isnan(before.mean_dice) and math.isnan(after.mean_dice):
        return False, "no case holds the structure (Dice undefined)"
    if not gain > MIN_DICE_GAIN:
        return False, f"mean Dice {gain:+.4f} (needs > +{MIN_DICE_GAIN:g})"
    if after.infinite > before.infinite:
        return False, (f"HD95 infinite in {after.infinite} case(s), was {before.infinite} (the structure vanishes "
                       f"where the reference has it)")
    hd_before, hd_after = _paired_hd95(before, after)
    if hd_after > hd_before + HD95_TOLERANCE_MM:
        return False, f"mean Dice {gain:+.4f} but mean HD95 {hd_after - hd_before:+.2f} mm"
    change = "" if math.isnan(hd_before) else f", mean HD95 {hd_after - hd_before:+.2f} mm"
    return True, f"mean Dice {gain:+.4f}{change}"


def _candidates(structure: Structure, search_space: Sequence[Step]) -> list[Step]:
    if len(structure.labels) > 1:  # a union: the added voxels would have no label
        return [step for step in search_space if not adds_voxels(step)]
    return list(search_space)


def _select_structure(cases: Sequence[CaseMaps], kind: str, structure: Structure, search_space: Sequence[Step],
                      selection: Selection, tick: Callable[[], None]) -> list[Step]:
    current = _score(cases, [case.prediction for case in cases], kind, structure)
    selection.raw[structure.name] = current
    kept: list[Step] = []
    for step in _candidates(structure, search_space):
        trial_maps, changed = [], []
        for case in cases:
            trial = case.prediction.copy()
            apply_structure(trial, case.spacing, kind, structure, step)
            trial_maps.append(trial)
            changed.append(not np.array_equal(trial, case.prediction))
        if not any(changed):
            selection.trials.append(Trial(structure.name, step, tuple(kept), current, current, False,
                                          "changes no voxel"))
            tick()
            continue
        after = _score(cases, trial_maps, kind, structure, current, changed)
        keep, reason = decide(current, after)
        selection.trials.append(Trial(structure.name, step, tuple(kept), current, after, keep, reason))
        if keep:
            kept.append(step)
            current = after
            for case, trial in zip(cases, trial_maps):
                case.prediction = trial
        tick()
    return kept


def select_steps(cases: Sequence[CaseMaps], structures: PostProcessing, search_space: Sequence[Step], *,
                 progress: bool = True) -> Selection:
    """Runs the rule for every structure; the cases' predictions are post-processed in place as steps are kept.

    Args:
        cases: the validation cases (maps cropped to a box that holds every structure plus the steps' reach).
        structures: the structures (kind, order) without steps (:func:`~.definition.structures_of`).
        search_space: checked steps, tried in this order.
        progress: tqdm progress bar over the trials.

    Returns:
        The post-processing (kept steps per structure), every trial, and the scores before and after; the final
        scores are measured once every structure's steps are applied.
    """
    from tqdm import tqdm

    search_space = check_steps(list(search_space), "the search space")
    total = sum(len(_candidates(s, search_space)) for s in structures.structures)
    selection = Selection(structures)
    kept = []
    with tqdm(total=total, desc="Post-processing steps", unit="step", disable=not progress) as bar:
        for structure in structures.structures:
            bar.set_postfix_str(structure.name)
            kept.append(_select_structure(cases, structures.kind, structure, search_space, selection, bar.update))
    selection.postprocessing = with_steps(structures, kept)
    for structure in structures.structures:
        selection.final[structure.name] = _score(cases, [case.prediction for case in cases], structures.kind,
                                                 structure)
    return selection


def trial_rows(selection: Selection) -> list[dict]:
    """One row per trial, for the table of what each tried step changed."""
    rows = []
    for trial in selection.trials:
        rows.append({"structure": trial.structure, "step": step_text(trial.step),
                     "on_top_of": " -> ".join(step_text(s) for s in trial.on_top_of) or "raw",
                     "dice_before": trial.before.mean_dice, "dice_after": trial.after.mean_dice,
                     "hd95_before_mm": trial.before.mean_hd95, "hd95_after_mm": trial.after.mean_hd95,
                     "kept": "yes" if trial.kept else "no", "why": trial.reason})
    return rows
