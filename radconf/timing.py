"""``timing.json`` of a prediction folder: per case preprocessing, network and export seconds, and milliseconds per
slice (the network's seconds over the image's axial slices), measured where each stage runs
(:mod:`radconf.nnunet_compat.timing`). nnU-Net overlaps the stages (preprocessing and export run in workers while
the network predicts another case), so the stages of a case do not add up to the command's wall time; ``waited_s``
is the time the network stood idle waiting for that case's preprocessing.
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

TIMING_FILE = "timing.json"
_CASE: ContextVar[dict | None] = ContextVar("radconf_timing_case", default=None)


@contextmanager
def timed_case(records: list[dict], case: str) -> Iterator[dict]:
    """One case of a sequential prediction (ensembles, samples): within the block, :func:`add_seconds` adds to its
    stages; what is not preprocessing or network (resampling to the image, accumulating, writing) is ``export_s``."""
    record = {"case": case, "preprocessing_s": 0.0, "waited_s": 0.0, "network_s": 0.0, "export_s": 0.0,
              "slices": None}
    token = _CASE.set(record)
    start = time.perf_counter()
    try:
        yield record
    finally:
        _CASE.reset(token)
    total = time.perf_counter() - start
    record["export_s"] = max(0.0, total - record["preprocessing_s"] - record["network_s"])
    records.append(record)


def add_seconds(stage: str, seconds: float, slices: int | None = None) -> None:
    """Adds ``seconds`` to ``stage`` of the case being timed (nothing outside :func:`timed_case`)."""
    record = _CASE.get()
    if record is None:
        return
    record[stage] += seconds
    if slices is not None:
        record["slices"] = slices


def network_logits(predictor, data):
    """``predictor.predict_logits_from_preprocessed_data(data)`` on the CPU, its seconds added to the case's
    network time (the copy to the CPU waits for a GPU to finish)."""
    start = time.perf_counter()
    logits = predictor.predict_logits_from_preprocessed_data(data).cpu()
    add_seconds("network_s", time.perf_counter() - start)
    return logits


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def timing_report(records: Sequence[dict], *, model: str, device: str, wall_s: float) -> dict:
    """The report of one run: its cases (with ``ms_per_slice``), their means and the run's wall seconds."""
    cases = []
    for record in records:
        case = dict(record)
        network, slices = case.get("network_s"), case.get("slices")
        case["ms_per_slice"] = 1000 * network / slices if network is not None and slices else None
        cases.append(case)
    means = {key: _mean([c[key] for c in cases if c.get(key) is not None])
             for key in ("preprocessing_s", "waited_s", "network_s", "export_s", "ms_per_slice")}
    return {"model": model, "device": device, "cases": cases, "mean": means, "wall_s": wall_s,
            "note": "stages overlap (workers preprocess and export while the network runs); ms_per_slice = "
                    "network_s / axial slices"}


def write_timing(folder: str | Path, records: Sequence[dict], *, model: str, device: str, wall_s: float) -> Path:
    """Writes ``timing.json`` into ``folder`` (atomically) and returns its path."""
    from radconf.io.files import atomic_write_json
    from radconf.scale.parts import part_file_name

    path = Path(folder) / part_file_name(TIMING_FILE)
    atomic_write_json(path, timing_report(records, model=model, device=device, wall_s=wall_s))
    return path
