"""radconf_margin: grow a GTV into a CTV (or a CTV into a PTV) by a margin in mm, per case of a folder of label maps.

Directions are the patient's (LPS, from each image's direction): --sup/--inf along the body axis, --ant/--post,
--left/--right; a direction not given takes --margin. With barriers the margin goes around them, never through
them; the result is cut to the body. Each mask CASE.nii.gz (0/1, the input's geometry), margin_report.csv and a
dataset.json go to -o, which appears whole or not at all.
Example: radconf_margin -i labelsTs -o ctv --label gtv --margin 8 --sup 15 --inf 15 --barrier_labels bladder,rectum
"""
from __future__ import annotations

import argparse
import math

from radconf.cli.arguments import make_parser, positive_int
from radconf.cli.errors import run_cli

DIRECTIONS = (("--sup", "superior"), ("--inf", "inferior"), ("--ant", "anterior"), ("--post", "posterior"),
              ("--left", "left"), ("--right", "right"))


def margin_mm(text: str) -> float:
    """A margin in mm: a finite number >= 0 (shrinking is --contract)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of mm") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of mm")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value:g} is negative: give the margin as a distance >= 0 and add "
                                         f"--contract to shrink")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_margin", __doc__)
    parser.add_argument("-i", required=True, help="folder of label maps CASE.nii.gz (or confidence level maps)")
    parser.add_argument("-o", required=True, help="output folder (new, empty or an earlier radconf_margin output; "
                                                  "never -i, --barriers or --body_dir, nor inside or around them)")
    parser.add_argument("--margin", required=True, type=margin_mm, metavar="MM", help="margin in mm (every direction "
                                                                                      "not given below)")
    for flag, name in DIRECTIONS:
        parser.add_argument(flag, dest=name, type=margin_mm, default=None, metavar="MM",
                            help=f"margin towards {name} in mm (default: --margin)")
    parser.add_argument("--contract", action="store_true", help="shrink by the margin instead of growing")
    gtv = parser.add_mutually_exclusive_group()
    gtv.add_argument("--label", default=None, metavar="NAME|ID", help="the GTV's label (a name needs a dataset.json)")
    gtv.add_argument("--level", type=positive_int, default=None, metavar="L",
                     help="-i holds confidence level maps: the GTV is level >= L")
    parser.add_argument("-djfile", default=None, help="dataset.json of -i (default: -i/dataset.json, else the one "
                                                      "next to -i)")
    parser.add_argument("--barriers", default=None, metavar="DIR",
                        help="label maps CASE.nii.gz on the grid of -i holding the barrier (and body) labels "
                             "(default: the maps of -i)")
    parser.add_argument("--barrier_labels", nargs="+", default=[], metavar="LABELS",
                        help="structures the margin goes around, names or ids, comma-separated (e.g. bone,air)")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--body", default=None, metavar="LABEL", help="the body's label in the barrier maps; the "
                                                                    "result is cut to it")
    body.add_argument("--body_dir", default=None, metavar="DIR", help="body masks CASE.nii.gz (non-zero = body)")
    parser.add_argument("--output_label", default="ctv", metavar="NAME", help="the mask's name in -o/dataset.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_margin``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.contours import Margin
        from radconf.io.cases import format_case_list
        from radconf.margins import grow_folder

        margin = Margin(radial=args.margin, **{name: getattr(args, name) for _, name in DIRECTIONS})
        reports = grow_folder(input_folder=args.i, output_folder=args.o, margin=margin, label=args.label,
                              level=args.level, dataset_json=args.djfile, barrier_folder=args.barriers,
                              barrier_labels=args.barrier_labels, body_label=args.body, body_folder=args.body_dir,
                              contract=args.contract, output_label=args.output_label)
        verb = "shrank" if args.contract else "grew"
        print(f"radconf: {verb} {len(reports)} case(s) by {margin.describe()} into {args.o} "
              f"(report: margin_report.csv)")
        clipped = [r.case for r in reports if r.clipped]
        if clipped:
            print(f"radconf: the image border cut the margin in {len(clipped)} case(s): {format_case_list(clipped)}")
        empty = [r.case for r in reports if r.gtv_cm3 == 0]
        if empty:
            print(f"radconf: no GTV in {len(empty)} case(s) (empty masks written): {format_case_list(empty)}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
