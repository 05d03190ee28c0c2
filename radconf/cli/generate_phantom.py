"""radconf_generate_phantom: write the synthetic pelvic phantom as an nnU-Net raw dataset (optionally also its
CT -> CTV dataset, --ctv_dataset).

Every argument is checked before anything is written; a failed run leaves no dataset and no .partial folder.
Example: radconf_generate_phantom -d 501 --num_train 16 --ctv_dataset 503
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import dataset_id, make_parser, non_negative_int, positive_float, positive_int
from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_generate_phantom", __doc__)
    parser.add_argument("-d", type=dataset_id, default=501, help="dataset id (1..999)")
    parser.add_argument("--name", default="Phantom", help="dataset name (letters, digits, underscores)")
    parser.add_argument("--num_train", "--num-train", dest="num_train", type=positive_int, default=16,
                        help="training cases")
    parser.add_argument("--num_test", "--num-test", dest="num_test", type=non_negative_int, default=4,
                        help="held-out cases in imagesTs/labelsTs")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed (0 or more)")
    parser.add_argument("--spacing", type=positive_float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="nominal spacing in mm (default 3 2 2)")
    parser.add_argument("--readers", type=positive_int, default=None, help="simulated readers (default 4)")
    parser.add_argument("--trials", type=positive_int, default=None, help="trials per reader (default 3)")
    parser.add_argument("--femoral_heads", "--femoral-heads", dest="femoral_heads", action="store_true",
                        help="also label the femoral heads (left/right bone; train without x-mirroring)")
    parser.add_argument("-o", default=None, help="nnUNet_raw folder (default: $nnUNet_raw or radconf's default)")
    parser.add_argument("--ctv_dataset", "--ctv-dataset", dest="ctv_dataset", type=dataset_id, default=None,
                        metavar="ID",
                        help="also write the phantom's CT -> CTV dataset (labels: ctv = 1) as DatasetID_PhantomCTV, "
                             "the data of the anatomy-guided CTV benchmark (e.g. --ctv_dataset 503)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a phantom (and CTV dataset) made with other parameters")
    return parser


def _config(args: argparse.Namespace):
    from dataclasses import replace

    from radconf.datasets.phantom import PhantomConfig

    config = PhantomConfig(seed=args.seed, label_femoral_heads=args.femoral_heads)
    if args.spacing:
        config = replace(config, spacing=tuple(args.spacing))
    readers = config.readers
    return replace(config, readers=replace(
        readers, n_readers=readers.n_readers if args.readers is None else args.readers,
        n_trials=readers.n_trials if args.trials is None else args.trials))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from pathlib import Path

        from radconf.datasets.phantom import writer
        from radconf.datasets.phantom.ctv_dataset import check_ctv_output, write_ctv_dataset
        from radconf.errors import InvalidInput

        config = _config(args)
        writer.check_phantom_config(config)
        if args.ctv_dataset == args.d:
            raise InvalidInput(f"--ctv_dataset {args.ctv_dataset} is the phantom's own id (-d {args.d}); give the CTV "
                               f"dataset an id of its own, e.g. --ctv_dataset {args.d % 999 + 1}.")
        if args.o is None:
            from radconf.cli.environment import use_default_nnunet_paths

            raw = use_default_nnunet_paths().raw
        else:
            raw = Path(args.o)
        writer.check_raw_root(raw)
        if args.ctv_dataset is not None:  # refused now, not after the phantom is written
            check_ctv_output(raw, args.ctv_dataset, writer.dataset_folder_name(args.d, args.name),
                             writer.phantom_parameters(config, args.num_train, args.num_test),
                             overwrite=args.overwrite)
        result = writer.write_phantom_dataset(raw, dataset_id=args.d, name=args.name, num_train=args.num_train,
                                              num_test=args.num_test, config=config, overwrite=args.overwrite)
        state = "already present (same parameters), reused" if result.reused else "written"
        print(f"radconf: phantom {state}: {result.folder} ({len(result.train_cases)} training, "
              f"{len(result.test_cases)} held-out cases)")
        if args.ctv_dataset is not None:
            ctv = write_ctv_dataset(result.folder, raw, dataset_id=args.ctv_dataset, overwrite=args.overwrite)
            state = "already present (same phantom), reused" if ctv.reused else "written"
            print(f"radconf: CTV dataset {state}: {ctv.folder} (CT -> ctv, {len(ctv.train_cases)} training, "
                  f"{len(ctv.test_cases)} held-out cases)")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
