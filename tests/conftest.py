"""Shared fixtures: a small phantom written into tmp folders, with nnU-Net's folder variables pointing there."""
from __future__ import annotations

from pathlib import Path

import pytest
from radconf.datasets.phantom import PhantomConfig

# Coarse sampling of the same anatomy: small volumes so that tests stay fast.
TINY = PhantomConfig(seed=3, spacing=(6.0, 4.0, 4.0))


@pytest.fixture
def nnunet_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    dirs = {name: tmp_path / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for name, path in dirs.items():
        path.mkdir()
        monkeypatch.setenv(name, str(path))
    return dirs


@pytest.fixture
def tiny_phantom(nnunet_dirs: dict[str, Path]):
    from radconf.datasets.phantom.writer import write_phantom_dataset

    return write_phantom_dataset(nnunet_dirs["nnUNet_raw"], dataset_id=990, num_train=5, num_test=1, config=TINY,
                                 show_progress=False)
