"""Ensemble weights as data: checking them, reading ``weights.json``, matching members by model, leakage warnings."""
from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from radconf.errors import InvalidInput, MissingInput
from radconf.io.dataset_json import read_json_file


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
        MissingInput: the file does not exist.
        InvalidInput: the file is not such a file (not JSON, no members or weights, members that are not model
            specs), or its weights are not finite, non-negative numbers summing to 1.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(f"--weights {path} is a folder; give the weights.json that radconf_find_ensemble_weights "
                           f"wrote into it ({path / 'weights.json'}).")
    if not path.is_file():
        raise MissingInput(f"Weights file {path} does not exist; create it with radconf_find_ensemble_weights.")
    data = read_json_file(path, fix="or write it again with radconf_find_ensemble_weights")
    if not isinstance(data, dict) or not isinstance(data.get("weights"), list) \
            or not isinstance(data.get("members"), list) or not all(isinstance(m, str) for m in data["members"]):
        raise InvalidInput(f"{path} is not a radconf weights file (needs 'members', a list of model specs, and "
                           f"'weights', one number per member); write it with radconf_find_ensemble_weights.")
    for member in data["members"]:
        model_key(member, where=str(path))
    if not isinstance(data.get("validation_cases", []), list):
        raise InvalidInput(f"{path}: 'validation_cases' must be a list of case identifiers.")
    weights = check_weights(data["weights"], len(data["members"]), where=str(path))
    if not np.isclose(np.sum(np.asarray(data["weights"], dtype=np.float64)), 1.0, atol=1e-6):
        raise InvalidInput(f"{path}: weights {weights.tolist()} must sum to 1 (one non-negative number per member); "
                           f"write the file again with radconf_find_ensemble_weights.")
    return data


def check_weights(weights: Sequence[float] | None, count: int, where: str = "--weights") -> np.ndarray:
    """``weights`` as a float array normalised to sum 1 (None: equal weights).

    Raises:
        InvalidInput: not one number per member, NaN or infinite, negative, or all zero, naming ``where``.
    """
    if weights is None:
        return np.full(count, 1.0 / count)
    values = list(weights)
    if any(isinstance(w, (bool, str)) or w is None for w in values):
        raise InvalidInput(f"{where}: weights {values} must be numbers, one per member.")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: weights {values} must be numbers, one per member.") from None
    if array.shape != (count,):
        raise InvalidInput(f"{where}: {array.size} weight(s) for {count} member(s); give one per member.")
    if not np.isfinite(array).all():
        raise InvalidInput(f"{where}: weights {array.tolist()} include NaN or infinite values; give finite numbers.")
    if (array < 0).any():
        raise InvalidInput(f"{where}: weights {array.tolist()} include negative values; give one non-negative weight "
                           f"per member.")
    if array.sum() <= 0:
        raise InvalidInput(f"{where}: all weights are 0; give at least one member a positive weight (a positive "
                           f"sum).")
    return array / array.sum()


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


def model_key(spec_text: str, where: str | None = None) -> tuple[int, str, str, str]:
    """(dataset id, trainer, plans, configuration) of a model spec: what identifies a member (folds may differ
    between fitting on cross-validation and predicting)."""
    from radconf.models import ModelSpec
    from radconf.raw.checks import dataset_id_of

    try:
        spec = ModelSpec.parse(spec_text)
    except InvalidInput as error:
        if where is None:
            raise
        raise InvalidInput(f"{where}: member {error}") from None
    return dataset_id_of(spec.dataset), spec.trainer, spec.plans, spec.configuration


def folder_model(folder: str | Path) -> str | None:
    """The model spec of a prediction folder, when it can be told: ``radconf_model.json`` (written by
    ``radconf_predict``) or the path of a trained model's ``fold_X/validation``; else None."""
    folder = Path(folder).resolve()
    record = folder / "radconf_model.json"
    if record.is_file():
        try:
            model = json.loads(record.read_text(encoding="utf-8"))["model"]
            model_key(model)
        except (ValueError, KeyError, TypeError):
            raise InvalidInput(f"{record} is not a radconf model record (JSON with 'model': a model spec); remove it "
                               f"or predict the folder again with radconf_predict.") from None
        return model
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
