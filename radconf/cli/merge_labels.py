"""radconf_merge_labels: a raw nnU-Net dataset -> a new raw dataset with labels merged, renamed or dropped.

Images are copied, label maps rewritten with the new ids (background 0, then 1..N in the order of their first source
label); dataset.json records the mapping under "radconf" (see documentation/clinical_training.md, "Label merging").
The source is never modified.
Example: radconf_merge_labels -d 601 -o 612 --merge muscle=muscle_l,muscle_r --rename gtv=tumour --drop couch
         (Dataset601_PelvisCT -> Dataset612_PelvisCTMerged)
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import make_parser
from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_merge_labels", __doc__)
    parser.add_argument("-d", required=True, metavar="SRC",
                        help="source raw dataset: a dataset id/name in $nnUNet_raw (e.g. 501), or its folder")
    parser.add_argument("-o", required=True, metavar="DST",
                        help="new dataset: an id (name = source name + 'Merged') or DatasetXXX_Name; it must not "
                             "exist (an empty folder is fine)")
    parser.add_argument("--merge", action="extend", nargs="+", default=[], metavar="NEW=a,b",
                        help="join two or more labels into one label NEW (repeatable)")
    parser.add_argument("--rename", action="extend", nargs="+", default=[], metavar="OLD=NEW",
                        help="give a label a new name (repeatable)")
    parser.add_argument("--drop", action="extend", nargs="+", default=[], metavar="LABEL",
                        help="turn a label into background (repeatable)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_merge_labels``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.raw.merge import mapping_lines, merge_label_dataset
        from radconf.raw.rules import parse_rules

        rules = parse_rules(args.merge, args.rename, args.drop)  # syntax first: no folder is needed for it
        raw = use_default_nnunet_paths().raw
        result = merge_label_dataset(args.d, args.o, rules, raw_root=raw)
        print(f"radconf: wrote {result.folder} ({result.cases} cases, {len(result.mapping.new_labels) - 1} labels)"
              + (f"; copied {', '.join(result.readers_copied)}/" if result.readers_copied else ""))
        print("radconf: label mapping (source -> new):")
        for line in mapping_lines(result.mapping):
            print(f"radconf:   {line}")
        print(f"radconf: next: radconf_plan_and_preprocess -d {result.dataset_id}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
