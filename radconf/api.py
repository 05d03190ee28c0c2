"""radconf's prediction API: the one module that knows every method.

``predict`` runs one model (nnU-Net's predictor, folds averaged) or a weighted ensemble; either may be a confidence
model (level maps), an anatomy-channel model (organ masks from a folder or from an organ model run first) or, for
one model, a distance-head model (distance maps). The options of each method come as one small dataclass; the
segmentations may be post-processed (``radconf.postprocessing``). With a localiser, any of these runs on each case's
crop and is pasted back (``radconf.cropping.localized``).

Everything is checked before any work starts (options, model files, output location, every input image, level
outputs); a failed prediction leaves the output folder as it was found.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from radconf.anatomy.inputs import AnatomyInputs
from radconf.confidence.outputs import LevelOutputs
from radconf.cropping.localized import LocalizerOptions, predict_localized
from radconf.ensembles.prediction import EnsembleOptions, predict_ensemble
from radconf.errors import InvalidInput
from radconf.inference import RunOptions, predict_model
from radconf.io.cases import PredictedCases
from radconf.io.files import removed_on_failure
from radconf.models import ModelSpec, find_model
from radconf.postprocessing import PostProcessing, check_fits, postprocess_predictions
from radconf.postprocessing.apply import RECORD, check_same_postprocessing
from radconf.scale.parts import Part, part_input_folder
from radconf.uncertainty.prediction import Calibration, predict_with_samples
from radconf.uncertainty.sources import UncertaintyOptions

__all__ = ["AnatomyInputs", "Calibration", "EnsembleOptions", "LevelOutputs", "LocalizerOptions", "ModelSpec",
           "Part", "PostProcessing", "PredictedCases", "RunOptions", "UncertaintyOptions", "predict"]


def predict(input_folder: str | Path, output_folder: str | Path, models: Sequence[ModelSpec], *,
            run: RunOptions = RunOptions(), levels: LevelOutputs = LevelOutputs(),
            anatomy: AnatomyInputs = AnatomyInputs(), ensemble: EnsembleOptions | None = None,
            save_distance: bool = False, postprocessing: PostProcessing | None = None,
            uncertainty: UncertaintyOptions | None = None, calibration: Calibration | None = None,
            localizer: LocalizerOptions | None = None, part: Part = Part()) -> PredictedCases:
    """Predicts every case of ``input_folder`` into ``output_folder``.

    Args:
        input_folder: images named ``CASE_XXXX<file_ending>``.
        output_folder: where segmentations (and optional outputs) go.
        models: one model (nnU-Net's prediction, its folds averaged) or several (a weighted ensemble).
        run: device, sliding window, workers, probabilities.
        levels: confidence models: P(level >= c) maps and masks at chosen levels.
        anatomy: anatomy-channel models given the images only: organ label maps or an organ model.
        ensemble: weights and disagreement map; given (or several models), the models run as an ensemble.
        save_distance: distance-head models (one model only): distance maps in mm (``distance_maps/``).
        postprocessing: applied to each predicted segmentation (:mod:`radconf.postprocessing`; level maps stay
            nested, ``--level`` masks are taken from the post-processed maps); checked against the model first.
        uncertainty: draw samples (MC dropout, test-time mirroring, folds, ensemble members): the mean is the
            prediction, and the maps, bounds and contour-quality scores go to ``uncertainty/``
            (:mod:`radconf.uncertainty`); post-processing applies to the mean segmentation only.
        calibration: apply each model's temperature scaling (``radconf_calibrate``) to its probabilities.
        localizer: localise, crop, segment: the localiser runs on the whole images, the models on each case's box
            (with every option above), their images pasted back onto the full grid (:mod:`radconf.cropping.localized`).
        part: predict only this part of the cases (``-num_parts/-part_id``, :mod:`radconf.scale.parts`), with any of
            the options above, into the same output folder as the other parts.

    Returns:
        The case identifiers of the input folder; ``skipped``: those whose outputs were already there
        (``run.overwrite`` False).

    Raises:
        InvalidInput, MissingInput: no model, options that do not apply to the models given, an output folder that
            is, lies inside or contains an input, missing model files, unusable input images; before anything is
            written.
    """
    models = list(models)
    if not models:
        raise InvalidInput("Give at least one model spec.")
    if not all(isinstance(model, ModelSpec) for model in models):
        raise InvalidInput("models must be ModelSpec objects (ModelSpec.parse('DATASET:TRAINER:PLANS:CONFIG:FOLDS')).")
    if (len(models) > 1 or ensemble is not None) and save_distance:
        raise InvalidInput("--save_distance is not available for ensembles; predict with the distance model alone.")
    sampled = uncertainty is not None or calibration is not None
    if sampled and save_distance:
        raise InvalidInput("--save_distance does not combine with --uncertainty / --calibrate; predict the distance "
                           "maps in a separate run.")
    if sampled and ensemble is not None and ensemble.save_disagreement:
        raise InvalidInput("--save_disagreement does not combine with --uncertainty / --calibrate; "
                           "--uncertainty ensemble writes the members' variance and bounds instead.")
    if not part.whole:
        options = {"run": run, "levels": levels, "anatomy": anatomy, "ensemble": ensemble,
                   "save_distance": save_distance, "postprocessing": postprocessing, "uncertainty": uncertainty,
                   "calibration": calibration, "localizer": localizer}
        return _predict_part(input_folder, output_folder, models, part, options)
    if localizer is not None:
        return _localized(input_folder, output_folder, models, localizer, run=run, levels=levels, anatomy=anatomy,
                          ensemble=ensemble, save_distance=save_distance, postprocessing=postprocessing,
                          uncertainty=uncertainty, calibration=calibration)
    if postprocessing is None:
        if (Path(output_folder) / RECORD).is_file():  # post-processed maps there: never mixed with raw ones
            check_same_postprocessing(output_folder, None, find_model(models[0]).file_ending)
        return _predict(input_folder, output_folder, models, run, levels, anatomy, ensemble, save_distance,
                        uncertainty, calibration)
    model = find_model(models[0])
    check_fits(postprocessing, model.dataset_json, f"the model {models[0]}")
    check_same_postprocessing(output_folder, postprocessing, model.file_ending)
    with removed_on_failure(Path(output_folder)):
        cases = _predict(input_folder, output_folder, models, run, levels, anatomy, ensemble, save_distance,
                         uncertainty, calibration)
        postprocess_predictions(output_folder, cases.predicted, model.file_ending, postprocessing,
                                mask_levels=levels.masks)
    return cases


def _predict(input_folder, output_folder, models: list[ModelSpec], run: RunOptions, levels: LevelOutputs,
             anatomy: AnatomyInputs, ensemble: EnsembleOptions | None, save_distance: bool,
             uncertainty: UncertaintyOptions | None, calibration: Calibration | None) -> PredictedCases:
    if uncertainty is not None or calibration is not None:
        return predict_with_samples(input_folder, output_folder, models, sampling=uncertainty, run=run, levels=levels,
                                    anatomy=anatomy, weights=ensemble.weights if ensemble else None,
                                    calibration=calibration, pipelined=ensemble.pipelined if ensemble else True)
    if len(models) > 1 or ensemble is not None:
        return predict_ensemble(input_folder, output_folder, models, ensemble=ensemble or EnsembleOptions(), run=run,
                                levels=levels, anatomy=anatomy)
    return predict_model(input_folder, output_folder, models[0], run=run, levels=levels, anatomy=anatomy,
                         save_distance=save_distance)


def _localized(input_folder, output_folder, models: list[ModelSpec], localizer: LocalizerOptions, *, run: RunOptions,
               levels: LevelOutputs, anatomy: AnatomyInputs, ensemble: EnsembleOptions | None, save_distance: bool,
               postprocessing: PostProcessing | None, uncertainty: UncertaintyOptions | None,
               calibration: Calibration | None) -> PredictedCases:
    """The localised prediction: the output folder's post-processing record checked here, the crops predicted by
    :func:`predict` with the same options (no localiser)."""
    model = find_model(models[0])
    if postprocessing is not None:
        check_fits(postprocessing, model.dataset_json, f"the model {models[0]}")
    if postprocessing is not None or (Path(output_folder) / RECORD).is_file():
        check_same_postprocessing(output_folder, postprocessing, model.file_ending)
    segment = partial(predict, models=models, run=run, levels=levels, anatomy=anatomy, ensemble=ensemble,
                      postprocessing=postprocessing, calibration=calibration)
    return predict_localized(input_folder, output_folder, models, localizer=localizer, segment=segment, run=run,
                             levels=levels, anatomy=anatomy,
                             save_disagreement=ensemble is not None and ensemble.save_disagreement,
                             save_distance=save_distance, uncertainty=uncertainty)


def _predict_part(input_folder, output_folder, models: list[ModelSpec], part: Part, options: dict) -> PredictedCases:
    """One part of the cases: the output checked against the user's folder, the part's images linked into a
    temporary folder and predicted from there with the same options (messages name the user's folder)."""
    import warnings

    from radconf.errors import MissingInput
    from radconf.io.cases import input_case_channels
    from radconf.io.locations import check_output_location

    check_output_location(output_folder, [("the input folder -i", input_folder)])
    ending = find_model(models[0]).file_ending
    channels = input_case_channels(input_folder, ending)
    with part_input_folder(input_folder, channels, ending, part) as (folder, chosen):
        if not chosen:
            warnings.warn(f"part {part.part_id} of {part.num_parts} has no case ({len(channels)} case(s) in "
                          f"{input_folder}); nothing to predict.", stacklevel=3)
            return PredictedCases([], [])
        try:
            return predict(folder, output_folder, models, **options)
        except (InvalidInput, MissingInput) as error:
            raise type(error)(str(error).replace(str(folder), str(input_folder))) from None
