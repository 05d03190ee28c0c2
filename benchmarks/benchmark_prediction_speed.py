"""Prediction speed and memory: radconf_predict vs nnUNetv2_predict on one model, and ensembles of M = 1, 2, 4, 7
members (pipelined, and one case at a time), measured in one run on the same cases.

Needs a trained model (``--model DATASET:TRAINER:PLANS:CONFIG:FOLDS``, e.g. the 3D U-Net of
``benchmark_networks.py``) and a folder of images. Each prediction is its own process (CPU, no mirroring):

- one model: ``nnUNetv2_predict`` and ``radconf_predict`` alternating ``--repeats`` times with the same worker counts
  (``-npp/-nps``), best wall time of each, seconds per case and the ratio;
- ensembles: ``radconf_predict -m MODEL x M`` with one worker of each kind (threads, so that the process's peak
  resident memory covers the workers), pipelined and with ``--sequential_ensemble``; seconds per case from the wall
  time, the ratio to M x the single-member run, and the peak memory (maximum resident set).

    python benchmarks/benchmark_prediction_speed.py --work /tmp/bench_speed --out documentation/figures \\
        --model 531:nnUNetTrainerNoDA:radconfCPUPlans:3d_fullres:all --images /tmp/bench_net50/nnUNet_raw/\\
Dataset531_Phantom/imagesTs --results /tmp/bench_net50/nnUNet_results
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmark_common import benchmark_parser, write_tables

PEAK = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; code = 0\n"
        "try:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code or 0\n"
        "peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "print(f'PEAK_KB {peak}'); sys.exit(code)")


def _run(command: list[str], env: dict, log: Path, output: Path) -> tuple[float, float]:
    """Wall seconds and peak resident memory (MB) of one prediction into a fresh ``output``."""
    shutil.rmtree(output, ignore_errors=True)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n$ {' '.join(command)}\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}; see {log}")
    peaks = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("PEAK_KB ")]
    return seconds, (peaks[-1] / 1024 if peaks else float("nan"))


def _radconf(images: Path, output: Path, members: list[str], workers: list[str], extra: list[str]) -> list[str]:
    return [sys.executable, "-c", PEAK, "radconf.cli.predict", "-i", str(images), "-o", str(output), "-m", *members,
            "-device", "cpu", "--disable_tta", *workers, *extra]


def _single(args, images: Path, work: Path, env: dict, log: Path, cases: int) -> list[dict]:
    dataset, trainer, plans, configuration, folds = args.model.split(":")
    workers = ["-npp", str(args.workers), "-nps", str(args.workers)]
    nnunet = [str(Path(sys.executable).parent / "nnUNetv2_predict"), "-i", str(images), "-o", str(work / "nnunet"),
              "-d", dataset, "-tr", trainer, "-p", plans, "-c", configuration, "-f", *folds.split(","), "-device",
              "cpu", "--disable_tta", *workers]
    best = {"nnUNetv2_predict": float("inf"), "radconf_predict": float("inf")}
    for _ in range(args.repeats):
        best["nnUNetv2_predict"] = min(best["nnUNetv2_predict"], _run(nnunet, env, log, work / "nnunet")[0])
        radconf = _radconf(images, work / "radconf", [args.model], workers, [])
        best["radconf_predict"] = min(best["radconf_predict"], _run(radconf, env, log, work / "radconf")[0])
    ratio = best["radconf_predict"] / best["nnUNetv2_predict"]
    return [{"run": f"one model, {name} (-npp {args.workers} -nps {args.workers})", "members": 1,
             "s_per_case": seconds / cases, "ratio": ratio if name == "radconf_predict" else 1.0, "peak_mb": ""}
            for name, seconds in best.items()]


def _ensembles(args, images: Path, work: Path, env: dict, log: Path, cases: int) -> list[dict]:
    rows, one = [], {}
    for mode, extra in (("pipelined", []), ("one case at a time", ["--sequential_ensemble"])):
        for m in args.members:
            seconds, peak = _run(_radconf(images, work / "ensemble", [args.model] * m, ["-np", "1"], extra), env,
                                 log, work / "ensemble")
            one.setdefault(mode, seconds if m == 1 else None)
            reference = one[mode]
            rows.append({"run": f"ensemble, {mode} (-np 1)", "members": m, "s_per_case": seconds / cases,
                         "ratio": seconds / (m * reference) if reference else float("nan"), "peak_mb": peak})
    return rows


def main() -> None:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--model", required=True, help="DATASET:TRAINER:PLANS:CONFIG:FOLDS")
    parser.add_argument("--images", required=True, help="folder of CASE_XXXX images")
    parser.add_argument("--results", default=None, help="nnUNet_results holding the model (default: $nnUNet_results)")
    parser.add_argument("--members", type=int, nargs="+", default=[1, 2, 4, 7])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    if args.members[0] != 1:
        raise SystemExit("--members must start with 1 (the reference of the ratios)")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    out = Path(args.out).resolve() if args.out else work
    env = {**os.environ, **({"nnUNet_results": str(Path(args.results).resolve())} if args.results else {})}
    env.setdefault("nnUNet_raw", str(work))
    env.setdefault("nnUNet_preprocessed", str(work))
    images = Path(args.images).resolve()
    cases = len(list(images.glob("*_0000*")))
    log = work / "benchmark_log.txt"
    rows = _single(args, images, work, env, log, cases) + _ensembles(args, images, work, env, log, cases)
    lines = [f"Prediction speed on {cases} cases of {images.name} with {args.model} (CPU, {os.cpu_count()} cores, no "
             f"mirroring; best of {args.repeats} for one model)", "",
             "| run | members | s/case | ratio | peak memory MB |", "|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['members']} | {r['s_per_case']:.2f} | {r['ratio']:.2f} | "
              f"{r['peak_mb'] if r['peak_mb'] == '' else format(r['peak_mb'], '.0f')} |" for r in rows]
    lines += ["", "ratio: one model: radconf_predict / nnUNetv2_predict; ensembles: wall time / (M x the 1-member "
              "run of the same mode)."]
    write_tables(out / "prediction_speed", lines, rows)


if __name__ == "__main__":
    main()
