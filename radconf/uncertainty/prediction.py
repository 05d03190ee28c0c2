"""Prediction from samples (``radconf_predict --uncertainty SOURCE``) and calibrated prediction (``--calibrate``).

Case by case: the samples of the source (``radconf.uncertainty.sources``) go one at a time into a
``SampleAccumulator``; the mean probabilities are the prediction (decoded as usual, level outputs for confidence
models), and the statistics become the maps, the case JSON and the run's summary (``radconf.uncertainty.outputs``).
Memory holds one sample, the running sums and the per-voxel inclusion weights, whatever the number of samples.

With ``--calibrate`` alone, the one sample is the plain prediction (folds averaged, mirroring as asked) with the
model's temperature scaling applied to its probabilities; nothing else is written.

Every check runs before any work, a failed run leaves the output folder as it was, and ``uncertainty.json`` (the
source, samples, seed, members, calibration) is written last; ``--continue_prediction`` refuses a folder sampled with
other settings.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from radconf.anatomy.inputs import AnatomyInputs
from radconf.confidence.outputs import LevelOutputs
from radconf.ensembles.outputs import finish_outputs, space_levels, write_ensemble_record
from radconf.ensembles.space import common_space
from radconf.ensembles.weights import check_weights
from radconf.errors import InvalidInput
from radconf.inference import (
    RunOptions,
    anatomy_input_folder,
    check_inputs,
    check_output_folder,
    expected_outputs,
    load_predictor,
    prediction_inputs,
)
from radconf.io.cases import PredictedCases, split_done
from radconf.io.files import atomic_write_json, removed_on_failure
from radconf.models import ModelFiles, ModelSpec, find_model
from radconf.timing import timed_case, write_timing
from radconf.uncertainty.outputs import (
    RECORD,
    case_files,
    read_case_rows,
    write_case_uncertainty,
    write_prediction,
    write_summary,
)
from radconf.uncertainty.sources import (
    Runner,
    UncertaintyOptions,
    affine_samples,
    case_properties,
    fold_samples,
    mc_dropout_samples,
    member_samples,
    tta_samples,
)
from radconf.uncertainty.statistics import SampleAccumulator


@dataclass(frozen=True)
class Calibration:
    """Temperature scaling at prediction: each model's ``temperature.json`` (radconf_calibrate), or one file."""

    file: str | Path | None = None  # None: <model folder>/temperature.json of every model


def predict_with_samples(input_folder: str | Path, output_folder: str | Path, members: Sequence[ModelSpec], *,
                         sampling: UncertaintyOptions | None, run: RunOptions = RunOptions(),
                         levels: LevelOutputs = LevelOutputs(), anatomy: AnatomyInputs = AnatomyInputs(),
                         weights: Sequence[float] | None = None, calibration: Calibration | None = None,
                         pipelined: bool = True) -> PredictedCases:
    """Predicts every case of ``input_folder`` from samples (or one calibrated pass when ``sampling`` is None).

    ``pipelined``: nnU-Net's workers preprocess the next cases (once per plans/configuration of the models) while the
    samples of this one run (the same results, bit for bit); False: each case is preprocessed when it is reached.

    Raises:
        InvalidInput, MissingInput: options, models, inputs or output location unusable, a model without dropout for
            ``mc_dropout``, no flip to mirror for ``tta``, one fold for ``folds``, a temperature file of another
            model; before anything is written.
    """
    from tqdm import tqdm

    run.check()
    if sampling is None and calibration is None:
        raise InvalidInput("Give an uncertainty source (--uncertainty) or --calibrate.")
    if sampling is not None:
        sampling.check(len(members))
    all_weights = check_weights(tuple(weights) if weights is not None else None, len(members))
    active = [(find_model(spec), float(w)) for spec, w in zip(members, all_weights) if w > 0]
    models = [model for model, _ in active]
    check_output_folder(output_folder, prediction_inputs(input_folder, models, anatomy))
    space, kinds = common_space([m.dataset_json for m in models], [str(m.spec) for m in models])
    k = space_levels(space)
    levels.check(k, str(models[0].spec))
    cases, source = check_inputs(input_folder, models[0], anatomy)
    temperatures = _temperatures(models, calibration)
    record = _record(sampling, members, all_weights, calibration, models)
    output_folder = Path(output_folder)
    _check_resumed_record(output_folder, record, run.overwrite)
    ending = models[0].file_ending
    save_maps = sampling is not None and sampling.save_maps

    def outputs(case: str) -> list[str]:
        extra = case_files(case, ending, space.structures, save_maps) if sampling is not None else []
        return expected_outputs(case, ending, run.save_probabilities, levels, k, extra)

    todo, skipped = split_done(cases, output_folder, run.overwrite, outputs)
    runners, sampler = [], None
    if todo:
        cache: dict = {}
        runners = [Runner(str(model.spec), load_predictor(model.spec, device=run.device,
                                                          tile_step_size=run.tile_step_size),
                          kind, space, temperature,
                          (model.spec.dataset, model.spec.plans, model.spec.configuration), cache)
                   for model, kind, temperature in zip(models, kinds, temperatures)]
        sampler = _sampler(sampling, runners, models, [w for _, w in active], run, record)
    with removed_on_failure(output_folder):
        output_folder.mkdir(parents=True, exist_ok=True)
        if todo:
            with anatomy_input_folder(input_folder, output_folder, source, models[0], run) as folder:
                writer = runners[0].predictor.plans_manager.image_reader_writer_class()
                records, start = [], time.perf_counter()
                files = [[str(Path(folder) / f"{case}_{c:04d}{ending}") for c in range(models[0].num_channels)]
                         for case in todo]
                with _cases_ahead(files, runners, run.num_processes, pipelined) as ahead:
                    for case, inputs in tqdm(list(zip(todo, files)), desc="Samples", unit="case"):
                        preprocessing = ahead(inputs)  # waiting for the workers is not the case's time
                        with timed_case(records, case) as timing:
                            _predict_case(output_folder, case, ending, inputs, sampler, runners[0], space, writer,
                                          run.save_probabilities or space.kind == "cumulative", save_maps, sampling)
                        timing.update(preprocessing)
                write_timing(output_folder, records, model=", ".join(str(m) for m in members),
                             device=str(runners[0].predictor.device), wall_s=time.perf_counter() - start)
            finish_outputs(output_folder, space, ending, run.save_probabilities, levels.probabilities, levels.masks,
                           cases=todo)
        if sampling is not None:
            write_summary(output_folder, [row for case in cases for row in read_case_rows(output_folder, case)])
        _write_model_record(output_folder, space, members, models, all_weights)
        atomic_write_json(output_folder / RECORD, record)
    return PredictedCases(cases, skipped)


@contextmanager
def _cases_ahead(files: Sequence[list[str]], runners: list[Runner], num_processes: int, pipelined: bool
                 ) -> Iterator[Callable[[list[str]], dict]]:
    """Within the block: a function that, called with the next case's files, puts that case's preprocessed data
    into the runners' shared cache and returns its timing (preprocessing seconds in the workers, seconds waited).
    Not ``pipelined``: it does nothing, and the runners preprocess when they first need the case."""
    import torch

    if not pipelined:
        yield lambda case_files: {}
        return
    from radconf.nnunet_compat.pipeline import preprocessed_cases

    cache = runners[0].cache  # shared by every runner
    # one preprocessing per plans/configuration
    with preprocessed_cases(files, [(r.plans_key, r.predictor) for r in runners], num_processes) as stream:
        def ahead(case_files: list[str]) -> dict:
            preprocessed, timing = next(stream)
            cache.clear()  # the previous case's data is freed
            for key, (data, properties, _) in preprocessed.items():
                cache[(key, tuple(case_files))] = (torch.as_tensor(data), properties)
            return timing

        yield ahead


def _predict_case(output_folder: Path, case: str, ending: str, files: list[str], sampler, first: Runner, space,
                  writer, write_npz: bool, save_maps: bool, sampling) -> None:
    accumulator = SampleAccumulator(space)
    for probabilities, weight in sampler(files):
        accumulator.add(probabilities, weight)
        del probabilities
    properties = case_properties(first, files)
    segmentation = write_prediction(output_folder, case, ending, accumulator.mean(), space, write_npz,
                                    lambda seg, tmp: writer.write_seg(seg, tmp, properties))
    if sampling is not None:
        write_case_uncertainty(output_folder, case, ending, accumulator, segmentation, save_maps)


def _sampler(sampling: UncertaintyOptions | None, runners: list[Runner], models: list[ModelFiles],
             weights: list[float], run: RunOptions, record: dict):
    """A function case files -> samples, after the checks that need the loaded models."""
    if sampling is None or sampling.source == "ensemble":  # one calibrated pass, or one sample per member
        return lambda files: member_samples(runners, weights, files, run.use_mirroring)
    runner, model = runners[0], models[0]
    if sampling.source == "mc_dropout":
        _configure_dropout(runner, model)
        return lambda files: mc_dropout_samples(runner, files, sampling.samples, sampling.seed)
    if sampling.source == "folds":
        if len(runner.predictor.list_of_parameters) < 2:
            raise InvalidInput(f"--uncertainty folds needs a model with two or more folds; {model.spec} has "
                               f"{len(model.spec.folds)} (-f 0 1 2 3 4).")
        return lambda files: fold_samples(runner, files, run.use_mirroring)
    combinations = _tta_combinations(runner, model, sampling)
    record["mirror_axes_per_sample"] = [list(axes) for axes in combinations]

    def samples(files):
        yield from tta_samples(runner, files, combinations)
        yield from affine_samples(runner, files, sampling.tta_affine, sampling.seed)

    return samples


def _tta_combinations(runner: Runner, model: ModelFiles, sampling: UncertaintyOptions) -> list[tuple[int, ...]]:
    from radconf.nnunet_compat.sampling import allowed_mirroring_axes, mirror_combinations

    spatial = len(runner.predictor.configuration_manager.patch_size)
    axes = sampling.tta_axes if sampling.tta_axes is not None else allowed_mirroring_axes(runner.predictor)
    if not axes and not sampling.tta_affine:
        raise InvalidInput(f"{model.spec} was trained without mirroring (its checkpoint allows no mirroring axes), "
                           f"so --uncertainty tta has nothing to flip; give the axes explicitly (--tta_axes 0 1 2), "
                           f"add rotated and scaled samples (--tta_affine N), or use --uncertainty folds / ensemble.")
    if axes and max(axes) >= spatial:
        raise InvalidInput(f"--tta_axes {list(axes)}: {model.spec} is a {spatial}D model (axes 0..{spatial - 1}).")
    combinations = mirror_combinations(axes)
    return combinations[:sampling.samples] if sampling.samples is not None else combinations


def _configure_dropout(runner: Runner, model: ModelFiles) -> None:
    """The recorded dropout settings of the model's folds on its network; refuses a model without dropout."""
    from radconf.uncertainty.dropout import configure_dropout, has_dropout, read_dropout_settings

    settings = {fold: read_dropout_settings(model.folder / f"fold_{fold}") for fold in model.spec.folds}
    recorded = {s for s in settings.values() if s is not None}
    if len(recorded) > 1:
        raise InvalidInput(f"The folds of {model.spec} were trained with different dropout settings "
                           f"({', '.join(f'fold {f}: {s}' for f, s in settings.items())}); sample one fold (-f N).")
    if recorded:
        configure_dropout(runner.predictor.network, next(iter(recorded)))
    if not has_dropout(runner.predictor.network):
        raise InvalidInput(f"--uncertainty mc_dropout: {model.spec} has no dropout to keep on (nnU-Net plans networks "
                           f"without dropout; train with DropoutTrainer / DropBlockTrainer, or --dropout P). For this "
                           f"model use test-time augmentation (--uncertainty tta) or the spread of its folds or of an "
                           f"ensemble (--uncertainty folds / ensemble).")


def _temperatures(models: list[ModelFiles], calibration: Calibration | None) -> list:
    if calibration is None:
        return [None] * len(models)
    from radconf.calibration.temperature import default_temperature_path, read_temperature

    if calibration.file is not None and len(models) > 1:
        raise InvalidInput("--calibrate FILE fits one model; for an ensemble give --calibrate alone (each member's "
                           "temperature.json is read from its model folder).")
    paths = [Path(calibration.file) if calibration.file is not None else default_temperature_path(m) for m in models]
    for path, model in zip(paths, models):
        if not path.is_file():
            raise InvalidInput(f"--calibrate: {path} does not exist; fit the temperature of {model.spec} on its "
                               f"validation folds first (radconf_calibrate -d {model.spec.dataset} -tr "
                               f"{model.spec.trainer} -p {model.spec.plans} -c {model.spec.configuration}).")
    return [read_temperature(path, model) for path, model in zip(paths, models)]


def _record(sampling: UncertaintyOptions | None, members: Sequence[ModelSpec], weights, calibration, models) -> dict:
    return {"source": sampling.source if sampling else "single",
            "options": asdict(sampling) if sampling else None,
            "members": [str(spec) for spec in members], "weights": [float(w) for w in weights],
            "calibrated": calibration is not None,
            "calibration_file": str(calibration.file) if calibration and calibration.file else None,
            "sample_seeds": ([sampling.seed + i for i in range(sampling.samples)]
                             if sampling and sampling.source == "mc_dropout" else None)}


def _check_resumed_record(output_folder: Path, record: dict, overwrite: bool) -> None:
    path = output_folder / RECORD
    if overwrite or not path.is_file():
        return
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InvalidInput(f"{path} is unreadable; predict again without --continue_prediction.") from None
    keys = ("source", "options", "members", "weights", "calibrated", "calibration_file")
    changed = [key for key in keys if before.get(key) != record.get(key)]
    if changed:
        raise InvalidInput(f"--continue_prediction: {output_folder} holds predictions drawn with other settings "
                           f"({', '.join(f'{key}: {before.get(key)!r}' for key in changed)}); use those settings, "
                           f"another -o, or predict again without --continue_prediction.")


def _write_model_record(output_folder: Path, space, members, models: list[ModelFiles], weights) -> None:
    if len(members) > 1:
        write_ensemble_record(output_folder, space, models[0].dataset_json, models[0].plans,
                              [str(s) for s in members], weights)
    else:  # as nnU-Net's predictor does: the model's dataset.json and plans.json describe the outputs
        atomic_write_json(output_folder / "dataset.json", models[0].dataset_json)
        atomic_write_json(output_folder / "plans.json", models[0].plans)
        atomic_write_json(output_folder / "radconf_model.json", {"model": str(members[0])})
