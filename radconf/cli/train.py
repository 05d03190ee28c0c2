"""radconf_train: train one fold with a radconf or nnU-Net trainer (nnU-Net's flags)."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from radconf.cli.errors import run_cli

if TYPE_CHECKING:
    from radconf.training import TrainingOptions


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset_name_or_id", help="dataset id or name, e.g. 501")
    parser.add_argument("configuration", help="plans configuration, e.g. 3d_fullres")
    parser.add_argument("fold", help="fold 0-4 or 'all'")
    parser.add_argument("-tr", default="nnUNetTrainer", help="trainer class, radconf's or nnU-Net's")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (cpu preset: radconfCPUPlans)")
    parser.add_argument("-device", default=None, choices=["cpu", "cuda", "mps"],
                        help="default: cuda when available, else cpu")
    parser.add_argument("-pretrained_weights", default=None, help="checkpoint to initialise the network from")
    parser.add_argument("--c", action="store_true", help="continue from the latest checkpoint")
    parser.add_argument("--val", action="store_true", help="only run the final validation")
    parser.add_argument("--npz", action="store_true", help="save validation probabilities")
    parser.add_argument("--epochs", type=int, default=None, help="number of epochs (trainer default: 1000)")
    parser.add_argument("--iterations-per-epoch", type=int, default=None,
                        help="training iterations per epoch (trainer default: 250); validation uses a fifth")
    parser.add_argument("--no-val", action="store_true", help="skip the final validation")
    parser.add_argument("--disable_checkpointing", action="store_true")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed Python/numpy/torch (repeatable runs need nnUNet_n_proc_DA=0 as well)")
    parser.add_argument("--distance_weight", type=float, default=None,
                        help="distance-map head trainers (setting distance_weight): weight of the distance MSE "
                             "(default: the trainer's, 1.0; with --c: the weight the run started with)")
    parser.add_argument("--ce_weights", type=float, nargs="+", default=None, metavar="W",
                        help="class-weighted CE trainers (setting class_weights): one weight per class, background "
                             "first (default: reciprocal training-set frequency; with --c: the weights the run started "
                             "with)")
    return parser


def training_options(args: argparse.Namespace) -> TrainingOptions:
    """The ``TrainingOptions`` of parsed arguments; only the trainer settings given on the command line are set."""
    from radconf.training import TrainingOptions

    settings = {"distance_weight": args.distance_weight, "class_weights": args.ce_weights}
    return TrainingOptions(epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch, seed=args.seed,
                           validate=not args.no_val, export_npz=args.npz, pretrained_weights=args.pretrained_weights,
                           disable_checkpointing=args.disable_checkpointing,
                           settings={k: v for k, v in settings.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.devices import configure_threads
        from radconf.training import train

        use_default_nnunet_paths()
        configure_threads(args.device)  # once per process, as nnU-Net's entry point does
        folder = train(args.dataset_name_or_id, args.configuration, args.fold, trainer=args.tr, plans=args.p,
                       device=args.device, continue_training=args.c, only_validation=args.val,
                       options=training_options(args))
        print(f"radconf: training output in {folder}")

    return run_cli(run)


if __name__ == "__main__":
    raise SystemExit(main())
