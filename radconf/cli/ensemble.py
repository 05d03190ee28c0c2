"""radconf_ensemble: weighted ensemble of saved probabilities (CASE.npz), the counterpart of nnUNetv2_ensemble."""
from __future__ import annotations

import argparse

from radconf.cli.errors import run_cli
from radconf.errors import InvalidInput


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", nargs="+", required=True, metavar="DIR",
                        help="prediction folders with CASE.npz and CASE<ending> (radconf_predict --save_probabilities, "
                             "or a model's fold_X/validation trained with --npz)")
    parser.add_argument("-o", required=True, help="output folder")
    parser.add_argument("--weights", nargs="+", default=None, metavar="W",
                        help="weights.json of radconf_find_ensemble_weights (matched to the folders' models), or one "
                             "number per folder; default: equal weights")
    parser.add_argument("--save_probabilities", action="store_true", help="also write the ensemble's CASE.npz")
    parser.add_argument("--save_disagreement", action="store_true",
                        help="also write the members' standard deviation of the foreground probability (disagreement/)")
    parser.add_argument("--level", type=int, nargs="+", default=[], metavar="L",
                        help="confidence models: also write binary masks level >= L")
    parser.add_argument("--level_probabilities", action="store_true",
                        help="confidence models: also write P(level >= c) maps")
    parser.add_argument("--continue_prediction", action="store_true", help="skip cases already ensembled")
    return parser


def folder_weights(folders: list[str], weights: list[str] | None) -> tuple[list[float] | None, list[str]]:
    """Weights per folder and the cases they were fitted on, from numbers or a weights.json."""
    from radconf.ensembles.weights import folder_model, match_weights, read_weights

    if not weights:
        return None, []
    if len(weights) == 1 and weights[0].endswith(".json"):
        data = read_weights(weights[0])
        models = [folder_model(f) for f in folders]
        unknown = [f for f, m in zip(folders, models) if m is None]
        if unknown:
            raise InvalidInput(f"Cannot tell which model predicted {unknown[0]} (no radconf_model.json, not a "
                             f"fold_X/validation folder), so the weights of {weights[0]} cannot be matched to it. "
                             f"Give the weights as numbers in folder order: --weights W1 W2 ...")
        return list(match_weights(models, data, where=weights[0])), list(data.get("validation_cases", []))
    try:
        values = [float(w) for w in weights]
    except ValueError:
        raise InvalidInput(f"--weights takes a weights.json or one number per folder, got {' '.join(weights)}.") from None
    if len(values) != len(folders):
        raise InvalidInput(f"{len(values)} weights for {len(folders)} folders; give one per folder.")
    return values, []


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.ensembles.folders import ensemble_folders
        from radconf.ensembles.weights import warn_if_fitted_on

        weights, fitted_cases = folder_weights(args.i, args.weights)
        cases = ensemble_folders(args.i, args.o, weights, save_probabilities=args.save_probabilities,
                                 save_disagreement=args.save_disagreement, overwrite=not args.continue_prediction,
                                 level_probabilities=args.level_probabilities, level_masks=args.level)
        warn_if_fitted_on(cases, fitted_cases)
        print(f"radconf: ensembled {len(cases)} case(s) of {len(args.i)} folders into {args.o}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
