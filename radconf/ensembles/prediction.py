"""Running weighted ensembles: from images (``radconf_predict -m SPEC ...``) or from saved probabilities
(``radconf_ensemble -i DIR ...``).

Both go case by case: each member's probabilities of the case (nnU-Net's sliding window, fold averaging and
resampling back to the image grid, or a saved ``CASE.npz``) are converted into the ensemble's output space and
added to a ``WeightedAccumulator``, then freed, so memory holds one member's map and the running sum, whatever the
number of members. From images the prediction is pipelined: nnU-Net's workers preprocess the next cases (once per
plans/configuration of the members) while the networks run, and a writer thread exports the previous case, so a
second case's data and accumulator are held at most (``EnsembleOptions(pipelined=False)``: one case at a time, the
same results bit for bit). The mixture is decoded (argmax; monotone level counting for confidence models) and written
atomically, with optional ``CASE.npz`` (the ensemble's probabilities), a disagreement map (weighted standard
deviation of the members' foreground probability, ``disagreement/CASE<ending>``) and, for confidence models, the
level outputs of ``radconf.ordinal_outputs``. ``ensemble.json`` records the members and weights.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from radconf.anatomy.inputs import AnatomyInputs
from radconf.confidence.outputs import LevelOutputs
from radconf.ensembles.outputs import (
    DISAGREEMENT_FOLDER,
    finish_outputs,
    space_levels,
    write_case,
    write_ensemble_record,
)
from radconf.ensembles.space import (
    OutputSpace,
    WeightedAccumulator,
    common_space,
    to_space,
)
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
    preprocess_case,
)
from radconf.io.cases import PredictedCases, split_done
from radconf.io.files import removed_on_failure
from radconf.models import ModelFiles, ModelSpec, find_model
from radconf.nnunet_compat.export import probabilities_on_image_grid
from radconf.timing import network_logits, timed_case, write_timing


@dataclass(frozen=True)
class EnsembleOptions:
    """How the members are mixed.

    Attributes:
        weights: one per member, normalised to sum 1; None = equal weights. Members with weight 0 are not run.
        save_disagreement: also write the members' weighted standard deviation of the foreground probability
            (``disagreement/CASE<ending>``).
        pipelined: nnU-Net's background workers preprocess the next cases while the networks run, and a writer
            thread exports the previous case (the same results, bit for bit); False: one case at a time, holding
            only one case's data, probability map and accumulator.
    """

    weights: tuple[float, ...] | None = None
    save_disagreement: bool = False
    pipelined: bool = True


def predict_ensemble(input_folder: str | Path, output_folder: str | Path, members: Sequence[ModelSpec], *,
                     ensemble: EnsembleOptions = EnsembleOptions(), run: RunOptions = RunOptions(),
                     levels: LevelOutputs = LevelOutputs(), anatomy: AnatomyInputs = AnatomyInputs()) -> PredictedCases:
    """Predicts every case of ``input_folder`` with the weighted ensemble of ``members``.

    Args:
        input_folder: images ``CASE_XXXX<ending>``; all members must take the same input channels.
        output_folder: segmentations ``CASE<ending>`` and the optional outputs.
        members: model specs.
        ensemble: weights and the disagreement map.
        run: as for one model; ``save_probabilities`` writes the ensemble's ``CASE.npz`` (output space, image grid);
            ``num_processes`` is used by a two-stage organ model only (the ensemble itself runs case by case).
        levels: confidence ensembles: P(level >= c) maps, masks level >= L.
        anatomy: anatomy-channel members: where their organ masks come from.

    Returns:
        The case identifiers of the input folder (``skipped``: those already predicted, ``run.overwrite`` False).

    Raises:
        ValueError: members disagree on structures, inputs or image grid; bad weights; every check runs before
            anything is written.
    """
    run.check()
    weights = check_weights(ensemble.weights, len(members))
    if len(members) == 1 and ensemble.save_disagreement:
        raise InvalidInput("A disagreement map needs at least two ensemble members.")
    active = [(find_model(spec), float(w)) for spec, w in zip(members, weights) if w > 0]
    models = [model for model, _ in active]
    check_output_folder(output_folder, prediction_inputs(input_folder, models, anatomy))
    space, kinds = _check_members(models)
    k = space_levels(space)
    levels.check(k, "this ensemble")
    cases, source = check_inputs(input_folder, models[0], anatomy)
    output_folder = Path(output_folder)
    ending, num_channels = models[0].file_ending, models[0].num_channels

    def outputs(case: str) -> list[str]:
        maps = [f"{DISAGREEMENT_FOLDER}/{case}{ending}"] if ensemble.save_disagreement else []
        return expected_outputs(case, ending, run.save_probabilities, levels, k, maps)

    todo, skipped = split_done(cases, output_folder, run.overwrite, outputs)
    predictors = [load_predictor(model.spec, device=run.device, tile_step_size=run.tile_step_size,
                                 use_mirroring=run.use_mirroring) for model in models] if todo else []
    with removed_on_failure(output_folder):
        output_folder.mkdir(parents=True, exist_ok=True)
        if todo:
            with anatomy_input_folder(input_folder, output_folder, source, models[0], run) as folder:
                writer = predictors[0].plans_manager.image_reader_writer_class()
                records, start = [], time.perf_counter()
                files = [[str(Path(folder) / f"{case}_{c:04d}{ending}") for c in range(num_channels)]
                         for case in todo]
                job = _Job(active, predictors, kinds, space, ensemble.save_disagreement,
                           lambda case, accumulator, properties: write_case(
                               output_folder, case, ending, accumulator, space,
                               run.save_probabilities or space.kind == "cumulative",
                               lambda seg, tmp: writer.write_seg(seg, tmp, properties)))
                if ensemble.pipelined:
                    _predict_pipelined(job, todo, files, records, run.num_processes)
                else:
                    _predict_sequential(job, todo, files, records)
                write_timing(output_folder, records, model=f"ensemble of {len(members)}",
                             device=str(predictors[0].device), wall_s=time.perf_counter() - start)
            finish_outputs(output_folder, space, ending, run.save_probabilities, levels.probabilities, levels.masks,
                           cases=todo)
        write_ensemble_record(output_folder, space, models[0].dataset_json, models[0].plans,
                              [str(s) for s in members], weights)
    return PredictedCases(cases, skipped)


def _check_members(models: Sequence[ModelFiles]) -> tuple[OutputSpace, list[str]]:
    """The ensemble's output space and each member's kind; members must take the same input channels."""
    names = [str(model.spec) for model in models]
    space, kinds = common_space([model.dataset_json for model in models], names)
    first_json = models[0].dataset_json
    for name, model in zip(names, models):
        if model.dataset_json["channel_names"] != first_json["channel_names"]:
            raise InvalidInput(f"Ensemble members must take the same input channels: {names[0]} takes "
                               f"{first_json['channel_names']}, {name} takes {model.dataset_json['channel_names']}.")
    return space, kinds


@dataclass(frozen=True)
class _Job:
    """What every case of an ensemble prediction needs: the weighted members, their predictors and kinds, the
    output space and how a case's ensemble is written."""

    active: Sequence[tuple[ModelFiles, float]]
    predictors: Sequence
    kinds: Sequence[str]
    space: OutputSpace
    disagreement: bool
    write: Callable[[str, WeightedAccumulator, dict], None]

    def keys(self) -> list[tuple]:
        """Each member's plans/configuration: members sharing one share one preprocessing of a case."""
        return [(model.spec.dataset, model.spec.plans, model.spec.configuration) for model, _ in self.active]

    def accumulate(self, preprocessed: dict) -> tuple[WeightedAccumulator, dict]:
        """Every member's probabilities of one case (``key -> (data, properties)``) in a new accumulator, and
        nnU-Net's image properties."""
        import torch

        accumulator = WeightedAccumulator(self.space, track_disagreement=self.disagreement)
        for key, (_, weight), predictor, kind in zip(self.keys(), self.active, self.predictors, self.kinds):
            data, properties = preprocessed[key][:2]
            with torch.no_grad():
                logits = network_logits(predictor, torch.as_tensor(data))
            accumulator.add(to_space(probabilities_on_image_grid(logits, predictor, properties), kind, self.space),
                            weight)
            del logits
        return accumulator, next(iter(preprocessed.values()))[1]


def _predict_sequential(job: _Job, cases: Sequence[str], files: Sequence[list[str]], records: list) -> None:
    """One case at a time: preprocess (once per plans/configuration), the members, write."""
    from tqdm import tqdm

    for case, case_files in tqdm(list(zip(cases, files)), desc="Ensemble", unit="case"):
        with timed_case(records, case):
            preprocessed = {}
            for key, predictor in zip(job.keys(), job.predictors):
                if key not in preprocessed:
                    preprocessed[key] = preprocess_case(predictor, case_files)
            accumulator, properties = job.accumulate(preprocessed)
            job.write(case, accumulator, properties)


def _predict_pipelined(job: _Job, cases: Sequence[str], files: Sequence[list[str]], records: list,
                       num_processes: int) -> None:
    """nnU-Net's workers preprocess ahead (:mod:`radconf.nnunet_compat.pipeline`), the members run here, a writer
    thread exports case i while case i + 1 is computed (at most one write pending)."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from radconf.nnunet_compat.pipeline import preprocessed_cases

    pending = None
    # the first member of each plans/configuration preprocesses for it
    with preprocessed_cases(files, zip(job.keys(), job.predictors), num_processes) as stream, \
            ThreadPoolExecutor(1) as writer:
        for case, (preprocessed, timing) in tqdm(zip(cases, stream), total=len(cases), desc="Ensemble",
                                                 unit="case"):
            with timed_case(records, case) as record:
                accumulator, properties = job.accumulate(preprocessed)
            record.update(timing)
            if pending is not None:
                pending.result()
            pending = writer.submit(_timed_write, job, record, case, accumulator, properties)
        if pending is not None:
            pending.result()


def _timed_write(job: _Job, record: dict, case: str, accumulator: WeightedAccumulator, properties: dict) -> None:
    start = time.perf_counter()
    job.write(case, accumulator, properties)
    record["export_s"] += time.perf_counter() - start
