"""nnU-Net's ``postprocessing.pkl`` read safely and translated into radconf's steps.

nnU-Net (``nnunetv2.postprocessing.remove_connected_components.determine_postprocessing``) pickles
``(functions, kwargs)``: a list of references to ``remove_all_but_largest_component_from_segmentation`` and one dict
per call, ``{"labels_or_regions": ...}`` with a label id, a region (a tuple of ids), or a list of those (the whole
foreground); label ids are numpy integers. A pickle can run any code when loaded, so the file is read with an
unpickler that resolves only that one nnU-Net function (never imported: it is only recognised) and numpy's scalar
and dtype constructors; any other reference is refused, naming the file.

Each call becomes one structure: the union of its ids, with ``{"op": "largest_component"}`` (26-connected, as
nnU-Net's ``skimage.measure.label`` with full connectivity); voxels outside the largest component become background,
as in nnU-Net. The calls keep their order.
"""
from __future__ import annotations

import io
import numbers
import pickle
from pathlib import Path
from typing import Any

from radconf.errors import InvalidInput
from radconf.postprocessing.definition import PostProcessing, Structure

NNUNET_MODULE = "nnunetv2.postprocessing.remove_connected_components"
NNUNET_FUNCTION = "remove_all_but_largest_component_from_segmentation"
_NUMPY = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}
_KWARGS = {"labels_or_regions", "background_label"}


class _LargestComponent:
    """Stands for nnU-Net's function in the loaded pickle."""


class _Refused(Exception):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == (NNUNET_MODULE, NNUNET_FUNCTION):
            return _LargestComponent
        if (module, name) in _NUMPY:
            return super().find_class(module, name)
        raise _Refused(f"{module}.{name}")


def _load(path: Path) -> Any:
    try:
        return _RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except _Refused as refused:
        raise InvalidInput(f"{path} refers to {refused}; radconf reads only nnU-Net's post-processing pickles, whose "
                           f"only function is {NNUNET_MODULE}.{NNUNET_FUNCTION}. Give nnU-Net's postprocessing.pkl "
                           f"or radconf's postprocessing.json.") from None
    except Exception as error:  # noqa: BLE001 - a damaged pickle raises many kinds of errors
        raise InvalidInput(f"{path} is not a readable pickle ({type(error).__name__}: {error}); copy it again, or "
                           f"determine the post-processing again.") from None


def _ids(value: Any, path: Path) -> list[int]:
    """The label ids of one ``labels_or_regions`` value (an id, a region tuple, or a list of those)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return [int(value)]
    if isinstance(value, (list, tuple)) and value:
        return [i for part in value for i in _ids(part, path)]
    raise InvalidInput(f"{path}: labels_or_regions {value!r} is not a label id, a region or a list of them; give "
                       f"a postprocessing.pkl written by nnU-Net.")


def _structure(kwargs: Any, names: dict[int, str], path: Path, number: int) -> Structure:
    where = f"{path}, step {number}"
    if not isinstance(kwargs, dict) or "labels_or_regions" not in kwargs or set(kwargs) - _KWARGS:
        raise InvalidInput(f"{where}: the arguments {kwargs!r} are not nnU-Net's (labels_or_regions and, optionally, "
                           f"background_label); give a postprocessing.pkl written by nnU-Net.")
    if int(kwargs.get("background_label", 0)) != 0:
        raise InvalidInput(f"{where}: background_label {kwargs['background_label']!r}; radconf writes removed voxels "
                           f"as background 0 only.")
    ids = sorted(set(_ids(kwargs["labels_or_regions"], path)))
    if not ids or ids[0] < 1:
        raise InvalidInput(f"{where}: labels_or_regions {kwargs['labels_or_regions']!r} must name foreground ids >= 1.")
    name = names.get(ids[0], str(ids[0])) if len(ids) == 1 else "+".join(map(str, ids))
    return Structure(name, labels=tuple(ids), steps=({"op": "largest_component", "connectivity": 26},))


def _label_names(path: Path) -> dict[int, str]:
    """Label id -> name from the dataset.json beside the pickle (nnU-Net writes one there), else nothing."""
    import json

    try:
        labels = json.loads((path.parent / "dataset.json").read_text(encoding="utf-8"))["labels"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {value: str(name) for name, value in labels.items() if isinstance(value, int) and value > 0}


def read_nnunet_postprocessing(path: str | Path) -> PostProcessing:
    """nnU-Net's ``postprocessing.pkl`` as a ``labels`` post-processing.

    Raises:
        InvalidInput: a pickle naming anything but nnU-Net's largest-component function (refused before it is
            resolved), a damaged pickle, or content nnU-Net does not write, naming the file.
    """
    path = Path(path)
    data = _load(path)
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, (tuple, list)) for d in data)
            and len(data[0]) == len(data[1])):
        raise InvalidInput(f"{path} does not hold nnU-Net's (functions, kwargs) pair of lists; give the "
                           f"postprocessing.pkl written by nnU-Net's determine_postprocessing.")
    functions, kwargs = data
    if not all(function is _LargestComponent for function in functions):
        raise InvalidInput(f"{path} lists something other than nnU-Net's {NNUNET_FUNCTION}; give nnU-Net's "
                           f"postprocessing.pkl.")
    names = _label_names(path)
    structures = tuple(_structure(arguments, names, path, number) for number, arguments in enumerate(kwargs, 1))
    return PostProcessing("labels", structures, source=str(path))
