"""The binary problems a probability folder is calibrated on: one per structure (softmax label, region, confidence
level >= c), with its probability channel and the reference ids it stands for."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from radconf.errors import InvalidInput


@dataclass(frozen=True)
class Structure:
    """One binary problem: the probability channel (in the output space) and the reference ids it stands for."""

    name: str
    channel: int
    ids: tuple[int, ...]



def probability_structures(dataset: Mapping, source: str = "dataset.json"
                           ) -> tuple[Any, str, list[Structure], set[int], int]:
    """The structures of a model's probability maps.

    Returns:
        The output space, the export kind (:func:`radconf.ensembles.space.member_space`), the structures, the label
        ids a reference may hold, and the channel count of the ``CASE.npz`` files.
    """
    from radconf.ensembles.space import member_space

    space, kind = member_space(dataset)
    labels = [(name, tuple(v) if isinstance(v, (list, tuple)) else (int(v),)) for name, v in space.labels]
    if space.kind == "softmax":
        structures = [Structure(name, ids[0], ids) for name, ids in labels if ids != (0,)]
    elif space.kind == "regions":
        structures = [Structure(name, i, tuple(int(x) for x in ids))
                      for i, (name, ids) in enumerate((n, ids) for n, ids in labels if ids != (0,))]
    else:
        structures = [Structure(name, c, tuple(range(c + 1, space.num_channels + 1)))
                      for c, (name, _) in enumerate(labels[1:])]
    if len(structures) != space.num_channels - (space.kind == "softmax"):
        raise InvalidInput(f"{source}: labels {dict(dataset['labels'])} do not give one probability channel per "
                           f"structure (background must be id 0); check the labels.")
    allowed = {0}.union(*(s.ids for s in structures))
    return space, kind, structures, allowed, space.num_channels + (kind == "level_softmax")


def select_structure(structures: Sequence[Structure], wanted: str | int, flag: str) -> Structure:
    """A structure by name, by label id (``3``: the structure whose ids are exactly (3,); a level c of a confidence
    model) or as ``name=ids`` (ids checked)."""
    text = str(wanted)
    name, _, ids_text = text.partition("=")
    for structure in structures:
        if structure.name == name and (not ids_text or ids_text == ",".join(map(str, structure.ids))):
            return structure
    if text.isdigit():
        match = [s for s in structures if s.ids == (int(text),) or s.name == f"level>={text}"]
        if match:
            return match[0]
    known = ", ".join(f"{s.name}={','.join(map(str, s.ids))}" for s in structures)
    raise InvalidInput(f"{flag} {text!r} is not a structure of these probability maps ({known}); give one of those "
                       f"names or ids.")
