"""Tripwire: the nnU-Net modules whose spawned workers ``workers_as_threads`` runs as threads still create them
through their module's ``multiprocessing`` (and ``Manager``) attributes, and the substitution is undone after."""
from __future__ import annotations

import importlib
import inspect
import multiprocessing

import pytest

from radconf.nnunet_compat import workers


@pytest.mark.parametrize("name", workers.PLANNING_POOL_MODULES + workers.INFERENCE_POOL_MODULES)
def test_nnunet_spawns_its_workers_through_the_module_attribute(name):
    module = importlib.import_module(name)
    assert hasattr(module, "multiprocessing")
    source = inspect.getsource(module)
    assert "multiprocessing.get_context(" in source, f"{name} no longer uses multiprocessing.get_context"


def test_the_preprocessing_iterator_uses_the_module_manager():
    module = importlib.import_module("nnunetv2.inference.data_iterators")
    assert "Manager()" in inspect.getsource(module.preprocessing_iterator_fromfiles)


def test_workers_as_threads_substitutes_and_restores():
    modules = [importlib.import_module(n) for n in workers.PLANNING_POOL_MODULES + workers.INFERENCE_POOL_MODULES]
    iterators = importlib.import_module("nnunetv2.inference.data_iterators")
    before = [module.multiprocessing for module in modules], iterators.Manager  # a test fixture may hold threads too
    with workers.workers_as_threads():
        for module in modules:
            pool = module.multiprocessing.get_context("spawn").Pool(1)
            assert pool.apply(sum, ([1, 2, 3],)) == 6  # runs, in a thread
            assert isinstance(pool, multiprocessing.pool.ThreadPool)
            pool.close()
        events = iterators.Manager()
        assert events.Queue().empty() and not events.Event().is_set()
    assert ([module.multiprocessing for module in modules], iterators.Manager) == before
    with workers.workers_as_threads(planning=False):
        assert modules[0].multiprocessing is before[0][0] and modules[-1].multiprocessing is not before[0][-1]
