"""A planned tiny phantom shared by the tests of nnU-Net's internals and of device setup (nothing here trains)."""
from __future__ import annotations

import pytest

@pytest.fixture(scope="package")
def planned(tmp_path_factory):
    """Three cases of the tiny phantom, planned and preprocessed with the cpu preset."""
    from radconf.datasets.phantom import PhantomConfig
    from radconf.datasets.phantom.writer import write_phantom_dataset
    from radconf.planning import plan_and_preprocess

    root = tmp_path_factory.mktemp("compat")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            (root / name).mkdir()
            patch.setenv(name, str(root / name))
        write_phantom_dataset(root / "nnUNet_raw", dataset_id=991, num_train=3, num_test=0,
                              config=PhantomConfig(seed=3, spacing=(6.0, 4.0, 4.0)), show_progress=False)
        plans, _ = plan_and_preprocess(991, planner="CPUPresetPlanner", configurations=("3d_fullres",), num_processes=1)
        yield {"plans": plans, "patch": patch, "root": root}
