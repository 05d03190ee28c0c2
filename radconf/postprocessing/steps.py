"""Post-processing steps as plain data: one JSON-able dict per step, checked, named and applied to a binary mask.

A step is ``{"op": NAME, ...parameters}``:

======================  ===========================================================  ==========================
op                      parameters                                                   effect on a mask
======================  ===========================================================  ==========================
``largest_component``   ``connectivity`` 6, 18 or 26 (default 26, as nnU-Net)        removes voxels
``remove_small``        ``min_volume_mm3`` > 0 or ``min_voxels`` >= 1 (one of them);  removes voxels
                        ``connectivity`` (default 26)
``opening``             ``radius_mm`` > 0 (an exact ball in mm)                      removes voxels
``fill_holes``          ``per_slice`` (default false), ``axis`` 0..2 (default 0: z)  adds voxels
``closing``             ``radius_mm`` > 0                                            adds voxels
======================  ===========================================================  ==========================

The masks are in numpy (z, y, x) order with the spacing in the same order; the operations themselves are
:mod:`radconf.contours`'.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from radconf.errors import InvalidInput

Step = dict[str, Any]

CONNECTIVITIES = (6, 18, 26)
#: op -> {parameter: default (None: no default)}
PARAMETERS: dict[str, dict[str, Any]] = {
    "largest_component": {"connectivity": 26},
    "remove_small": {"min_volume_mm3": None, "min_voxels": None, "connectivity": 26},
    "opening": {"radius_mm": None},
    "fill_holes": {"per_slice": False, "axis": 0},
    "closing": {"radius_mm": None},
}
#: ops whose result never holds a voxel the mask did not hold (the only ones allowed on a union of labels)
REMOVING_OPS = frozenset({"largest_component", "remove_small", "opening"})

#: The default search space, tried in this order on top of the steps kept so far.
DEFAULT_SEARCH_SPACE: tuple[Step, ...] = (
    {"op": "largest_component"},
    {"op": "remove_small", "min_volume_mm3": 10},
    {"op": "remove_small", "min_volume_mm3": 50},
    {"op": "remove_small", "min_volume_mm3": 250},
    {"op": "fill_holes", "per_slice": False},
    {"op": "fill_holes", "per_slice": True},
    {"op": "opening", "radius_mm": 1},
    {"op": "opening", "radius_mm": 2},
    {"op": "opening", "radius_mm": 4},
    {"op": "closing", "radius_mm": 1},
    {"op": "closing", "radius_mm": 2},
    {"op": "closing", "radius_mm": 4},
)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _parameter_problem(op: str, name: str, value: Any) -> str | None:
    """Why ``value`` is not a valid ``name`` of ``op``, or None."""
    if name == "connectivity" and value not in CONNECTIVITIES:
        return f"connectivity must be one of {', '.join(map(str, CONNECTIVITIES))}"
    if name in ("radius_mm", "min_volume_mm3") and not (_is_number(value) and value > 0):
        return f"{name} must be a number greater than 0 (mm{'^3' if name == 'min_volume_mm3' else ''})"
    if name == "min_voxels" and not (_is_integer(value) and value >= 1):
        return "min_voxels must be a whole number, at least 1"
    if name == "per_slice" and not isinstance(value, bool):
        return "per_slice must be true or false"
    if name == "axis" and not (_is_integer(value) and 0 <= value <= 2):
        return "axis must be 0, 1 or 2 (numpy (z, y, x) order; 0: axial slices)"
    return None


def check_step(step: Any, where: str) -> Step:
    """A valid step with its defaults filled in, as plain JSON types.

    Args:
        step: a dict such as ``{"op": "opening", "radius_mm": 2}``.
        where: the file and position, for the message (e.g. ``"search.json, step 3"``).

    Raises:
        InvalidInput: not a dict, an unknown op, an unknown, missing or invalid parameter, naming ``where``.
    """
    if not isinstance(step, Mapping) or "op" not in step:
        raise InvalidInput(f"{where}: {step!r} is not a step; write each step as an object with an \"op\", e.g. "
                           f"{{\"op\": \"remove_small\", \"min_volume_mm3\": 50}}.")
    op = step["op"]
    if op not in PARAMETERS:
        raise InvalidInput(f"{where}: unknown op {op!r}; choose one of {', '.join(PARAMETERS)}.")
    allowed = PARAMETERS[op]
    unknown = sorted(set(step) - {"op"} - set(allowed))
    if unknown:
        raise InvalidInput(f"{where}: {op} takes {', '.join(allowed)}, not {', '.join(unknown)}; remove "
                           f"{'it' if len(unknown) == 1 else 'them'}.")
    checked: Step = {"op": op}
    for name, default in allowed.items():
        value = step.get(name, default)
        if value is None:
            continue
        problem = _parameter_problem(op, name, value)
        if problem:
            raise InvalidInput(f"{where}: {op} has {name} {value!r}; {problem}.")
        checked[name] = float(value) if name in ("radius_mm", "min_volume_mm3") else value
    if op == "remove_small" and ("min_volume_mm3" in checked) == ("min_voxels" in checked):
        raise InvalidInput(f"{where}: remove_small needs exactly one of min_volume_mm3 (mm^3) and min_voxels, e.g. "
                           f"{{\"op\": \"remove_small\", \"min_volume_mm3\": 50}}.")
    if op in ("opening", "closing") and "radius_mm" not in checked:
        raise InvalidInput(f"{where}: {op} needs radius_mm, e.g. {{\"op\": \"{op}\", \"radius_mm\": 2}}.")
    if op == "fill_holes" and not checked["per_slice"]:
        if "axis" in step:
            raise InvalidInput(f"{where}: fill_holes takes an axis only with \"per_slice\": true.")
        del checked["axis"]
    return checked


def check_steps(steps: Any, where: str) -> list[Step]:
    """:func:`check_step` for each entry of a list (``where`` gets ``, step N``, counted from 1)."""
    if not isinstance(steps, (list, tuple)):
        raise InvalidInput(f"{where}: the steps must be a JSON list of objects, e.g. "
                           f"[{{\"op\": \"largest_component\"}}].")
    return [check_step(step, f"{where}, step {number}") for number, step in enumerate(steps, 1)]


def read_search_space(path: str) -> list[Step]:
    """The steps of a search-space file: a JSON list of steps, or an object with a ``"steps"`` list.

    Raises:
        MissingInput, InvalidInput: the file is missing, not JSON, empty, or holds an invalid or repeated step.
    """
    from radconf.io.dataset_json import read_json_file

    data = read_json_file(path, fix="or give a JSON list of steps")
    if isinstance(data, Mapping) and set(data) == {"steps"}:
        data = data["steps"]
    steps = check_steps(data, str(path))
    if not steps:
        raise InvalidInput(f"{path} holds no step; list at least one, e.g. [{{\"op\": \"largest_component\"}}].")
    for number, step in enumerate(steps, 1):
        if step in steps[:number - 1]:
            raise InvalidInput(f"{path}, step {number}: {step_text(step)} is listed twice; give each step once.")
    return steps


def step_text(step: Mapping[str, Any]) -> str:
    """A step in one short line: ``largest_component``, ``opening(radius_mm=2)``, ``fill_holes(per_slice=true)``."""
    defaults = PARAMETERS.get(step["op"], {})
    shown = [f"{name}={_value_text(value)}" for name, value in step.items()
             if name != "op" and (value != defaults.get(name) or step["op"] == "fill_holes" and name == "per_slice")]
    return step["op"] + (f"({', '.join(shown)})" if shown else "")


def steps_text(steps: Sequence[Mapping[str, Any]]) -> str:
    """Steps joined by ``" -> "``; ``none`` for no step."""
    return " -> ".join(step_text(step) for step in steps) or "none"


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def adds_voxels(step: Mapping[str, Any]) -> bool:
    """True for steps that may add voxels to a mask (hole filling, closing)."""
    return step["op"] not in REMOVING_OPS


def reach_mm(steps: Sequence[Mapping[str, Any]]) -> float:
    """How far (mm) outside a mask the steps may look or write: twice the largest radius (0 without radii)."""
    return 2.0 * max((float(step.get("radius_mm", 0.0)) for step in steps), default=0.0)


def apply_step(mask: np.ndarray, spacing: Sequence[float], step: Mapping[str, Any]) -> np.ndarray:
    """One step (checked by :func:`check_step`; defaults apply to parameters left out) applied to a boolean mask (a
    new array; the mask is not modified)."""
    from radconf import contours

    op = step["op"]
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy()
    if op == "largest_component":
        return np.asarray(contours.largest_component(mask, connectivity=step.get("connectivity", 26)), dtype=bool)
    if op == "remove_small":
        return np.asarray(contours.remove_small_components(
            mask, spacing, min_volume_mm3=step.get("min_volume_mm3"), min_voxels=step.get("min_voxels"),
            connectivity=step.get("connectivity", 26)), dtype=bool)
    if op == "fill_holes":
        filled = contours.fill_holes(mask, per_slice=step.get("per_slice", False), axis=step.get("axis", 0))
        return np.asarray(filled, dtype=bool)
    operation = contours.opening if op == "opening" else contours.closing
    return np.asarray(operation(mask, spacing, step["radius_mm"]), dtype=bool)


def apply_steps(mask: np.ndarray, spacing: Sequence[float], steps: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Checked steps applied in order to a boolean mask (a new array)."""
    result = np.asarray(mask, dtype=bool).copy()
    for step in steps:
        result = apply_step(result, spacing, step)
    return result
