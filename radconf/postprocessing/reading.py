"""Reading a post-processing file: radconf's ``postprocessing.json`` or nnU-Net's ``postprocessing.pkl``."""
from __future__ import annotations

import os
from pathlib import Path

from radconf.errors import InvalidInput, MissingInput
from radconf.io.dataset_json import read_json_file
from radconf.postprocessing.definition import PostProcessing, from_json
from radconf.postprocessing.nnunet import read_nnunet_postprocessing


def read_postprocessing(path: str | os.PathLike) -> PostProcessing:
    """Reads ``postprocessing.json`` (radconf's) or ``postprocessing.pkl`` (nnU-Net's, through a restricted unpickler).

    Raises:
        MissingInput: the file does not exist.
        InvalidInput: it is neither, or its content is invalid, naming the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"Post-processing file {path} does not exist; give the postprocessing.json of "
                           f"radconf_determine_postprocessing (or nnU-Net's postprocessing.pkl).")
    if path.suffix == ".pkl":
        return read_nnunet_postprocessing(path)
    if path.suffix != ".json":
        raise InvalidInput(f"{path}: give a postprocessing.json (radconf) or a postprocessing.pkl (nnU-Net).")
    return from_json(read_json_file(path, fix="or determine it again"), str(path))
