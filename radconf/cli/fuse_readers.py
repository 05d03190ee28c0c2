"""radconf_fuse_readers: fuse several readers' masks per case into an nnU-Net raw dataset of confidence levels 0..K.

Reads SOURCE/imagesTr (+ imagesTs) and SOURCE/readers/<case>/<reader>_<trial><ending>, writes
$nnUNet_raw/DatasetID_NAME with the images copied, labelsTr/labelsTs level maps, consensus masks, agreement.csv,
agreement_cases.csv and agreement.png (see documentation/fusion.md). The source is never modified.
Example: radconf_fuse_readers 501 -d 502            (Dataset501_Phantom -> Dataset502_PhantomConfidence)
"""
from __future__ import annotations

import argparse
import sys

from radconf.cli.arguments import dataset_id, finite_float, make_parser, positive_int
from radconf.cli.errors import run_cli


def levels_argument(text: str) -> int:
    """argparse ``type=`` for K, the highest confidence level: 2..255."""
    value = positive_int(text)
    if not 2 <= value <= 255:
        raise argparse.ArgumentTypeError(f"{value} is not a highest level K: K is 2..255 (labels 0..K; K = 1 leaves "
                                         f"no level for partial agreement)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_fuse_readers", __doc__)
    parser.add_argument("source", help="source raw dataset: a folder, or a dataset id/name in $nnUNet_raw")
    parser.add_argument("-d", type=dataset_id, required=True, help="id of the new dataset (1..999)")
    parser.add_argument("-n", default=None, help="name of the new dataset (default: <source name>Confidence)")
    parser.add_argument("--readers", default=None, metavar="DIR",
                        help="folder of <case>/<reader>_<trial><ending> masks (default: <source>/readers)")
    parser.add_argument("-k", type=levels_argument, default=5, help="highest confidence level K (2..255), labels 0..K")
    parser.add_argument("--structure", default="target", help="name of the fused structure")
    parser.add_argument("--staple", action="store_true", help="also write STAPLE consensus masks (consensus_staple/)")
    parser.add_argument("--threshold", type=finite_float, default=None, metavar="T",
                        help="masks are not 0/1: use value > T (e.g. 0 for 0/255 masks, 0.5 for probability maps); "
                             "refused where T selects every voxel, or nothing of a two-valued mask")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier radconf_fuse_readers output of the same id and name")
    parser.add_argument("-np", type=positive_int, default=1, help="cases fused in parallel processes")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_fuse_readers``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.confidence.dataset import fuse_reader_dataset
        from radconf.confidence.report import summary_lines

        raw = use_default_nnunet_paths().raw
        result = fuse_reader_dataset(args.source, args.d, args.n, readers_folder=args.readers, k=args.k,
                                     structure=args.structure, staple=args.staple, threshold=args.threshold,
                                     overwrite=args.overwrite, num_workers=args.np, raw_root=raw)
        for line in result.warnings:
            print(f"radconf: warning: {line}", file=sys.stderr)
        print(f"radconf: fused {result.n_masks} masks of {len(result.train_cases)} training and "
              f"{len(result.test_cases)} held-out case(s) into {result.folder}")
        for line in summary_lines(result.summary):
            print(f"radconf: {line}")
        print("radconf: wrote labelsTr/" + (", labelsTs/" if result.test_cases else "") + ", consensus/"
              + (", consensus_staple/" if args.staple else "") + ", agreement.csv, agreement_cases.csv, agreement.png")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
