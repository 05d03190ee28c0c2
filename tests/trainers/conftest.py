"""Session store for the trainer tests: the tiny phantom and the datasets radconf's trainers need, planned once.

``trainer_datasets`` (session) builds, in one set of nnU-Net folders, with radconf's own builders and planning (cpu
preset, ``radconfCPUPlans``), the configurations the discovered trainers ask for (``kind_of``/``configuration_of``):

* ``plain`` (990): the raw phantom, organ labels;
* ``anatomy`` (991): target GTV with the bladder and rectum masks as CT-filled input channels
  (``radconf_anatomy_dataset``);
* ``confidence`` (992): the phantom's readers fused into confidence levels 0..``CONFIDENCE_K``
  (``radconf_fuse_readers``, structure GTV).

Tests never write into the store: ``trainer_dirs`` gives each test a copy of its raw and preprocessed folders and its
own ``nnUNet_results``; ``copy_trainer_datasets`` makes such a copy anywhere (e.g. a module's shared folders).
"""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from tests.conftest import planning_as_threads, threaded_inference  # noqa: F401 (used by the trainer tests)

PLANS = "radconfCPUPlans"
DATASET_IDS = {"plain": 990, "anatomy": 991, "confidence": 992}
CONFIDENCE_K = 5  # highest confidence level of the ``confidence`` dataset (radconf_fuse_readers' default)


def kind_of(trainer: type) -> str:
    """The dataset kind a trainer class trains on: ``confidence``, ``anatomy`` or ``plain``."""
    from radconf.trainers.kinds import dataset_kind

    return dataset_kind(trainer)


def configuration_of(trainer: type) -> str:
    """``2d`` for 2.5D (slice-context) trainers and 2D-only networks, else ``3d_fullres``."""
    from radconf.trainers.kinds import trainer_configuration

    return trainer_configuration(trainer)


@dataclass(frozen=True)
class TrainerDatasets:
    """Dataset ids by kind, the configurations preprocessed per kind, and the nnU-Net folders holding them."""

    ids: dict[str, int]
    configurations: dict[str, tuple[str, ...]]
    raw: Path
    preprocessed: Path


@contextmanager
def quick_planning(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """nnU-Net's fingerprint and preprocessing code, run faster on the tiny phantom (restored afterwards):

    * its worker pools run as threads of this process, not as spawned interpreters that each import torch first;
    * the intensity statistics sample 10^5 foreground voxels in all instead of 10^8 (with replacement; a tiny
      phantom case has a few thousand foreground voxels, so the percentiles CT normalisation uses stay the same
      up to sampling noise, and the plans' layout does not depend on them).
    """
    from nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor import (
        DatasetFingerprintExtractor,
    )

    planning_as_threads(monkeypatch)
    original = DatasetFingerprintExtractor.__init__

    def fewer_samples(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.num_foreground_voxels_for_intensitystats = 1e5

    monkeypatch.setattr(DatasetFingerprintExtractor, "__init__", fewer_samples)
    yield


@pytest.fixture(scope="session")
def trainer_datasets(tmp_path_factory: pytest.TempPathFactory, phantom_store) -> TrainerDatasets:
    """Plain, anatomy-channel and confidence-level datasets of the tiny phantom, planned once per session."""
    from radconf.cli import anatomy_dataset, fuse_readers
    from radconf.planning import plan_and_preprocess
    from radconf.registry import radconf_classes
    from tests.conftest import copy_store, in_process_nnunet

    trainers = radconf_classes("trainer").values()
    configurations = {kind: tuple(sorted({configuration_of(t) for t in trainers if kind_of(t) == kind}))
                      for kind in DATASET_IDS}
    root = tmp_path_factory.mktemp("trainer_datasets")
    dirs = {name: root / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for path in dirs.values():
        path.mkdir()
    phantom = copy_store(phantom_store, dirs)
    with pytest.MonkeyPatch.context() as monkeypatch, in_process_nnunet(monkeypatch, dirs), quick_planning(monkeypatch):
        assert anatomy_dataset.main(["990", "-d", "991", "-n", "GTVAnatomy", "--target", "gtv", "--anatomy",
                                     "bladder", "rectum", "--encoding", "ct"]) == 0
        assert fuse_readers.main([str(phantom.folder), "-d", "992", "-n", "Conf992", "-k", str(CONFIDENCE_K),
                                  "--structure", "GTV"]) == 0
        for kind, dataset_id in DATASET_IDS.items():
            if configurations[kind]:
                plans_name, _ = plan_and_preprocess(dataset_id, planner="CPUPresetPlanner",
                                                    configurations=configurations[kind], num_processes=1)
                assert plans_name == PLANS
    return TrainerDatasets(dict(DATASET_IDS), configurations, dirs["nnUNet_raw"], dirs["nnUNet_preprocessed"])


@pytest.fixture
def trainer_dirs(trainer_datasets: TrainerDatasets, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """nnU-Net's folders for one test: a copy of the store's raw and preprocessed data (nnU-Net writes its
    splits_final.json there), this test's own results folder; one worker process, torch on one thread,
    single-threaded augmentation (``nnUNet_n_proc_DA=0``)."""
    from tests.conftest import in_process_nnunet

    dirs = copy_trainer_datasets(trainer_datasets, tmp_path)
    with in_process_nnunet(monkeypatch, dirs):
        monkeypatch.setenv("nnUNet_n_proc_DA", "0")
        yield dirs


def copy_trainer_datasets(store: TrainerDatasets, root: Path) -> dict[str, Path]:
    """A copy of the store's raw and preprocessed folders under ``root`` plus an empty ``nnUNet_results``; returns
    the nnU-Net folders (set them with ``tests.conftest.in_process_nnunet``)."""
    dirs = {"nnUNet_raw": root / "nnUNet_raw", "nnUNet_preprocessed": root / "nnUNet_preprocessed",
            "nnUNet_results": root / "nnUNet_results"}
    shutil.copytree(store.raw, dirs["nnUNet_raw"], symlinks=True)
    shutil.copytree(store.preprocessed, dirs["nnUNet_preprocessed"], symlinks=True)
    dirs["nnUNet_results"].mkdir(parents=True)
    return dirs


class Recorder(torch.nn.Module):
    """Wraps a network and keeps a copy of every input it is given (what a predictor really feeds it)."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net, self.inputs = net, []

    def forward(self, x):
        self.inputs.append(x.clone())
        return self.net(x)
