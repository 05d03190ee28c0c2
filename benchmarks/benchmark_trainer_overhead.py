"""Seconds per training iteration of every radconf trainer against nnU-Net's ``nnUNetTrainer`` (or
``nnUNetTrainerNoDA`` for the NoDA variants) on the same plans, in one run.

1. The phantom (Dataset541, ``--train`` cases), its anatomy-channel dataset (542: GTV with bladder and rectum as CT
   channels) and its confidence-level dataset (543: the readers' GTVs fused into levels 0..5), each planned with the
   cpu preset (2d and 3d_fullres).
2. Each trainer built as ``radconf_train`` builds it (fold all, CPU), initialised, its own loaders single-threaded
   (``nnUNet_n_proc_DA=0``). ``--batches`` batches are drawn (the seconds per batch: the loader, augmentation and the
   trainer's targets), then ``--steps`` ``train_step`` calls on them after two warm-up steps (the seconds per step:
   forward, loss, backward, optimiser). Each trainer is compared with nnU-Net's trainer of the same augmentation on
   the same dataset and configuration, their steps taken in turn so both see the same machine load; the parameter
   ratio says whether the trainer adds a network part (the target ``<= 1.05 x`` applies where it does not).

    python benchmarks/benchmark_trainer_overhead.py --work /tmp/bench_overhead --out documentation/figures
    python benchmarks/benchmark_trainer_overhead.py --work /tmp/bench_overhead_smoke --train 4 --steps 2 --batches 2 \\
        --only ConfidenceTrainer DistanceMapTrainer
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from benchmark_common import benchmark_parser, benchmark_workspace, run_module, write_tables

IDS = {"plain": 541, "anatomy": 542, "confidence": 543}
PLANS = "radconfCPUPlans"
HAND_MADE = {"HardNegativeTrainer", "HardNegativeTrainerNoDA"}  # need --hard_negatives_from predictions


def prepare_datasets(args):
    """The benchmark workspace (:func:`benchmark_common.benchmark_workspace`) with the three datasets planned, this
    process pointed at its nnU-Net folders with single-process augmentation (``nnUNet_n_proc_DA=0``)."""
    work, out, folders, env, log = benchmark_workspace(args.work, args.out)
    env.pop("nnUNet_n_proc_DA", None)  # planning refuses it
    _datasets(folders, env, log, args)
    os.environ.update({key: env[key] for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")})
    os.environ["nnUNet_n_proc_DA"] = "0"  # the trainers' loaders run in this process
    return work, out, folders, env, log


def _datasets(folders: dict, env: dict, log: Path, args) -> None:
    raw = folders["nnUNet_raw"]
    if not any(raw.glob(f"Dataset{IDS['plain']}_*")):
        run_module(["radconf.cli.generate_phantom", "-d", str(IDS["plain"]), "--num_train", str(args.train),
                    "--num_test", "1", "-o", str(raw)], env, log)
    source = next(raw.glob(f"Dataset{IDS['plain']}_*"))
    if not any(raw.glob(f"Dataset{IDS['anatomy']}_*")):
        run_module(["radconf.cli.anatomy_dataset", str(IDS["plain"]), "-d", str(IDS["anatomy"]), "-n", "GTVAnatomy",
                    "--target", "gtv", "--anatomy", "bladder", "rectum", "--encoding", "ct"], env, log)
    if not any(raw.glob(f"Dataset{IDS['confidence']}_*")):
        run_module(["radconf.cli.fuse_readers", str(source), "-d", str(IDS["confidence"]), "-n", "Conf", "-k", "5",
                    "--structure", "GTV"], env, log)
    for dataset_id in IDS.values():
        folder = next(folders["nnUNet_raw"].glob(f"Dataset{dataset_id}_*"))
        if not (folders["nnUNet_preprocessed"] / folder.name / f"{PLANS}.json").is_file():
            run_module(["radconf.cli.plan_and_preprocess", "-d", str(dataset_id), "--preset", "cpu", "-c", "2d",
                        "3d_fullres"], env, log)


class _Prepared:
    """One trainer built as radconf_train builds it (fold all, CPU), initialised, with ``batches`` batches drawn
    from its own loader (their seconds kept) and two warm-up steps taken."""

    def __init__(self, name: str, kind: str, configuration: str, batches: int) -> None:
        import torch

        from radconf.training import build_trainer

        torch.manual_seed(0)
        self.trainer = build_trainer(IDS[kind], configuration, "all", trainer=name, plans=PLANS, device="cpu")
        self.trainer.initialize()
        loader, validation = self.trainer.get_dataloaders()
        try:
            self.fetch, self.batches = [], []
            for _ in range(batches):
                start = time.perf_counter()
                self.batches.append(next(loader))
                self.fetch.append(time.perf_counter() - start)
        finally:
            for item in (loader, validation):
                if hasattr(item, "_finish"):
                    item._finish()
        self.trainer.network.train()
        self.steps: list[float] = []
        for i in range(2):
            self.trainer.train_step(self.batches[i % len(self.batches)])
        self.parameters = sum(p.numel() for p in self.trainer.network.parameters())

    def step(self) -> None:
        start = time.perf_counter()
        self.trainer.train_step(self.batches[len(self.steps) % len(self.batches)])
        self.steps.append(time.perf_counter() - start)


def _rows(args) -> list[dict]:
    """Each trainer's steps interleaved with its reference's (one step each in turn), so that both see the same
    machine load."""
    from radconf.trainers.kinds import dataset_kind, trainer_configuration
    from tqdm import tqdm

    from radconf.registry import radconf_classes

    trainers = {name: cls for name, cls in sorted(radconf_classes("trainer").items())
                if name not in HAND_MADE and (not args.only or name in args.only)}
    rows = []
    for name, cls in tqdm(trainers.items(), desc="trainers", unit="trainer"):
        kind, configuration = dataset_kind(cls), trainer_configuration(cls)
        reference = "nnUNetTrainerNoDA" if name.endswith("NoDA") else "nnUNetTrainer"
        own, peer = (_Prepared(n, kind, configuration, args.batches) for n in (name, reference))
        for _ in range(args.steps):
            peer.step()
            own.step()
        step, peer_step = statistics.median(own.steps), statistics.median(peer.steps)
        batch, peer_batch = statistics.median(own.fetch), statistics.median(peer.fetch)
        rows.append({"trainer": name, "dataset": kind, "configuration": configuration, "reference": reference,
                     "step_s": step, "reference_step_s": peer_step, "step_ratio": step / peer_step,
                     "batch_s": batch, "batch_ratio": batch / peer_batch,
                     "parameter_ratio": own.parameters / peer.parameters})
        del own, peer
    return rows


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--train", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--only", nargs="*", default=None, metavar="TRAINER")
    args = parser.parse_args()
    work, out, folders, env, log = prepare_datasets(args)
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    rows = _rows(args)
    lines = [f"Training overhead of radconf's trainers against nnU-Net's on the same plans (phantom, {args.train} "
             f"cases, cpu preset, fold all; median of {args.steps} train steps and of {args.batches} batches drawn "
             f"single-threaded; CPU)", "",
             "| trainer | dataset | configuration | vs | s/step | reference s/step | step ratio | s/batch | "
             "batch ratio | parameters ratio |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['trainer']} | {r['dataset']} | {r['configuration']} | {r['reference']} | {r['step_s']:.3f} | "
              f"{r['reference_step_s']:.3f} | {r['step_ratio']:.2f} | {r['batch_s']:.3f} | {r['batch_ratio']:.2f} | "
              f"{r['parameter_ratio']:.2f} |"
              for r in rows]
    write_tables(out / "trainer_overhead", lines, rows)


if __name__ == "__main__":
    main()
