"""nnU-Net's worker processes as threads of the calling process, for one-worker runs (``-np 1``).

nnU-Net starts its planning, preprocessing and export workers as *spawned* interpreters (``multiprocessing
.get_context("spawn").Pool`` / ``Process`` + a ``Manager``'s queues). Each one imports torch and nnU-Net before it
does any work: seconds per worker, which on a small machine costs more than the work itself. With one worker
asked for, radconf runs the same functions on the same cases in a thread of the command's own process instead
(numpy, SciPy and SimpleITK release the GIL for the heavy parts).

The modules and attributes substituted are listed here and guarded by ``tests/nnunet_compat/test_tripwires.py``.
"""
from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.pool
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

# modules that spawn planning workers: multiprocessing.get_context("spawn").Pool(n)
PLANNING_POOL_MODULES = ("nnunetv2.experiment_planning.dataset_fingerprint.fingerprint_extractor",
                         "nnunetv2.preprocessing.preprocessors.default_preprocessor")
# modules that spawn inference workers: export/metric pools, the preprocessing Process and its Manager queues
INFERENCE_POOL_MODULES = ("nnunetv2.inference.predict_from_raw_data", "nnunetv2.inference.data_iterators",
                          "nnunetv2.training.nnUNetTrainer.nnUNetTrainer",
                          "nnunetv2.evaluation.evaluate_predictions")
_MANAGER_MODULE = "nnunetv2.inference.data_iterators"


def _thread_multiprocessing() -> SimpleNamespace:
    """What those modules use of ``multiprocessing``, backed by threads."""
    context = SimpleNamespace(Pool=multiprocessing.pool.ThreadPool, Process=threading.Thread)
    return SimpleNamespace(get_context=lambda method=None: context, TimeoutError=multiprocessing.TimeoutError,
                           cpu_count=multiprocessing.cpu_count, Pool=multiprocessing.pool.ThreadPool)


def _thread_manager() -> SimpleNamespace:
    return SimpleNamespace(Event=threading.Event, Queue=queue.Queue)


def substitutions(planning: bool = True, inference: bool = True) -> list[tuple[object, str, object]]:
    """``(module, attribute, replacement)`` for the chosen worker kinds."""
    thread_mp = _thread_multiprocessing()
    names = (PLANNING_POOL_MODULES if planning else ()) + (INFERENCE_POOL_MODULES if inference else ())
    found = [(importlib.import_module(name), "multiprocessing", thread_mp) for name in names]
    if inference:
        found.append((importlib.import_module(_MANAGER_MODULE), "Manager", _thread_manager))
    return found


@contextmanager
def workers_as_threads(planning: bool = True, inference: bool = True) -> Iterator[None]:
    """Within the block, nnU-Net's planning and/or inference workers are threads of this process; restored after.

    Not re-entrant across threads: the substitution is module-global, as nnU-Net's own pools are.
    """
    saved = []
    try:
        for module, attribute, replacement in substitutions(planning, inference):
            saved.append((module, attribute, getattr(module, attribute)))
            setattr(module, attribute, replacement)
        yield
    finally:
        for module, attribute, original in reversed(saved):
            setattr(module, attribute, original)
