"""radconf_fuse_readers: fuse several readers' masks per case into an nnU-Net raw dataset of confidence levels 0..K.

Reads SOURCE/imagesTr (+ imagesTs) and SOURCE/readers/<case>/<reader>_<trial><ending>, writes
$nnUNet_raw/DatasetID_NAME with the images copied, labelsTr/labelsTs level maps, consensus masks, agreement.csv,
agreement_cases.csv and agreement.png (see documentation/fusion.md). The source is never modified.
Example: radconf_fuse_readers 501 -d 502            (Dataset501_Phantom -> Dataset502_PhantomConfidence)
"""
from __future__ import annotations

import argparse

from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radconf_fuse_readers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="source raw dataset: a folder, or a dataset id/name in $nnUNet_raw")
    parser.add_argument("-d", type=int, required=True, help="id of the new dataset (1..999)")
    parser.add_argument("-n", default=None, help="name of the new dataset (default: <source name>Confidence)")
    parser.add_argument("--readers", default=None, metavar="DIR",
                        help="folder of <case>/<reader>_<trial><ending> masks (default: <source>/readers)")
    parser.add_argument("-k", type=int, default=5, help="highest confidence level K, labels 0..K (default 5)")
    parser.add_argument("--structure", default="target", help="name of the fused structure (default: target)")
    parser.add_argument("--staple", action="store_true", help="also write STAPLE consensus masks (consensus_staple/)")
    parser.add_argument("--threshold", type=float, default=None, metavar="T",
                        help="masks are not 0/1: use value > T (e.g. 0 for 0/255 masks, 0.5 for probability maps)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier radconf_fuse_readers output of the same id and name")
    parser.add_argument("-np", type=int, default=1, help="cases fused in parallel processes (default: 1)")
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
        print(f"radconf: fused {result.n_masks} masks of {len(result.train_cases)} training and "
              f"{len(result.test_cases)} held-out case(s) into {result.folder}")
        for line in summary_lines(result.summary):
            print(f"radconf: {line}")
        print("radconf: wrote labelsTr/" + (", labelsTs/" if result.test_cases else "") + ", consensus/"
              + (", consensus_staple/" if args.staple else "") + ", agreement.csv, agreement_cases.csv, agreement.png")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
