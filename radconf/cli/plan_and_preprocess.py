"""radconf_plan_and_preprocess: nnU-Net fingerprinting, planning and preprocessing with radconf's planners.

Every dataset is checked first (every image and label file whole, finite, on its case's grid, label values declared;
see radconf.raw.checks), then planned and preprocessed one after the other.
Example: radconf_plan_and_preprocess -d 501 --preset cpu
"""
from __future__ import annotations

import argparse
import json

from radconf.cli.arguments import (
    finite_float,
    make_parser,
    non_negative_int,
    positive_float,
    positive_int,
)
from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_plan_and_preprocess", __doc__)
    parser.add_argument("-d", nargs="+", required=True, help="dataset id(s) or name(s), e.g. 501")
    parser.add_argument("-pl", default=None, help="planner class (radconf's or nnU-Net's); default ExperimentPlanner")
    parser.add_argument("--preset", default=None, choices=["cpu", "cpu_resenc"],
                        help="radconf planner preset: 'cpu' plans a small plain U-Net trainable on a few CPU cores "
                             "(plans radconfCPUPlans), 'cpu_resenc' the same for nnU-Net's residual-encoder U-Net "
                             "(radconfCPUResEncPlans)")
    parser.add_argument("-c", nargs="+", default=None,
                        help="configurations to preprocess (2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres); default "
                             "2d 3d_fullres 3d_lowres (cpu presets: 3d_fullres)")
    parser.add_argument("-np", type=positive_int, default=2, help="worker processes")
    parser.add_argument("-gpu_memory_target", type=positive_float, default=None,
                        help="override the planner's memory target (GB)")
    parser.add_argument("-overwrite_plans_name", default=None, help="custom plans identifier")
    parser.add_argument("-overwrite_target_spacing", nargs=3, type=positive_float, default=None,
                        metavar=("X", "Y", "Z"), help="target spacing of 3d_fullres (mm), as nnU-Net's option")
    parser.add_argument("--ct_window", nargs=2, type=finite_float, default=None, metavar=("LO", "HI"),
                        help="fixed CT window: clip to [LO, HI] HU and map to [-1, 1] (instead of nnU-Net's "
                             "percentiles of labelled voxels); plans <name>_CTwLO_HI, e.g. nnUNetPlans_CTw-800_800")
    parser.add_argument("--window_channels", nargs="+", type=non_negative_int, default=None, metavar="C",
                        help="channel indices to window (default: every channel named CT in dataset.json)")
    parser.add_argument("--clahe", nargs="*", type=non_negative_int, default=None, metavar="C",
                        help="adaptive histogram equalisation (3D CLAHE) of these channel indices (none given: every "
                             "channel named CT) after clipping to the --ct_window, else to nnU-Net's percentiles; "
                             "plans <name>[_CTwLO_HI]_CLAHE, which radconf_predict applies and plain nnU-Net refuses")
    parser.add_argument("--no_pp", action="store_true", help="plan only, do not preprocess (as nnU-Net's --no_pp)")
    parser.add_argument("--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.planning import (
            DEFAULT_CONFIGURATIONS,
            check_configurations,
            check_plan_settings,
            check_window,
            plan_and_preprocess,
            planned_configurations,
            planner_for,
            window_channels_of,
        )
        from radconf.raw.checks import check_raw_dataset, find_dataset_name

        planner = planner_for(args.pl, args.preset)
        configurations = check_configurations(args.c) if args.c else (["3d_fullres"] if args.preset else None)
        check_plan_settings(args.np, args.gpu_memory_target, args.overwrite_plans_name)
        check_window(args.ct_window, args.window_channels, args.overwrite_target_spacing, args.clahe)
        raw = use_default_nnunet_paths().raw
        datasets = list(dict.fromkeys(args.d))
        for dataset in datasets:  # every dataset checked before the first is planned
            check_raw_dataset(raw / find_dataset_name(dataset, raw))
            dataset_json = raw / find_dataset_name(dataset, raw) / "dataset.json"
            if args.ct_window is not None:
                window_channels_of(json.loads(dataset_json.read_text(encoding="utf-8")), args.window_channels,
                                   dataset_json)
            if args.clahe is not None:
                window_channels_of(json.loads(dataset_json.read_text(encoding="utf-8")), args.clahe, dataset_json,
                                   "--clahe")
        for dataset in datasets:
            plans, plans_file = plan_and_preprocess(
                dataset, planner=planner, configurations=configurations, num_processes=args.np,
                gpu_memory_target_gb=args.gpu_memory_target, plans_name=args.overwrite_plans_name,
                verbose=args.verbose, check_dataset=False, preprocess=not args.no_pp,
                target_spacing=args.overwrite_target_spacing, ct_window=args.ct_window,
                window_channels=args.window_channels, clahe=args.clahe)
            planned = planned_configurations(plans_file)
            done = [c for c in configurations or DEFAULT_CONFIGURATIONS if c in planned]
            configuration = "3d_fullres" if "3d_fullres" in done else done[0]
            if args.ct_window is not None and args.clahe is None:
                print(f"radconf: CT window [{args.ct_window[0]:g}, {args.ct_window[1]:g}] -> [-1, 1] recorded in "
                      f"{plans_file} (radconf_intensity; nnU-Net's CTNormalization applies it everywhere)")
            if args.clahe is not None:
                print(f"radconf: CLAHE recorded in {plans_file} (radconf_intensity); radconf_predict applies it, "
                      f"plain nnUNetv2_predict refuses these plans")
            print(f"radconf: plans {plans} written to {plans_file}"
                  + ("" if args.no_pp else f" ({', '.join(done)} preprocessed)")
                  + f"; train with: radconf_train {dataset} {configuration} 0 -p {plans}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
