"""Fingerprinting, planning and preprocessing: nnU-Net's own steps, with planners found in radconf too.

Everything is checked before nnU-Net starts: the configuration names (nnU-Net's planners write the configurations
``KNOWN_CONFIGURATIONS``; ``ExperimentPlanner.plan_experiment`` names them), the numbers, and the raw dataset
itself (:func:`radconf.raw.checks.check_raw_dataset`: every image and label file whole, finite and consistent).
"""
from __future__ import annotations

import difflib
import json
import math
import re
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from radconf.errors import InvalidInput
from radconf.nnunet_compat.workers import workers_as_threads
from radconf.paths import require_nnunet_paths
from radconf.raw.checks import check_raw_dataset, dataset_id_of, find_dataset_name
from radconf.registry import find_class

# --preset NAME -> planner class name
PRESETS: dict[str, str] = {"cpu": "CPUPresetPlanner", "cpu_resenc": "CPUResEncPresetPlanner"}
DEFAULT_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres")
# the configurations nnU-Net's planners write into plans (3d_lowres and 3d_cascade_fullres for large images only)
KNOWN_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")


def planner_for(planner: str | None, preset: str | None) -> str:
    """The planner class name for the ``-pl``/``--preset`` pair (they are exclusive)."""
    if planner and preset:
        raise InvalidInput("Give either -pl PLANNER or --preset NAME, not both.")
    if preset:
        if preset not in PRESETS:
            raise InvalidInput(f"Unknown preset {preset!r}; available: {', '.join(PRESETS)}.")
        return PRESETS[preset]
    return planner or "ExperimentPlanner"


def check_configurations(configurations: Sequence[str]) -> list[str]:
    """The configurations without repeats, in order.

    Raises:
        InvalidInput: a name nnU-Net's planners do not write, with the close matches.
    """
    unknown = [c for c in configurations if c not in KNOWN_CONFIGURATIONS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], KNOWN_CONFIGURATIONS, n=1)
        raise InvalidInput(f"Unknown configuration(s) {', '.join(unknown)} (-c); nnU-Net plans "
                           f"{', '.join(KNOWN_CONFIGURATIONS)}" + (f". Did you mean {close[0]}?" if close else "."))
    return list(dict.fromkeys(configurations))


def check_plan_settings(num_processes: int, gpu_memory_target_gb: float | None, plans_name: str | None) -> None:
    """Raises InvalidInput for a number of processes below 1, a memory target that is not a positive number, or a
    plans identifier that is not a plain file name."""
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise InvalidInput(f"The number of processes (-np) must be an integer of at least 1, got {num_processes!r}.")
    if gpu_memory_target_gb is not None and not (math.isfinite(gpu_memory_target_gb) and gpu_memory_target_gb > 0):
        raise InvalidInput(f"-gpu_memory_target must be a positive number of GB, got {gpu_memory_target_gb!r}.")
    if plans_name is not None and not re.fullmatch(r"[A-Za-z0-9][\w.-]*", plans_name):
        raise InvalidInput(f"-overwrite_plans_name {plans_name!r} must be a plain name (letters, digits, '_', '.', "
                           f"'-'): nnU-Net writes <name>.json and trainer folders with it.")


def check_window(window: Sequence[float] | None, channels: Sequence[int] | None,
                 target_spacing: Sequence[float] | None, clahe: Sequence[int] | None = None) -> None:
    """Raises InvalidInput for window bounds that are not finite or not increasing, window channels without a
    window, repeated or negative channel indices (window or CLAHE), or a target spacing that is not 3 positive
    finite numbers."""
    if window is not None and (len(window) != 2 or not all(math.isfinite(v) for v in window)
                               or not window[0] < window[1]):
        raise InvalidInput(f"--ct_window needs two finite numbers LO < HI (HU), got {list(window)}; "
                           f"e.g. --ct_window -800 800.")
    if channels is not None and window is None:
        raise InvalidInput("--window_channels needs --ct_window LO HI.")
    for option, indices in (("--window_channels", channels), ("--clahe", clahe)):
        if indices is not None and (len(set(indices)) != len(indices) or any(c < 0 for c in indices)):
            raise InvalidInput(f"{option} must be distinct channel indices >= 0, got {list(indices)}.")
    if target_spacing is not None and (len(target_spacing) != 3 or not all(
            math.isfinite(v) and v > 0 for v in target_spacing)):
        raise InvalidInput(f"-overwrite_target_spacing needs 3 positive finite numbers (mm, 3d_fullres), got "
                           f"{list(target_spacing)}.")


def window_channels_of(dataset_json: dict, channels: Sequence[int] | None, where: Path,
                       option: str = "--window_channels") -> tuple[int, ...]:
    """The channels a scheme applies to: ``channels`` (given with ``option``) checked against ``dataset_json``, or
    (None or empty) every channel named CT.

    Raises:
        InvalidInput: an index outside the channels, or no CT channel and none given.
    """
    names = dataset_json.get("channel_names", dataset_json.get("modality", {}))
    indices = sorted(int(k) for k in names)
    if channels:
        outside = [c for c in channels if c not in indices]
        if outside:
            raise InvalidInput(f"{option} {' '.join(map(str, outside))}: {where} has channels "
                               f"{', '.join(map(str, indices))} only.")
        return tuple(channels)
    found = tuple(i for i in indices if str(names[str(i)]).upper() == "CT")
    if not found:
        raise InvalidInput(f"{where} names no channel CT (channel_names {names}); give the channels with "
                           f"{option} C ...")
    return found


def _with_intensity(planner_class: type, window: Sequence[float] | None, window_channels: tuple[int, ...],
                    clahe_channels: tuple[int, ...] | None, plans_name: str | None) -> tuple[type, str | None]:
    """The planner class with radconf's intensity schemes and its plans name (``<default name>_<tag>`` unless
    ``plans_name``, e.g. ``radconfCPUPlans_CTw-800_800_CLAHE``); as given when there is no scheme."""
    import inspect

    from radconf.planners.intensity import intensity_planner, intensity_tag

    if window is None and clahe_channels is None:
        return planner_class, plans_name
    window = None if window is None else (float(window[0]), float(window[1]))
    tag = intensity_tag(window, clahe_channels is not None)
    default = inspect.signature(planner_class.__init__).parameters["plans_name"].default
    if plans_name == default:
        raise InvalidInput(f"-overwrite_plans_name {plans_name} is {planner_class.__name__}'s plans without "
                           f"radconf's intensity schemes; give another name (or none: {default}_{tag}).")
    return (intensity_planner(planner_class, window, window_channels, clahe_channels),
            plans_name or f"{default}_{tag}")


def planned_configurations(plans_file: str | Path) -> list[str]:
    """The configurations a plans file holds."""
    return list(json.loads(Path(plans_file).read_text(encoding="utf-8"))["configurations"])


def plan_and_preprocess(dataset: str | int, *, planner: str = "ExperimentPlanner",
                        configurations: Sequence[str] | None = None, num_processes: int = 2,
                        gpu_memory_target_gb: float | None = None, plans_name: str | None = None,
                        verbose: bool = False, check_dataset: bool = True,
                        preprocess: bool = True, target_spacing: Sequence[float] | None = None,
                        ct_window: Sequence[float] | None = None,
                        window_channels: Sequence[int] | None = None,
                        clahe: Sequence[int] | None = None) -> tuple[str, Path]:
    """Checks the raw dataset, extracts its fingerprint, plans with ``planner`` and preprocesses.

    Args:
        dataset: dataset id or name.
        planner: planner class name, radconf's (e.g. ``CPUPresetPlanner``) or nnU-Net's (e.g. ``nnUNetPlannerResEncM``).
        configurations: configurations to preprocess, from ``KNOWN_CONFIGURATIONS``. None: ``DEFAULT_CONFIGURATIONS``,
            those the plans lack skipped quietly (as nnU-Net does); named ones the plans lack are skipped with a
            warning, and refused when none is left.
        num_processes: worker processes for fingerprinting and preprocessing (at least 1). With 1, nnU-Net's worker
            runs as a thread of this process (:mod:`radconf.nnunet_compat.workers`): no interpreter to start.
        gpu_memory_target_gb: overrides the planner's memory target (GB, positive).
        plans_name: overrides the plans identifier.
        verbose: nnU-Net's verbose output.
        check_dataset: check the raw dataset first (False: the caller did).
        preprocess: preprocess after planning (False: nnU-Net's ``--no_pp``).
        ct_window: (LO, HI): the CT channels are clipped to [LO, HI] and mapped to [-1, 1] through nnU-Net's
            ``CTNormalization`` with fixed properties (:mod:`planners.intensity`); plans name
            ``<planner's name>_CTwLO_HI`` unless ``plans_name``, data identifiers tagged the same way.
        window_channels: the channel indices to window; None: every channel named CT in dataset.json.
        clahe: the channel indices to equalise with CLAHE after clipping (to the window, else to nnU-Net's
            percentiles; :mod:`radconf.nnunet_compat.intensity`); empty: every channel named CT; None: no CLAHE.
            Plans ``<planner's name>_[CTwLO_HI_]CLAHE``, preprocessed by radconf's preprocessor.
        target_spacing: nnU-Net's ``-overwrite_target_spacing`` (3d_fullres), 3 positive numbers.

    Returns:
        The plans identifier and the plans file.

    Raises:
        InvalidInput: an unknown configuration, a bad number or name, problems in the raw dataset, or no requested
            configuration in the plans, each naming the fix; nothing is started before the checks pass.
    """
    import os

    requested = check_configurations(DEFAULT_CONFIGURATIONS if configurations is None else configurations)
    check_plan_settings(num_processes, gpu_memory_target_gb, plans_name)
    check_window(ct_window, window_channels, target_spacing, clahe)
    if os.environ.get("nnUNet_n_proc_DA", "").strip() == "0":  # nnU-Net's planner calls set_num_threads(0) and dies
        raise InvalidInput("nnUNet_n_proc_DA=0 is only valid for training (single-threaded augmentation); nnU-Net's "
                           "planning crashes with it. Unset it for radconf_plan_and_preprocess.")
    paths = require_nnunet_paths()
    spacing = None if target_spacing is None else [float(v) for v in target_spacing]
    planner_class = find_class(planner, "planner")
    dataset_id = dataset_id_of(dataset)
    name = find_dataset_name(dataset_id, paths.raw)
    if check_dataset:
        check_raw_dataset(paths.raw / name)
    if ct_window is not None or clahe is not None:
        dataset_json_file = paths.raw / name / "dataset.json"
        dataset_json = json.loads(dataset_json_file.read_text(encoding="utf-8"))
        windowed = () if ct_window is None else window_channels_of(dataset_json, window_channels, dataset_json_file)
        equalised = None if clahe is None else window_channels_of(dataset_json, clahe, dataset_json_file, "--clahe")
        planner_class, plans_name = _with_intensity(planner_class, ct_window, windowed, equalised, plans_name)

    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
    )

    from radconf.nnunet_compat.intensity import preprocess as preprocess_with

    one_worker = workers_as_threads(planning=True, inference=False) if num_processes == 1 else nullcontext()
    with one_worker:
        extract_fingerprint_dataset(dataset_id, num_processes=num_processes, check_dataset_integrity=False,
                                    clean=True, verbose=verbose)
    _, plans_identifier = plan_experiment_dataset(dataset_id, planner_class, gpu_memory_target_gb,
                                                  overwrite_target_spacing=spacing, overwrite_plans_name=plans_name)
    plans_file = paths.preprocessed / name / f"{plans_identifier}.json"
    available = planned_configurations(plans_file)
    present = [c for c in requested if c in available]
    absent = [c for c in requested if c not in available]
    if not present:
        raise InvalidInput(f"The plans {plans_file} hold none of the configurations {', '.join(requested)} (-c); they "
                           f"hold {', '.join(available)}. Run again with -c {' '.join(available)}.")
    if absent and configurations is not None:
        warnings.warn(f"{', '.join(absent)}: not in the plans {plans_file} ({planner} planned "
                      f"{', '.join(available)}; nnU-Net plans 3d_lowres and 3d_cascade_fullres for large images "
                      f"only), so not preprocessed.", stacklevel=2)
    if preprocess:
        with workers_as_threads(planning=True, inference=False) if num_processes == 1 else nullcontext():
            preprocess_with(dataset_id, plans_identifier, present, num_processes, verbose=verbose)
    return plans_identifier, plans_file
