"""Session store for the trainer tests: the tiny phantom and the datasets radconf's trainers need, planned once.

``trainer_datasets`` (session): in one set of nnU-Net folders, planned with the cpu preset (``radconfCPUPlans``) for
``2d`` and ``3d_fullres``:

* ``plain`` (990): the raw phantom, organ labels;
* ``confidence`` (992): its readers fused into confidence levels 0..K (``radconf_fuse_readers``);
* ``anatomy`` (991): target GTV with the bladder and rectum masks as CT-filled input channels
  (``radconf_anatomy_dataset``; its planning preprocesses 3d_fullres only).

Tests read the store's raw and preprocessed folders and write their models into their own ``nnUNet_results``
(``trainer_dirs``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

PLANS = "radconfCPUPlans"


@dataclass(frozen=True)
class TrainerDatasets:
    """Dataset ids by kind, and the folders holding them (``nnUNet_raw``, ``nnUNet_preprocessed``)."""

    ids: dict[str, int]
    raw: Path
    preprocessed: Path


@pytest.fixture(scope="session")
def trainer_datasets(tmp_path_factory: pytest.TempPathFactory, phantom_store) -> TrainerDatasets:
    """Plain, confidence-level and anatomy-channel datasets of the tiny phantom, planned once per session."""
    from tests.conftest import copy_store, in_process_nnunet

    from radconf.cli import anatomy_dataset, fuse_readers
    from radconf.planning import plan_and_preprocess

    root = tmp_path_factory.mktemp("trainer_datasets")
    dirs = {name: root / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for path in dirs.values():
        path.mkdir()
    phantom = copy_store(phantom_store, dirs)
    ids = {"plain": 990, "anatomy": 991, "confidence": 992}
    with pytest.MonkeyPatch.context() as monkeypatch, in_process_nnunet(monkeypatch, dirs):
        assert fuse_readers.main([str(phantom.folder), "-d", "992", "-n", "Conf992", "-k", "3",
                                  "--structure", "GTV"]) == 0
        assert anatomy_dataset.main(["990", "-d", "991", "-n", "GTVAnatomy", "--target", "gtv", "--anatomy",
                                     "bladder", "rectum", "--encoding", "ct"]) == 0
        for kind, dataset_id in ids.items():
            configurations = ("3d_fullres",) if kind == "anatomy" else ("2d", "3d_fullres")
            plans_name, _ = plan_and_preprocess(dataset_id, planner="CPUPresetPlanner",
                                                configurations=configurations, num_processes=1)
            assert plans_name == PLANS
    return TrainerDatasets(ids, dirs["nnUNet_raw"], dirs["nnUNet_preprocessed"])


@pytest.fixture
def trainer_dirs(trainer_datasets: TrainerDatasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """nnU-Net's folders for one test: the store's raw and preprocessed data, this test's own results folder; one
    worker process, torch on one thread, single-threaded augmentation (``nnUNet_n_proc_DA=0``)."""
    from tests.conftest import in_process_nnunet

    dirs = {"nnUNet_raw": trainer_datasets.raw, "nnUNet_preprocessed": trainer_datasets.preprocessed,
            "nnUNet_results": tmp_path / "nnUNet_results"}
    dirs["nnUNet_results"].mkdir()
    with in_process_nnunet(monkeypatch, dirs):
        monkeypatch.setenv("nnUNet_n_proc_DA", "0")
        yield dirs
