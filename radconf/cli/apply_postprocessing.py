"""radconf_apply_postprocessing: apply a post-processing to a folder of label maps or confidence level maps.

-pp is the postprocessing.json of radconf_determine_postprocessing or nnU-Net's postprocessing.pkl (read with an
unpickler that resolves nnU-Net's largest-component function only). Each map CASE<ending> of -i is written to -o with
its geometry, atomically; the input is never modified, and a failure leaves -o as it was found.
Example: radconf_apply_postprocessing -i predictions -o predictions_pp -pp model_folder/postprocessing.json
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import make_parser
from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_apply_postprocessing", __doc__)
    parser.add_argument("-i", required=True, help="folder of predicted maps CASE<ending>")
    parser.add_argument("-o", required=True, help="output folder (never -i, nor inside or around it)")
    parser.add_argument("-pp", required=True, metavar="FILE",
                        help="postprocessing.json (radconf_determine_postprocessing) or postprocessing.pkl (nnU-Net)")
    parser.add_argument("--file_ending", default=None,
                        help="map file ending (default: the dataset.json in -i, else .nii.gz)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_apply_postprocessing``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.postprocessing import apply_to_folder, read_postprocessing

        postprocessing = read_postprocessing(args.pp)
        cases = apply_to_folder(args.i, args.o, postprocessing, file_ending=args.file_ending)
        print(f"radconf: post-processed {len(cases)} map(s) into {args.o}")
        for line in postprocessing.describe().splitlines():
            print(f"radconf:   {line}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
