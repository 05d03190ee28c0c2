"""radconf_demo: the end-to-end demo on the synthetic phantom (generate, plan, train, predict, evaluate, report)."""
from __future__ import annotations

import argparse

from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="radconf_demo", help="output folder (default ./radconf_demo)")
    parser.add_argument("--fast", action="store_true",
                        help="smoke run: 6+2 cases and 20 training iterations (checks the path, not the model)")
    parser.add_argument("-device", default="cpu", choices=["cpu", "cuda", "mps"], help="default cpu")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.demo.pipeline import DemoSettings, run_demo

        result = run_demo(args.out, DemoSettings.fast() if args.fast else DemoSettings(), device=args.device)
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

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
