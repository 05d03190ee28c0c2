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
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext


@contextmanager
def preprocessed_cases(files: Sequence[Sequence[str]], predictors: Mapping[Hashable, object], num_processes: int
                       ) -> Iterator[Iterator[tuple[dict, float]]]:
    """Within the block: an iterator over the cases of ``files`` giving ``({key: (data, properties, seconds)},
    waited_s)``, each key's data preprocessed for ``predictors[key]``'s plans by nnU-Net's workers.

    Args:
        files: per case, its channel files.
        predictors: one loaded predictor per distinct plans/configuration.
        num_processes: nnU-Net's preprocessing workers per plans/configuration (1: threads of this process).
    """
    from nnunetv2.inference.data_iterators import preprocessing_iterator_fromfiles

    from radconf.nnunet_compat.timing import PROPERTY, TimedConfigurationManager
    from radconf.nnunet_compat.workers import workers_as_threads

    files = [list(case) for case in files]
    with workers_as_threads(planning=False, inference=True) if num_processes == 1 else nullcontext():
        iterators = {key: preprocessing_iterator_fromfiles(
            files, None, None, predictor.plans_manager, predictor.dataset_json,
            TimedConfigurationManager.wrapping(predictor.configuration_manager), num_processes,
            pin_memory=predictor.device.type == "cuda", verbose=False) for key, predictor in predictors.items()}

        def cases() -> Iterator[tuple[dict, float]]:
            for _ in files:
                start = time.perf_counter()
                items = {key: next(iterator) for key, iterator in iterators.items()}
                waited = time.perf_counter() - start
                yield {key: (item["data"], item["data_properties"], item["data_properties"].pop(PROPERTY, 0.0))
                       for key, item in items.items()}, waited

        yield cases()
