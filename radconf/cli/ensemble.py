"""radconf_ensemble: weighted ensemble of saved probabilities (CASE.npz), the counterpart of nnUNetv2_ensemble."""
from __future__ import annotations

import argparse
from pathlib import Path

from radconf.cli.arguments import finite_float, make_parser, positive_int
from radconf.cli.errors import run_cli
from radconf.cli.predict import summary_line
from radconf.errors import InvalidInput


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_ensemble", __doc__)
    parser.add_argument("-i", nargs="+", required=True, metavar="DIR",
                        help="prediction folders with CASE.npz and CASE<ending> (radconf_predict --save_probabilities, "
                             "or a model's fold_X/validation trained with --npz)")
    parser.add_argument("-o", required=True, help="output folder (never a member folder, nor inside or around one)")
    parser.add_argument("--weights", nargs="+", default=None, metavar="W",
                        help="weights.json of radconf_find_ensemble_weights (matched to the folders' models), or one "
                             "number per folder; default: equal weights")
    parser.add_argument("--save_npz", "--save_probabilities", dest="save_probabilities", action="store_true",
                        help="also write the ensemble's CASE.npz (--save_probabilities: the old spelling)")
    parser.add_argument("--save_disagreement", action="store_true",
                        help="also write the members' standard deviation of the foreground probability (disagreement/)")
    parser.add_argument("--level", type=positive_int, nargs="+", default=[], metavar="L",
                        help="confidence models: also write binary masks level >= L, L in 1..K")
    parser.add_argument("--level_probabilities", action="store_true",
                        help="confidence models: also write P(level >= c) maps")
    parser.add_argument("--continue_prediction", action="store_true",
                        help="keep the cases whose outputs are already there; ensemble the others")
    return parser


def folder_weights(folders: list[str], weights: list[str] | None) -> tuple[list[float] | None, list[str]]:
    """Weights per folder and the cases they were fitted on, from numbers or a weights.json."""
    from radconf.ensembles.weights import (
        check_weights,
        folder_model,
        match_weights,
        read_weights,
    )

    if not weights:
        return None, []
    if len(weights) == 1 and (weights[0].endswith(".json") or Path(weights[0]).exists()):
        data = read_weights(weights[0])
        models = [folder_model(f) for f in folders]
        unknown = [f for f, m in zip(folders, models) if m is None]
        if unknown:
            raise InvalidInput(f"Cannot tell which model predicted {unknown[0]} (no radconf_model.json, not a "
                             f"fold_X/validation folder), so the weights of {weights[0]} cannot be matched to it. "
                             f"Give the weights as numbers in folder order: --weights W1 W2 ...")
        return list(match_weights(models, data, where=weights[0])), list(data.get("validation_cases", []))
    try:
        values = [finite_float(w) for w in weights]
    except argparse.ArgumentTypeError:
        raise InvalidInput(f"--weights takes a weights.json or one finite number per folder, got "
                           f"{' '.join(weights)}.") from None
    if len(values) != len(folders):
        raise InvalidInput(f"{len(values)} weights for {len(folders)} folders; give one per folder.")
    check_weights(values, len(folders))
    return values, []


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.ensembles.folders import check_member_folders, ensemble_folders
        from radconf.ensembles.weights import warn_if_fitted_on

        check_member_folders([Path(f) for f in args.i])
        weights, fitted_cases = folder_weights(args.i, args.weights)
        cases = ensemble_folders(args.i, args.o, weights, save_probabilities=args.save_probabilities,
                                 save_disagreement=args.save_disagreement, overwrite=not args.continue_prediction,
                                 level_probabilities=args.level_probabilities, level_masks=args.level)
        warn_if_fitted_on(cases, fitted_cases)
        print(summary_line("ensembled", cases, args.o, f" of {len(args.i)} folders"))

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
