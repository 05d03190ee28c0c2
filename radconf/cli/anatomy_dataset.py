"""radconf_anatomy_dataset: a raw dataset's images and target labels + one organ-mask input channel per structure.

Writes $nnUNet_raw/DatasetID_NAME: the source's image channels (copied), one uint8 0/1 mask channel per --anatomy
structure after them ("noNorm" in channel_names), the --target labels renumbered 1..n, and a "radconf": {"anatomy":
...} entry in dataset.json (see radconf/anatomy.py). The masks come from the source's own label maps (default),
another raw dataset of the same cases (--anatomy_dataset), or an organ model's cross-validated predictions
(--anatomy_model; held-out images then get their image channels only: predict their anatomy first at inference).
The source is never modified.
Examples:
  radconf_anatomy_dataset 501 -d 505 --anatomy bladder rectum            (targets: the other labels of 501)
  radconf_anatomy_dataset 503 -d 504 --anatomy bladder rectum gluteal_muscles --anatomy_dataset 501
  radconf_anatomy_dataset 503 -d 506 --anatomy bladder rectum --anatomy_model 501:nnUNetTrainer:radconfCPUPlans
"""
from __future__ import annotations

import argparse
import sys

from radconf.cli.arguments import dataset_id, make_parser
from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_anatomy_dataset", __doc__)
    parser.add_argument("source", help="source raw dataset: a folder, or a dataset id/name in $nnUNet_raw")
    parser.add_argument("-d", type=dataset_id, required=True, help="id of the new dataset (1..999)")
    parser.add_argument("-n", default=None, help="name of the new dataset (default: <source name>Anatomy)")
    parser.add_argument("--anatomy", nargs="+", required=True, metavar="NAME",
                        help="structures given as mask channels, in this channel order (label names of the anatomy "
                             "source)")
    parser.add_argument("--target", nargs="+", default=None, metavar="LABEL",
                        help="source labels kept as labels, renumbered 1..n in this order (default: every source "
                             "label that is not an anatomy structure); the rest becomes background")
    origin = parser.add_mutually_exclusive_group()
    origin.add_argument("--anatomy_dataset", default=None, metavar="ID",
                        help="cut the masks from this raw dataset's labelsTr/labelsTs (same case identifiers)")
    origin.add_argument("--anatomy_model", default=None, metavar="SPEC",
                        help="cut them from this model's cross-validated predictions (fold_k/validation), "
                             "DATASET[:TRAINER[:PLANS[:CONFIGURATION[:FOLDS]]]], e.g. "
                             "501:nnUNetTrainer:radconfCPUPlans:3d_fullres:0,1,2,3,4")
    parser.add_argument("--encoding", choices=["binary", "ct"], default="binary",
                        help="what the network sees: the binary mask, or the mask filled with CT values (the stored "
                             "channels are binary either way)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier radconf_anatomy_dataset output of the same id and name")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_anatomy_dataset``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.anatomy.dataset import make_anatomy_dataset
        from radconf.cli.environment import use_default_nnunet_paths

        paths = use_default_nnunet_paths()
        result = make_anatomy_dataset(args.source, args.d, args.n, anatomy=args.anatomy, targets=args.target,
                                      anatomy_dataset=args.anatomy_dataset, anatomy_model=args.anatomy_model,
                                      encoding=args.encoding, overwrite=args.overwrite, raw_root=paths.raw,
                                      results_root=paths.results)
        for line in result.warnings:
            print(f"radconf: warning: {line}", file=sys.stderr)
        channels = ", ".join(f"{i}: {n}" for i, n in result.anatomy.channels.items())
        print(f"radconf: wrote {len(result.train_cases)} training and {len(result.test_cases)} held-out case(s) into "
              f"{result.folder}; anatomy channels {{{channels}}} ({result.anatomy.source['kind']}: "
              f"{result.anatomy.source['from']}), labels {result.targets}")
        if result.anatomy.source["kind"] == "model" and result.test_cases:
            print("radconf: imagesTs holds the image channels only; at inference predict the anatomy with "
                  f"{result.anatomy.source['from']} first (two-stage prediction).")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
