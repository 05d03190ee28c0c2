"""radconf_plan_and_preprocess: nnU-Net fingerprinting, planning and preprocessing with radconf's planners."""
from __future__ import annotations

import argparse

from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-d", nargs="+", required=True, help="dataset id(s) or name(s), e.g. 501")
    parser.add_argument("-pl", default=None, help="planner class (radconf's or nnU-Net's); default ExperimentPlanner")
    parser.add_argument("--preset", default=None, choices=["cpu", "cpu_resenc"],
                        help="radconf planner preset: 'cpu' plans a small plain U-Net trainable on a few CPU cores "
                             "(plans radconfCPUPlans), 'cpu_resenc' the same for nnU-Net's residual-encoder U-Net "
                             "(radconfCPUResEncPlans)")
    parser.add_argument("-c", nargs="+", default=None,
                        help="configurations to preprocess; default 2d 3d_fullres 3d_lowres (cpu preset: 3d_fullres)")
    parser.add_argument("-np", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("-gpu_memory_target", type=float, default=None, help="override the planner's memory target")
    parser.add_argument("-overwrite_plans_name", default=None, help="custom plans identifier")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.planning import (
            DEFAULT_CONFIGURATIONS,
            plan_and_preprocess,
            planner_for,
        )

        use_default_nnunet_paths()
        planner = planner_for(args.pl, args.preset)
        configurations = args.c or (["3d_fullres"] if args.preset else list(DEFAULT_CONFIGURATIONS))
        for dataset in args.d:
            plans, plans_file = plan_and_preprocess(
                dataset, planner=planner, configurations=configurations, num_processes=args.np,
                gpu_memory_target_gb=args.gpu_memory_target, plans_name=args.overwrite_plans_name,
                verbose=args.verbose)
            print(f"radconf: plans {plans} written to {plans_file}; train with: radconf_train {dataset} "
                  f"{configurations[-1] if len(configurations) == 1 else '3d_fullres'} 0 -p {plans}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
