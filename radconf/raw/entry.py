"""The ``"radconf"`` entry of a dataset.json: what radconf records about a dataset it wrote, read in one place.

radconf's dataset builders write one namespaced entry next to nnU-Net's keys (nnU-Net ignores it), e.g.::

    "radconf": {"generator": "radconf.fusion_dataset", "ordinal": true, "levels": 5, ...}
    "radconf": {"generator": "radconf.anatomy_dataset", "anatomy": {"channels": {...}, "encoding": "binary", ...}}

:class:`RadconfEntry` is the typed, read-only view every module uses; the method packages interpret their own
sub-entries (``anatomy``) further.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from radconf.errors import InvalidInput
from radconf.io.dataset_json import read_json_file

RADCONF_KEY = "radconf"


@dataclass(frozen=True)
class RadconfEntry:
    """The checked ``"radconf"`` entry of one dataset.json (all fields empty for a dataset radconf did not write).

    Attributes:
        generator: the radconf module that wrote the dataset (identifies outputs radconf may replace).
        ordinal: a confidence-level dataset (labels 0..K or the cumulative regions).
        levels: K of an ordinal dataset.
        anatomy: the anatomy-channel declaration (see ``radconf.anatomy.channels.anatomy_of``), or None.
        fields: the whole entry, read-only, for method-specific keys.
    """

    generator: str | None = None
    ordinal: bool = False
    levels: int | None = None
    anatomy: Mapping[str, Any] | None = None
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, dataset_json: Mapping, where: str = "dataset.json") -> RadconfEntry:
        """The entry of a loaded dataset.json.

        Raises:
            ValueError: the entry is not an object, or a field has the wrong type.
        """
        entry = dataset_json.get(RADCONF_KEY)
        if entry is None:
            return cls()
        if not isinstance(entry, Mapping):
            raise InvalidInput(f"{where}: \"{RADCONF_KEY}\" must be an object, got {type(entry).__name__}; remove it "
                               f"or rebuild the dataset with the radconf command that wrote it.")
        ordinal = entry.get("ordinal", False)
        levels = entry.get("levels")
        anatomy = entry.get("anatomy")
        if not isinstance(ordinal, bool) or (levels is not None and (isinstance(levels, bool)
                                                                    or not isinstance(levels, int))):
            raise InvalidInput(f"{where}: \"{RADCONF_KEY}\" needs \"ordinal\": true/false and \"levels\": an integer "
                               f"K, got ordinal={ordinal!r}, levels={levels!r}.")
        if ordinal and (levels is None or levels < 1):
            raise InvalidInput(f"{where}: an ordinal dataset needs \"levels\": K >= 1 in \"{RADCONF_KEY}\".")
        if anatomy is not None and not isinstance(anatomy, Mapping):
            raise InvalidInput(f"{where}: \"{RADCONF_KEY}\".\"anatomy\" must be an object.")
        generator = entry.get("generator")
        return cls(generator=str(generator) if generator is not None else None, ordinal=ordinal, levels=levels,
                   anatomy=MappingProxyType(dict(anatomy)) if anatomy else None,
                   fields=MappingProxyType(dict(entry)))

    @classmethod
    def read(cls, path: str | os.PathLike) -> RadconfEntry:
        """The entry of a dataset.json file.

        Raises:
            FileNotFoundError, ValueError: the file is missing or not valid JSON, naming it.
        """
        path = Path(path)
        data = read_json_file(path)
        if not isinstance(data, Mapping):
            raise InvalidInput(f"{path} must hold a JSON object.")
        return cls.of(data, str(path))

    def written_by(self, generator: str) -> bool:
        return self.generator == generator


def written_by(folder: str | os.PathLike, generator: str) -> bool:
    """Whether ``folder/dataset.json`` exists and was written by ``generator`` (False for anything unreadable)."""
    try:
        return RadconfEntry.read(Path(folder) / "dataset.json").written_by(generator)
    except (OSError, ValueError):
        return False
