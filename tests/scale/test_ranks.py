"""Rank-safety of radconf's training additions, on simulated ranks: a 2-process gloo group on CPU.

Each rank holds other voxel counts; the weights every rank trains with must be rank 0's, an error on rank 0 must
reach every rank (none waits forever), and the weight check must tell identical networks from different ones.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from radconf.errors import InvalidInput
from radconf.losses import reciprocal_frequency_weights
from radconf.scale import distributed, ranks


def test_ranks_get_rank_zeros_values(tmp_path, monkeypatch):
    import torch.multiprocessing

    from tests.scale.rank_workers import simulated_rank

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))  # the spawned ranks import tests.scale
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    monkeypatch.setenv("MASTER_PORT", str(distributed._free_port()))
    torch.multiprocessing.spawn(simulated_rank, args=(2, str(tmp_path)), nprocs=2, join=True)
    records = [json.loads((tmp_path / f"rank_{r}.json").read_text()) for r in range(2)]
    rank_zero = reciprocal_frequency_weights(np.array([1000, 10, 3]))  # by hand: rank 0's counts
    for r, record in enumerate(records):
        assert (record["rank"], record["world"], record["zero"]) == (r, 2, r == 0)
        np.testing.assert_array_equal(record["weights"], rank_zero)
        assert record["error"] == "bad counts on rank 0"
        assert record["same"] is True and record["other"] is False
    assert records[1]["own_weights"] != records[0]["own_weights"]  # the simulation does differ per rank
    assert "identical on all 2 ranks" in (tmp_path / "log_same_0.txt").read_text()
    assert "differ between the 2 ranks" in (tmp_path / "log_other_0.txt").read_text()
    assert not (tmp_path / "log_same_1.txt").exists() and not (tmp_path / "log_other_1.txt").exists()


def test_outside_a_group():
    assert (ranks.rank(), ranks.world_size(), ranks.is_rank_zero()) == (0, 1, True)
    assert ranks.rank_zero_value(lambda: 7) == 7


def test_weights_digest_sees_one_ulp():
    import torch

    network = torch.nn.Linear(3, 2)
    before = ranks.weights_digest(network)
    assert ranks.weights_digest(network) == before
    with torch.no_grad():
        network.weight[0, 0] = torch.nextafter(network.weight[0, 0], torch.tensor(2.0))
    assert ranks.weights_digest(network) != before


@pytest.mark.parametrize("num_gpus, device, available, fragment", [
    (2, "cuda", 0, "-num_gpus 2 asks for more GPUs than torch sees (0)"),
    (3, "cuda", 2, "more GPUs than torch sees (2); pass -num_gpus 2"),
    (0, "cuda", 2, "at least 1"),
    (2, "mps", 2, "-device mps cannot"),
])
def test_gpu_count_refused(num_gpus, device, available, fragment):
    with pytest.raises(InvalidInput, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        distributed.check_gpus(num_gpus, device, available)


def test_batch_smaller_than_gpus_refused():
    distributed.check_batch(2, 2)
    with pytest.raises(InvalidInput, match="batch size 2 is smaller than -num_gpus 3"):
        distributed.check_batch(2, 3)


def test_no_warning_when_alone():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ranks.check_weights_agree(object()) is True
