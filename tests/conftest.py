"""Shared fixtures: a small phantom written into tmp folders, with nnU-Net's folder variables pointing there.

Session-scoped stores (built once, in this process) and the per-test copies made from them:

* ``tiny_phantom``: the raw phantom (Dataset990_Phantom) in the test's own ``nnUNet_raw``.
* ``planned_phantom``: the same, planned and preprocessed with the cpu preset (``radconfCPUPlans``, 3d_fullres).
* ``organ_model``: the same, with one tiny trained organ model in ``nnUNet_results`` (``ORGAN_MODEL``: nnU-Net's
  trainer without augmentation, fold ``all``, 1 epoch of 2 iterations, seed 0, no validation).
* ``train_in_process``: ``radconf_train`` through ``radconf.cli.train.main(argv)`` (independent of the Python
  signature of ``radconf.training.train``).

The stores are never handed out: every test gets a ``shutil.copytree`` copy in its own ``tmp_path`` folders, with
``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` pointing there (``nnunet_dirs``). nnU-Net 2.8 reads these
variables when a path is used (``nnunetv2.paths`` holds lazy objects), so in-process calls see the monkeypatched
values. ``nnUNet_def_n_proc`` is read at import: ``in_process_nnunet`` patches nnU-Net's ``default_num_processes``
to 1 (validation and prediction otherwise start 8 workers) and runs torch on one thread.
"""
from __future__ import annotations

import importlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from radconf.datasets.phantom import PhantomConfig

from radconf.nnunet_compat.workers import substitutions

# Coarse sampling of the same anatomy: small volumes so that tests stay fast.
TINY = PhantomConfig(seed=3, spacing=(6.0, 4.0, 4.0))
NNUNET_FOLDERS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
DATASET_ID = 990
PLANS = "radconfCPUPlans"
ORGAN_TRAINER = "nnUNetTrainerNoDA"
ORGAN_MODEL = f"{DATASET_ID}:{ORGAN_TRAINER}:{PLANS}:3d_fullres:all"  # a ModelSpec string
# radconf_train arguments of the organ model (append --seed to change nothing else, e.g. to check repeatability)
ORGAN_TRAIN_ARGS = [str(DATASET_ID), "3d_fullres", "all", "-tr", ORGAN_TRAINER, "-p", PLANS, "-device", "cpu",
                    "--epochs", "1", "--iterations_per_epoch", "2", "--no_val"]
ORGAN_SEED = 0
# nnU-Net modules that read nnUNet_def_n_proc into a global at import (validation, prediction, planning workers)
_NNUNET_PROCESS_GLOBALS = ("nnunetv2.training.nnUNetTrainer.nnUNetTrainer",
                           "nnunetv2.inference.predict_from_raw_data")


@dataclass(frozen=True)
class Store:
    """A session-scoped set of nnU-Net folders (never modified by tests; copy it with ``copy_store``)."""

    root: Path
    phantom: object  # radconf.datasets.phantom.writer.PhantomDataset, its folder under root/nnUNet_raw

    def folder(self, name: str) -> Path:
        return self.root / name


def _make_dirs(root: Path) -> dict[str, Path]:
    dirs = {name: root / name for name in NNUNET_FOLDERS}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return dirs


def copy_store(store: Store, dirs: dict[str, Path]):
    """Copies a store's nnU-Net folders into ``dirs`` (a test's ``nnunet_dirs``); returns the copied phantom."""
    for name in NNUNET_FOLDERS:
        shutil.copytree(store.folder(name), dirs[name], dirs_exist_ok=True, symlinks=True)
    return replace(store.phantom, folder=dirs["nnUNet_raw"] / store.phantom.folder.name, reused=False)


@contextmanager
def in_process_nnunet(monkeypatch: pytest.MonkeyPatch, dirs: dict[str, Path] | None = None) -> Iterator[None]:
    """In-process nnU-Net work on a small shared machine: nnU-Net's folders (when given), one worker process for
    validation/prediction, planning's and inference's worker pools as threads of this process (not spawned interpreters that each
    import torch first; the same functions run on the same cases), torch on one thread (the entry points'
    ``configure_threads`` switched off; OpenMP threads wait on each other on 2 busy cores); restored after. The
    console-script chain in tests/cli/test_end_to_end.py plans with nnU-Net's own spawned workers.

    ``nnUNet_n_proc_DA`` is left unset: planning refuses 0; set it to 0 (single-threaded augmentation, repeatable
    seeded runs) around training only.
    """

    import torch

    import radconf.devices

    if dirs is not None:
        for name, path in dirs.items():
            monkeypatch.setenv(name, str(path))
    monkeypatch.delenv("nnUNet_n_proc_DA", raising=False)
    for module in _NNUNET_PROCESS_GLOBALS:
        monkeypatch.setattr(importlib.import_module(module), "default_num_processes", 1)
    planning_as_threads(monkeypatch)
    # radconf_train/radconf_predict set all-core threads once per process; in-process calls keep one thread
    monkeypatch.setattr(radconf.devices, "configure_threads", lambda name: None)
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threaded_inference(monkeypatch):
            yield
    finally:
        torch.set_num_threads(torch_threads)


def planning_as_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """nnU-Net's planning workers as threads of this process for the test (radconf's ``-np 1`` mode)."""
    for module, attribute, replacement in substitutions(planning=True, inference=False):
        monkeypatch.setattr(module, attribute, replacement)


@contextmanager
def threaded_inference(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """nnU-Net's prediction and validation workers as threads of this process (restored afterwards): the
    preprocessing ``Process`` + ``Manager`` queues, the segmentation export pool and the metric pool; each spawned
    worker would otherwise import torch and nnU-Net first (seconds per worker on a small shared machine). The work
    done per case is the same code, in the same order per worker (radconf's ``-np 1`` mode,
    :mod:`radconf.nnunet_compat.workers`)."""
    for module, attribute, replacement in substitutions(planning=False, inference=True):
        monkeypatch.setattr(module, attribute, replacement)
    yield


@pytest.fixture
def nnunet_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    dirs = {name: tmp_path / name for name in NNUNET_FOLDERS}
    for name, path in dirs.items():
        path.mkdir()
        monkeypatch.setenv(name, str(path))
    return dirs


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, nnunet_dirs) -> Iterator[dict[str, Path]]:
    """``nnunet_dirs`` with ``in_process_nnunet``'s settings for the test."""
    with in_process_nnunet(monkeypatch):
        yield nnunet_dirs


@pytest.fixture(scope="session")
def phantom_store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """The tiny raw phantom, written once per session."""
    from radconf.datasets.phantom.writer import write_phantom_dataset

    root = tmp_path_factory.mktemp("phantom_store")
    dirs = _make_dirs(root)
    phantom = write_phantom_dataset(dirs["nnUNet_raw"], dataset_id=DATASET_ID, num_train=5, num_test=1, config=TINY,
                                    show_progress=False)
    return Store(root, phantom)


@pytest.fixture
def tiny_phantom(nnunet_dirs: dict[str, Path], phantom_store: Store):
    """The tiny phantom (5 training cases, 1 test case) in this test's nnUNet_raw (a copy of the session's)."""
    return copy_store(phantom_store, nnunet_dirs)


@pytest.fixture(scope="session")
def planned_store(tmp_path_factory: pytest.TempPathFactory, phantom_store: Store) -> Store:
    """The tiny phantom planned and preprocessed once per session, in-process (cpu preset, 3d_fullres)."""
    from radconf.planning import plan_and_preprocess

    root = tmp_path_factory.mktemp("planned_store")
    dirs = _make_dirs(root)
    phantom = copy_store(phantom_store, dirs)
    with pytest.MonkeyPatch.context() as monkeypatch, in_process_nnunet(monkeypatch, dirs):
        plans_name, _ = plan_and_preprocess(DATASET_ID, planner="CPUPresetPlanner", configurations=("3d_fullres",),
                                            num_processes=1)
    assert plans_name == PLANS
    return Store(root, phantom)


@pytest.fixture
def planned_phantom(in_process: dict[str, Path], planned_store: Store):
    """The planned tiny phantom (``radconfCPUPlans``, 3d_fullres preprocessed) copied into this test's folders
    (``in_process`` settings)."""
    return copy_store(planned_store, in_process)


def _train_in_process(argv: list[str]) -> None:
    """``radconf_train argv`` in this process with single-threaded augmentation; fails unless it exits 0."""
    from radconf.cli import train

    with pytest.MonkeyPatch.context() as local:
        local.setenv("nnUNet_n_proc_DA", "0")
        code = train.main(argv)
    assert code == 0, f"radconf_train {' '.join(argv)} exited {code}"


@pytest.fixture
def train_in_process(in_process):
    """``train_in_process(argv)``: ``radconf_train argv`` in this process (``nnUNet_n_proc_DA=0`` while it runs);
    fails the test unless it exits 0."""
    return _train_in_process


@pytest.fixture(scope="session")
def organ_store(tmp_path_factory: pytest.TempPathFactory, planned_store: Store) -> Store:
    """``planned_store`` plus the tiny organ model ``ORGAN_MODEL``, trained once per session, in-process."""
    root = tmp_path_factory.mktemp("organ_store")
    dirs = _make_dirs(root)
    phantom = copy_store(planned_store, dirs)
    with pytest.MonkeyPatch.context() as monkeypatch, in_process_nnunet(monkeypatch, dirs):
        _train_in_process([*ORGAN_TRAIN_ARGS, "--seed", str(ORGAN_SEED)])
    return Store(root, phantom)


@dataclass(frozen=True)
class OrganModel:
    """The copied organ model: ``phantom`` (its dataset), ``spec`` (a ModelSpec string), ``fold`` (its fold
    folder), ``train_args`` and ``seed`` (the radconf_train arguments that made it: ``[*train_args, "--seed",
    str(seed)]``)."""

    phantom: object
    spec: str
    fold: Path
    train_args: tuple[str, ...]
    seed: int


@pytest.fixture
def organ_model(in_process: dict[str, Path], organ_store: Store) -> OrganModel:
    """The planned tiny phantom and the trained organ model copied into this test's folders (``in_process``
    settings)."""
    phantom = copy_store(organ_store, in_process)
    fold = (in_process["nnUNet_results"] / phantom.folder.name / f"{ORGAN_TRAINER}__{PLANS}__3d_fullres"
            / "fold_all")
    return OrganModel(phantom, ORGAN_MODEL, fold, tuple(ORGAN_TRAIN_ARGS), ORGAN_SEED)


DROPOUT_TRAINER = "DropoutTrainerNoDA"
DROPOUT_MODEL = f"{DATASET_ID}:{DROPOUT_TRAINER}:{PLANS}:3d_fullres"  # + ":0,1" (its two folds)
DROPOUT_TRAIN_ARGS = [str(DATASET_ID), "3d_fullres", "FOLD", "-tr", DROPOUT_TRAINER, "-p", PLANS, "-device", "cpu",
                      "--epochs", "1", "--iterations_per_epoch", "2", "--npz", "--seed", "0", "--dropout", "0.2"]


@pytest.fixture(scope="session")
def dropout_store(tmp_path_factory: pytest.TempPathFactory, organ_store: Store) -> Store:
    """``organ_store`` plus a tiny dropout model (``DROPOUT_MODEL``, dropout 0.2): folds 0 and 1, 1 epoch of 2
    iterations each, validated with probabilities (``--npz``), trained once per session in-process."""
    root = tmp_path_factory.mktemp("dropout_store")
    dirs = _make_dirs(root)
    phantom = copy_store(organ_store, dirs)
    with pytest.MonkeyPatch.context() as monkeypatch, in_process_nnunet(monkeypatch, dirs):
        for fold in ("0", "1"):
            _train_in_process([fold if a == "FOLD" else a for a in DROPOUT_TRAIN_ARGS])
    return Store(root, phantom)


@pytest.fixture
def dropout_model(in_process: dict[str, Path], dropout_store: Store):
    """The planned tiny phantom with the organ model and the dropout model (folds 0, 1) in this test's folders."""
    return copy_store(dropout_store, in_process)
