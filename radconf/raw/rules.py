"""Label rules of radconf_merge_labels: parsing ``--merge NEW=a,b``, ``--rename OLD=NEW``, ``--drop LABEL`` and
planning the label mapping they give (pure functions, no files).

The resulting dataset has background 0, then its labels numbered 1..N consecutively in the order of their first
source label (by source id); dropped labels become background. :class:`LabelMapping` is the checked plan; it remaps
label arrays through a lookup table (:meth:`LabelMapping.remap`).
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from radconf.errors import InvalidInput

BACKGROUND = "background"


@dataclass(frozen=True)
class LabelRules:
    """The parsed rules: ``merges`` (new name, parts), ``renames`` (old, new) and ``drops`` (names)."""

    merges: tuple[tuple[str, tuple[str, ...]], ...] = ()
    renames: tuple[tuple[str, str], ...] = ()
    drops: tuple[str, ...] = ()

    def sources(self) -> list[tuple[str, str]]:
        """``(source label, rule text)`` for every label a rule names, in the order given."""
        return ([(part, f"--merge {new}={','.join(parts)}") for new, parts in self.merges for part in parts]
                + [(old, f"--rename {old}={new}") for old, new in self.renames]
                + [(name, f"--drop {name}") for name in self.drops])


def _checked_name(name: str, rule: str, what: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput(f"{rule}: the {what} is empty; write it as shown in radconf_merge_labels --help.")
    return name


def parse_merge(text: str) -> tuple[str, tuple[str, ...]]:
    """``"muscle=muscle_l,muscle_r"`` -> ``("muscle", ("muscle_l", "muscle_r"))``.

    Raises:
        InvalidInput: not ``NEW=a,b[,...]``, empty names, or a single part (a rename).
    """
    rule = f"--merge {text}"
    if text.count("=") != 1:
        raise InvalidInput(f"{rule}: a merge is written NEW=a,b (one '='), e.g. --merge muscle=muscle_l,muscle_r.")
    new, parts_text = text.split("=")
    new = _checked_name(new, rule, "new name (before '=')")
    parts = tuple(_checked_name(part, rule, "label list (after '=') holds an empty name; the") for part in
                  parts_text.split(","))
    if len(parts) == 1:
        raise InvalidInput(f"{rule}: a merge needs two or more labels; to give one label a new name use "
                           f"--rename {parts[0]}={new}.")
    return new, parts


def parse_rename(text: str) -> tuple[str, str]:
    """``"gtv=tumour"`` -> ``("gtv", "tumour")``.

    Raises:
        InvalidInput: not ``OLD=NEW`` (one ``=``, no commas), or empty names.
    """
    rule = f"--rename {text}"
    if text.count("=") != 1 or "," in text:
        fix = (f" To join several labels into one, use --merge {text}." if "," in text and text.count("=") == 1
               else "")
        raise InvalidInput(f"{rule}: a rename is written OLD=NEW (one '=', one label), e.g. --rename gtv=tumour."
                           + fix)
    old, new = text.split("=")
    return _checked_name(old, rule, "old name (before '=')"), _checked_name(new, rule, "new name (after '=')")


def parse_rules(merges: Sequence[str] = (), renames: Sequence[str] = (), drops: Sequence[str] = ()) -> LabelRules:
    """Parses the command line's rules (syntax only; :func:`plan_mapping` checks them against the labels).

    Raises:
        InvalidInput: a rule with bad syntax, or no rule at all.
    """
    rules = LabelRules(tuple(parse_merge(t) for t in merges), tuple(parse_rename(t) for t in renames),
                       tuple(_checked_name(t, f"--drop {t!r}", "label name") for t in drops))
    if not (rules.merges or rules.renames or rules.drops):
        raise InvalidInput("Nothing to do: give at least one --merge NEW=a,b, --rename OLD=NEW or --drop LABEL.")
    return rules


@dataclass(frozen=True)
class LabelMapping:
    """The checked mapping of a dataset's labels.

    Attributes:
        old_labels: source name -> id (background included).
        new_labels: resulting name -> id (background 0, then 1..N).
        name_of: source name -> resulting name (``"background"`` for dropped labels).
        id_of: source id -> resulting id.
    """

    old_labels: Mapping[str, int]
    new_labels: Mapping[str, int]
    name_of: Mapping[str, str]
    id_of: Mapping[int, int]

    def lookup(self) -> np.ndarray:
        """Table ``t`` with ``t[old id] = new id`` (uint8 when the new ids fit, else uint16)."""
        dtype = np.uint8 if max(self.new_labels.values()) <= 255 else np.uint16
        table = np.zeros(max(self.id_of) + 1, dtype)
        for old, new in self.id_of.items():
            table[old] = new
        return table

    def remap(self, array: np.ndarray) -> np.ndarray:
        """The label array with every source id replaced by its new id (same shape).

        Raises:
            InvalidInput: a value that is not a source label id.
        """
        table = self.lookup()
        if array.size and (array.min() < 0 or array.max() >= table.size or
                           not set(np.unique(array).tolist()) <= set(self.id_of)):
            raise InvalidInput(f"label values {sorted(set(np.unique(array).tolist()) - set(self.id_of))} are not "
                               f"declared in dataset.json; add them to 'labels' or fix the label map.")
        return table[array]

    def missing_after(self, missing: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """``missing_structures`` after the mapping: a resulting label is missing in a case when ANY of its source
        labels is (a half-annotated merged structure is incomplete); dropped labels vanish, other names are kept."""
        order = {name: i for i, name in enumerate(self.new_labels)}
        result = {}
        for case, names in missing.items():
            mapped = {self.name_of.get(name, name) for name in names} - {BACKGROUND}
            if mapped:
                result[case] = sorted(mapped, key=lambda n: (order.get(n, len(order)), n))
        return result


def _unknown(name: str, labels: Mapping[str, int], rule: str) -> str:
    close = difflib.get_close_matches(name, [n for n in labels if n != BACKGROUND], n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    return (f"{rule}: label {name!r} is not a label of the source dataset (labels: "
            f"{', '.join(n for n in labels if n != BACKGROUND)}).{hint}")


def _check_labels(labels: Mapping[str, object]) -> dict[str, int]:
    regions = [name for name, value in labels.items() if isinstance(value, list)]
    if regions:
        raise InvalidInput(f"The source dataset is region-based (labels {', '.join(regions)} are lists of ids, e.g. "
                           f"confidence levels); radconf_merge_labels works on plain label ids only. Merge the "
                           f"structures before building the region dataset.")
    return dict(sorted(((str(n), int(v)) for n, v in labels.items()), key=lambda item: item[1]))


def _check_sources(rules: LabelRules, labels: Mapping[str, int]) -> None:
    seen: dict[str, str] = {}
    for name, rule in rules.sources():
        if name == BACKGROUND:
            raise InvalidInput(f"{rule}: background cannot be merged, renamed or dropped; it stays label 0. Remove "
                               f"it from the rule.")
        if name not in labels:
            raise InvalidInput(_unknown(name, labels, rule))
        if name in seen:
            where = "twice in " + rule if seen[name] == rule else f"in both {seen[name]} and {rule}"
            raise InvalidInput(f"Label {name!r} appears {where}; each label may be named by one rule only. Combine "
                               f"them into one rule.")
        seen[name] = rule


def _check_targets(rules: LabelRules, labels: Mapping[str, int]) -> None:
    named = {name for name, _ in rules.sources()}
    targets: dict[str, str] = {}
    for new, rule in ([(new, f"--merge {new}={','.join(parts)}") for new, parts in rules.merges]
                      + [(new, f"--rename {old}={new}") for old, new in rules.renames]):
        if new == BACKGROUND:
            raise InvalidInput(f"{rule}: 'background' is label 0; to turn labels into background use --drop.")
        if new in labels and new not in named:
            raise InvalidInput(f"{rule}: the new name {new!r} is a label that stays in the dataset; pick another "
                               f"name, or include {new!r} in the rule (e.g. --merge {new}=...).")
        if new in targets:
            raise InvalidInput(f"{rule} and {targets[new]} both make a label named {new!r}; pick distinct names, or "
                               f"merge all of them in one --merge rule.")
        targets[new] = rule
    for old, new in rules.renames:
        if old == new:
            raise InvalidInput(f"--rename {old}={new} renames the label to itself; remove the rule.")


def plan_mapping(labels: Mapping[str, object], rules: LabelRules) -> LabelMapping:
    """Checks the rules against a dataset.json ``labels`` and plans the resulting labels.

    Args:
        labels: the source's ``labels`` (name -> id, background 0).
        rules: from :func:`parse_rules`.

    Returns:
        The mapping; resulting labels are numbered 1..N in the order of their first source label.

    Raises:
        InvalidInput: region labels, unknown names (with close matches), background in a rule, a label in two
            rules, a new name that clashes with a kept label or another rule's, or no label left.
    """
    old = _check_labels(labels)
    _check_sources(rules, old)
    _check_targets(rules, old)
    target = {name: name for name in old}
    target.update({part: new for new, parts in rules.merges for part in parts})
    target.update(dict(rules.renames))
    target.update({name: BACKGROUND for name in rules.drops})
    new_labels: dict[str, int] = {BACKGROUND: 0}
    for name in old:
        new_labels.setdefault(target[name], len(new_labels))
    if len(new_labels) == 1:
        raise InvalidInput("These rules drop every label: the new dataset would hold background only. Keep at least "
                           "one label.")
    return LabelMapping(MappingProxyType(old), MappingProxyType(new_labels), MappingProxyType(target),
                        MappingProxyType({old[n]: new_labels[target[n]] for n in old}))
