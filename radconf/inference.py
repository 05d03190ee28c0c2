"""Prediction with nnU-Net's predictor for any trainer radconf or nnU-Net knows.

The model is rebuilt explicitly (checkpoint -> trainer class via radconf's registry -> its static
``build_network_architecture`` -> ``nnUNetPredictor.manual_initialization``), so radconf's trainers need no entry in
nnU-Net's own lookup. A model is described by a ``ModelSpec``; ensembling several specs builds on the same type.

Every check runs before any work: the options, the model's files (folds, checkpoint), the output location (never
into, onto or around an input), every input image (whole, finite, 3D, the model's channels) and the level outputs
against the model's levels. A failed prediction leaves the output folder as it was found
(:func:`radconf.io.files.removed_on_failure`); ``radconf_model.json`` is written last.
"""
from __future__ import annotations

import math
import numbers
import os
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from radconf.anatomy.channels import anatomy_of
from radconf.anatomy.distance_export import (
    DISTANCE_FOLDER,
    check_distance_head,
    export_distance_maps,
)
from radconf.anatomy.inputs import (
    AnatomyInputs,
    AnatomySource,
    assemble_anatomy_inputs,
    check_anatomy_source,
    split_channels_present,
)
from radconf.confidence.ordinal import ordinal_levels
from radconf.confidence.outputs import LevelOutputs, finish_level_predictions
from radconf.devices import make_device
from radconf.errors import InvalidInput
from radconf.io.cases import (
    PredictedCases,
    check_input_folder,
    input_case_channels,
    split_done,
)
from radconf.io.files import atomic_write_json, removed_on_failure
from radconf.io.locations import check_output_location
from radconf.models import ModelFiles, ModelSpec, find_model, read_model_json
from radconf.nnunet_compat.checkpoints import fold_checkpoints, safe_load_checkpoint
from radconf.nnunet_compat.records import part_run_records
from radconf.nnunet_compat.timing import axial_slices, timed_prediction
from radconf.nnunet_compat.workers import workers_as_threads
from radconf.paths import require_nnunet_paths
from radconf.raw.entry import RadconfEntry
from radconf.registry import find_class
from radconf.timing import add_seconds, write_timing

DEVICES = ("cpu", "cuda", "mps")


def _prediction_fix(path: Path) -> str:
    """For a corrupt checkpoint at prediction: the other checkpoints of its fold, by ``-chk``."""
    others = [p.name for p in fold_checkpoints(path.parent) if p.name != path.name]
    if not others:
        return "Copy it again, or retrain the fold."
    return f"Copy it again, or predict with another checkpoint of the fold: -chk {' or -chk '.join(others)}."


def load_predictor(spec: ModelSpec, *, device: str | None = None, tile_step_size: float = 0.5,
                   use_mirroring: bool = True, verbose: bool = False):
    """An initialised ``nnUNetPredictor`` for ``spec`` (checkpoints loaded with ``weights_only=True``).

    Raises:
        FileNotFoundError: the model folder or a fold's checkpoint is missing.
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import (
        determine_num_input_channels,
    )
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    model = find_model(spec)
    checkpoints = [safe_load_checkpoint(path, fix=_prediction_fix(path)) for path in model.checkpoints()]
    plans_manager = PlansManager(model.plans)
    dataset_json = model.dataset_json
    configuration_manager = plans_manager.get_configuration(checkpoints[0]["init_args"]["configuration"])
    # plans naming radconf's CLAHE preprocessor need a manager that resolves it (radconf.nnunet_compat.intensity)
    from radconf.nnunet_compat.intensity import radconf_configuration_manager
    configuration_manager = radconf_configuration_manager(configuration_manager)
    trainer_class = find_class(checkpoints[0]["trainer_name"], "trainer")
    num_inputs = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
    num_outputs = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    network = trainer_class.build_network_architecture(plans_manager, configuration_manager, num_inputs, num_outputs,
                                                       enable_deep_supervision=False)
    parameters = [c["network_weights"] for c in checkpoints]
    network.load_state_dict(parameters[0])
    # a trainer whose network needs another sliding window (e.g. neighbouring slices as channels) names its predictor
    predictor_class = getattr(trainer_class, "predictor_class", None) or nnUNetPredictor
    predictor = predictor_class(tile_step_size=tile_step_size, use_gaussian=True, use_mirroring=use_mirroring,
                                perform_everything_on_device=True, device=make_device(device), verbose=verbose,
                                verbose_preprocessing=False, allow_tqdm=True)
    predictor.manual_initialization(network, plans_manager, configuration_manager, parameters, dataset_json,
                                    trainer_class.__name__, checkpoints[0].get("inference_allowed_mirroring_axes"))
    return predictor


def preprocess_case(predictor, files: Sequence[str]) -> tuple:
    """nnU-Net's preprocessing of one case for ``predictor``'s plans: (data array, image properties)."""
    start = time.perf_counter()
    preprocessor = predictor.configuration_manager.preprocessor_class(verbose=False)
    data, _, properties = preprocessor.run_case(list(files), None, predictor.plans_manager,
                                                predictor.configuration_manager, predictor.dataset_json)
    add_seconds("preprocessing_s", time.perf_counter() - start,
                axial_slices(properties, predictor.plans_manager.transpose_forward))
    return data, properties


@dataclass(frozen=True)
class RunOptions:
    """How a model runs, whatever the method: device, sliding window, workers, what is kept.

    Attributes:
        device: ``cpu``/``cuda``/``mps``; None = cuda when available, else cpu.
        overwrite: recompute cases whose outputs exist (False: keep them, ``--continue_prediction``).
        num_processes: nnU-Net's preprocessing workers (and export workers unless ``num_processes_export``).
        tile_step_size: sliding-window step as a fraction of the patch, in (0, 1].
        use_mirroring: test-time mirroring.
        save_probabilities: also write ``CASE.npz``/``CASE.pkl`` as nnU-Net does.
        num_processes_export: nnU-Net's segmentation export workers; None = ``num_processes``. With one worker of
            each kind, they run as threads of this process (:mod:`radconf.nnunet_compat.workers`).
    """

    device: str | None = None
    overwrite: bool = True
    num_processes: int = 2
    tile_step_size: float = 0.5
    use_mirroring: bool = True
    save_probabilities: bool = False
    num_processes_export: int | None = None

    @property
    def export_processes(self) -> int:
        return self.num_processes if self.num_processes_export is None else self.num_processes_export

    def check(self) -> None:
        """Refuses values nnU-Net would fail on later (an assertion, a pool of 0 workers).

        Raises:
            InvalidInput: naming the option and the values it takes.
        """
        if self.device is not None and self.device not in DEVICES:
            raise InvalidInput(f"-device {self.device!r} is not one of {', '.join(DEVICES)}.")
        step = self.tile_step_size
        if isinstance(step, bool) or not isinstance(step, numbers.Real) or not math.isfinite(step) \
                or not 0 < step <= 1:
            raise InvalidInput(f"-step_size {step!r} must be a number greater than 0 and at most 1 (e.g. 0.5).")
        for flag, value in (("-npp", self.num_processes), ("-nps", self.export_processes)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise InvalidInput(f"{flag} {value!r} must be a whole number of worker processes, at least 1.")


def check_output_folder(output_folder: str | Path, inputs: Sequence[tuple[str, object]]) -> None:
    """Refuses an output that is a file, or that is, lies inside or contains an input (``(what, folder)`` pairs)."""
    output = Path(output_folder)
    if output.exists() and not output.is_dir():
        raise InvalidInput(f"-o {output} is a file; give a folder for the predictions.")
    check_output_location(output, inputs)


def prediction_inputs(input_folder, models: Sequence[ModelFiles], anatomy: AnatomyInputs) -> list[tuple[str, object]]:
    """What a prediction reads, for :func:`check_output_folder`: images, organ masks, model folders."""
    pairs = [("the input folder -i", input_folder), ("the anatomy folder --anatomy", anatomy.folder)]
    pairs += [(f"the model folder of {m.spec}", m.folder) for m in models]
    if anatomy.model is not None:
        pairs.append(("the model folder of --anatomy_model", anatomy.model.model_folder(require_nnunet_paths().results)))
    return pairs


def image_dimensions(plans: dict) -> tuple[int, ...]:
    """The image dimensions a model reads: 3D, or 2D and 3D for a model of 2D images (nnU-Net gives 2D images a
    first spacing of 999 x the largest in-plane spacing)."""
    spacing = plans.get("original_median_spacing_after_transp")
    if not isinstance(spacing, (list, tuple)) or len(spacing) != 3:
        return (2, 3)
    return (2, 3) if spacing[0] > 100 * max(spacing[1:]) else (3,)


def model_levels(dataset_json: dict) -> int | None:
    """K of a confidence-level model, None for any other model."""
    return ordinal_levels(dataset_json) if RadconfEntry.of(dataset_json).ordinal else None


def check_inputs(input_folder: str | Path, model: ModelFiles, anatomy: AnatomyInputs
                 ) -> tuple[list[str], AnatomySource | None]:
    """The cases of ``input_folder`` (every image checked) and, for anatomy-channel models whose folder holds the
    images only, where the organ masks come from (checked too)."""
    ending, num_channels = model.file_ending, model.num_channels
    declared = anatomy_of(model.dataset_json, where=f"{model.folder}/dataset.json")
    channels = None
    if declared is not None:
        input_case_channels(input_folder, ending)  # the folder and its names, before the channels are told apart
        if not split_channels_present(input_folder, ending, declared, num_channels):
            channels = declared.image_channels(num_channels)
    cases = check_input_folder(input_folder, ending, num_channels, channels=channels,
                               dimensions=image_dimensions(model.plans))
    return cases, check_anatomy_source(Path(input_folder), cases, model.dataset_json, anatomy, num_channels)


def expected_outputs(case: str, ending: str, save_probabilities: bool, levels: LevelOutputs, k: int | None,
                     extra: Sequence[str] = ()) -> list[str]:
    """The files a prediction writes for ``case`` (relative to the output folder), for ``--continue_prediction``."""
    return [f"{case}{ending}", *([f"{case}.npz"] if save_probabilities else []), *levels.files(case, ending, k),
            *extra]


def predict_model(input_folder: str | Path, output_folder: str | Path, spec: ModelSpec, *,
                  run: RunOptions = RunOptions(), levels: LevelOutputs = LevelOutputs(),
                  anatomy: AnatomyInputs = AnatomyInputs(), save_distance: bool = False) -> PredictedCases:
    """Predicts every case of ``input_folder`` with one model (its folds averaged, nnU-Net's predictor).

    Args:
        input_folder: images named ``CASE_XXXX<file_ending>``.
        output_folder: where segmentations (and ``.npz`` probabilities) go.
        spec: the model.
        run: device, sliding window, workers.
        levels: confidence models: probability maps and masks at chosen levels.
        anatomy: anatomy-channel models whose input folder holds only the images: where the organ masks come from.
        save_distance: distance-head models: write the distance maps in mm (``distance_maps/``).

    Returns:
        The case identifiers of the input folder (``skipped``: those already predicted, ``run.overwrite`` False).

    Raises:
        InvalidInput, MissingInput: any problem with the options, the model or the inputs, before anything is
            written.
    """
    run.check()
    model = find_model(spec)
    check_output_folder(output_folder, prediction_inputs(input_folder, [model], anatomy))
    k = model_levels(model.dataset_json)
    levels.check(k, str(spec))
    distance = _distance_settings(model) if save_distance else None
    cases, source = check_inputs(input_folder, model, anatomy)
    output_folder = Path(output_folder)
    ending = model.file_ending
    names = distance["labels"] if distance else []

    def outputs(case: str) -> list[str]:
        maps = [f"{DISTANCE_FOLDER}/{case}_{name}{ending}" for name in names]
        return expected_outputs(case, ending, run.save_probabilities, levels, k, maps)

    todo, skipped = split_done(cases, output_folder, run.overwrite, outputs)
    predictor = None
    if todo:
        predictor = load_predictor(spec, device=run.device, tile_step_size=run.tile_step_size,
                                   use_mirroring=run.use_mirroring)
        if distance is not None:
            check_distance_head(predictor.network)
    with removed_on_failure(output_folder):
        output_folder.mkdir(parents=True, exist_ok=True)
        if todo:
            with anatomy_input_folder(input_folder, output_folder, source, model, run) as folder:
                _predict_cases(predictor, model, folder, output_folder, todo, run, levels, k)
                if distance is not None:
                    export_distance_maps(predictor, folder, output_folder, todo, distance["file"])
        atomic_write_json(output_folder / "radconf_model.json", {"model": str(spec)})  # identifies the member
    return PredictedCases(cases, skipped)


def _distance_settings(model: ModelFiles) -> dict:
    path = model.folder / f"fold_{model.spec.folds[0]}" / "distance_head.json"
    if not path.is_file():
        raise InvalidInput(f"--save_distance needs a model with a distance-map head; {path} does not exist "
                           f"({model.spec.trainer} has none, or the fold was trained before it was recorded).")
    settings = read_model_json(path, "distance-head settings", ("signed", "scale_mm", "labels"))
    return {"file": path, "labels": [str(name) for name in settings["labels"]]}


@contextmanager
def anatomy_input_folder(input_folder, output_folder, source: AnatomySource | None, model: ModelFiles,
                         run: RunOptions):
    """The folder to predict from: ``input_folder`` itself, or a temporary one with the organ masks added."""
    if source is None:
        yield Path(input_folder)
        return
    maps = source.folder
    if source.model is not None:
        maps = Path(output_folder) / "anatomy_predictions"
        predict_model(input_folder, maps, source.model.spec, run=replace(run, save_probabilities=False))
    Path(output_folder).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".anatomy_inputs_", dir=output_folder) as assembled:
        assemble_anatomy_inputs(input_folder, maps, assembled, source.anatomy, model.file_ending, model.num_channels,
                                label_ids=source.label_ids)
        yield Path(assembled)


def _predict_cases(predictor, model: ModelFiles, input_folder: Path, output_folder: Path, cases: Sequence[str],
                   run: RunOptions, levels: LevelOutputs, k: int | None) -> None:
    """nnU-Net's prediction of ``cases`` (files named explicitly: the cases to do, nothing else), then the level
    outputs of a confidence model."""
    ending, num_channels = model.file_ending, model.num_channels
    files = [[os.path.realpath(input_folder / f"{case}_{c:04d}{ending}") for c in range(num_channels)]
             for case in cases]  # the user's files, also when linked into a part's folder
    one_worker = run.num_processes == 1 and run.export_processes == 1
    start = time.perf_counter()
    with workers_as_threads(planning=False, inference=True) if one_worker else nullcontext(), \
            timed_prediction(predictor) as records, part_run_records():
        predictor.predict_from_files(files, [str(output_folder / case) for case in cases],
                                     save_probabilities=run.save_probabilities or k is not None, overwrite=True,
                                     num_processes_preprocessing=run.num_processes,
                                     num_processes_segmentation_export=run.export_processes)
    write_timing(output_folder, records, model=str(model.spec), device=str(predictor.device),
                 wall_s=time.perf_counter() - start)
    if k is not None:  # monotone decoding of the cumulative channels, probability maps, masks at chosen levels
        finish_level_predictions(output_folder, k, ending, cumulative=predictor.label_manager.has_regions,
                                 keep_npz=run.save_probabilities, probability_maps=levels.probabilities,
                                 mask_levels=levels.masks, cases=cases)
