"""radconf_export_dicom: predicted label maps -> RTSTRUCT, DICOM-SEG and Slicer .seg.nrrd on their CT series.

Each -i <case>.nii.gz is put back onto its CT series in --dicom (found through the --key file of
radconf_import_dicom, or else through its grid): OUT/<case>/<case>_RTSTRUCT.dcm, <case>_SEG.dcm, <case>.seg.nrrd,
and OUT/export_report.csv (the RTSTRUCT read back against the prediction). Structure names and colours come from
the model's dataset.json; confidence-level maps become nested ROIs <structure>_level>=c. See documentation/dicom_rt.md.
Example: radconf_export_dicom -i predictions -o to_tps --dicom /data/tps_export --key Dataset510_Prostate_key.csv
"""
from __future__ import annotations

from radconf.cli.arguments import make_parser
from radconf.cli.errors import run_cli


def build_parser():
    parser = make_parser("radconf_export_dicom", __doc__)
    parser.add_argument("-i", required=True, help="folder of predicted label maps <case>.nii.gz (radconf_predict -o)")
    parser.add_argument("--dicom", required=True, help="folder tree holding the source CT series")
    parser.add_argument("-o", required=True, help="output folder (never inside or around an input)")
    parser.add_argument("--format", nargs="+", default=["rtstruct"], choices=("rtstruct", "seg", "segnrrd"),
                        help="what to write")
    parser.add_argument("--key", default=None, metavar="FILE",
                        help="key file of radconf_import_dicom (case -> series); default: match series by grid")
    parser.add_argument("--dataset_json", default=None, metavar="FILE",
                        help="structure names (default: -i/dataset.json, which radconf_predict writes)")
    parser.add_argument("--fractional", action="store_true",
                        help="FRACTIONAL DICOM-SEG from the saved probabilities (radconf_predict --save_probabilities; "
                             "confidence models: --level_probabilities) instead of BINARY masks")
    parser.add_argument("--description", default="", help="model description written into the series descriptions")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier exports of the same cases")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_export_dicom``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.dicom.exporter import export_dicom

        report = export_dicom(args.i, args.dicom, args.o, formats=args.format, key_file=args.key,
                              dataset_json=args.dataset_json, description=args.description, overwrite=args.overwrite,
                              fractional=args.fractional)
        print(f"radconf: exported {' + '.join(args.format)} into {args.o}; report: {report}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
