"""radconf_crop_dataset: a raw nnU-Net dataset -> a new raw dataset cropped around some of its labels.

Each case is cut to the bounding box of the --around labels in its label map, grown by --margin mm on every side
(margin / spacing voxels per axis, rounded up) and clipped to the image; images and label maps keep their world
geometry. The new dataset's crop_boxes.json records every case's box; a case in which none of the labels is found is
kept whole, with a warning. With --from_model the boxes come from a localiser model's predictions of the source's
images instead of the label maps, so the fine model trains on the crops it sees at radconf_predict --localizer.
The source is never modified (see documentation/localise_crop.md).
Examples: radconf_crop_dataset -d 601 -o 613 --around bladder,rectum,prostate --margin 20
          (Dataset601_PelvisCT -> Dataset613_PelvisCTCrop)
          radconf_crop_dataset -d 601 -o 614 --around bladder,rectum --margin 20
          --from_model 601:nnUNetTrainer:nnUNetPlans:2d:all
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import make_parser, non_negative_float, positive_int
from radconf.cli.errors import run_cli
from radconf.errors import InvalidInput


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_crop_dataset", __doc__)
    parser.add_argument("-d", required=True, metavar="SRC",
                        help="source raw dataset: a dataset id/name in $nnUNet_raw (e.g. 501), or its folder")
    parser.add_argument("-o", required=True, metavar="DST",
                        help="new dataset: an id (name = source name + 'Crop') or DatasetXXX_Name; it must not "
                             "exist (an empty folder is fine)")
    parser.add_argument("--around", required=True, metavar="LABEL[,LABEL]",
                        help="labels (names or ids of the source's dataset.json) whose bounding box is kept")
    parser.add_argument("--margin", type=non_negative_float, required=True, metavar="MM",
                        help="margin in mm added on every side of the labels' bounding box")
    parser.add_argument("--from_model", default=None, metavar="SPEC",
                        help="take the boxes from this localiser model's predictions of the source's images (the "
                             "--around labels are its labels), DATASET[:TRAINER[:PLANS[:CONFIG[:FOLDS]]]], e.g. "
                             "601:nnUNetTrainer:nnUNetPlans:2d:all")
    parser.add_argument("-device", default=None, choices=["cpu", "cuda", "mps"],
                        help="--from_model: where the localiser runs (default: cuda when available, else cpu)")
    parser.add_argument("-np", type=positive_int, default=2, help="--from_model: nnU-Net's worker processes")
    parser.add_argument("--disable_tta", action="store_true", help="--from_model: no test-time mirroring")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``radconf_crop_dataset``; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.cropping.dataset import crop_dataset

        around = [item.strip() for item in args.around.split(",") if item.strip()]
        raw = use_default_nnunet_paths().raw
        model, run_options = None, None
        if args.from_model is not None:
            from radconf.devices import configure_threads
            from radconf.inference import RunOptions
            from radconf.models import ModelSpec

            model = ModelSpec.parse(args.from_model)
            configure_threads(args.device)
            run_options = RunOptions(device=args.device, num_processes=args.np, use_mirroring=not args.disable_tta)
        elif args.device is not None or args.disable_tta:
            raise InvalidInput("-device and --disable_tta set how the --from_model localiser runs; add --from_model "
                               "SPEC or drop them.")
        result = crop_dataset(args.d, args.o, around, args.margin, from_model=model, run=run_options, raw_root=raw)
        origin = f" (boxes from {model})" if model is not None else ""
        print(f"radconf: wrote {result.folder} ({len(result.boxes)} cases cropped around {', '.join(result.around)} "
              f"with {args.margin:g} mm{origin}, {len(result.whole)} kept whole); boxes in "
              f"{result.folder / 'crop_boxes.json'}")
        print(f"radconf: next: radconf_plan_and_preprocess -d {result.dataset_id}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
