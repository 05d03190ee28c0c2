"""radconf_evaluate: evaluate a folder of predicted label images against a folder of reference label images.

Writes metrics_per_case.csv, summary.json, summary.md and plots/*.png into -o (see documentation/evaluation.md), all
at once when every case is evaluated: a failed evaluation leaves -o as it was. Inputs are never written: -o may not
be, lie inside or contain -ref or -pred.
With --probabilities DIR (CASE.npz of --save_probabilities) instead of -pred: calibration of the probability maps
(ECE, adaptive ECE, MCE, Brier; whole image and near each structure), calibration_probabilities.csv/.json and
plots/reliability_<structure>.png; with --readers, also against several readers' masks of one structure.
Example: radconf_evaluate -ref nnUNet_raw/Dataset501_Phantom/labelsTr -pred predictions/ -o eval/
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import make_parser, non_negative_float, positive_float, positive_int
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
    parser.add_argument("-pred", default=None,
                        help="folder of predicted label images (same case names); or give --probabilities")
    parser.add_argument("--probabilities", default=None, metavar="DIR",
                        help="instead of -pred: folder of CASE.npz probability maps (--save_probabilities) whose "
                             "calibration is evaluated")
    parser.add_argument("-o", default=None,
                        help="output folder (default: <pred>_evaluation, or <probabilities>_calibration, next to the "
                             "input folder); it may hold other files and an earlier evaluation's outputs, which are "
                             "replaced")
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
    calibration = parser.add_argument_group("calibration of probability maps (with --probabilities)")
    calibration.add_argument("--bins", type=positive_int, default=None,
                             help="bins of ECE, adaptive ECE and MCE against the reference (default: 15)")
    calibration.add_argument("--reader_bins", "--reader-bins", dest="reader_bins", type=positive_int, default=None,
                             help="bins against the readers (default: 50, as CURVAS)")
    calibration.add_argument("--calibration_margin", "--calibration-margin", dest="calibration_margin",
                             type=non_negative_float, default=None, metavar="MM",
                             help="margin in mm around the box of reference or prediction (p >= 0.5) that makes the "
                                  "'near the structure' region (default: 10)")
    calibration.add_argument("--readers", default=None, metavar="DIR",
                             help="folder of <case>/<mask><ending> binary masks, one per reader (and trial)")
    calibration.add_argument("--reader_structure", "--reader-structure", dest="reader_structure", default=None,
                             metavar="NAME", help="the structure the reader masks contour (name or label id)")
    return parser


CALIBRATION_FLAGS = (("bins", "--bins"), ("reader_bins", "--reader_bins"),
                     ("calibration_margin", "--calibration_margin"), ("readers", "--readers"), ("reader_structure", "--reader_structure"))


def check_input_flags(args: argparse.Namespace) -> None:
    """Exactly one of -pred and --probabilities, and each one's flags only with it.

    Raises:
        InvalidInput: naming the flags and the fix.
    """
    if (args.pred is None) == (args.probabilities is None):
        raise InvalidInput("Give -pred (label maps: overlap and distance metrics) or --probabilities (CASE.npz: "
                           "calibration), one of them" + (", not both; run twice for both." if args.pred else "."))
    if args.probabilities is None:
        given = [flag for name, flag in CALIBRATION_FLAGS if getattr(args, name) is not None]
        if given:
            raise InvalidInput(f"{given[0]} belongs to the calibration of probability maps: add --probabilities DIR, "
                               f"or drop {given[0]}.")
    else:
        for flag, value in (("--confidence", args.confidence), ("--missing", args.missing)):
            if value is not None:
                raise InvalidInput(f"{flag} applies to label maps (-pred), not to --probabilities (what the channels "
                                   f"are comes from dataset.json); drop {flag}.")


def run_calibration(args: argparse.Namespace) -> None:
    """The ``--probabilities`` branch: :func:`radconf.calibration.evaluate_probabilities` and its summary lines."""
    from pathlib import Path

    from radconf.calibration import evaluate_probabilities

    probabilities = Path(args.probabilities).resolve()
    output = Path(args.o) if args.o else probabilities.with_name(probabilities.name + "_calibration")
    result = evaluate_probabilities(
        args.probabilities, args.ref, output, dataset_json=args.djfile, structures=args.l,
        n_bins=args.bins or 15, reader_bins=args.reader_bins or 50,
        margin_mm=10.0 if args.calibration_margin is None else args.calibration_margin,
        readers_dir=args.readers, reader_structure=args.reader_structure, file_ending=args.file_ending,
        plots=not args.no_plots, allow_missing=args.allow_missing,
    )
    print(f"radconf: calibration of {len(result.cases)} case(s); near the structure:")
    for row in result.rows:
        if row["region"] == "near_structure" and row["reference"] in ("reference", "readers_fraction"):
            against = "" if row["reference"] == "reference" else " (against the reader fraction)"
            print(f"radconf:   {row['structure']}{against}: ECE {_percent(row['ece'])} ({row['bins']} bins), "
                  f"Brier {row['brier']:.4f}")
    if result.missing_cases:
        print(f"radconf: NOT evaluated (no probabilities): {', '.join(result.missing_cases)}")
    print(f"radconf: wrote {output / 'calibration_probabilities.csv'}, calibration_probabilities.json"
          + ("" if args.no_plots else " and plots/"))


def _percent(value: float) -> str:
    import math

    return "n/a" if math.isnan(value) else f"{100 * value:.2f} %"


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_evaluate``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from pathlib import Path

        check_input_flags(args)
        if args.probabilities is not None:
            run_calibration(args)
            return

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
