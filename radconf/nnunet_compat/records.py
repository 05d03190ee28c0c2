"""The run records nnU-Net's ``predict_from_files`` writes into the output folder, for a part of a sharded prediction.

``predict_from_files`` saves ``predict_from_raw_data_args.json`` (its arguments: the part's input files), then
``dataset.json`` and ``plans.json`` (equal for every part) with the module global ``save_json`` of
``nnunetv2.inference.predict_from_raw_data``. Parts running at once into one folder would write those files at the
same time: :func:`part_run_records` swaps that global for the block so the three are written atomically and the
arguments go to the part's own file (``predict_from_raw_data_args.part_1_of_4.json``). Nothing else of nnU-Net
changes; ``tests/nnunet_compat/test_tripwires.py`` guards the names used.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ARGUMENTS_FILE = "predict_from_raw_data_args.json"


@contextmanager
def part_run_records() -> Iterator[None]:
    """Within the block (in a part, :func:`radconf.scale.parts.in_part`), nnU-Net's run records are written
    atomically, its arguments record named for the part; outside a part nothing changes."""
    import nnunetv2.inference.predict_from_raw_data as module

    from radconf.scale.parts import in_part, part_file_name

    if not in_part():
        yield
        return
    original = module.save_json

    def save_json(obj, file, indent: int = 4, sort_keys: bool = True) -> None:
        import json

        from radconf.io.files import atomic_write_text

        path = Path(file)
        if path.name == ARGUMENTS_FILE:
            path = path.with_name(part_file_name(ARGUMENTS_FILE))
        atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys))

    module.save_json = save_json
    try:
        yield
    finally:
        module.save_json = original
