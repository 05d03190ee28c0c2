"""radconf_import_dicom: CT series and RT structure sets (a TPS export, any folder tree) -> an nnU-Net raw dataset.

Writes $nnUNet_raw/DatasetID_NAME (imagesTr/labelsTr, readers/<case>/<reader>_<trial>.nii.gz for --multi_reader
structures, dataset.json with the missing structures per case, import_report.csv) and the key file
DatasetID_NAME_key.csv beside it (case -> patient; the only place patient ids are written). The input is only read.
See documentation/dicom_rt.md.
Example: radconf_import_dicom /data/tps_export -d 510 -n Prostate --structures map.json --multi_reader gtv
"""
from __future__ import annotations

import sys

from radconf.cli.arguments import dataset_id, make_parser, positive_int
from radconf.cli.errors import run_cli

MAX_WARNINGS_SHOWN = 10


def build_parser():
    parser = make_parser("radconf_import_dicom", __doc__)
    parser.add_argument("input", help="folder tree of DICOM files (CT series and RTSTRUCTs; other files ignored)")
    parser.add_argument("-d", type=dataset_id, required=True, help="id of the new dataset (1..999)")
    parser.add_argument("-n", default="DICOM", help="name of the new dataset")
    parser.add_argument("--structures", default=None, metavar="MAP.json",
                        help='structure -> ROI names, e.g. {"bladder": ["Bladder", "BLADDER_wall"]} (keys in label '
                             'order; an alias ending in * matches a prefix). Default: every ROI name is a structure')
    parser.add_argument("--multi_reader", nargs="+", default=(), metavar="STRUCTURE",
                        help="structures also written per reader trial (readers/<case>/<reader>_<trial>.nii.gz) for "
                             "radconf_fuse_readers")
    parser.add_argument("--key", default=None, metavar="FILE",
                        help="key file case -> patient (default: <dataset folder>_key.csv beside the dataset)")
    parser.add_argument("--keep_patient_ids", action="store_true",
                        help="name cases after the PatientID instead of CASE_0001, ...")
    parser.add_argument("--priority", nargs="+", default=None, metavar="STRUCTURE",
                        help="structures that win voxels shared with others, first wins (default: the smallest "
                             "structure wins)")
    parser.add_argument("--reader_from", choices=("label", "folder"), default="label",
                        help="who drew a structure set: its StructureSetLabel, or the name of its folder")
    parser.add_argument("--reader_pattern", default=None, metavar="REGEX",
                        help="readers named in ROI names instead, e.g. '(?P<structure>.+)_R(?P<reader>\\d+)' for "
                             "GTV_R2")
    parser.add_argument("--reference_reader", default=None, metavar="READER",
                        help="reader whose structures go into labelsTr first (default: the earliest structure set)")
    parser.add_argument("--reader_fractions", type=positive_int, default=None, metavar="S",
                        help="write reader masks as partial-volume fractions (S x S sub-samples per voxel); fuse "
                             "them with radconf_fuse_readers --threshold 0.5")
    parser.add_argument("--skip_unreadable", action="store_true",
                        help="skip DICOM files that cannot be read (listed) instead of stopping")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier radconf_import_dicom output of the same id and name, and its key")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_import_dicom``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.dicom.importer import import_dicom

        raw = use_default_nnunet_paths().raw
        result = import_dicom(args.input, args.d, args.n, structures_file=args.structures,
                              multi_reader=args.multi_reader, key_file=args.key, priority=args.priority,
                              reader_from=args.reader_from, reader_pattern=args.reader_pattern,
                              reference_reader=args.reference_reader, reader_fractions=args.reader_fractions,
                              keep_patient_ids=args.keep_patient_ids, skip_unreadable=args.skip_unreadable,
                              overwrite=args.overwrite, raw_root=raw, progress=True)
        warnings = [line for case in result.results for line in case.warnings]
        for line in warnings[:MAX_WARNINGS_SHOWN]:
            print(f"radconf: warning: {line}", file=sys.stderr)
        if len(warnings) > MAX_WARNINGS_SHOWN:
            print(f"radconf: warning: ... and {len(warnings) - MAX_WARNINGS_SHOWN} more (import_warnings.txt)",
                  file=sys.stderr)
        for line in result.summary:
            print(f"radconf: {line}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
