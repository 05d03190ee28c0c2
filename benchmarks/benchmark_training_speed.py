"""Seconds per training iteration: radconf_train vs nnU-Net's own nnUNetv2_train on the same preprocessed phantom.

Both commands train nnU-Net's ``nnUNetTrainer_1epoch`` (250 training + 50 validation iterations) with the cpu-preset
plans, on the same preprocessed data, alternating, each into its own results folder. The figure compared is nnU-Net's
logged epoch time divided by the 250 training iterations; radconf should add nothing (ratio ~1.00).

    python benchmarks/benchmark_training_speed.py --work /tmp/radconf_bench --repeats 2
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TRAINER = "nnUNetTrainer_1epoch"
ITERATIONS = 250


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def _epoch_seconds(log_folder: Path) -> float:
    logs = sorted(log_folder.glob("training_log_*.txt"))
    times = [float(t) for t in re.findall(r"Epoch time: ([\d.]+) s", logs[-1].read_text())]
    if not times:
        raise RuntimeError(f"no epoch time in {logs[-1]}")
    return times[0]


def _train(command: list[str], env: dict[str, str], results: Path, dataset: str, device: str) -> tuple[float, float]:
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run([*command, dataset, "3d_fullres", "0", "-tr", TRAINER, "-p", "radconfCPUPlans", "-device", device],
                   env={**env, "nnUNet_results": str(results)}, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    fold = next(results.glob(f"*/{TRAINER}__radconfCPUPlans__3d_fullres/fold_0"))
    return _epoch_seconds(fold) / ITERATIONS, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="radconf_benchmark_training", help="scratch folder")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    work = Path(args.work).resolve()
    env = {**os.environ, "nnUNet_raw": str(work / "nnUNet_raw"),
           "nnUNet_preprocessed": str(work / "nnUNet_preprocessed")}
    from radconf.datasets.phantom.writer import write_phantom_dataset

    write_phantom_dataset(work / "nnUNet_raw", dataset_id=501, num_train=16, num_test=0)
    subprocess.run([_bin("radconf_plan_and_preprocess"), "-d", "501", "--preset", "cpu"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples: dict[str, list[tuple[float, float]]] = {"radconf_train": [], "nnUNetv2_train": []}
    for repeat in range(args.repeats):
        for name in samples:
            seconds = _train([_bin(name)], env, work / f"results_{name}", "501", args.device)
            samples[name].append(seconds)
            print(f"repeat {repeat + 1}: {name}: {seconds[0]:.3f} s/iteration (wall {seconds[1]:.0f} s)", flush=True)
    median = {name: statistics.median(s for s, _ in values) for name, values in samples.items()}
    ratio = median["radconf_train"] / median["nnUNetv2_train"]
    print("\n| command | s/iteration (median) | runs |\n|---|---|---|")
    for name, values in samples.items():
        print(f"| {name} | {median[name]:.3f} | {', '.join(f'{s:.3f}' for s, _ in values)} |")
    print(f"\nratio radconf_train / nnUNetv2_train = {ratio:.3f}")


if __name__ == "__main__":
    main()
