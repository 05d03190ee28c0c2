"""Device setup may run once per model in one process (ensembles, two-stage prediction); thread settings once.

torch accepts ``set_num_interop_threads`` once per process, before parallel work: the fake below refuses a second
call the way torch does, and CUDA availability is patched on (the tests never see a GPU).
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

import radconf.devices
from radconf.devices import (
    configure_threads,  # the real one (in-process fixtures switch it off)
)


@pytest.fixture
def strict_cuda(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """CUDA reported available; ``set_num_interop_threads`` allowed once, as in torch. Returns the calls made."""
    calls: list[int] = []

    def set_num_interop_threads(count: int) -> None:
        if calls:
            raise RuntimeError("Error: cannot set number of interop threads after parallel work has started or "
                               "set_num_interop_threads called")
        calls.append(count)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch, "set_num_interop_threads", set_num_interop_threads)
    monkeypatch.setattr(torch, "set_num_threads", lambda count: None)
    monkeypatch.setattr(radconf.devices, "_configured", [])
    return calls


def test_make_device_twice_changes_no_thread_setting(strict_cuda):
    from radconf.devices import make_device

    assert make_device("cuda").type == make_device("cuda").type == "cuda"
    assert make_device(None).type == "cuda"  # default: cuda when available
    assert strict_cuda == []


def test_thread_settings_apply_once_per_process(strict_cuda):
    configure_threads("cuda")
    configure_threads("cuda")  # a second entry point in the same process (e.g. the demo) changes nothing
    configure_threads("cpu")
    assert strict_cuda == [1]


def test_cpu_threads_follow_the_cores_the_process_may_use(monkeypatch: pytest.MonkeyPatch):
    """Under ``taskset -c 0`` (affinity of one core on a larger machine) torch gets one thread, not one per core."""
    import os

    counts: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", counts.append)
    monkeypatch.setattr(radconf.devices, "_configured", [])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(radconf.devices.multiprocessing, "cpu_count", lambda: 16)
    configure_threads("cpu")
    assert counts == [1]


def _fake_trained_model(planned, trainer_name: str = "nnUNetTrainer") -> str:
    """A model folder with an untrained fold 'all' checkpoint (device setup only needs a loadable model)."""
    from radconf.paths import require_nnunet_paths
    from radconf.training import build_trainer

    trainer = build_trainer(planned["dataset"], "3d_fullres", "all", plans=planned["plans"], device="cpu")
    trainer.initialize()
    paths = require_nnunet_paths()
    preprocessed = paths.preprocessed / "Dataset990_Phantom"
    folder = paths.results / "Dataset990_Phantom" / f"{trainer_name}__{planned['plans']}__3d_fullres"
    (folder / "fold_all").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(preprocessed / f"{planned['plans']}.json", folder / "plans.json")
    shutil.copyfile(preprocessed / "dataset.json", folder / "dataset.json")
    trainer.save_checkpoint(str(folder / "fold_all" / "checkpoint_final.pth"))
    assert json.loads((folder / "plans.json").read_text())["plans_name"] == planned["plans"]
    return f"{planned['dataset']}:{trainer_name}:{planned['plans']}:3d_fullres:all"


def test_two_predictors_on_cuda_in_one_process(planned, strict_cuda):
    """An ensemble loads one predictor per member and a two-stage prediction two: the second must not fail."""
    from radconf.inference import load_predictor
    from radconf.models import ModelSpec

    spec = ModelSpec.parse(_fake_trained_model(planned))
    first = load_predictor(spec, device="cuda")
    second = load_predictor(spec, device="cuda")
    assert first.device.type == second.device.type == "cuda"
    assert strict_cuda == []  # loading predictors never touches process-wide thread settings


def test_only_the_entry_points_set_thread_counts():
    """No module but radconf.devices sets torch's thread counts (they are process-wide, and set once)."""
    root = Path(radconf.devices.__file__).parent
    call = re.compile(r"\.set_num_(interop_)?threads\(")
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "devices.py" and call.search(p.read_text())]
    assert offenders == []
