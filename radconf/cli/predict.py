"""radconf_predict: predict a folder of images with a trained radconf or nnU-Net model."""
from __future__ import annotations

import argparse

from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", required=True, help="input folder (CASE_0000.nii.gz, ...)")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("-d", required=True, help="dataset id or name the model was trained on")
    parser.add_argument("-c", default="3d_fullres", help="configuration")
    parser.add_argument("-tr", default="nnUNetTrainer", help="trainer class")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier")
    parser.add_argument("-f", nargs="+", default=["0", "1", "2", "3", "4"], help="folds to use (averaged)")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name")
    parser.add_argument("-device", default=None, choices=["cpu", "cuda", "mps"],
                        help="default: cuda when available, else cpu")
    parser.add_argument("-step_size", type=float, default=0.5, help="sliding-window step (fraction of the patch)")
    parser.add_argument("-np", type=int, default=2, help="preprocessing/export worker processes")
    parser.add_argument("--save_probabilities", action="store_true", help="also write CASE.npz probabilities")
    parser.add_argument("--disable_tta", action="store_true", help="no test-time mirroring")
    parser.add_argument("--level", type=int, nargs="+", default=[], metavar="L",
                        help="confidence models: also write binary masks level >= L (e.g. --level 3)")
    parser.add_argument("--level_probabilities", action="store_true",
                        help="confidence models: also write P(level >= c) maps for c = 1..K")
    parser.add_argument("--save_distance", action="store_true",
                        help="distance-head models: also write each structure's distance map in mm (distance_maps/)")
    parser.add_argument("--anatomy", default=None, metavar="DIR",
                        help="anatomy-channel models: label maps CASE<ending> of the organs (ids as at training)")
    parser.add_argument("--anatomy_model", default=None, metavar="SPEC",
                        help="anatomy-channel models: organ model run first, "
                             "DATASET[:TRAINER[:PLANS[:CONFIG[:FOLDS]]]], e.g. "
                             "501:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4")
    parser.add_argument("--continue_prediction", action="store_true", help="skip cases already predicted")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.inference import ModelSpec, predict

        use_default_nnunet_paths()
        spec = ModelSpec(dataset=args.d, trainer=args.tr, plans=args.p, configuration=args.c,
                         folds=tuple(args.f), checkpoint=args.chk)
        cases = predict(args.i, args.o, [spec], device=args.device, save_probabilities=args.save_probabilities,
                        overwrite=not args.continue_prediction, num_processes=args.np,
                        tile_step_size=args.step_size, use_mirroring=not args.disable_tta,
                        level_probabilities=args.level_probabilities, level_masks=args.level,
                        save_distance=args.save_distance, anatomy_dir=args.anatomy,
                        anatomy_model=ModelSpec.parse(args.anatomy_model) if args.anatomy_model else None)
        print(f"radconf: predicted {len(cases)} case(s) into {args.o}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
