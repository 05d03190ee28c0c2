"""GPU check: radconf's trainers and prediction modes on CUDA, with the results written as a table.

1. Datasets as ``benchmark_trainer_overhead.py`` makes them (phantom 541, anatomy channels 542, confidence levels 543;
   cpu-preset plans, 2d and 3d_fullres).
2. Every radconf trainer and nnU-Net's ``nnUNetTrainer`` built for the device, initialised, ``--steps`` training steps
   (nnU-Net trains with AMP, autocast and its gradient scaler, on CUDA): finite loss, seconds per step, peak GPU
   memory. A trainer that fails is recorded with its error and the check goes on.
3. Four short trainings through ``radconf_train -device DEVICE`` (1 epoch of ``--iterations``): nnUNetTrainer and
   nnUNetTrainerNoDA on 541, AnatomyChannelsTrainer on 542, ConfidenceTrainer on 543; then ``radconf_predict`` on the
   device: one model, an ensemble of two models in one process, the two-stage anatomy prediction (organ model, then
   the anatomy-channel model) and the confidence model's level maps; seconds and ms per slice from ``timing.json``.
4. Multi-GPU training: ``radconf_train ... -num_gpus 2`` (nnU-Net's DDP, NCCL) of the ConfidenceTrainer on fold 0
   when 2 GPUs are present; with ``--device cpu`` the same ``train_distributed`` on 2 gloo ranks. Passed when the
   run's log says the ranks' weights are identical.

    python benchmarks/gpu_check.py --work /tmp/gpu_check --out documentation/figures        # on a CUDA machine
    python benchmarks/gpu_check.py --work /tmp/gpu_check_cpu --device cpu --steps 1 --only ConfidenceTrainer
"""
from __future__ import annotations

import json
import math
import time
import traceback
from pathlib import Path

from benchmark_common import benchmark_parser, run_command, run_module, write_tables
from benchmark_trainer_overhead import HAND_MADE, IDS, PLANS, prepare_datasets

TRAININGS = {"organs": ("nnUNetTrainer", "plain"), "organs_noda": ("nnUNetTrainerNoDA", "plain"),
             "anatomy": ("AnatomyChannelsTrainer", "anatomy"), "confidence": ("ConfidenceTrainer", "confidence")}


def _device_text(device: str) -> str:
    import torch

    if device == "cuda" and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}, CUDA {torch.version.cuda}"
    return device


def _step_trainer(name: str, kind: str, configuration: str, device: str, steps: int) -> dict:
    import torch

    from radconf.training import build_trainer

    torch.manual_seed(0)
    trainer = build_trainer(IDS[kind], configuration, "all", trainer=name, plans=PLANS, device=device)
    trainer.initialize()
    loader, validation = trainer.get_dataloaders()
    try:
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        trainer.network.train()
        losses, seconds = [], []
        for _ in range(steps):
            batch = next(loader)
            start = time.perf_counter()
            losses.append(float(trainer.train_step(batch)["loss"]))
            if device == "cuda":
                torch.cuda.synchronize()
            seconds.append(time.perf_counter() - start)
    finally:
        for item in (loader, validation):
            if hasattr(item, "_finish"):
                item._finish()
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else float("nan")
    return {"ok": all(math.isfinite(v) for v in losses), "loss": losses[-1], "s_per_step": min(seconds),
            "peak_mb": peak, "amp": getattr(trainer, "grad_scaler", None) is not None}


def _trainers(args) -> list[dict]:
    from radconf.trainers.kinds import dataset_kind, trainer_configuration

    from radconf.registry import radconf_classes

    rows = []
    classes = {name: cls for name, cls in sorted(radconf_classes("trainer").items())
               if name not in HAND_MADE and (not args.only or name in args.only)}
    jobs = [("nnUNetTrainer", "plain", "3d_fullres"),
            *[(n, dataset_kind(c), trainer_configuration(c)) for n, c in classes.items()]]
    for name, kind, configuration in jobs:
        try:
            row = _step_trainer(name, kind, configuration, args.device, args.steps)
            error = ""
        except Exception as failure:  # the check reports every trainer, failing ones included
            row, error = {"ok": False}, "".join(traceback.format_exception_only(failure)).strip()[-300:]
        rows.append({"check": f"train {name} ({kind}, {configuration})", **row, "error": error})
        print(rows[-1], flush=True)
    return rows


def _command(check: str, arguments: list[str], env: dict, log: Path, output: Path | None = None) -> dict:
    try:
        seconds = run_module(arguments, env, log)
        row = {"check": check, "ok": True, "s": seconds, "error": ""}
    except Exception as failure:
        return {"check": check, "ok": False, "error": str(failure)[-300:]}
    if output is not None and (output / "timing.json").is_file():
        row["ms_per_slice"] = json.loads((output / "timing.json").read_text())["mean"]["ms_per_slice"]
    return row


def _pipeline(folders: dict, work: Path, env: dict, log: Path, args) -> list[dict]:
    rows = []
    for trainer, kind in TRAININGS.values():
        rows.append(_command(f"radconf_train {trainer} on {kind}", [
            "radconf.cli.train", str(IDS[kind]), "3d_fullres", "all", "-tr", trainer, "-p", PLANS, "-device",
            args.device, "--epochs", "1", "--iterations_per_epoch", str(args.iterations), "--no_val"], env, log))
    images = next(folders["nnUNet_raw"].glob(f"Dataset{IDS['plain']}_*")) / "imagesTs"
    spec = {key: f"{IDS[kind]}:{trainer}:{PLANS}:3d_fullres:all" for key, (trainer, kind) in TRAININGS.items()}
    common = ["-device", args.device, "-np", "2"]
    predictions = {"one model": ["-m", spec["organs"]],
                   "ensemble of two models": ["-m", spec["organs"], spec["organs_noda"], "--save_disagreement"],
                   "two-stage anatomy": ["-m", spec["anatomy"], "--anatomy_model", spec["organs"]],
                   "confidence levels": ["-m", spec["confidence"], "--level", "3", "--level_probabilities"]}
    for check, arguments in predictions.items():
        output = work / "predictions" / check.replace(" ", "_")
        rows.append(_command(f"radconf_predict {check}", ["radconf.cli.predict", "-i", str(images), "-o",
                                                          str(output), *arguments, *common], env, log, output))
    return rows


def _ddp(folders: dict, env: dict, log: Path, args) -> dict:
    """2 ranks of the ConfidenceTrainer, fold 0: NCCL on 2 GPUs, or gloo on CPU (``--device cpu``)."""
    import sys

    import torch

    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    check = "DDP training on 2 GPUs (-num_gpus 2)" if args.device == "cuda" else "DDP training on 2 gloo ranks (CPU)"
    if args.device == "cuda" and gpus < 2:
        return {"check": check, "ok": False, "error": f"not run: {gpus} GPU present"}
    options = f"--epochs 1 --iterations_per_epoch {args.iterations} --no_val".split()
    if args.device == "cuda":
        command = [sys.executable, "-m", "radconf.cli.train", str(IDS["confidence"]), "3d_fullres", "0", "-tr",
                   "ConfidenceTrainer", "-p", PLANS, "-device", "cuda", "-num_gpus", "2", *options]
    else:
        command = [sys.executable, "-c", "from radconf.scale.distributed import train_distributed; "
                   "from radconf.training import TrainingOptions; "
                   f"train_distributed('{IDS['confidence']}', '3d_fullres', 0, num_gpus=2, "
                   f"trainer='ConfidenceTrainer', plans='{PLANS}', device='cpu', options=TrainingOptions("
                   f"epochs=1, iterations_per_epoch={args.iterations}, validate=False))"]
    try:
        seconds = run_command(command, env, log)
    except Exception as failure:
        return {"check": check, "ok": False, "error": str(failure)[-300:]}
    logs = sorted(folders["nnUNet_results"].glob(f"Dataset{IDS['confidence']}_*/ConfidenceTrainer__{PLANS}__"
                                                 "3d_fullres/fold_0/training_log_*.txt"))
    agree = bool(logs) and "network weights identical on all 2 ranks" in logs[-1].read_text()
    return {"check": check, "ok": agree, "s": seconds, "error": "" if agree else "ranks' weights not confirmed equal"}


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--train", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, metavar="TRAINER")
    args = parser.parse_args()
    work, out, folders, env, log = prepare_datasets(args)
    rows = _trainers(args) + _pipeline(folders, work, {**env, "nnUNet_n_proc_DA": "0"}, log, args)
    import torch

    rows.append(_ddp(folders, {**env, "nnUNet_n_proc_DA": "0"}, log, args))
    columns = ["check", "ok", "s_per_step", "s", "ms_per_slice", "peak_mb", "amp", "error"]
    rows = [{key: row.get(key, "") for key in columns} for row in rows]

    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = [f"GPU check on {_device_text(args.device)} (torch {torch.__version__}; {args.steps} training steps per "
             f"trainer, trainings of 1 x {args.iterations} iterations)", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[key]) for key in columns) + " |" for row in rows]
    lines += ["", f"{sum(bool(r['ok']) for r in rows)} of {len(rows)} checks passed."]
    write_tables(out / "gpu_check", lines, rows)


if __name__ == "__main__":
    main()
