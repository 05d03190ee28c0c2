"""radconf_train: train one fold with a radconf or nnU-Net trainer (nnU-Net's flags).

--c resumes with the settings the run recorded (epochs, iterations, trainer settings); pass --change_settings to
resume with other ones. List the trainers with --list_trainers.
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from radconf.cli.arguments import (
    fraction,
    make_parser,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    probability,
)
from radconf.cli.errors import run_cli

if TYPE_CHECKING:
    from radconf.training import TrainingOptions


def _seed(text: str) -> int:
    value = non_negative_int(text)
    if value > 2**32 - 1:
        raise argparse.ArgumentTypeError(f"{value} must be at most {2**32 - 1}")
    return value


class _ListTrainers(argparse.Action):
    """``--list_trainers``: prints every trainer name (radconf's with a summary, then nnU-Net's) and exits."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from radconf.registry import name_listing

        print(name_listing("trainer"))
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_train", __doc__)
    parser.add_argument("dataset_name_or_id", help="dataset id or name, e.g. 501")
    parser.add_argument("configuration", help="plans configuration, e.g. 3d_fullres")
    parser.add_argument("fold", help="0-4 (nnU-Net's 5-fold cross-validation), 'all', or a higher number (a random "
                                     "80:20 split, seeded with 12345 + fold)")
    parser.add_argument("-tr", default="nnUNetTrainer", help="trainer class, radconf's or nnU-Net's")
    parser.add_argument("-p", default="nnUNetPlans", help="plans identifier (cpu preset: radconfCPUPlans)")
    parser.add_argument("-device", default=None, choices=["cpu", "cuda", "mps"],
                        help="default: cuda when available, else cpu")
    parser.add_argument("-pretrained_weights", default=None, help="checkpoint to initialise the network from")
    parser.add_argument("--c", action="store_true",
                        help="continue from checkpoint_final, else _latest, else _best, with the recorded settings")
    parser.add_argument("--change_settings", action="store_true",
                        help="with --c: resume with the --epochs/--iterations_per_epoch/trainer settings given now "
                             "instead of the recorded ones")
    parser.add_argument("--val", action="store_true", help="only run the final validation")
    parser.add_argument("--val_best", action="store_true",
                        help="validate with checkpoint_best instead of the final network (same validation folder)")
    parser.add_argument("--npz", action="store_true", help="save validation probabilities")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="number of epochs (default: the trainer's, 1000 for nnUNetTrainer; with --c: recorded)")
    parser.add_argument("--iterations_per_epoch", "--iterations-per-epoch", dest="iterations_per_epoch",
                        type=positive_int, default=None,
                        help="training iterations per epoch (default: the trainer's, 250; with --c: recorded); "
                             "validation uses a fifth")
    parser.add_argument("--no_val", "--no-val", dest="no_val", action="store_true",
                        help="skip the final validation")
    parser.add_argument("--disable_checkpointing", action="store_true")
    parser.add_argument("--seed", type=_seed, default=None,
                        help="seed Python/numpy/torch (repeatable runs need nnUNet_n_proc_DA=0 as well)")
    parser.add_argument("--distance_weight", type=non_negative_float, default=None,
                        help="distance-map head trainers (setting distance_weight): weight of the distance MSE "
                             "(default: the trainer's, 1.0; with --c: the weight the run started with)")
    parser.add_argument("--ce_weights", type=non_negative_float, nargs="+", default=None, metavar="W",
                        help="class-weighted CE trainers (setting class_weights): one weight per class, background "
                             "first (default: reciprocal training-set frequency; with --c: the weights the run started "
                             "with)")
    parser.add_argument("--hard_negatives_from", default=None, metavar="DIR",
                        help="hard-negative trainers (setting hard_negatives_from): a model's training output folder "
                             "(fold_*/validation/) or a folder of predicted label files named like the raw cases; "
                             "patches are centred on their false positives (with --c: the recorded folder)")
    parser.add_argument("--hard_negative_share", type=fraction, default=None, metavar="P",
                        help="hard-negative trainers (setting hard_negative_share): share of training patches centred "
                             "on false positives, in (0, 1] (default: 0.1; with --c: recorded)")
    parser.add_argument("--dropout", type=probability, default=None, metavar="P",
                        help="dropout trainers (setting dropout_rate): share of activations dropped after every "
                             "convolution block, in [0, 1); 0 switches it off (default: the trainer's, 0.1; with --c: "
                             "recorded)")
    parser.add_argument("--dropout_in", choices=["encoder", "decoder", "both"], default=None,
                        help="dropout trainers (setting dropout_where): where dropout acts (default: the trainer's, "
                             "both; with --c: recorded)")
    parser.add_argument("--dropblock_size", type=non_negative_int, default=None, metavar="V",
                        help="dropout trainers (setting dropblock_size): DropBlock size in voxels, 0 = element-wise "
                             "dropout (default: the trainer's, 3 for DropBlockTrainer, 0 for DropoutTrainer; with --c: "
                             "recorded)")
    _add_optimisation_arguments(parser)
    parser.add_argument("--list_trainers", action=_ListTrainers, help="list every trainer name and exit")
    return parser


def _add_optimisation_arguments(parser: argparse.ArgumentParser) -> None:
    """Every trainer: the GPUs, the optimiser, its learning rate and weight decay, the loss of the last epochs."""
    parser.add_argument("-num_gpus", type=positive_int, default=1,
                        help="train on this many CUDA GPUs of this machine with nnU-Net's DDP (one process per GPU; "
                             "the plans' batch is split over them)")
    parser.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default=None,
                        help="any trainer: the optimiser, on nnU-Net's poly learning-rate schedule (default: the "
                             "trainer's own, SGD with momentum 0.99 for nnU-Net's; with --c: recorded)")
    parser.add_argument("--initial_lr", type=positive_float, default=None, metavar="LR",
                        help="any trainer: initial learning rate (default: the trainer's, 1e-2; 1e-3 with --optimizer "
                             "adam/adamw; with --c: recorded)")
    parser.add_argument("--weight_decay", type=non_negative_float, default=None, metavar="WD",
                        help="any trainer: weight decay (default: the trainer's, 3e-5; with --c: recorded)")
    parser.add_argument("--final_loss", choices=["sqrt_dice", "boundary_dice"], default=None,
                        help="Dice + CE / Dice + BCE trainers: replace the Dice term by this one for the last "
                             "--final_epochs epochs (seed 004: sqrt_dice; with --c: recorded)")
    parser.add_argument("--final_epochs", type=positive_int, default=None, metavar="N",
                        help="with --final_loss: how many of the last epochs use it (default: 10)")


def training_options(args: argparse.Namespace) -> TrainingOptions:
    """The ``TrainingOptions`` of parsed arguments; only the trainer settings given on the command line are set."""
    from pathlib import Path

    from radconf.training import TrainingOptions

    source = str(Path(args.hard_negatives_from).resolve()) if args.hard_negatives_from else None
    settings = {"distance_weight": args.distance_weight, "class_weights": args.ce_weights,
                "hard_negatives_from": source, "hard_negative_share": args.hard_negative_share,
                "dropout_rate": args.dropout, "dropout_where": args.dropout_in, "dropblock_size": args.dropblock_size,
                "optimizer_name": args.optimizer, "initial_lr": args.initial_lr, "weight_decay": args.weight_decay,
                "final_loss": args.final_loss, "final_epochs": args.final_epochs}
    return TrainingOptions(epochs=args.epochs, iterations_per_epoch=args.iterations_per_epoch, seed=args.seed,
                           validate=not args.no_val, validate_with_best=args.val_best, export_npz=args.npz,
                           pretrained_weights=args.pretrained_weights,
                           disable_checkpointing=args.disable_checkpointing, change_settings=args.change_settings,
                           settings={k: v for k, v in settings.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.devices import configure_threads
        from radconf.training import train

        options = training_options(args)  # checks the values before anything else
        use_default_nnunet_paths()
        if args.num_gpus > 1:
            folder = _train_on_gpus(args, options)
        else:
            configure_threads(args.device)  # once per process, as nnU-Net's entry point does
            folder = train(args.dataset_name_or_id, args.configuration, args.fold, trainer=args.tr, plans=args.p,
                           device=args.device, continue_training=args.c, only_validation=args.val, options=options)
        print(f"radconf: training output in {folder}")

    return run_cli(run)


def _train_on_gpus(args: argparse.Namespace, options: TrainingOptions):
    """``-num_gpus N``: nnU-Net's DDP on N CUDA GPUs, one process each (:mod:`radconf.scale.distributed`)."""
    from radconf.errors import InvalidInput
    from radconf.scale.distributed import train_distributed

    if args.device not in (None, "cuda"):
        raise InvalidInput(f"-num_gpus {args.num_gpus} trains on CUDA GPUs; -device {args.device} trains in one "
                           f"process (drop -num_gpus, or pass -device cuda).")
    return train_distributed(args.dataset_name_or_id, args.configuration, args.fold, num_gpus=args.num_gpus,
                             trainer=args.tr, plans=args.p, device="cuda", continue_training=args.c,
                             only_validation=args.val, options=options)


if __name__ == "__main__":
    raise SystemExit(main())
