"""Structure names: ROI names of the structure sets -> the dataset's structures (label names).

Normalisation (both sides of every comparison): Unicode NFKC, lower case, every run of characters other than
letters and digits (spaces, ``-``, ``.``, ``/``, ``_`` ...) becomes one ``_``, no leading/trailing ``_``. So
``"Femur Head-L"``, ``"femur_head_l"`` and ``" FEMUR__HEAD_L "`` are one name, in the TG-263 style of lower-case
words joined by underscores.

Mapping file (``--structures MAP.json``): ``{"bladder": ["Bladder", "BLADDER_wall"], "rectum": ["Rectum"]}``. Keys
are the dataset's structures in label order (label 1, 2, ...); a ROI maps to a key when its normalised name equals
the normalised key or one of the normalised aliases. An alias may end in ``*`` to match a prefix
(``"ptv*"``). Without a mapping file every normalised ROI name found is a structure, in order of first appearance.
ROIs that map to nothing are *unmapped*: listed in the report, never silently dropped.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from radconf.errors import InvalidInput

_SEPARATORS = re.compile(r"[^0-9a-z]+")
_LABEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def normalise_name(name: str) -> str:
    """The comparison form of a ROI or structure name (see the module docstring)."""
    text = unicodedata.normalize("NFKC", str(name)).lower()
    return _SEPARATORS.sub("_", text).strip("_")


@dataclass(frozen=True)
class StructureMap:
    """Which ROI names make which structure.

    Attributes:
        structures: the dataset's structure names, in label order.
        aliases: per structure, the normalised names (exact) that map to it.
        prefixes: per structure, normalised prefixes (aliases written with a trailing ``*``).
        explicit: True for a mapping file, False for "every ROI is its own structure".
    """

    structures: tuple[str, ...]
    aliases: Mapping[str, frozenset[str]]
    prefixes: Mapping[str, tuple[str, ...]]
    explicit: bool

    def structure_of(self, roi_name: str) -> str | None:
        """The structure a ROI name maps to, or None (unmapped)."""
        key = normalise_name(roi_name)
        for structure in self.structures:
            if key in self.aliases[structure]:
                return structure
        for structure in self.structures:
            if any(key.startswith(p) for p in self.prefixes[structure]):
                return structure
        return None


def load_structure_map(path: str | Path) -> StructureMap:
    """Reads and checks a mapping file ``{"structure": ["alias", ...], ...}``.

    Raises:
        InvalidInput: not JSON, not an object of lists of strings, a structure name that is not a valid label name,
            or an alias claimed by two structures.
    """
    from radconf.io.dataset_json import read_json_file

    path = Path(path)
    data = read_json_file(path, fix="fix the --structures file and run again")
    if not isinstance(data, dict) or not data:
        raise InvalidInput(f"{path}: a --structures file is a JSON object {{\"bladder\": [\"Bladder\", ...], ...}}, "
                           f"got {type(data).__name__}.")
    for structure, aliases in data.items():
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
            raise InvalidInput(f"{path}: the aliases of {structure!r} must be a list of non-empty ROI names "
                               f"(e.g. [\"Bladder\", \"BLADDER_wall\"]).")
    return structure_map_from(data, source=str(path))


def structure_map_from(data: Mapping[str, Sequence[str]], source: str = "--structures") -> StructureMap:
    """A :class:`StructureMap` from ``{structure: [aliases]}`` (structures normalised, order kept)."""
    structures: list[str] = []
    aliases: dict[str, frozenset[str]] = {}
    prefixes: dict[str, tuple[str, ...]] = {}
    owner: dict[str, str] = {}
    for raw_structure, raw_aliases in data.items():
        structure = normalise_name(raw_structure)
        if not _LABEL_NAME.match(structure) or structure in ("background", "ignore"):
            raise InvalidInput(f"{source}: {raw_structure!r} is not usable as a label name (letters, digits and "
                               f"underscores; not 'background' or 'ignore').")
        if structure in aliases:
            raise InvalidInput(f"{source}: structures {raw_structure!r} and another key are the same name "
                               f"{structure!r} after normalisation; merge their alias lists.")
        exact = {structure} | {normalise_name(a) for a in raw_aliases if not a.rstrip().endswith("*")}
        starred = tuple(normalise_name(a.rstrip()[:-1]) for a in raw_aliases if a.rstrip().endswith("*"))
        for name in exact | set(starred):
            if name in owner and owner[name] != structure:
                raise InvalidInput(f"{source}: the ROI name {name!r} is listed for both {owner[name]!r} and "
                                   f"{structure!r}; keep it under one structure.")
            owner[name] = structure
        structures.append(structure)
        aliases[structure] = frozenset(exact)
        prefixes[structure] = starred
    return StructureMap(tuple(structures), aliases, prefixes, explicit=True)


def implicit_structure_map(roi_names: Iterable[str]) -> StructureMap:
    """Every normalised ROI name is a structure, in order of first appearance (no mapping file)."""
    structures: list[str] = []
    for name in roi_names:
        key = normalise_name(name)
        if key and key not in structures and key not in ("background", "ignore"):
            structures.append(key if key[0].isalnum() else f"s_{key}")
    return StructureMap(tuple(structures), {s: frozenset({s}) for s in structures}, {s: () for s in structures},
                        explicit=False)


def priority_order(structures: Sequence[str], volumes_ml: Mapping[str, float],
                   priority: Sequence[str] | None) -> list[str]:
    """Painting order of one case's label map: the LAST structure painted wins a voxel two structures share.

    Default (``priority`` None): the smallest structure wins, so that nested structures (a GTV inside the CTV inside
    the body) all stay visible. With ``priority`` (``--priority A B ...``), the listed structures win in that order
    (A over B over ...), and unlisted ones follow the default rule below them.
    """
    listed = [normalise_name(p) for p in (priority or [])]
    rest = sorted((s for s in structures if s not in listed), key=lambda s: (-volumes_ml.get(s, 0.0), s))
    top = [s for s in listed if s in structures]
    return rest + list(reversed(top))


def check_priority(priority: Sequence[str] | None, structure_map: StructureMap | None) -> None:
    """``--priority`` names must be structures of the mapping file (when there is one)."""
    if not priority or structure_map is None:
        return
    unknown = [p for p in priority if normalise_name(p) not in structure_map.structures]
    if unknown:
        raise InvalidInput(f"--priority {' '.join(unknown)}: not structures of the --structures file "
                           f"({', '.join(structure_map.structures)}).")
