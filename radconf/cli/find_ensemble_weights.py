"""radconf_find_ensemble_weights: fit ensemble weights on validation predictions (mean IoU over structures)."""
from __future__ import annotations

import argparse

from radconf.cli.arguments import make_parser, non_negative_int
from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_find_ensemble_weights", __doc__)
    members = parser.add_mutually_exclusive_group(required=True)
    members.add_argument("-m", nargs="+", metavar="SPEC",
                         help="members, DATASET[:TRAINER[:PLANS[:CONFIG[:FOLDS]]]]; their fold_X/validation/*.npz "
                              "(radconf_train ... --npz) are used, e.g. 501:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4")
    members.add_argument("--folders", nargs="+", metavar="DIR",
                         help="instead of -m: prediction folders (CASE.npz) of the same validation cases")
    parser.add_argument("--reference", default=None, metavar="DIR",
                        help="with --folders: reference label maps CASE<ending> of the validation cases")
    parser.add_argument("-o", required=True, help="output folder (weights.json, ensemble_validation.md/.csv/.png); "
                                                  "never a member or reference folder, nor inside or around one")
    parser.add_argument("--objective", choices=["hard", "soft"], default="hard",
                        help="hard: mean IoU of the decoded ensemble (searched from the soft-IoU optimum); soft: the "
                             "soft-IoU optimum only")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the optimiser's random starts")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.ensembles.fitting import find_ensemble_weights
        from radconf.models import ModelSpec

        use_default_nnunet_paths()
        result = find_ensemble_weights(args.o, members=[ModelSpec.parse(m) for m in args.m or ()],
                                       folders=args.folders or (), reference_dir=args.reference,
                                       objective=args.objective, seed=args.seed)
        for name, weight in zip(result["members"], result["weights"]):
            print(f"{weight:.3f}  {name}")
        scores = result["validation"]
        print(f"mean IoU on {len(result['validation_cases'])} validation cases: average ensemble "
              f"{scores['average ensemble']['mean_iou']:.4f}, optimal ensemble "
              f"{scores['optimal ensemble']['mean_iou']:.4f}; written to {args.o}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
