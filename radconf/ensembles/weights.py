"""Ensemble weights as data: checking them, reading ``weights.json``, matching members by model, leakage warnings."""
from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, MissingInput


def warn_if_fitted_on(cases: Sequence[str], fitted_cases: Sequence[str]) -> None:
    """Warns when cases to predict were among those the weights were fitted on (their results are optimistic)."""
    overlap = sorted(set(cases) & set(fitted_cases))
    if overlap:
        warnings.warn(f"{len(overlap)} of the {len(cases)} case(s) were used to fit these ensemble weights "
                      f"({', '.join(overlap[:5])}{', ...' if len(overlap) > 5 else ''}): metrics on them are "
                      f"optimistic. Evaluate ensembles on cases the weights have not seen.", stacklevel=2)


def read_weights(path: str | Path) -> dict:
    """A ``weights.json`` written by ``radconf_find_ensemble_weights`` (members, weights, validation cases).

    Raises:
        ValueError: the file is not such a file, or its weights are not on the simplex.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"Weights file {path} does not exist; create it with radconf_find_ensemble_weights.")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "weights" not in data or "members" not in data:
        raise InvalidInput(f"{path} is not a radconf weights file (needs 'members' and 'weights').")
    weights = np.asarray(data["weights"], dtype=np.float64)
    if len(weights) != len(data["members"]) or (weights < 0).any() or not np.isclose(weights.sum(), 1.0, atol=1e-6):
        raise InvalidInput(f"{path}: weights {weights.tolist()} must be one non-negative number per member summing to "
                         f"1.")
    return data


def check_weights(weights: Sequence[float] | None, count: int) -> np.ndarray:
    """``weights`` as a float array normalised to sum 1 (None: equal weights)."""
    if weights is None:
        return np.full(count, 1.0 / count)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (count,) or (weights < 0).any() or weights.sum() <= 0:
        raise InvalidInput(f"Give one non-negative weight per member ({count}) with a positive sum; got "
                         f"{weights.tolist()}.")
    return weights / weights.sum()


def require_same_cases(cases_by_member: Mapping[str, set[str]], fix: str) -> list[str]:
    """The sorted cases when every member has the same ones; else a ValueError naming a member and its missing cases
    (ending with ``fix``)."""
    union = set().union(*cases_by_member.values())
    for name, cases in cases_by_member.items():
        missing = sorted(union - cases)
        if missing:
            raise InvalidInput(f"{name} has no probabilities of {len(missing)} case(s) that other members have "
                             f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}). {fix}")
    return sorted(union)


def model_key(spec_text: str) -> tuple[int, str, str, str]:
    """(dataset id, trainer, plans, configuration) of a model spec: what identifies a member (folds may differ
    between fitting on cross-validation and predicting)."""
    from radconf.models import ModelSpec
    from radconf.raw.checks import dataset_id_of

    spec = ModelSpec.parse(spec_text)
    return dataset_id_of(spec.dataset), spec.trainer, spec.plans, spec.configuration


def folder_model(folder: str | Path) -> str | None:
    """The model spec of a prediction folder, when it can be told: ``radconf_model.json`` (written by
    ``radconf_predict``) or the path of a trained model's ``fold_X/validation``; else None."""
    folder = Path(folder).resolve()
    record = folder / "radconf_model.json"
    if record.is_file():
        return json.loads(record.read_text())["model"]
    parts = folder.parts
    if len(parts) >= 4 and parts[-1] == "validation" and parts[-2].startswith("fold_"):
        pieces = parts[-3].split("__")
        if len(pieces) == 3 and parts[-4].startswith("Dataset"):
            return ":".join([parts[-4], *pieces, parts[-2][len("fold_"):]])
    return None


def match_weights(members: Sequence[str], weights_file: dict, where: str = "weights.json") -> np.ndarray:
    """The weights of ``members`` (model specs) from a weights file, matched by dataset, trainer, plans and
    configuration.

    Raises:
        ValueError: a member is not in the file, or the file weighs a model that is not among the members.
    """
    fitted = {model_key(m): float(w) for m, w in zip(weights_file["members"], weights_file["weights"])}
    keys = [model_key(m) for m in members]
    unknown = [m for m, k in zip(members, keys) if k not in fitted]
    left_out = [m for m in weights_file["members"] if model_key(m) not in keys]
    if unknown or left_out:
        raise InvalidInput(f"The members must be the models {where} was fitted for: "
                         + (f"not in it: {', '.join(unknown)}. " if unknown else "")
                         + (f"missing here: {', '.join(left_out)}. " if left_out else "")
                         + "Refit the weights for this pool with radconf_find_ensemble_weights.")
    return np.array([fitted[k] for k in keys])
