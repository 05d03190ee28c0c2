"""radconf_predict: predict a folder of images with a trained radconf or nnU-Net model, or a weighted ensemble.

-i may also be a folder of DICOM CT series (e.g. a TPS export): each series is predicted and written back onto it
with --output_format rtstruct / seg / segnrrd (OUT/<case>/...) and/or nifti (OUT/nifti/); OUT/cases.csv says which
series each case is. Example: radconf_predict -i ct_export -o to_tps -d 501 -f all --output_format rtstruct segnrrd
Localise, crop, segment (documentation/localise_crop.md): radconf_predict -i images -o out -d 613 -f all
  --localizer 601:nnUNetTrainer:nnUNetPlans:2d:all --crop_margin 20
"""
from __future__ import annotations

import argparse

from radconf.cli.arguments import fraction, make_parser, non_negative_float, non_negative_int, positive_int
from radconf.cli.errors import run_cli
from radconf.errors import InvalidInput


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("radconf_predict", __doc__)
    parser.add_argument("-i", required=True, help="input folder (CASE_0000.nii.gz, ...: one 3D image per channel), "
                                                   "or a folder tree of DICOM CT series")
    parser.add_argument("-o", required=True, help="output folder (never the input folder, nor inside or around it)")
    parser.add_argument("-d", default=None, help="dataset id or name the model was trained on (one model)")
    parser.add_argument("-c", default=None, help="configuration (default: 3d_fullres)")
    parser.add_argument("-tr", default=None, help="trainer class (default: nnUNetTrainer)")
    parser.add_argument("-p", default=None, help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("-f", nargs="+", default=None, help="folds to use, averaged: integers or 'all' "
                                                            "(default: 0 1 2 3 4)")
    parser.add_argument("-m", nargs="+", default=None, metavar="SPEC",
                        help="ensemble members instead of -d/-c/-tr/-p/-f: DATASET[:TRAINER[:PLANS[:CONFIG[:FOLDS]]]]"
                             ", e.g. 501:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4")
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="ensembles: weights.json of radconf_find_ensemble_weights (its members are used when "
                             "-m is not given); default: equal weights")
    parser.add_argument("--save_disagreement", action="store_true",
                        help="ensembles: also write the members' standard deviation of the foreground probability "
                             "(disagreement/)")
    parser.add_argument("-chk", default="checkpoint_final.pth", help="checkpoint file name in each fold folder")
    parser.add_argument("-device", default=None, choices=["cpu", "cuda", "mps"],
                        help="default: cuda when available, else cpu")
    parser.add_argument("-step_size", type=fraction, default=0.5,
                        help="sliding-window step, a fraction of the patch in (0, 1]")
    parser.add_argument("-npp", type=positive_int, default=None,
                        help="preprocessing worker processes (default: -np)")
    parser.add_argument("-nps", type=positive_int, default=None,
                        help="segmentation export worker processes (default: -np)")
    parser.add_argument("-np", type=positive_int, default=2, help="worker processes: sets both -npp and -nps")
    parser.add_argument("--save_probabilities", action="store_true", help="also write CASE.npz probabilities")
    parser.add_argument("--disable_tta", action="store_true", help="no test-time mirroring")
    parser.add_argument("--level", type=positive_int, nargs="+", default=[], metavar="L",
                        help="confidence models: also write binary masks level >= L (e.g. --level 3), L in 1..K")
    parser.add_argument("--level_probabilities", action="store_true",
                        help="confidence models: also write P(level >= c) maps for c = 1..K")
    parser.add_argument("--save_distance", action="store_true",
                        help="distance-head models: also write each structure's distance map in mm (distance_maps/)")
    parser.add_argument("--anatomy", default=None, metavar="DIR",
                        help="anatomy-channel models: label maps CASE<ending> of the organs (ids as at training)")
    parser.add_argument("--anatomy_model", default=None, metavar="SPEC",
                        help="anatomy-channel models: organ model run first, "
                             "DATASET[:TRAINER[:PLANS[:CONFIG[:FOLDS]]]], e.g. "
                             "501:nnUNetTrainer:nnUNetPlans:3d_fullres:0,1,2,3,4")
    parser.add_argument("--output_format", nargs="+", default=None,
                        choices=("nifti", "rtstruct", "seg", "segnrrd"),
                        help="DICOM input: what to write (default: rtstruct); NIfTI input: nifti only")
    parser.add_argument("--continue_prediction", action="store_true",
                        help="keep the cases whose outputs are already there; predict the others")
    parser.add_argument("--postprocessing", default=None, metavar="FILE",
                        help="post-process the segmentations (level maps stay nested): postprocessing.json of "
                             "radconf_determine_postprocessing or nnU-Net's postprocessing.pkl")
    _add_uncertainty_arguments(parser)
    _add_localizer_arguments(parser)
    _add_scale_arguments(parser)
    return parser


def _add_scale_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sequential_ensemble", action="store_true",
                        help="ensembles and samples (--uncertainty, --calibrate): one case at a time (least "
                             "memory) instead of preprocessing the next cases in nnU-Net's workers (and, for "
                             "ensembles, writing the previous one in a thread); the same results")
    parser.add_argument("-num_parts", type=positive_int, default=1,
                        help="split the cases into this many parts, one per process, GPU or node (nnU-Net's rule: "
                             "sorted cases, every N-th); all parts write into the same -o (default: 1)")
    parser.add_argument("-part_id", type=non_negative_int, default=0,
                        help="the part this command predicts, 0 .. num_parts - 1 (e.g. $SLURM_ARRAY_TASK_ID)")


def _add_localizer_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--localizer", default=None, metavar="SPEC",
                        help="localise, crop, segment (seed 004): this model (e.g. a 2d or 3d_lowres one) runs first "
                             "on the whole images; the model(s) then segment the box around what it finds and their "
                             "images are pasted back onto the full grid (background elsewhere; crop_boxes.json), "
                             "DATASET[:TRAINER[:PLANS[:CONFIG[:FOLDS]]]]")
    parser.add_argument("--crop_margin", type=non_negative_float, default=None, metavar="MM",
                        help="with --localizer: margin in mm around the localiser's structures (default: 20)")
    parser.add_argument("--localizer_labels", default=None, metavar="L[,L]",
                        help="with --localizer: the localiser's labels to crop around, names or ids of its "
                             "dataset.json (default: all foreground labels)")
    parser.add_argument("--localizer_largest_component", action="store_true",
                        help="with --localizer: box only the largest connected component of each localiser label "
                             "(stray detections far away do not stretch the box)")
    parser.add_argument("--fallback", choices=("empty", "full"), default=None,
                        help="with --localizer: a case in which it finds none of them gets an all-background result "
                             "(empty, the default) or the model(s) segment the whole image (full)")


def _localizer_options(args):
    """LocalizerOptions of the parsed arguments, or None; the dependent flags without --localizer refused."""
    from radconf.api import LocalizerOptions
    from radconf.models import ModelSpec

    dependent = [flag for flag, value in (("--crop_margin", args.crop_margin), ("--localizer_labels",
                                                                                 args.localizer_labels),
                                          ("--fallback", args.fallback),
                                          ("--localizer_largest_component", args.localizer_largest_component or None))
                 if value is not None]
    if args.localizer is None:
        if dependent:
            raise InvalidInput(f"{', '.join(dependent)} need --localizer SPEC (e.g. --localizer "
                               f"501:nnUNetTrainer:nnUNetPlans:2d:all --crop_margin 20).")
        return None
    labels = tuple(item.strip() for item in (args.localizer_labels or "").split(",") if item.strip())
    if args.localizer_labels is not None and not labels:
        raise InvalidInput("--localizer_labels is empty; name the localiser's labels to crop around (e.g. "
                           "--localizer_labels bladder,rectum), or leave it out for all foreground labels.")
    options = {"margin_mm": args.crop_margin} if args.crop_margin is not None else {}
    return LocalizerOptions(model=ModelSpec.parse(args.localizer), labels=labels, fallback=args.fallback or "empty",
                            largest_component=args.localizer_largest_component, **options)


def _add_uncertainty_arguments(parser: argparse.ArgumentParser) -> None:
    from radconf.uncertainty.sources import SOURCES

    parser.add_argument("--uncertainty", default=None, choices=SOURCES,
                        help="draw samples: mc_dropout (a model trained with dropout), tta (mirrored inputs), folds "
                             "(each fold of the model), ensemble (each -m member); the mean is the prediction, the "
                             "maps, 95 %% bounds and contour-quality scores go to uncertainty/")
    parser.add_argument("--mc_samples", type=positive_int, default=None, metavar="N",
                        help="mc_dropout: number of stochastic passes (>= 2; seed 004 draws 50); tta: at most N flips")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="mc_dropout: pass i seeds torch with SEED + i, so a run repeats")
    parser.add_argument("--tta_axes", type=non_negative_int, nargs="+", default=None, metavar="AXIS",
                        help="tta: spatial axes to mirror along (default: those the checkpoint allows)")
    parser.add_argument("--tta_affine", type=non_negative_int, default=0, metavar="N",
                        help="tta: N more samples on inputs rotated (+-5 degrees in the slice plane) and scaled "
                             "(0.95-1.05), mapped back; sample k drawn from --seed + k")
    parser.add_argument("--no_uncertainty_maps", action="store_true",
                        help="with --uncertainty: write only the per-case JSON and the summary, no voxel maps")
    parser.add_argument("--calibrate", nargs="?", const=True, default=None, metavar="FILE",
                        help="apply temperature scaling to the probabilities: temperature.json of radconf_calibrate "
                             "(default: the one in each model's folder)")


def _uncertainty_options(args):
    """(UncertaintyOptions or None, Calibration or None) of the parsed arguments."""
    from radconf.api import Calibration, UncertaintyOptions

    given = (("--mc_samples", args.mc_samples), ("--tta_axes", args.tta_axes), ("--tta_affine", args.tta_affine),
             ("--no_uncertainty_maps", args.no_uncertainty_maps))
    dependent = [flag for flag, value in given if value]
    if args.uncertainty is None and dependent:
        raise InvalidInput(f"{', '.join(dependent)} need --uncertainty SOURCE (e.g. --uncertainty mc_dropout "
                           f"--mc_samples 20).")
    sampling = None
    if args.uncertainty is not None:
        sampling = UncertaintyOptions(source=args.uncertainty, samples=args.mc_samples, seed=args.seed,
                                      tta_axes=tuple(args.tta_axes) if args.tta_axes else None,
                                      tta_affine=args.tta_affine,
                                      save_maps=not args.no_uncertainty_maps)
    calibration = None
    if args.calibrate is not None:
        calibration = Calibration(file=None if args.calibrate is True else args.calibrate)
    return sampling, calibration


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        from radconf.api import (
            AnatomyInputs,
            EnsembleOptions,
            LevelOutputs,
            RunOptions,
            predict,
        )
        from radconf.cli.environment import use_default_nnunet_paths
        from radconf.devices import configure_threads
        from radconf.dicom.predict_io import check_output_formats, is_dicom_folder
        from radconf.ensembles.weights import warn_if_fitted_on
        from radconf.models import ModelSpec
        from radconf.postprocessing import read_postprocessing
        from radconf.scale.parts import Part

        part = Part(args.num_parts, args.part_id)
        postprocessing = read_postprocessing(args.postprocessing) if args.postprocessing else None
        use_default_nnunet_paths()
        dicom_input = is_dicom_folder(args.i)
        formats = check_output_formats(args.output_format or (("rtstruct",) if dicom_input else ("nifti",)),
                                       dicom_input)
        members, weights, fitted_cases = _members(args)
        configure_threads(args.device)  # once per process, before any model is loaded
        ensemble = None
        if weights is not None or args.save_disagreement or args.sequential_ensemble:
            ensemble = EnsembleOptions(weights=None if weights is None else tuple(weights),
                                       save_disagreement=args.save_disagreement,
                                       pipelined=not args.sequential_ensemble)
        run_options = RunOptions(device=args.device, overwrite=not args.continue_prediction,
                                 num_processes=args.np if args.npp is None else args.npp,
                                 num_processes_export=args.np if args.nps is None else args.nps,
                                 tile_step_size=args.step_size, use_mirroring=not args.disable_tta,
                                 save_probabilities=args.save_probabilities)
        anatomy = AnatomyInputs(folder=args.anatomy,
                                model=ModelSpec.parse(args.anatomy_model) if args.anatomy_model else None)
        levels = LevelOutputs(probabilities=args.level_probabilities, masks=tuple(args.level))
        sampling, calibration = _uncertainty_options(args)
        extra = {"uncertainty": sampling, "calibration": calibration, "localizer": _localizer_options(args)}
        if dicom_input:
            cases = _predict_dicom(args, members, run_options, ensemble, anatomy, levels, formats, postprocessing,
                                   extra, part)
        else:
            cases = predict(args.i, args.o, members, run=run_options, ensemble=ensemble, anatomy=anatomy,
                            levels=levels, save_distance=args.save_distance, postprocessing=postprocessing, part=part,
                            **extra)
        warn_if_fitted_on(cases, fitted_cases)
        print(summary_line("predicted", cases, args.o, part.describe()))

    return run_cli(run)


def _predict_dicom(args, members, run_options, ensemble, anatomy, levels, formats, postprocessing, extra, part):
    """DICOM CT series in, predictions written back onto each series (radconf.dicom.predict_io); a part reads and
    writes back only its series."""
    from pathlib import Path

    from radconf.api import predict
    from radconf.dicom.predict_io import dicom_as_nifti, write_dicom_outputs
    from radconf.io.files import removed_on_failure
    from radconf.io.locations import check_output_location
    from radconf.models import find_model
    from radconf.scale.parts import active_part

    check_output_location(args.o, [("the input folder -i", args.i)])
    if args.continue_prediction:
        raise InvalidInput("--continue_prediction is for NIfTI inputs; a DICOM input is predicted whole.")
    for member in members:  # the model's files, before the series are read
        find_model(member)
    description = str(members[0]) if len(members) == 1 else f"ensemble of {len(members)} models"
    with dicom_as_nifti(args.i, part=part) as (images, series_by_case), removed_on_failure(args.o), \
            active_part(part):
        if not series_by_case:
            print(f"radconf: part {part.part_id} of {part.num_parts} has no series; nothing to predict.")
            return []
        predictions = images.parent / "predictions"
        cases = predict(images, predictions, members, run=run_options, ensemble=ensemble, anatomy=anatomy,
                        levels=levels, save_distance=args.save_distance, postprocessing=postprocessing, **extra)
        write_dicom_outputs(predictions, Path(args.o), Path(args.i), formats, series_by_case, description,
                            fractional=args.save_probabilities or args.level_probabilities)
    return cases


def summary_line(verb: str, cases, output: str, detail: str = "") -> str:
    """``radconf: predicted N case(s)[detail] into OUT`` and, with ``--continue_prediction``, how many were already
    there."""
    skipped = list(getattr(cases, "skipped", []))
    line = f"radconf: {verb} {len(cases) - len(skipped)} case(s){detail} into {output}"
    if skipped:
        line += f"; {len(skipped)} already there were kept (--continue_prediction)"
    return line


def _members(args) -> tuple[list, list[float] | None, list[str]]:
    """The models to run, their weights (None: one model or equal weights) and the cases the weights were fitted on."""
    from dataclasses import replace

    from radconf.ensembles.weights import match_weights, read_weights
    from radconf.models import ModelSpec

    single = [flag for flag in ("d", "c", "tr", "p", "f") if getattr(args, flag) is not None]
    if args.m and single:
        raise InvalidInput(f"Give the models either as -m SPEC ... or with -d/-c/-tr/-p/-f, not both (got -m and "
                         f"-{', -'.join(single)}).")
    if single and args.d is None:
        raise InvalidInput(f"-{', -'.join(single)} describe the model of -d; add -d DATASET (or give the models as "
                           f"-m SPEC ...).")
    weights_file = read_weights(args.weights) if args.weights else None
    if args.m:
        members = [replace(ModelSpec.parse(text), checkpoint=args.chk) for text in args.m]
    elif args.d is not None:
        members = [ModelSpec(dataset=args.d, trainer=args.tr or "nnUNetTrainer", plans=args.p or "nnUNetPlans",
                             configuration=args.c or "3d_fullres", folds=tuple(args.f or ("0", "1", "2", "3", "4")),
                             checkpoint=args.chk)]
    elif weights_file is not None:
        members = [replace(ModelSpec.parse(text), checkpoint=args.chk) for text in weights_file["members"]]
    else:
        raise InvalidInput("Name the model: -d DATASET (with -c/-tr/-p/-f), or ensemble members -m SPEC ..., or "
                         "--weights weights.json.")
    if weights_file is None:
        return members, None, []
    weights = match_weights([str(m) for m in members], weights_file, where=args.weights)
    return members, list(weights), list(weights_file.get("validation_cases", []))


if __name__ == "__main__":
    raise SystemExit(main())
