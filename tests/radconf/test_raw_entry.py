"""radconf.raw.entry: the typed dataset.json "radconf" entry."""
from __future__ import annotations

import json

import pytest

from radconf.raw.entry import RadconfEntry, written_by


def test_entry_of_radconf_datasets_and_others():
    assert RadconfEntry.of({"labels": {}}) == RadconfEntry()
    entry = RadconfEntry.of({"radconf": {"generator": "radconf.fusion_dataset", "ordinal": True, "levels": 5,
                                         "fusion_rule": "..."}})
    assert (entry.generator, entry.ordinal, entry.levels, entry.anatomy) == ("radconf.fusion_dataset", True, 5, None)
    assert entry.fields["fusion_rule"] == "..." and entry.written_by("radconf.fusion_dataset")
    with pytest.raises(TypeError):
        entry.fields["levels"] = 3  # read-only
    anatomy = RadconfEntry.of({"radconf": {"anatomy": {"channels": {"1": "bladder"}}}}).anatomy
    assert anatomy == {"channels": {"1": "bladder"}}


@pytest.mark.parametrize("entry, message", [
    ([], "must be an object"),
    ({"ordinal": "yes", "levels": 5}, "ordinal"),
    ({"ordinal": True}, "levels"),
    ({"ordinal": True, "levels": True}, "levels"),
    ({"anatomy": [1]}, "anatomy"),
])
def test_bad_entries_name_the_file(entry, message):
    with pytest.raises(ValueError, match=f"my/dataset.json.*{message}"):
        RadconfEntry.of({"radconf": entry}, "my/dataset.json")


def test_written_by(tmp_path):
    assert not written_by(tmp_path, "radconf.anatomy_dataset")  # no dataset.json
    (tmp_path / "dataset.json").write_text("{broken")
    assert not written_by(tmp_path, "radconf.anatomy_dataset")
    with pytest.raises(ValueError, match="not valid JSON"):
        RadconfEntry.read(tmp_path / "dataset.json")
    (tmp_path / "dataset.json").write_text(json.dumps({"radconf": {"generator": "radconf.anatomy_dataset"}}))
    assert written_by(tmp_path, "radconf.anatomy_dataset") and not written_by(tmp_path, "radconf.fusion_dataset")
