"""radconf_partial_labels: say which structures each training case of a NIfTI dataset misses (partial labels).

The table is a CSV with the header case,missing; missing lists structure names (or label ids) separated by ';',
'|' or spaces, e.g.

    case,missing
    case_003,rectum;bladder
    case_007,bladder

It is checked against the raw dataset (cases, labels, label images) and recorded in
$nnUNet_preprocessed/DatasetID_NAME/radconf_partial_labels.json, beside the dataset.json entry radconf_import_dicom
writes; the raw dataset is not modified. Then train with -tr PartialLabelTrainer and evaluate with
radconf_evaluate --missing TABLE (or the dataset.json).
Examples: radconf_partial_labels -d 501 --missing cases.csv     (check and record)
          radconf_partial_labels -d 501                         (show what is known)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from radconf.cli.arguments import make_parser
from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_partial_labels", __doc__)
    parser.add_argument("-d", required=True, help="dataset id or name, e.g. 501")
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--missing", default=None, metavar="CSV", help="table of missing structures to record")
    action.add_argument("--clear", action="store_true", help="remove the recorded table")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_partial_labels``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.errors import MissingInput
        from radconf.partial.record import clear_record, describe, record_table
        from radconf.raw.checks import find_dataset_name

        paths = use_default_nnunet_paths()
        name = find_dataset_name(args.d, paths.raw)
        raw, preprocessed = paths.raw / name, paths.preprocessed / name
        if args.clear:
            done = clear_record(preprocessed)
            print(f"radconf: {'removed' if done else 'no recorded table in'} {preprocessed / 'radconf_partial_labels.json'}")
            return
        if args.missing is not None:
            table = Path(args.missing)
            if not table.is_file():
                raise MissingInput(f"Missing-structure table {table} not found; check the --missing path.")
            result = record_table(raw, preprocessed, table)
            print("\n".join(result.lines()))
            print(f"radconf: recorded in {result.record}; train with: radconf_train {args.d} 3d_fullres 0 "
                  f"-tr PartialLabelTrainer")
            return
        print("\n".join(describe(raw, preprocessed).lines()))

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
