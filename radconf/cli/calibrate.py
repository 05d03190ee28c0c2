"""radconf_calibrate: fit a model's temperature scaling on its validation probabilities (temperature.json).

The model's cross-validation folds (-f; each fold's validation/CASE.npz, exported with radconf_train ... --val --npz)
against nnUNet_preprocessed/<dataset>/gt_segmentations, or prediction folders of a separate validation split
(--folders with -ref). The temperature minimises the voxel negative log-likelihood; the segmentation does not change
(one temperature keeps every argmax), only its probabilities. Writes <model folder>/temperature.json (-o: elsewhere),
which radconf_predict --calibrate applies.
Example: radconf_calibrate -d 501 -tr nnUNetTrainer -p nnUNetPlans -c 3d_fullres -f 0 1 2 3 4
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import make_parser
from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_calibrate", __doc__)
    parser.add_argument("-d", required=True, help="dataset id or name the model was trained on")
    parser.add_argument("-tr", default="nnUNetTrainer", help="trainer class")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier")
    parser.add_argument("-c", default="3d_fullres", help="configuration")
    parser.add_argument("-f", nargs="+", default=["0", "1", "2", "3", "4"],
                        help="cross-validation folds whose validation probabilities are fitted on (never 'all')")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name in each fold folder")
    parser.add_argument("--per_structure", action="store_true",
                        help="one temperature per class (softmax) or per channel (regions, confidence levels)")
    parser.add_argument("-o", default=None, metavar="FILE",
                        help="the file to write (default: <model folder>/temperature.json)")
    parser.add_argument("--folders", nargs="+", default=None, metavar="DIR",
                        help="instead of the folds: prediction folders (CASE.npz) of validation cases of this model")
    parser.add_argument("-ref", default=None, metavar="LABELS",
                        help="with --folders: the reference label maps CASE<ending> of those cases")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_calibrate``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.calibration.model import calibrate_model
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.models import ModelSpec

        spec = ModelSpec(dataset=args.d, trainer=args.tr, plans=args.p, configuration=args.c, folds=tuple(args.f),
                         checkpoint=args.chk)
        use_default_nnunet_paths()
        record = calibrate_model(spec, output=args.o, per_structure=args.per_structure, folders=args.folders,
                                 reference_dir=args.ref)
        temperatures = record["temperatures"]
        print(f"radconf: temperature{'s' if len(temperatures) > 1 else ''} of {record['model']} fitted on "
              f"{len(record['cases'])} validation case(s), {record['voxels']} voxels: "
              + ", ".join(f"{t:.3f}" for t in temperatures))
        if record["per_structure"]:
            for name, value in zip(record["channels"], temperatures):
                print(f"radconf:   {name}: T = {value:.3f}")
        print(f"radconf: NLL {record['nll_before']:.4f} -> {record['nll_after']:.4f}, ECE {record['ece_before']:.4f} "
              f"-> {record['ece_after']:.4f}")
        print(f"radconf: wrote {_written(args, spec)}")

    return run_cli(run)


def _written(args, spec) -> str:
    if args.o is not None:
        return args.o
    from radconf.calibration.temperature import TEMPERATURE_FILE
    from radconf.paths import require_nnunet_paths

    return str(spec.model_folder(require_nnunet_paths().results) / TEMPERATURE_FILE)


if __name__ == "__main__":
    raise SystemExit(main())
