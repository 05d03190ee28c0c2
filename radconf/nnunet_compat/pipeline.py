"""nnU-Net's background preprocessing (``preprocessing_iterator_fromfiles`` of ``nnunetv2.inference.data_iterators``)
for predictions that run their own network loop (the weighted ensemble).

One iterator per distinct plans/configuration of the members: nnU-Net's workers preprocess the next cases while the
networks run, and yield them in case order. Each case comes with the seconds its preprocessing took in the worker
(:class:`radconf.nnunet_compat.timing.TimedConfigurationManager`) and the seconds the loop waited for it. With one
worker the workers are threads of this process (:mod:`radconf.nnunet_compat.workers`).
``tests/nnunet_compat/test_tripwires.py`` guards the names used.
"""
from __future__ import annotations

import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext


@contextmanager
def preprocessed_cases(files: Sequence[Sequence[str]], predictors: Iterable[tuple[Hashable, object]],
                       num_processes: int) -> Iterator[Iterator[tuple[dict, dict]]]:
    """Within the block: an iterator over the cases of ``files`` giving ``({key: (data, properties, seconds)},
    timing)``, each key's data preprocessed by nnU-Net's workers for the plans of the first predictor given with
    that key; ``timing`` holds the case's ``preprocessing_s`` (in the workers, every key), ``waited_s`` (for the
    workers) and ``slices`` (axial slices of the image).

    Args:
        files: per case, its channel files.
        predictors: ``(plans/configuration key, loaded predictor)`` pairs; one preprocessing per distinct key.
        num_processes: nnU-Net's preprocessing workers per plans/configuration (1: threads of this process).
    """
    from nnunetv2.inference.data_iterators import preprocessing_iterator_fromfiles

    from radconf.nnunet_compat.timing import PROPERTY, TimedConfigurationManager, axial_slices
    from radconf.nnunet_compat.workers import workers_as_threads

    groups: dict[Hashable, object] = {}
    for key, predictor in predictors:
        groups.setdefault(key, predictor)
    files = [list(case) for case in files]
    with workers_as_threads(planning=False, inference=True) if num_processes == 1 else nullcontext():
        iterators = {key: preprocessing_iterator_fromfiles(
            files, None, None, predictor.plans_manager, predictor.dataset_json,
            TimedConfigurationManager.wrapping(predictor.configuration_manager), num_processes,
            pin_memory=predictor.device.type == "cuda", verbose=False) for key, predictor in groups.items()}

        def cases() -> Iterator[tuple[dict, dict]]:
            for _ in files:
                start = time.perf_counter()
                items = {key: next(iterator) for key, iterator in iterators.items()}
                waited = time.perf_counter() - start
                preprocessed = {key: (item["data"], item["data_properties"],
                                      item["data_properties"].pop(PROPERTY, 0.0)) for key, item in items.items()}
                first, (_, properties, _) = next(iter(preprocessed.items()))
                yield preprocessed, {
                    "preprocessing_s": sum(item[2] for item in preprocessed.values()), "waited_s": waited,
                    "slices": axial_slices(properties, groups[first].plans_manager.transpose_forward)}

        yield cases()
