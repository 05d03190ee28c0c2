"""Ranks of a 2-process gloo group on CPU for tests/scale/test_ranks.py (spawned processes import their function
from a module, not from a test file)."""
from __future__ import annotations

import json
from pathlib import Path


def simulated_rank(rank: int, world: int, out: str) -> None:
    """Joins a gloo group and records what radconf's rank helpers give this rank, in ``out/rank_<r>.json``."""
    import numpy as np
    import torch
    import torch.distributed as dist

    from radconf.errors import InvalidInput
    from radconf.losses import reciprocal_frequency_weights
    from radconf.scale import ranks

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        # each rank "sees" other voxel counts: only rank 0's may reach the loss
        counts = np.array([1000 + 100 * rank, 10 + rank, 3], dtype=np.int64)
        weights = ranks.rank_zero_value(lambda: reciprocal_frequency_weights(counts))
        try:
            ranks.rank_zero_value(lambda: (_ for _ in ()).throw(InvalidInput("bad counts on rank 0")))
            error = None
        except InvalidInput as raised:
            error = str(raised)
        torch.manual_seed(0)
        same = _Trainer(torch.nn.Linear(4, 3), Path(out) / f"log_same_{rank}.txt")
        torch.manual_seed(rank)
        other = _Trainer(torch.nn.Linear(4, 3), Path(out) / f"log_other_{rank}.txt")
        record = {"rank": ranks.rank(), "world": ranks.world_size(), "zero": ranks.is_rank_zero(),
                  "weights": weights.tolist(), "own_weights": reciprocal_frequency_weights(counts).tolist(),
                  "error": error, "same": ranks.check_weights_agree(same),
                  "other": ranks.check_weights_agree(other)}
        (Path(out) / f"rank_{rank}.json").write_text(json.dumps(record))
    finally:
        dist.destroy_process_group()


class _Trainer:
    """What ``check_weights_agree`` uses of a trainer: the network and nnU-Net's rank-0 log."""

    def __init__(self, network, log: Path):
        import torch.distributed as dist

        self.network, self.log, self.local_rank = network, log, dist.get_rank()

    def print_to_log_file(self, text: str) -> None:
        if self.local_rank == 0:  # as nnU-Net's trainer
            with open(self.log, "a") as handle:
                handle.write(text + "\n")
