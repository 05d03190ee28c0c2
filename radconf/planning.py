"""Fingerprinting, planning and preprocessing: nnU-Net's own steps, with planners found in radconf too."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from radconf.errors import InvalidInput
from radconf.paths import require_nnunet_paths
from radconf.raw.checks import check_raw_dataset, dataset_id_of, find_dataset_name
from radconf.registry import find_class

# --preset NAME -> planner class name
PRESETS: dict[str, str] = {"cpu": "CPUPresetPlanner", "cpu_resenc": "CPUResEncPresetPlanner"}
DEFAULT_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres")


def planner_for(planner: str | None, preset: str | None) -> str:
    """The planner class name for the ``-pl``/``--preset`` pair (they are exclusive)."""
    if planner and preset:
        raise InvalidInput("Give either -pl PLANNER or --preset NAME, not both.")
    if preset:
        if preset not in PRESETS:
            raise InvalidInput(f"Unknown preset {preset!r}; available: {', '.join(PRESETS)}.")
        return PRESETS[preset]
    return planner or "ExperimentPlanner"


def plan_and_preprocess(dataset: str | int, *, planner: str = "ExperimentPlanner",
                        configurations: Sequence[str] = DEFAULT_CONFIGURATIONS, num_processes: int = 2,
                        gpu_memory_target_gb: float | None = None, plans_name: str | None = None,
                        verbose: bool = False) -> tuple[str, Path]:
    """Checks the raw dataset, extracts its fingerprint, plans with ``planner`` and preprocesses.

    Args:
        dataset: dataset id or name.
        planner: planner class name, radconf's (e.g. ``CPUPresetPlanner``) or nnU-Net's (e.g. ``nnUNetPlannerResEncM``).
        configurations: configurations to preprocess (those the plans do not contain are skipped, as in nnU-Net).
        num_processes: worker processes for fingerprinting and preprocessing.
        gpu_memory_target_gb: overrides the planner's memory target.
        plans_name: overrides the plans identifier.
        verbose: nnU-Net's verbose output.

    Returns:
        The plans identifier and the plans file.
    """
    import os

    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
        plan_experiment_dataset,
        preprocess_dataset,
    )

    if os.environ.get("nnUNet_n_proc_DA", "").strip() == "0":  # nnU-Net's planner calls set_num_threads(0) and dies
        raise InvalidInput("nnUNet_n_proc_DA=0 is only valid for training (single-threaded augmentation); nnU-Net's "
                         "planning crashes with it. Unset it for radconf_plan_and_preprocess.")
    paths = require_nnunet_paths()
    planner_class = find_class(planner, "planner")
    dataset_id = dataset_id_of(dataset)
    name = find_dataset_name(dataset_id, paths.raw)
    check_raw_dataset(paths.raw / name)
    extract_fingerprint_dataset(dataset_id, num_processes=num_processes, check_dataset_integrity=False, clean=True,
                                verbose=verbose)
    _, plans_identifier = plan_experiment_dataset(dataset_id, planner_class, gpu_memory_target_gb,
                                                  overwrite_plans_name=plans_name)
    preprocess_dataset(dataset_id, plans_identifier, tuple(configurations), [num_processes] * len(configurations),
                       verbose=verbose)
    return plans_identifier, paths.preprocessed / name / f"{plans_identifier}.json"
