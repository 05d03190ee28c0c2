"""radconf_generate_phantom: write the synthetic pelvic phantom as an nnU-Net raw dataset (optionally also its
CT -> CTV dataset, --ctv-dataset)."""
from __future__ import annotations

import argparse

from radconf.cli.errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-d", type=int, default=501, help="dataset id (default 501)")
    parser.add_argument("--name", default="Phantom", help="dataset name (default Phantom)")
    parser.add_argument("--num-train", type=int, default=16, help="training cases (default 16)")
    parser.add_argument("--num-test", type=int, default=4, help="held-out cases in imagesTs/labelsTs (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="nominal spacing in mm (default 3 2 2)")
    parser.add_argument("--readers", type=int, default=None, help="simulated readers (default 4)")
    parser.add_argument("--trials", type=int, default=None, help="trials per reader (default 3)")
    parser.add_argument("--femoral-heads", action="store_true",
                        help="also label the femoral heads (left/right bone; train without x-mirroring)")
    parser.add_argument("-o", default=None, help="nnUNet_raw folder (default: $nnUNet_raw or radconf's default)")
    parser.add_argument("--ctv-dataset", type=int, default=None, metavar="ID",
                        help="also write the phantom's CT -> CTV dataset (labels: ctv = 1) as DatasetID_PhantomCTV, "
                             "the data of the anatomy-guided CTV benchmark (e.g. --ctv-dataset 503)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a phantom (and CTV dataset) made with other parameters")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from dataclasses import replace

        from radconf.datasets.phantom import PhantomConfig
        from radconf.datasets.phantom.writer import write_phantom_dataset

        config = PhantomConfig(seed=args.seed, label_femoral_heads=args.femoral_heads)
        if args.spacing:
            config = replace(config, spacing=tuple(args.spacing))
        if args.readers or args.trials:
            config = replace(config, readers=replace(config.readers, n_readers=args.readers or config.readers.n_readers,
                                                     n_trials=args.trials or config.readers.n_trials))
        if args.o is None:
            from radconf.cli.environment import use_default_nnunet_paths

            raw = use_default_nnunet_paths().raw
        else:
            raw = args.o
        result = write_phantom_dataset(raw, dataset_id=args.d, name=args.name, num_train=args.num_train,
                                       num_test=args.num_test, config=config, overwrite=args.overwrite)
        state = "already present (same parameters), reused" if result.reused else "written"
        print(f"radconf: phantom {state}: {result.folder} ({len(result.train_cases)} training, "
              f"{len(result.test_cases)} held-out cases)")
        if args.ctv_dataset is not None:
            from radconf.datasets.phantom.ctv_dataset import write_ctv_dataset

            ctv = write_ctv_dataset(result.folder, raw, dataset_id=args.ctv_dataset, overwrite=args.overwrite)
            state = "already present (same phantom), reused" if ctv.reused else "written"
            print(f"radconf: CTV dataset {state}: {ctv.folder} (CT -> ctv, {len(ctv.train_cases)} training, "
                  f"{len(ctv.test_cases)} held-out cases)")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
