"""radconf_evaluate: evaluate a folder of predicted label images against a folder of reference label images.

Writes metrics_per_case.csv, summary.json, summary.md and plots/*.png into -o (see documentation/evaluation.md), all
at once when every case is evaluated: a failed evaluation leaves -o as it was. Inputs are never written: -o may not
be, lie inside or contain -ref or -pred.
Example: radconf_evaluate -ref nnUNet_raw/Dataset501_Phantom/labelsTr -pred predictions/ -o eval/
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import make_parser, positive_float, positive_int
from radconf.cli.errors import run_cli
from radconf.errors import InvalidInput

HD95_CHOICES = ("surface-distance", "pooled", "unweighted", "voxel")


def parse_label_arguments(values: list[str]) -> dict[str, int | list[int]]:
    """Parses ``-l`` values: ``3``, ``name=3`` or ``name=1,2,3`` (a region: union of ids).

    Raises:
        ValueError: for anything that is not an integer id.
    """
    labels: dict[str, int | list[int]] = {}
    for value in values:
        name, _, ids_text = value.rpartition("=") if "=" in value else (value, "", value)
        try:
            ids = [int(part) for part in ids_text.split(",")]
        except ValueError:
            raise InvalidInput(
                f"-l {value!r}: give label ids as integers, e.g. '-l 1 2', '-l bladder=1 rectum=2' or '-l pelvis=1,2'."
            ) from None
        labels[name.strip() or ids_text] = ids[0] if len(ids) == 1 else ids
    return labels


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_evaluate", __doc__)
    parser.add_argument("-ref", required=True, help="folder of reference label images (e.g. .../labelsTr)")
    parser.add_argument("-pred", required=True, help="folder of predicted label images (same case names)")
    parser.add_argument("-o", default=None,
                        help="output folder (default: <pred>_evaluation next to the prediction folder); it may hold "
                             "other files and an earlier evaluation's outputs, which are replaced")
    parser.add_argument("-l", nargs="+", default=None, metavar="LABEL",
                        help="structures to evaluate: ids ('1 2'), name=id ('bladder=1') or name=id,id (union). "
                             "Default: dataset.json labels, else every id found")
    parser.add_argument("-djfile", default=None, help="dataset.json (default: <ref>/../dataset.json if present)")
    parser.add_argument("--tolerance", nargs="+", type=positive_float, default=[2.0, 3.0], metavar="MM",
                        help="surface Dice tolerances in mm")
    parser.add_argument("--confidence", type=positive_int, default=None, metavar="K",
                        help="images are confidence-level maps 0..K: per-level table, continuous metrics, calibration")
    parser.add_argument("--hd95", choices=HD95_CHOICES, default="surface-distance",
                        help="HD95 convention (surface-distance = max of the two directed surfel-area weighted 95th "
                             "percentiles)")
    parser.add_argument("--allow_missing", "--allow-missing", dest="allow_missing", action="store_true",
                        help="evaluate the cases that have a prediction and list the missing ones")
    parser.add_argument("--file_ending", "--file-ending", dest="file_ending", default=None,
                        help="image file ending, e.g. .nii.gz (default: dataset.json, else .nii.gz)")
    parser.add_argument("--no_plots", "--no-plots", dest="no_plots", action="store_true",
                        help="do not write PNG plots")
    parser.add_argument("-np", type=positive_int, default=1, help="worker processes")
    parser.add_argument("--missing", default=None, metavar="PATH",
                        help="structures the references do not annotate, per case (case,missing CSV table, a "
                             "dataset.json with the radconf entry, or radconf_partial_labels.json): left out as "
                             "unknown instead of scoring false positives; default: the dataset.json's radconf entry")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_evaluate``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from pathlib import Path

        from radconf.evaluation import evaluate_folders
        from radconf.evaluation.report import mean_dice_text
        from radconf.io.locations import check_output_location

        labels = parse_label_arguments(args.l) if args.l else None
        pred = Path(args.pred).resolve()
        output = Path(args.o) if args.o else pred.with_name(pred.name + "_evaluation")
        check_output_location(output, [("the reference folder -ref", args.ref),
                                       ("the prediction folder -pred", args.pred)])
        result = evaluate_folders(
            reference_dir=args.ref, prediction_dir=args.pred, labels=labels, dataset_json=args.djfile,
            tolerances_mm=tuple(args.tolerance), output_dir=output, allow_missing=args.allow_missing,
            num_processes=args.np, hd95_convention=args.hd95, confidence_levels=args.confidence,
            file_ending=args.file_ending, plots=not args.no_plots, missing_structures=args.missing,
        )
        print(f"radconf: evaluated {len(result.cases)} case(s); mean Dice over structures "
              f"{mean_dice_text(result.mean_dice, 2)}")
        unknown = result.settings.get("unknown_structures", {})
        if unknown:
            print(f"radconf: {sum(map(len, unknown.values()))} case-structure pair(s) not annotated in the reference "
                  f"left out as unknown (from {result.settings['missing_structures_source']}; listed in summary.json)")
        if result.missing_cases:
            print(f"radconf: NOT evaluated (no prediction): {', '.join(result.missing_cases)}")
        print(f"radconf: wrote {output / 'metrics_per_case.csv'}, summary.json, summary.md"
              + ("" if args.no_plots else " and plots/"))

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
