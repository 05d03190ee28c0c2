from __future__ import annotations

import json

import numpy as np

from radconf.planning import plan_and_preprocess


def _plan(dataset_id: int, planner: str) -> dict:
    from radconf.registry import find_class

    return find_class(planner, "planner")(dataset_id).plan_experiment()


def test_cpu_plans_are_nnunets_choices_with_a_small_network(tiny_phantom, in_process):
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (
        extract_fingerprint_dataset,
    )

    # one fingerprint, two planners
    extract_fingerprint_dataset(990, num_processes=1, check_dataset_integrity=False, clean=True, verbose=False,
                                show_progress_bar=False)
    default = _plan(990, "ExperimentPlanner")["configurations"]["3d_fullres"]
    cpu = _plan(990, "CPUPresetPlanner")["configurations"]["3d_fullres"]
    # fingerprint-driven choices are nnU-Net's own
    assert np.allclose(cpu["spacing"], default["spacing"])
    assert cpu["normalization_schemes"] == default["normalization_schemes"] == ["CTNormalization"]
    # ...and the network is small
    arch = cpu["architecture"]["arch_kwargs"]
    assert arch["features_per_stage"][0] == 8 and max(arch["features_per_stage"]) <= 64
    assert all(n == 1 for n in arch["n_conv_per_stage_decoder"])
    assert np.prod(cpu["patch_size"]) <= np.prod(default["patch_size"])
    assert cpu["batch_size"] >= 2
    # patch is divisible by the network's total downsampling on each axis
    strides = np.prod(np.array(arch["strides"]), axis=0)
    assert all(p % s == 0 for p, s in zip(cpu["patch_size"], strides))


def test_plan_and_preprocess_writes_valid_plans(tiny_phantom, in_process):
    plans_name, plans_file = plan_and_preprocess(990, planner="CPUPresetPlanner", configurations=["3d_fullres"],
                                                 num_processes=1)
    assert plans_name == "radconfCPUPlans" and plans_file.is_file()
    plans = json.loads(plans_file.read_text())
    assert plans["experiment_planner_used"] == "CPUPresetPlanner"
    preprocessed = plans_file.parent / plans["configurations"]["3d_fullres"]["data_identifier"]
    assert len(list(preprocessed.glob("*.b2nd"))) + len(list(preprocessed.glob("*.npz"))) >= 4
