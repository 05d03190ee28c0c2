"""radconf_determine_postprocessing: choose each structure's post-processing steps on validation predictions.

A model's cross-validation (-m: each fold's validation/ predictions against nnUNet_preprocessed/<dataset>/
gt_segmentations, as nnU-Net does), or a folder of predictions with their references (-i, -ref). Each step of the
search space is tried on top of the steps kept so far and kept only if the structure's mean Dice rises and its HD95
does not get worse (documentation/contours.md, "Post-processing"). Writes postprocessing.json (the kept steps, for
radconf_apply_postprocessing and radconf_predict --postprocessing) and postprocessing_steps.csv/.md (every step tried).
Example: radconf_determine_postprocessing -m 501:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import make_parser
from radconf.cli.errors import run_cli
from radconf.errors import InvalidInput


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_determine_postprocessing", __doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-m", default=None, metavar="SPEC",
                        help="a model, DATASET[:TRAINER[:PLANS[:CONFIG[:FOLDS]]]]: its folds' validation predictions "
                             "(e.g. 501:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4)")
    source.add_argument("-i", default=None, metavar="PRED_DIR",
                        help="instead of -m: a folder of predicted validation maps CASE<ending>")
    parser.add_argument("-ref", default=None, metavar="DIR", help="with -i: the reference maps CASE<ending>")
    parser.add_argument("-djfile", default=None, metavar="FILE",
                        help="with -i: the dataset.json of the predictions (default: the one in -i, else beside -ref)")
    parser.add_argument("-o", default=None, metavar="OUT_DIR",
                        help="output folder; default with -m: the model folder (the only input folder it may be); "
                             "required with -i")
    parser.add_argument("--search_space", default=None, metavar="FILE.json",
                        help="the steps to try, in order: a JSON list such as [{\"op\": \"largest_component\"}, "
                             "{\"op\": \"closing\", \"radius_mm\": 2}] (default: radconf's search space)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_determine_postprocessing``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.postprocessing import read_search_space
        from radconf.postprocessing.determine import OUTPUT_FILE, TABLE, determine_postprocessing
        from radconf.postprocessing.steps import steps_text

        search_space = read_search_space(args.search_space) if args.search_space else None
        validation = _validation(args)
        output = args.o if args.o is not None else validation.model_folder
        selection = determine_postprocessing(output, validation, search_space=search_space)
        cases = len(validation.files)
        print(f"radconf: post-processing chosen on {cases} validation case(s):")
        for structure in selection.postprocessing.structures:
            raw, final = selection.raw[structure.name], selection.final[structure.name]
            print(f"radconf:   {structure.name}: {steps_text(structure.steps)} (mean Dice {raw.mean_dice:.4f} -> "
                  f"{final.mean_dice:.4f}, "
                  f"mean HD95 {raw.mean_hd95:.2f} -> {final.mean_hd95:.2f} mm)")
        print(f"radconf: wrote {output}/{OUTPUT_FILE}, {TABLE}.csv and {TABLE}.md")

    return run_cli(run)


def _validation(args):
    """The validation set of -m or of -i/-ref (flag combinations checked first)."""
    from pathlib import Path

    from radconf.postprocessing import folder_validation, model_validation

    if args.m is not None:
        extra = [flag for flag in ("ref", "djfile") if getattr(args, flag) is not None]
        if extra:
            raise InvalidInput(f"-{', -'.join(extra)} go with -i; with -m the predictions are the model's validation "
                               f"folders and the references nnUNet_preprocessed/<dataset>/gt_segmentations.")
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.models import ModelSpec

        spec = ModelSpec.parse(args.m)
        paths = use_default_nnunet_paths()
        return model_validation(spec, paths.results, paths.preprocessed)
    if args.ref is None or args.o is None:
        raise InvalidInput("-i needs -ref DIR (the reference maps of the same cases) and -o OUT_DIR.")
    return folder_validation(Path(args.i), Path(args.ref), args.djfile)


if __name__ == "__main__":
    raise SystemExit(main())
