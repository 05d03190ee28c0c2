"""radconf_compare: paired comparison of methods from the metrics_per_case.csv files of radconf_evaluate.

Paired t-test and Wilcoxon signed-rank test per structure x metric x pair of methods (cases matched on case +
structure), corrected with the two-stage Benjamini-Krieger-Yekutieli procedure (q = 0.1) and plain BH.
Example: radconf_compare eval_unet/metrics_per_case.csv eval_ensemble/metrics_per_case.csv --metric dice assd_mm -o cmp/
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import finite_float, make_parser
from radconf.cli.errors import run_cli


def fdr_level(text: str) -> float:
    """An FDR level q, strictly between 0 and 1."""
    value = finite_float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} must lie strictly between 0 and 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_compare", __doc__)
    parser.add_argument("csv", nargs="+", help="two or more metrics_per_case.csv files, one per method")
    parser.add_argument("--metric", nargs="+", default=None,
                        help="metric columns (default: dice, surface_dice_*, assd_mm, hd95_mm)")
    parser.add_argument("--names", nargs="+", default=None, help="method names, one per CSV (default: folder names)")
    parser.add_argument("--baseline", default=None, help="compare every method with this one only (default: all pairs)")
    parser.add_argument("--q", type=fdr_level, default=0.1, help="FDR level of the two-stage BKY correction")
    parser.add_argument("--family", choices=("structure", "metric", "all"), default="structure",
                        help="correction family: the structures of one metric and pair (as in the chordoma ensemble "
                             "study), all pairs and structures of a metric, or everything")
    parser.add_argument("-o", default=None,
                        help="output folder for comparison.csv and comparison.md (default: print only)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_compare``; prints the Markdown table, returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.evaluation.compare import compare_methods

        result = compare_methods(csv_paths=args.csv, names=args.names, metrics=args.metric, q=args.q,
                                 baseline=args.baseline, family=args.family, output_dir=args.o)
        print(result.markdown)
        if args.o:
            print(f"radconf: wrote {result.files['csv']} and {result.files['markdown']}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
