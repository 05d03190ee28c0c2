"""Per-case timing of nnU-Net's pipelined prediction: preprocessing, network and export seconds (``timing.json``).

nnU-Net's ``predict_from_files`` preprocesses in background workers (``configuration_manager.preprocessor_class
(verbose=...).run_case``), runs the network in the calling process (``predict_logits_from_preprocessed_data``, via
``predict_from_data_iterator``) and exports in a pool (the module global ``export_prediction_from_logits`` of
``nnunetv2.inference.predict_from_raw_data``, whose results ``predict_from_data_iterator`` returns in case order).
:func:`timed_prediction` measures each stage where it runs: the preprocessing and export seconds inside the workers
(they travel back with the case's properties and the export's result), the network seconds in this process (after
the logits are on the CPU, so a GPU has finished), and how long the network waited for the next preprocessed case.
Nothing of nnU-Net's pipeline changes; ``tests/nnunet_compat/test_tripwires.py`` guards the names used.
"""
from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager

from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

PROPERTY = "radconf_preprocessing_s"  # added to a case's properties by the timed preprocessor


class TimedPreprocessing:
    """A preprocessor (any nnU-Net preprocessor class) whose ``run_case`` records its seconds in the properties."""

    def __init__(self, preprocessor_class: type, verbose: bool = False) -> None:
        self.inner = preprocessor_class(verbose=verbose)

    def run_case(self, *args, **kwargs):
        start = time.perf_counter()
        data, seg, properties = self.inner.run_case(*args, **kwargs)
        properties[PROPERTY] = time.perf_counter() - start
        return data, seg, properties


class TimedConfigurationManager(ConfigurationManager):
    """``manager`` (nnU-Net's or radconf's) whose preprocessor times itself; module level, so it pickles into
    nnU-Net's spawned workers."""

    @classmethod
    def wrapping(cls, manager: ConfigurationManager) -> TimedConfigurationManager:
        """``manager``'s state under this class (nnU-Net's constructor is not run again)."""
        timed = cls.__new__(cls)
        timed.__dict__.update(vars(manager))
        timed.inner_manager = manager
        return timed

    @property
    def preprocessor_class(self):
        return functools.partial(TimedPreprocessing, self.inner_manager.preprocessor_class)


def timed_export(*args) -> float:
    """nnU-Net's ``export_prediction_from_logits(*args)``; returns its seconds."""
    from nnunetv2.inference.export_prediction import export_prediction_from_logits

    start = time.perf_counter()
    export_prediction_from_logits(*args)
    return time.perf_counter() - start


def axial_slices(properties: dict, transpose_forward) -> int:
    """Slices of the image along its first array axis (SimpleITK's z) before nnU-Net's transposition."""
    shape = properties["shape_before_cropping"]  # in the transposed order
    return int(shape[list(transpose_forward).index(0)])


@contextmanager
def timed_prediction(predictor) -> Iterator[list[dict]]:
    """Within the block, ``predictor.predict_from_files`` records one entry per case (in prediction order) in the
    list yielded: ``case`` (the output file's name), ``preprocessing_s``, ``waited_s`` (the network waiting for it),
    ``network_s``, ``export_s``, ``slices``."""
    import os

    import nnunetv2.inference.predict_from_raw_data as module

    records: list[dict] = []
    originals = (predictor.configuration_manager, module.export_prediction_from_logits)
    run_iterator, run_network = predictor.predict_from_data_iterator, predictor.predict_logits_from_preprocessed_data
    transpose = predictor.plans_manager.transpose_forward

    def cases(iterator):
        while True:
            start = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            properties = item["data_properties"]
            records.append({"case": os.path.basename(str(item["ofile"])) if item["ofile"] is not None else None,
                            "preprocessing_s": properties.pop(PROPERTY, None),
                            "waited_s": time.perf_counter() - start, "slices": axial_slices(properties, transpose)})
            yield item

    def network(data):
        start = time.perf_counter()
        logits = run_network(data).cpu()
        records[-1]["network_s"] = time.perf_counter() - start
        return logits

    def iterate(data_iterator, *args, **kwargs):
        results = run_iterator(cases(iter(data_iterator)), *args, **kwargs)
        for record, seconds in zip(records, results):
            record["export_s"] = seconds
        return results

    predictor.configuration_manager = TimedConfigurationManager.wrapping(originals[0])
    predictor.predict_from_data_iterator, predictor.predict_logits_from_preprocessed_data = iterate, network
    module.export_prediction_from_logits = timed_export
    try:
        yield records
    finally:
        predictor.configuration_manager, module.export_prediction_from_logits = originals
        del predictor.predict_from_data_iterator, predictor.predict_logits_from_preprocessed_data
