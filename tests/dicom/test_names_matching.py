"""Structure-name mapping, overlap priority and the reader rule (pure data, no DICOM files)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from radconf.dicom.matching import (
    assign_readers,
    case_names,
    compile_reader_pattern,
    reader_name,
    series_of,
    split_reader_roi,
)
from radconf.dicom.names import (
    check_priority,
    implicit_structure_map,
    load_structure_map,
    normalise_name,
    priority_order,
    structure_map_from,
)
from radconf.dicom.structure_sets import StructureSet


@pytest.mark.parametrize("raw, expected", [("Femur Head-L", "femur_head_l"), (" FEMUR__HEAD_L ", "femur_head_l"),
                                           ("PTV 70.0Gy", "ptv_70_0gy"), ("Bladder", "bladder"), ("CTV/P", "ctv_p")])
def test_normalise_name(raw, expected):
    assert normalise_name(raw) == expected


def test_mapping_file_aliases_prefixes_and_unmapped(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"bladder": ["Bladder", "BLADDER_wall"], "Rectum": ["rect*"], "ptv": ["PTV*"]}))
    structure_map = load_structure_map(path)
    assert structure_map.structures == ("bladder", "rectum", "ptv")
    assert structure_map.structure_of("bladder wall") == "bladder"
    assert structure_map.structure_of("RECTUM") == "rectum"
    assert structure_map.structure_of("Rect_Wall") == "rectum"
    assert structure_map.structure_of("PTV 70 Gy") == "ptv"
    assert structure_map.structure_of("Couch") is None


@pytest.mark.parametrize("content, message", [
    ('["bladder"]', "JSON object"),
    ('{"bladder": "Bladder"}', "list of non-empty ROI names"),
    ('{"bladder": ["B"], "rectum": ["b"]}', "listed for both"),
    ('{"background": ["x"]}', "not usable as a label name"),
    ('{"bladder": ["B"], "Bladder": ["C"]}', "same name"),
    ('{"bladder": [}', "dataset"),
])
def test_mapping_file_refusals(tmp_path, content, message):
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(ValueError) as error:
        load_structure_map(path)
    assert str(path) in str(error.value) or message == "dataset"
    if message != "dataset":
        assert message in str(error.value)


def test_implicit_map_keeps_first_appearance_order():
    structure_map = implicit_structure_map(["GTV", "Bladder", "gtv", "BLADDER ", "Rectum"])
    assert structure_map.structures == ("gtv", "bladder", "rectum")
    assert not structure_map.explicit


def test_priority_smallest_wins_unless_listed():
    volumes = {"body": 1000.0, "ctv": 50.0, "gtv": 10.0}
    # painting order: the last painted wins a shared voxel
    assert priority_order(["gtv", "body", "ctv"], volumes, None) == ["body", "ctv", "gtv"]
    assert priority_order(["gtv", "body", "ctv"], volumes, ["body"]) == ["ctv", "gtv", "body"]
    assert priority_order(["gtv", "body", "ctv"], volumes, ["ctv", "body"]) == ["gtv", "body", "ctv"]
    with pytest.raises(ValueError, match="not structures"):
        check_priority(["liver"], structure_map_from({"gtv": []}))


def _set(label: str, date_time: str, path: str, series=(), frames=(), images=()) -> StructureSet:
    return StructureSet(Path(path), f"uid-{path}", label, date_time, tuple(frames), tuple(series), frozenset(images),
                        ())


def test_readers_and_trials_follow_label_then_date():
    sets = [_set("Dr B", "20240102", "/x/b2.dcm"), _set("Dr A", "20240101", "/x/a1.dcm"),
            _set("Dr B", "20240101", "/x/b1.dcm"), _set("", "20240103", "/export/reader_z/c.dcm")]
    trials = {t.structure_set.path.name: t.name for t in assign_readers(sets)}
    assert trials == {"a1.dcm": "Dr_A_1", "b1.dcm": "Dr_B_1", "b2.dcm": "Dr_B_2", "c.dcm": "reader_z_1"}
    by_folder = {t.structure_set.path.name: t.name for t in assign_readers(sets, "folder")}
    assert by_folder["a1.dcm"] == "x_1" and by_folder["b2.dcm"] == "x_3"
    with pytest.raises(ValueError, match="reader_from"):
        assign_readers(sets, "roi")


def test_reader_pattern_splits_roi_names():
    pattern = compile_reader_pattern(r"(?P<structure>.+)_R(?P<reader>\d+)")
    assert split_reader_roi("GTV_R2", pattern) == ("GTV", "reader2")
    assert split_reader_roi("Bladder", pattern) == ("Bladder", None)
    with pytest.raises(ValueError, match="named groups"):
        compile_reader_pattern(r"(.+)_R(\d+)")
    with pytest.raises(ValueError, match="not a regular expression"):
        compile_reader_pattern(r"(?P<structure>")
    assert reader_name("Dr. A / contour 2") == "Dr_A_contour_2"


def test_series_of_uses_series_then_frame_then_images():
    frames = {"s1": "f1", "s2": "f2", "s3": "f2"}
    instances = {"s1": frozenset({"i1"}), "s2": frozenset({"i2"}), "s3": frozenset({"i3"})}
    assert series_of(_set("a", "", "/a", series=["s3"], frames=["f1"]), frames, instances) == "s3"
    assert series_of(_set("a", "", "/a", frames=["f1"]), frames, instances) == "s1"
    assert series_of(_set("a", "", "/a", frames=["f2"], images=["i3"]), frames, instances) == "s3"
    assert series_of(_set("a", "", "/a", frames=["f2"]), frames, instances) is None  # two series share f2
    assert series_of(_set("a", "", "/a", series=["gone"], frames=["gone"]), frames, instances) is None


def test_case_names_anonymous_unless_asked():
    class Header:
        def __init__(self, patient_id):
            self.patient_id = patient_id

    series = [[Header("PAT^1")], [Header("PAT^1")], [Header("777")]]
    assert case_names(series, False) == ["CASE_0001", "CASE_0002", "CASE_0003"]
    assert case_names(series, True) == ["PAT_1", "PAT_1_2", "777"]
