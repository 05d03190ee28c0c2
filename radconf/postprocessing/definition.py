"""What a post-processing is: the steps kept per structure, in the order they are applied, and the files it lives in.

Two kinds, told apart by the ``kind`` of ``postprocessing.json``:

- ``labels`` (label maps): each structure is a label id, or a union of ids (nnU-Net's "whole foreground" step and
  regions); a union takes only steps that remove voxels.
- ``levels`` (confidence level maps 0..K): each structure is the mask ``level >= c``, in increasing ``c``.

``postprocessing.json`` holds ``{"format": "radconf_postprocessing", "version": 1, "kind": ..., "levels": K,
"structures": [{"name", "labels" | "level", "steps"}]}`` plus what the selection recorded (rule, search space,
scores, sources); :mod:`radconf.postprocessing.reading` reads it, and nnU-Net's ``postprocessing.pkl`` too.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from radconf.errors import InvalidInput
from radconf.io.dataset_json import parse_labels
from radconf.postprocessing.steps import Step, adds_voxels, check_steps, step_text
from radconf.raw.entry import RadconfEntry

FORMAT = "radconf_postprocessing"
VERSION = 1
KINDS = ("labels", "levels")


@dataclass(frozen=True)
class Structure:
    """One structure and the steps applied to it, in order.

    Attributes:
        name: the structure's name (dataset.json label name, ``level>=c``, or the ids joined by ``+``).
        labels: ``labels`` kind: the label ids whose union is the mask.
        level: ``levels`` kind: ``c`` of the mask ``level >= c``.
        steps: checked steps (:func:`radconf.postprocessing.steps.check_step`).
    """

    name: str
    labels: tuple[int, ...] = ()
    level: int | None = None
    steps: tuple[Step, ...] = ()

    def as_json(self) -> dict[str, Any]:
        where = {"level": self.level} if self.level is not None else {"labels": list(self.labels)}
        return {"name": self.name, **where, "steps": [dict(step) for step in self.steps]}


@dataclass(frozen=True)
class PostProcessing:
    """The kept steps of every structure, applied in the order of ``structures``.

    Attributes:
        kind: ``labels`` or ``levels``.
        structures: the structures, in order.
        levels: K of a ``levels`` post-processing (None for ``labels``).
        source: the file it was read from (None when built in memory).
    """

    kind: str
    structures: tuple[Structure, ...] = ()
    levels: int | None = None
    source: str | None = field(default=None, compare=False)

    def as_json(self) -> dict[str, Any]:
        """The applied part of ``postprocessing.json``."""
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, "levels": self.levels,
                "structures": [structure.as_json() for structure in self.structures]}

    @property
    def steps(self) -> list[Step]:
        """Every step of every structure (for the crop margin)."""
        return [step for structure in self.structures for step in structure.steps]

    def describe(self) -> str:
        """One line per structure with steps: ``bladder: largest_component -> closing(radius_mm=2)``."""
        lines = [f"{s.name}: {' -> '.join(step_text(step) for step in s.steps)}" for s in self.structures if s.steps]
        return "\n".join(lines) or "no step kept"


def _structure(entry: Any, kind: str, k: int | None, where: str) -> Structure:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        key = "level" if kind == "levels" else "labels"
        raise InvalidInput(f"{where}: each structure must be an object with a \"name\", \"{key}\" and \"steps\".")
    name = entry["name"]
    steps = tuple(check_steps(entry.get("steps", []), f"{where} ({name})"))
    if kind == "levels":
        level = entry.get("level")
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= k:
            raise InvalidInput(f"{where} ({name}): \"level\" must be an integer in 1..{k}, got {level!r}.")
        return Structure(name, level=level, steps=steps)
    labels = entry.get("labels")
    if not isinstance(labels, list) or not labels or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 1 for i in labels):
        raise InvalidInput(f"{where} ({name}): \"labels\" must be a non-empty list of label ids >= 1, got {labels!r}.")
    if len(labels) > 1:
        adding = [step_text(step) for step in steps if adds_voxels(step)]
        if adding:
            raise InvalidInput(f"{where} ({name}): a union of labels takes only steps that remove voxels "
                               f"(largest_component, remove_small, opening), not {', '.join(adding)}: the added voxels "
                               f"would have no label. Give each label its own structure.")
    return Structure(name, labels=tuple(labels), steps=steps)


def from_json(data: Any, where: str) -> PostProcessing:
    """A post-processing from the content of a ``postprocessing.json``.

    Raises:
        InvalidInput: another file's content (nnU-Net's postprocessing.json included), or an invalid entry, naming
            ``where`` and the fix.
    """
    if isinstance(data, Mapping) and "postprocessing_fns" in data:
        raise InvalidInput(f"{where} is nnU-Net's summary of its post-processing; give nnU-Net's postprocessing.pkl "
                           f"beside it (radconf reads it), or a postprocessing.json of "
                           f"radconf_determine_postprocessing.")
    if not isinstance(data, Mapping) or data.get("format") != FORMAT:
        raise InvalidInput(f"{where} is not a radconf post-processing file (no \"format\": \"{FORMAT}\"); give the "
                           f"postprocessing.json of radconf_determine_postprocessing or nnU-Net's postprocessing.pkl.")
    if data.get("version") != VERSION:
        raise InvalidInput(f"{where} has version {data.get('version')!r}; this radconf reads version {VERSION}. "
                           f"Determine the post-processing again with this radconf.")
    kind = data.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"{where}: \"kind\" must be \"labels\" or \"levels\", got {kind!r}.")
    k = data.get("levels")
    if kind == "levels" and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise InvalidInput(f"{where}: a \"levels\" post-processing needs \"levels\": K (an integer >= 1), got {k!r}.")
    entries = data.get("structures")
    if not isinstance(entries, list):
        raise InvalidInput(f"{where}: \"structures\" must be a list.")
    structures = tuple(_structure(entry, kind, k, f"{where}, structure {number}")
                       for number, entry in enumerate(entries, 1))
    if kind == "levels":
        order = [s.level for s in structures]
        if order != sorted(set(order)):
            raise InvalidInput(f"{where}: the level structures must come in increasing level order, each once "
                               f"(got levels {order}).")
    return PostProcessing(kind, structures, k if kind == "levels" else None, source=where)


def dataset_levels(dataset_json: Mapping, where: str = "dataset.json") -> int | None:
    """K of a confidence-level dataset (``"radconf": {"ordinal": true, "levels": K}``), None for label maps."""
    entry = RadconfEntry.of(dataset_json, where)
    return int(entry.levels) if entry.ordinal and entry.levels is not None else None


def check_fits(postprocessing: PostProcessing, dataset_json: Mapping, what: str) -> None:
    """Refuses a post-processing that was not determined for maps like ``what``'s (``dataset_json`` describes them).

    Raises:
        InvalidInput: levels for a label model, labels for a level model, another K, or label ids the model does
            not predict, naming the post-processing file and ``what``.
    """
    source = postprocessing.source or "the post-processing"
    k = dataset_levels(dataset_json, what)
    if postprocessing.kind == "levels" and k != postprocessing.levels:
        has = f"confidence levels 0..{k}" if k is not None else "label maps"
        raise InvalidInput(f"{source} is for confidence levels 0..{postprocessing.levels} but {what} predicts {has}; "
                           f"determine the post-processing on this model's predictions.")
    if postprocessing.kind == "labels":
        if k is not None:
            raise InvalidInput(f"{source} is for label maps but {what} predicts confidence levels 0..{k}; determine "
                               f"the post-processing on its level maps (radconf_determine_postprocessing).")
        known = {i for ids in parse_labels(dataset_json["labels"], what).values() for i in ids}
        unknown = sorted({i for s in postprocessing.structures for i in s.labels} - known)
        if unknown:
            raise InvalidInput(f"{source} names label id(s) {unknown} that {what} does not predict (its labels: "
                               f"{sorted(known)}); give the post-processing determined for this model.")


def structures_of(dataset_json: Mapping, where: str = "dataset.json") -> PostProcessing:
    """The structures of a dataset, without steps: its labels (regions as unions), or levels 1..K."""
    k = dataset_levels(dataset_json, where)
    if k is not None:
        return PostProcessing("levels", tuple(Structure(f"level>={c}", level=c) for c in range(1, k + 1)), k)
    labels = parse_labels(dataset_json["labels"], where)
    return PostProcessing("labels", tuple(Structure(name, labels=ids) for name, ids in labels.items()))


def with_steps(structures: PostProcessing, steps: Sequence[Sequence[Step]]) -> PostProcessing:
    """``structures`` with the given steps, one list per structure."""
    from dataclasses import replace

    return replace(structures, structures=tuple(replace(s, steps=tuple(kept))
                                                for s, kept in zip(structures.structures, steps)))
