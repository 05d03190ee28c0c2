"""radconf_demo: the end-to-end demo on the synthetic phantom (generate, plan, train, predict, evaluate, report).

--out must be a new folder, an empty one or an earlier demo's: the demo never writes into a folder of yours.
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import make_parser
from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_demo", __doc__)
    parser.add_argument("--out", default="radconf_demo",
                        help="output folder: new, empty, or an earlier demo's (it is reused)")
    parser.add_argument("--fast", action="store_true",
                        help="smoke run: 6+2 cases and 20 training iterations (checks the path, not the model)")
    parser.add_argument("-device", default="cpu", choices=["cpu", "cuda", "mps"], help="training/inference device")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_demo``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.demo.common import check_demo_output

        check_demo_output(args.out)
        if args.device != "cpu":
            from radconf.devices import make_device

            make_device(args.device)  # no CUDA GPU: refused now, not after the phantom and the planning
        from radconf.demo.pipeline import DemoSettings, run_demo

        result = run_demo(args.out, DemoSettings.fast() if args.fast else DemoSettings(), device=args.device)
        _print_result(result)

    return run_cli(run)


def _print_result(result) -> None:
    print("\n=== radconf demo: held-out phantom cases ===")
    print(f"{'structure':<20} {'Dice':>7} {'HD95 mm':>9}")
    for name, m in result.per_structure.items():
        print(f"{name:<20} {m['dice']:7.3f} {m['hd95_mm']:9.2f}")
    print(f"{'mean':<20} {result.mean_dice:7.3f}")
    confidence = result.confidence
    print(f"\n=== confidence levels (GTV, K = {confidence.num_levels}) ===")
    print(f"continuous Dice {confidence.continuous_dice:.3f}; per-level Dice "
          + ", ".join(f"L{level} {dice:.3f}" for level, dice in confidence.level_dice.items())
          + f"; readers' inter-reader Dice {confidence.reader_inter_dice:.3f}")
    print(f"wall time: {sum(result.timings_s.values()):.0f} s "
          f"({', '.join(f'{k} {v:.0f} s' for k, v in result.timings_s.items())})")
    print(f"report: {result.report}")


if __name__ == "__main__":
    raise SystemExit(main())
